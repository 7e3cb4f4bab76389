using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>
/// Chooses the vector width of <see cref="ComputeBackend.Simd"/> the way FFTW's planner chooses an algorithm: by
/// timing each candidate once, on this machine, for this network, input shape and mode, and remembering the fastest for
/// the life of the process. Every width gives the same bits, so the choice changes speed only.
/// </summary>
/// <remarks>
/// The timing runs on a copy of the network (its gradients and buffers are not the caller's) with the caller's own
/// first batch: forward (and backward with a dense upstream gradient, in training) at each width in turn, in
/// interleaved rounds so that a slow phase of the machine falls on every candidate alike. Each width's fastest round
/// decides (another process or a slow phase only ever makes a round slower, so the fastest is the least disturbed).
/// It costs 3 widths × 9 rounds of ≥ 1 ms for a small network (about 30 ms), 3 rounds for a large one (at most about
/// half a second), and is shared by every network of the same layers and shape, on every thread.
/// </remarks>
internal static class WidthCalibration
{
    private const int Rounds = 9;
    private static readonly TimeSpan MinRound = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(400); // a large network: fewer rounds, not endless timing

    private static readonly ConcurrentDictionary<string, Lazy<Calibration>> Choices = new();

    /// <summary>What was measured for one network, shape and mode: the width chosen and each width's fastest time per run.</summary>
    internal sealed record Calibration(string Key, int Bits, IReadOnlyList<(int Bits, double Microseconds)> Times);

    /// <summary>Every calibration made in this process (for benchmarks and tests).</summary>
    internal static IEnumerable<Calibration> All => Choices.Values.Where(l => l.IsValueCreated).Select(l => l.Value);

    /// <summary>The width for <paramref name="network"/> running <paramref name="input"/>'s shape in <paramref name="mode"/>.</summary>
    public static int Choose<T>(Sequential<T> network, Tensor<T> input, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var widths = ComputeBackend.AcceleratedWidths;
        if (widths.Count == 1) return widths[0];
        string key = Key(network, input.Shape, mode);
        if (Choices.TryGetValue(key, out var known) && known.IsValueCreated) return known.Value.Bits;
        Sequential<T> copy;
        try
        {
            copy = network.Clone();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A layer of the caller's that cannot be copied (NotSupportedException, or a Clone that throws anything
            // else): nothing to time on, and no reason to stop a network that runs.
            return Unmeasured(widths);
        }

        var lazy = Choices.GetOrAdd(key, k => new Lazy<Calibration>(() => MeasureOrFallBack(k, copy, input, mode, widths)));
        try
        {
            return lazy.Value.Bits;
        }
        catch
        {
            Choices.TryRemove(new(key, lazy)); // out of memory: time it again next time
            throw;
        }
    }

    /// <summary>
    /// <see cref="Measure"/>, or the unmeasured width when the copy fails: a layer's copy may not run where the layer
    /// does (a Clone that misses some state), and when the input is at fault the caller's own forward reports it.
    /// Remembered like a measurement, so a copy that always fails is not cloned and run again on every batch.
    /// </summary>
    private static Calibration MeasureOrFallBack<T>(string key, Sequential<T> copy, Tensor<T> input, PlanMode mode, IReadOnlyList<int> widths)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        try
        {
            return Measure(key, copy, input, mode, widths);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new Calibration(key, Unmeasured(widths), []);
        }
    }

    /// <summary>The width used when the network cannot be timed: 256 bits where accelerated (the fastest on the CPUs measured), else 128.</summary>
    private static int Unmeasured(IReadOnlyList<int> widths) => widths.Contains(256) ? 256 : 128;

    /// <summary>The network's layers (kinds and settings), element type, shape and mode.</summary>
    internal static string Key<T>(Sequential<T> network, ReadOnlySpan<int> shape, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T> =>
        $"{typeof(T).Name} {mode} {Tensor<T>.ShapeToString(shape)}: "
        + string.Join(" | ", network.Layers.Select(l => $"{l.GetType().FullName} {l.Name}{(l is Conv<T> { ComputeInputGradient: false } ? " (no ∂x)" : "")}"));

    private static Calibration Measure<T>(string key, Sequential<T> copy, Tensor<T> input, PlanMode mode, IReadOnlyList<int> widths)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var plans = widths.Select(b => SimdBackend.Build(copy, input.Shape, mode, b)).ToArray();
        Tensor<T>? upstream = null;
        void Run(ExecutionPlan<T> plan)
        {
            var y = plan.Forward(input);
            if (mode != PlanMode.Training) return;
            if (upstream is null)
            {
                upstream = new Tensor<T>(y.Shape.ToArray());
                upstream.Span.Fill(T.One / T.CreateChecked(y.Dim(0)));
            }

            plan.Backward(upstream);
        }

        // Warm up (first calls allocate the buffers), and find how many runs make a round long enough to time.
        var clock = Stopwatch.StartNew();
        foreach (var plan in plans) Run(plan);
        clock.Restart();
        foreach (var plan in plans) Run(plan);
        double perRun = Math.Max(clock.Elapsed.TotalMilliseconds / plans.Length, 1e-4);
        int reps = (int)Math.Clamp(Math.Ceiling(MinRound.TotalMilliseconds / perRun), 1, 10_000);
        int rounds = perRun * reps * plans.Length * Rounds <= Budget.TotalMilliseconds ? Rounds : 3;

        var times = new double[plans.Length][];
        for (int p = 0; p < plans.Length; p++) times[p] = new double[rounds];
        for (int r = 0; r < rounds; r++)
        {
            for (int j = 0; j < plans.Length; j++)
            {
                int p = (r + j) % plans.Length; // each width takes every place in the order in turn
                copy.ZeroGradients();
                clock.Restart();
                for (int k = 0; k < reps; k++) Run(plans[p]);
                times[p][r] = clock.Elapsed.TotalMicroseconds / reps;
            }
        }

        var fastest = widths.Select((b, p) => (b, times[p].Min())).ToArray();
        return new Calibration(key, fastest.MinBy(m => m.Item2).b, fastest);
    }
}
