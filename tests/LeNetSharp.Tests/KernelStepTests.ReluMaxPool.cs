using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using static LeNetSharp.Tests.BitAssert;

namespace LeNetSharp.Tests;

/// <summary>
/// ReluMaxPoolStep and MaxPool2x2Step at each plan width on mostly finite inputs, so that most vectors of windows take
/// the no-NaN path (the CPU's maximum) and a few take the NaN-keeping one: ±0 ties, all-negative windows, a NaN in one
/// element of a window, odd heights and widths, channel counts below, at and around each width's vector.
/// </summary>
public partial class KernelStepTests
{
    /// <summary>Channel counts around the vectors of float and double at 128, 256 and 512 bits.</summary>
    private static readonly int[] PoolChannels = [1, 3, 7, 8, 15, 16, 17, 33];

    /// <summary>(N, H, W): a single image, odd heights and widths.</summary>
    private static readonly (int N, int H, int W)[] PoolImages = [(1, 2, 2), (1, 5, 7), (2, 6, 4), (3, 9, 3), (1, 8, 11)];

    /// <summary>
    /// Values of few magnitudes (±0, ±½, ±1, so windows tie often, ±0 against ±0 among them), ±∞, denormals and numbers
    /// in [−2, 2); every 29th window gets one NaN (another payload and position each time), and the second image is
    /// negative only (−∞ to −0): no window there passes a gradient after the Relu.
    /// </summary>
    private static Tensor<T> MostlyFinite<T>(Random random, int n, int h, int w, int c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var specials = Specials<T>();
        T[] small = [T.NegativeZero, T.Zero, T.CreateTruncating(0.5), T.CreateTruncating(-0.5), T.One, -T.One];
        var x = new Tensor<T>(n, h, w, c);
        for (int i = 0; i < x.Length; i++)
        {
            double r = random.NextDouble();
            x.Data[i] = r < 0.55 ? small[random.Next(small.Length)]
                : r < 0.65 ? specials[7 + random.Next(specials.Length - 7)] // ±∞, ±0, denormals, the extremes: no NaN
                : T.CreateTruncating(random.NextDouble() * 4 - 2);
        }

        int window = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < h / 2; i++)
            {
                for (int j = 0; j < w / 2; j++)
                {
                    for (int ch = 0; ch < c; ch++, window++)
                    {
                        if (window % 29 != 5) continue;
                        int at = window / 29 % 4;
                        x.Data[((b * h + 2 * i + at / 2) * w + 2 * j + at % 2) * c + ch] = specials[window / 29 % 7]; // quiet or signalling, either sign
                    }
                }
            }
        }

        if (n >= 2)
        {
            int size = h * w * c;
            for (int i = size; i < 2 * size; i++) x.Data[i] = T.IsNaN(x.Data[i]) ? T.NegativeZero : -T.Abs(x.Data[i]);
        }

        return x;
    }

    /// <summary>The width a pooling step runs at for <paramref name="channels"/>: the plan's, or the widest narrower one they fill, or scalar.</summary>
    private static string PoolWidth<T>(int bits, int channels) where T : unmanaged
    {
        for (int width = bits; width >= 128; width /= 2)
        {
            if (width / (8 * Unsafe.SizeOf<T>()) <= channels) return $"Vector{width}";
        }

        return "scalar";
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void The_pooling_steps_at_the_plan_width_give_the_layers_bits_on_mostly_finite_windows(int bits, string type) =>
        ForType(type, () => PoolAtWidthMatches<float>(bits), () => PoolAtWidthMatches<double>(bits));

    private static void PoolAtWidthMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(15);
        var fused = new Sequential<T>(new Relu<T>(), new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
        var alone = new Sequential<T>(new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
        var relu = new Relu<T>();
        var pool = new MaxPool2x2<T>();
        foreach (int c in PoolChannels)
        {
            string width = PoolWidth<T>(bits, c);
            foreach (var (n, h, w) in PoolImages)
            {
                string what = $"<{typeof(T).Name}> at {bits} bits ({width}) on {n}x{h}x{w}x{c}";
                var x = MostlyFinite<T>(random, n, h, w, c);
                var dy = Hostile<T>(random, n, h / 2, w / 2, c);

                var expected = pool.Forward(relu.Forward(x));
                var expectedDx = relu.Backward(pool.Backward(dy));
                SameBits(expected, fused.Infer(x), "Relu → MaxPool2x2" + what + ", inference");
                fused.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Name.Should().Be($"Relu → MaxPool2x2 (fused, {width})");
                SameBits(expected, fused.Forward(x), "Relu → MaxPool2x2" + what + ", training forward");
                fused.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>()
                    .Which.Name.Should().Be($"Relu → MaxPool2x2 (fused, {width})");
                SameBits(expectedDx, fused.Backward(dy), "Relu → MaxPool2x2" + what + ", backward");

                var pooled = pool.Forward(x);
                var pooledDx = pool.Backward(dy);
                SameBits(pooled, alone.Infer(x), "MaxPool2x2" + what + ", inference");
                alone.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<MaxPool2x2Step<T>>()
                    .Which.Name.Should().Be($"MaxPool2x2 ({width})");
                SameBits(pooled, alone.Forward(x), "MaxPool2x2" + what + ", training forward");
                alone.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>()
                    .Which.Name.Should().Be($"MaxPool2x2 (with positions, {width})");
                SameBits(pooledDx, alone.Backward(dy), "MaxPool2x2" + what + ", backward");
            }
        }
    }
}
