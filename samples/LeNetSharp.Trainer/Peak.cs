using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Trainer;

/// <summary>
/// This core's FP32 peak, measured: a loop of independent fused multiply-adds (12 accumulators, enough to cover the
/// FMA latency on two pipes) at each vector width the CPU accelerates; the best of many short runs, so a run that
/// another process interrupted does not count.
/// </summary>
internal static class Peak
{
    private const int Iterations = 200_000, Chains = 12;

    /// <summary>GFLOP/s (2 per lane per FMA) of the FMA loop at each accelerated width, widest last.</summary>
    public static IReadOnlyList<(int Bits, double GFlops)> Measure(TimeSpan budgetPerWidth)
    {
        var results = new List<(int, double)> { (128, Best(budgetPerWidth, Loop128, Vector128<float>.Count)) };
        if (Vector256.IsHardwareAccelerated) results.Add((256, Best(budgetPerWidth, Loop256, Vector256<float>.Count)));
        if (Vector512.IsHardwareAccelerated) results.Add((512, Best(budgetPerWidth, Loop512, Vector512<float>.Count)));
        return results;
    }

    private static double Best(TimeSpan budget, Func<int, float> loop, int lanes)
    {
        loop(1000); // JIT
        double best = 0;
        var total = Stopwatch.StartNew();
        while (total.Elapsed < budget)
        {
            long start = Stopwatch.GetTimestamp();
            float sink = loop(Iterations);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (float.IsNaN(sink)) throw new InvalidOperationException("unreachable: keeps the loop alive");
            best = Math.Max(best, 2.0 * lanes * Chains * Iterations / seconds / 1e9);
        }

        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop128(int iterations)
    {
        var a = Vector128.Create(0.999f);
        var b = Vector128.Create(0.001f);
        Vector128<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (int i = 0; i < iterations; i++)
        {
            x0 = Vector128.FusedMultiplyAdd(x0, a, b); x1 = Vector128.FusedMultiplyAdd(x1, a, b); x2 = Vector128.FusedMultiplyAdd(x2, a, b);
            x3 = Vector128.FusedMultiplyAdd(x3, a, b); x4 = Vector128.FusedMultiplyAdd(x4, a, b); x5 = Vector128.FusedMultiplyAdd(x5, a, b);
            x6 = Vector128.FusedMultiplyAdd(x6, a, b); x7 = Vector128.FusedMultiplyAdd(x7, a, b); x8 = Vector128.FusedMultiplyAdd(x8, a, b);
            x9 = Vector128.FusedMultiplyAdd(x9, a, b); x10 = Vector128.FusedMultiplyAdd(x10, a, b); x11 = Vector128.FusedMultiplyAdd(x11, a, b);
        }

        return Vector128.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop256(int iterations)
    {
        var a = Vector256.Create(0.999f);
        var b = Vector256.Create(0.001f);
        Vector256<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (int i = 0; i < iterations; i++)
        {
            x0 = Vector256.FusedMultiplyAdd(x0, a, b); x1 = Vector256.FusedMultiplyAdd(x1, a, b); x2 = Vector256.FusedMultiplyAdd(x2, a, b);
            x3 = Vector256.FusedMultiplyAdd(x3, a, b); x4 = Vector256.FusedMultiplyAdd(x4, a, b); x5 = Vector256.FusedMultiplyAdd(x5, a, b);
            x6 = Vector256.FusedMultiplyAdd(x6, a, b); x7 = Vector256.FusedMultiplyAdd(x7, a, b); x8 = Vector256.FusedMultiplyAdd(x8, a, b);
            x9 = Vector256.FusedMultiplyAdd(x9, a, b); x10 = Vector256.FusedMultiplyAdd(x10, a, b); x11 = Vector256.FusedMultiplyAdd(x11, a, b);
        }

        return Vector256.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Loop512(int iterations)
    {
        var a = Vector512.Create(0.999f);
        var b = Vector512.Create(0.001f);
        Vector512<float> x0 = a, x1 = a, x2 = a, x3 = a, x4 = a, x5 = a, x6 = a, x7 = a, x8 = a, x9 = a, x10 = a, x11 = a;
        for (int i = 0; i < iterations; i++)
        {
            x0 = Vector512.FusedMultiplyAdd(x0, a, b); x1 = Vector512.FusedMultiplyAdd(x1, a, b); x2 = Vector512.FusedMultiplyAdd(x2, a, b);
            x3 = Vector512.FusedMultiplyAdd(x3, a, b); x4 = Vector512.FusedMultiplyAdd(x4, a, b); x5 = Vector512.FusedMultiplyAdd(x5, a, b);
            x6 = Vector512.FusedMultiplyAdd(x6, a, b); x7 = Vector512.FusedMultiplyAdd(x7, a, b); x8 = Vector512.FusedMultiplyAdd(x8, a, b);
            x9 = Vector512.FusedMultiplyAdd(x9, a, b); x10 = Vector512.FusedMultiplyAdd(x10, a, b); x11 = Vector512.FusedMultiplyAdd(x11, a, b);
        }

        return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }
}
