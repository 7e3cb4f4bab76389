using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>The SIMD GEMM against MathNet's provider, the reference, at every vector width this machine runs.</summary>
public class SimdGemmTests
{
    public static TheoryData<int> Width(int bits) => new() { bits };

    public static TheoryData<int, bool, bool, int, int, int> Cases(int bits)
    {
        var data = new TheoryData<int, bool, bool, int, int, int>();
        // The network's own shapes at batch 3, plus edge sizes: 1, just under/over a vector, odd tails.
        var shapes = new[]
        {
            (1728, 6, 25), (25, 6, 1728), (1728, 25, 6), (192, 16, 150), (150, 16, 192), (192, 150, 16),
            (3, 10, 256), (256, 10, 3), (3, 256, 10), (1, 1, 1), (1, 17, 1), (5, 1, 7), (15, 16, 17), (33, 31, 2), (64, 64, 64),
            // Long sums, run in ranges of 256 terms: a weight gradient's shape, odd ones, a last range of 1.
            (72, 64, 1300), (37, 20, 777), (6, 16, 1729), (9, 33, 513),
        };
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
        foreach (var (m, n, k) in shapes)
            data.Add(bits, ta, tb, m, n, k);
        return data;
    }

    [Theory]
    [WidthData(nameof(Cases), 128)]
    [WidthData(nameof(Cases), 256)]
    [WidthData(nameof(Cases), 512)]
    public void Float_matches_MathNet(int bits, bool transA, bool transB, int m, int n, int k)
    {
        var random = new Random(m + 1000 * n + 7 * k);
        float[] a = RandomFloats(random, m * k), b = RandomFloats(random, k * n), c = RandomFloats(random, m * n);
        float[] expected = (float[])c.Clone();
        GemmProvider.MathNet.Multiply(transA, transB, m, n, k, 0.75f, a, b, 0.5f, expected);

        GemmProvider.SimdWithWidth(bits).Multiply(transA, transB, m, n, k, 0.75f, a, b, 0.5f, c);

        // Sums of k products of values in [-1, 1]: float rounding grows like sqrt(k)·eps; a wrong index is off by O(1).
        float tolerance = 1e-5f * MathF.Sqrt(k) * 4;
        for (int i = 0; i < c.Length; i++) c[i].Should().BeApproximately(expected[i], tolerance, "element {0}", i);
    }

    [Theory]
    [WidthData(nameof(Cases), 128)]
    [WidthData(nameof(Cases), 256)]
    [WidthData(nameof(Cases), 512)]
    public void Double_matches_MathNet_with_beta_one(int bits, bool transA, bool transB, int m, int n, int k)
    {
        var random = new Random(m + 1000 * n + 7 * k);
        double[] a = GradientCheck.Random(random, m * k).Data, b = GradientCheck.Random(random, k * n).Data;
        double[] c = GradientCheck.Random(random, m * n).Data, expected = (double[])c.Clone();
        GemmProvider.MathNet.Multiply(transA, transB, m, n, k, 1.0, a, b, 1.0, expected);

        GemmProvider.SimdWithWidth(bits).Multiply(transA, transB, m, n, k, 1.0, a, b, 1.0, c);

        for (int i = 0; i < c.Length; i++) c[i].Should().BeApproximately(expected[i], 1e-12 * Math.Sqrt(k) * 4, "element {0}", i);
    }

    /// <summary>
    /// Every element is one chain of fused multiply-adds over k in order, whatever the width or block shape: the same
    /// bits at 256 and 512 as at 128 (the narrowest, which always runs). Checked with beta = 1 and alpha = 0.75 too.
    /// </summary>
    [Theory]
    [WidthData(nameof(Cases), 256)]
    [WidthData(nameof(Cases), 512)]
    public void Float_bits_match_the_128_bit_kernel(int bits, bool transA, bool transB, int m, int n, int k)
    {
        var random = new Random(m + 1000 * n + 7 * k);
        float[] a = RandomFloats(random, m * k), b = RandomFloats(random, k * n), c = RandomFloats(random, m * n);
        float[] narrow = (float[])c.Clone(), wide = (float[])c.Clone();
        GemmProvider.SimdWithWidth(128).Multiply(transA, transB, m, n, k, 0.75f, a, b, 1f, narrow);
        GemmProvider.SimdWithWidth(bits).Multiply(transA, transB, m, n, k, 0.75f, a, b, 1f, wide);
        wide.Should().Equal(narrow);
    }

    /// <summary>
    /// With alpha 1 and beta 0 every element is exactly the chain acc ← fma(a, b, acc) over p = 0 … k−1 from 0: long
    /// sums too, which run in ranges whose blocks carry their accumulators from one range to the next.
    /// </summary>
    [Theory]
    [WidthData(nameof(Width), 128)]
    [WidthData(nameof(Width), 256)]
    [WidthData(nameof(Width), 512)]
    public void Every_element_is_one_chain_of_fused_multiply_adds_in_order(int bits)
    {
        foreach (var (m, n, k) in new[] { (72, 64, 1300), (37, 20, 777), (6, 16, 1729), (9, 33, 513), (5, 7, 300), (300, 9, 5) })
        {
            foreach (bool transA in new[] { false, true })
            {
                var random = new Random(m * 31 + n * 7 + k);
                float[] a = RandomFloats(random, m * k), b = RandomFloats(random, k * n), c = new float[m * n];
                GemmProvider.SimdWithWidth(bits).Multiply(transA, false, m, n, k, 1f, a, b, 0f, c);
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        float acc = 0;
                        for (int p = 0; p < k; p++) acc = MathF.FusedMultiplyAdd(transA ? a[p * m + i] : a[i * k + p], b[p * n + j], acc);
                        if (BitConverter.SingleToInt32Bits(c[i * n + j]) != BitConverter.SingleToInt32Bits(acc))
                        {
                            throw new Xunit.Sdk.XunitException($"({m} x {n} x {k}, transA {transA}) at {bits} bits: C[{i}, {j}] is {c[i * n + j]:R}, the chain gives {acc:R}.");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void Beta_zero_overwrites_even_NaN()
    {
        float[] a = [1, 2, 3, 4], b = [1, 0, 0, 1], c = [float.NaN, float.NaN, float.NaN, float.NaN];
        GemmProvider.Simd.Multiply(false, false, 2, 2, 2, 1f, a, b, 0f, c);
        c.Should().Equal(1, 2, 3, 4);
    }

    [Fact]
    public void Steady_state_calls_allocate_nothing()
    {
        var provider = GemmProvider.Simd;
        float[] a = new float[1728 * 25], b = new float[25 * 6], c = new float[1728 * 6];
        for (int i = 0; i < 300; i++) // warm-up: JIT tiers (on-stack replacement allocates once) and the packing scratch
        {
            provider.Multiply(false, false, 1728, 6, 25, 1f, a, b, 1f, c);
            provider.Multiply(true, false, 25, 6, 1728, 1f, a, c, 0f, b);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            provider.Multiply(false, false, 1728, 6, 25, 1f, a, b, 1f, c);
            provider.Multiply(true, false, 25, 6, 1728, 1f, a, c, 0f, b); // conv1's weight gradient: Pᵀ·∂y
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void Names_select_providers()
    {
        GemmProvider.FromName("mathnet").Should().BeSameAs(GemmProvider.MathNet);
        GemmProvider.FromName("SIMD").Should().BeSameAs(GemmProvider.Simd);
        GemmProvider.FromName("simd128").Name.Should().Be("simd (Vector128)");
        FluentActions.Invoking(() => GemmProvider.FromName("blas")).Should().Throw<ArgumentException>().WithMessage("Unknown GEMM 'blas'*");
    }

    private static float[] RandomFloats(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = random.NextSingle() * 2 - 1;
        return values;
    }
}
