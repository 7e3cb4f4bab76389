using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;
using static LeNetSharp.Tests.BitAssert;

namespace LeNetSharp.Tests;

/// <summary>
/// The SIMD backend's kernel steps against the reference layers they stand in for, compared as bits (a NaN's payload,
/// a zero's sign): ReluStep, MaxPool2x2Step, BatchNormStep and DropoutStep forward and backward, the Relu → MaxPool2x2
/// pass ReluMaxPoolStep (inference and training, with and without the Relu, every window of special values), SGD steps
/// of a network through it, whole networks of Conv, Relu, MaxPool2x2, Flatten and Linear, BatchNorm networks through SGD
/// steps, and the measured width against every fixed one. Inputs hold NaNs of
/// several payloads (quiet and signalling, both signs), ±∞, ±0, denormals and equal maxima; shapes have odd heights and
/// widths, channel counts around the vector length, batches of 1 to 5, and each step is reused across shapes.
/// </summary>
public partial class KernelStepTests
{
    // ----- values and comparison -----

    /// <summary>The special values of <typeparamref name="T"/>, by their bits.</summary>
    private static T[] Specials<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float))
        {
            uint[] bits =
            [
                0x7FC00000, 0xFFC00000, 0x7FC01234, 0xFFD00042, // quiet NaNs: both signs, with and without payload
                0x7F800001, 0xFF800123, 0x7FA00000,             // signalling NaNs
                0x7F800000, 0xFF800000,                         // ±∞
                0x00000000, 0x80000000,                         // ±0
                0x00000001, 0x807FFFFF, 0x00400000, 0x80000003, // denormals
                0x7F7FFFFF, 0xFF7FFFFF, 0x00800000,             // ±largest, smallest normal
            ];
            return bits.Select(b => Unsafe.BitCast<float, T>(BitConverter.Int32BitsToSingle((int)b))).ToArray();
        }

        ulong[] longs =
        [
            0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000001234, 0xFFF9000000000042,
            0x7FF0000000000001, 0xFFF0000000000123, 0x7FF4000000000000,
            0x7FF0000000000000, 0xFFF0000000000000,
            0x0000000000000000, 0x8000000000000000,
            0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x0008000000000000, 0x8000000000000003,
            0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x0010000000000000,
        ];
        return longs.Select(b => Unsafe.BitCast<double, T>(BitConverter.Int64BitsToDouble((long)b))).ToArray();
    }

    /// <summary>
    /// A fifth special values, two fifths a few multiples of ½ (so a window often holds equal maxima, ±0 among them),
    /// the rest spread over [−2, 2).
    /// </summary>
    private static Tensor<T> Hostile<T>(Random random, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var specials = Specials<T>();
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++)
        {
            double r = random.NextDouble();
            t.Data[i] = r < 0.2 ? specials[random.Next(specials.Length)]
                : r < 0.6 ? T.CreateTruncating(random.Next(-3, 4) * 0.5)
                : T.CreateTruncating(random.NextDouble() * 4 - 2);
        }

        return t;
    }

    private static Tensor<T> Finite<T>(Random random, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = T.CreateTruncating(random.NextDouble() * 2 - 1);
        return t;
    }

    // ----- cases -----

    public static IEnumerable<object[]> Types(int bits) => [[bits, "float"], [bits, "double"]];

    private static void ForType(string type, Action float32, Action float64)
    {
        if (type == "float") float32();
        else float64();
    }

    /// <summary>Channel counts below, at and above a vector (of <see cref="Vector{T}"/> and of the plan's width), most not multiples of it.</summary>
    private static int[] Channels<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int vector = Vector<T>.Count, lanes = bits / (8 * Unsafe.SizeOf<T>());
        return new[] { 1, 2, 3, vector - 1, vector, vector + 1, 2 * vector, 2 * vector + 3, lanes - 1, lanes, lanes + 1, 3 * lanes + 1 }
            .Where(c => c >= 1).Distinct().Order().ToArray();
    }

    /// <summary>(N, H, W): batches of 1 to 5, odd and even heights and widths (an odd last row or column is dropped by the pool).</summary>
    private static readonly (int N, int H, int W)[] Images = [(1, 2, 2), (2, 3, 3), (3, 5, 4), (1, 4, 7), (4, 2, 5), (2, 7, 6), (5, 3, 2), (1, 9, 9)];

    /// <summary>Every image shape with every channel count, then the same again (a step reuses its buffers across shapes and revisits them).</summary>
    private static IEnumerable<int[]> ImageShapes<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var once = Channels<T>(bits).SelectMany(c => Images.Select(s => new[] { s.N, s.H, s.W, c })).ToArray();
        return once.Concat(once.Reverse());
    }

    // ----- ReluStep and MaxPool2x2Step against their layers -----

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void ReluStep_gives_the_bits_of_the_Relu_layer_forward_and_backward(int bits, string type) =>
        ForType(type, () => ReluMatches<float>(bits), () => ReluMatches<double>(bits));

    private static void ReluMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(11);
        var kernel = SimdWidths.Kernel<T>(new Relu<T>(), bits);
        var reference = new Relu<T>();
        // Any shape: images, and flat rows whose lengths straddle a vector.
        var shapes = ImageShapes<T>(bits).Concat(Channels<T>(bits).Select(c => new[] { 3, c })).Concat([[1, 1], [2, 3, 5]]);
        foreach (var shape in shapes)
        {
            string what = $"Relu<{typeof(T).Name}> at {bits} bits on {Tensor<T>.ShapeToString(shape)}";
            var x = Hostile<T>(random, shape);
            var dy = Hostile<T>(random, shape);
            SameBits(reference.Forward(x), kernel.Forward(x), what + ", forward");
            kernel.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluStep<T>>();
            SameBits(reference.Backward(dy), kernel.Backward(dy), what + ", backward");
        }
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void MaxPool2x2_steps_give_the_bits_of_the_MaxPool2x2_layer_in_inference_and_training(int bits, string type) =>
        ForType(type, () => MaxPoolMatches<float>(bits), () => MaxPoolMatches<double>(bits));

    private static void MaxPoolMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(12);
        var kernel = SimdWidths.Kernel<T>(new MaxPool2x2<T>(), bits);
        var reference = new MaxPool2x2<T>();
        foreach (var shape in ImageShapes<T>(bits))
        {
            string what = $"MaxPool2x2<{typeof(T).Name}> at {bits} bits on {Tensor<T>.ShapeToString(shape)}";
            var x = Hostile<T>(random, shape);
            var dy = Hostile<T>(random, shape[0], shape[1] / 2, shape[2] / 2, shape[3]);
            var expected = reference.Forward(x);
            SameBits(expected, kernel.Infer(x), what + ", inference");
            kernel.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<MaxPool2x2Step<T>>();
            SameBits(expected, kernel.Forward(x), what + ", forward");
            kernel.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>("training keeps the window positions");
            SameBits(reference.Backward(dy), kernel.Backward(dy), what + ", backward");
        }
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void BatchNormStep_gives_the_bits_of_the_BatchNorm_layers_in_training_and_evaluation(int bits, string type) =>
        ForType(type, () => BatchNormMatches<float>(bits, relu: false), () => BatchNormMatches<double>(bits, relu: false));

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void BatchNormStep_with_the_Relu_gives_the_bits_of_BatchNorm_then_Relu_in_training_and_evaluation(int bits, string type) =>
        ForType(type, () => BatchNormMatches<float>(bits, relu: true), () => BatchNormMatches<double>(bits, relu: true));

    /// <summary>
    /// BatchNorm1d and 2d (and with <paramref name="relu"/> the Relu after each, as one step) against the layers, forward,
    /// running statistics, ∂x, ∂γ and ∂β, in training and evaluation, and the inference plan's output.
    /// </summary>
    private static void BatchNormMatches<T>(int bits, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(relu ? 14 : 13);
        foreach (int channels in Channels<T>(bits).Concat([17, 32, 33, 64]).Distinct())
        {
            foreach (bool affine in new[] { true, false })
            {
                // 2-d on images and 1-d on rows, each as a kernel and as the reference layer with the same γ, β and statistics.
                var cases = new (BatchNorm<T> Kernel, BatchNorm<T> Reference, int[][] Shapes)[]
                {
                    (new BatchNorm2d<T>(channels, affine: affine), new BatchNorm2d<T>(channels, affine: affine),
                        Images.Select(s => new[] { s.N, s.H, s.W, channels }).Where(s => s[0] * s[1] * s[2] >= 2).ToArray()),
                    (new BatchNorm1d<T>(channels, eps: 1e-3, momentum: 0.3, affine: affine), new BatchNorm1d<T>(channels, eps: 1e-3, momentum: 0.3, affine: affine),
                        [[2, channels], [5, channels], [3, channels], [17, channels], [600, channels]]), // 600 rows: several chunks of the passes
                };
                foreach (var (kernelLayer, reference, shapes) in cases)
                {
                    if (affine)
                    {
                        var (gamma, beta) = (kernelLayer.Weight!.Value.Data, kernelLayer.Bias!.Value.Data);
                        for (int c = 0; c < channels; c++)
                        {
                            // Mostly random, some negative; channels where y is ±0 for x̂ of either sign (γ = ±0, β = −0) or for x̂ = 0.
                            (gamma[c], beta[c]) = (c % 6) switch
                            {
                                1 => (T.Zero, T.NegativeZero),
                                2 => (T.CreateTruncating(-0.75), T.NegativeZero),
                                3 => (T.NegativeZero, T.Zero),
                                _ => (T.CreateTruncating(random.NextDouble() * 2 - 0.5), T.CreateTruncating(random.NextDouble() - 0.5)),
                            };
                        }
                    }

                    for (int i = 0; i < kernelLayer.Parameters.Count; i++) kernelLayer.Parameters[i].Value.Data.CopyTo(reference.Parameters[i].Value.Data, 0);
                    var kernel = relu
                        ? new Sequential<T>(kernelLayer, new Relu<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) }
                        : SimdWidths.Kernel<T>(kernelLayer, bits);
                    var referenceRelu = new Relu<T>();
                    foreach (bool training in new[] { false, true, false, true }) // evaluation first: running_mean still +0
                    {
                        kernel.Training = training;
                        reference.Training = training;
                        foreach (var shape in shapes)
                        {
                            string what = $"{kernelLayer.Name}{(relu ? " → Relu" : "")}<{typeof(T).Name}> at {bits} bits on {Tensor<T>.ShapeToString(shape)}, {(training ? "training" : "evaluation")}";
                            // Special values in some batches. A sum of several NaNs carries one of their payloads, which one
                            // depending on the order the JIT gives an addition's operands (in the layer's scalar code too):
                            // any NaN stands for any other here; every other value must match bit for bit.
                            var x = shape[0] == 3 ? Hostile<T>(random, shape) : Finite<T>(random, shape);
                            for (int i = 0; i < x.Length; i += 2) x.Data[i] += T.CreateTruncating(3.0 * (i % channels)); // channels with their own means
                            for (int i = channels - 1; i < x.Length; i += channels) x.Data[i] = T.CreateTruncating(0.5); // the last channel constant: x̂ = +0 in training
                            for (int i = channels / 2; i < x.Length; i += 4 * channels) x.Data[i] = T.NegativeZero; // x̂ = −0 while running_mean is +0
                            var dy = shape[0] == 5 ? Hostile<T>(random, shape) : Finite<T>(random, shape);
                            var expected = reference.Forward(x);
                            if (relu) expected = referenceRelu.Forward(expected);
                            SameBits(expected, kernel.Forward(x), what + ", forward", anyNaN: true);
                            var step = kernel.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<BatchNormStep<T>>().Subject;
                            step.LayerCount.Should().Be(relu ? 2 : 1);
                            step.Name.Should().Be($"{kernelLayer.Name}{(relu ? " → Relu (fused, " : " (")}{BatchNormWidth<T>(bits, channels)})");
                            SameBits(reference.RunningMean.Value, kernelLayer.RunningMean.Value, what + ", running mean", anyNaN: true);
                            SameBits(reference.RunningVar.Value, kernelLayer.RunningVar.Value, what + ", running variance", anyNaN: true);
                            SameBits(reference.Backward(relu ? referenceRelu.Backward(dy) : dy), kernel.Backward(dy), what + ", backward", anyNaN: true);
                            for (int i = 0; i < kernelLayer.Parameters.Count; i++)
                            {
                                SameBits(reference.Parameters[i].Gradient, kernelLayer.Parameters[i].Gradient, $"{what}, gradient of {kernelLayer.Parameters[i].Name}", anyNaN: true);
                            }

                            if (!training) SameBits(expected, kernel.Infer(x), what + ", inference plan", anyNaN: true);
                        }
                    }
                }
            }
        }
    }

    // ----- Dropout: the vector draws against the layer's -----

    /// <summary>p = 0, the smallest positive double, 2⁻⁵³, common rates, p·2⁵³ just off an integer, and the largest double below 1.</summary>
    private static readonly double[] DropoutRates =
        [0, double.Epsilon, Math.ScaleB(1, -53), 0.1, 0.3, 0.5, 0.75, Math.ScaleB(3, -2) + Math.ScaleB(1, -52), 0.999, Math.BitDecrement(1.0)];

    [Fact]
    public void Dropouts_integer_threshold_keeps_exactly_the_draws_whose_fraction_is_at_least_p()
    {
        // The kernel keeps a draw when (z >> 11) ≥ ⌈p·2⁵³⌉; the layer when (z >> 11)·2⁻⁵³ ≥ p. Around the threshold and at the ends of the range:
        var random = new Random(31);
        var rates = DropoutRates.Concat(Enumerable.Range(0, 200).Select(_ => random.NextDouble())).Concat(Enumerable.Range(1, 60).Select(e => Math.ScaleB(1, -e)));
        foreach (double p in rates)
        {
            ulong t = new Dropout<float>(p).KeepThreshold;
            t.Should().BeLessThan(1UL << 53, $"p = {p:R}");
            foreach (ulong k in new[] { 0UL, 1UL, t - 2, t - 1, t, t + 1, t + 2, (1UL << 53) - 1 })
            {
                if (k >= 1UL << 53) continue; // t − 1 and t − 2 wrap below t = 0
                (k >= t).Should().Be(k * (1.0 / (1UL << 53)) >= p, $"p = {p:R}, threshold {t}, k = {k}");
            }
        }
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void Dropouts_vector_draws_give_the_masks_of_the_scalar_generator(int bits, string type) =>
        ForType(type, () => DropoutDrawsMatch<float>(bits), () => DropoutDrawsMatch<double>(bits));

    /// <summary>Many generator states, every length to a few vectors past 64 and some long odd ones, every rate: mask and product as the layer's loop draws them.</summary>
    private static void DropoutDrawsMatch<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(32);
        ulong[] states = [0, 1, ulong.MaxValue, ulong.MaxValue - Dropout<T>.Gamma, unchecked(0x9E3779B97F4A7C15UL * 3), .. Enumerable.Range(0, 6).Select(_ => (ulong)random.NextInt64() << 1 ^ (ulong)random.Next())];
        int[] lengths = [.. Enumerable.Range(0, 70), 127, 1001, 3136 * 3 + 5];
        foreach (double p in DropoutRates)
        {
            var layer = new Dropout<T>(p);
            foreach (ulong state in states)
            {
                foreach (int n in lengths)
                {
                    var x = Hostile<T>(random, Math.Max(n, 1));
                    var expectedMask = new T[n];
                    var generator = new SplitMix64(state);
                    for (int i = 0; i < n; i++) expectedMask[i] = generator.NextDouble() >= p ? layer.Scale : T.Zero;
                    var expectedY = new T[n];
                    for (int i = 0; i < n; i++) expectedY[i] = x.Data[i] * expectedMask[i];

                    var mask = new T[n + 3];
                    var y = new T[n + 3];
                    Kernels.DropoutKernel.Forward(bits, state, layer.KeepThreshold, layer.Scale, x.Data.AsSpan(0, n), mask, y);
                    string what = $"Dropout<{typeof(T).Name}> p {p:R} at {bits} bits, state 0x{state:X16}, {n} elements";
                    SameBits<T>(expectedMask, mask.AsSpan(0, n), what + ", mask");
                    SameBits<T>(expectedY, y.AsSpan(0, n), what + ", output");
                    SameBits<T>(new T[3], mask.AsSpan(n), what + ": nothing written past the input");
                }
            }
        }
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void DropoutStep_gives_the_bits_of_the_Dropout_layer_with_its_generator_its_streams_and_a_fixed_mask(int bits, string type) =>
        ForType(type, () => DropoutStepMatches<float>(bits), () => DropoutStepMatches<double>(bits));

    private static void DropoutStepMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(33);
        foreach (double p in new[] { 0.0, 0.3, 0.5, 0.9 })
        {
            var kernelLayer = new Dropout<T>(p, seed: 7);
            var reference = new Dropout<T>(p, seed: 7);
            var kernel = SimdWidths.Kernel<T>(kernelLayer, bits);
            int forward = 0;
            foreach (var shape in new[] { new[] { 3, 5 }, [4, 3136], [1, 1], [2, 3, 3, 7], [5, 17], [3, 5] })
            {
                foreach (string mode in new[] { "generator", "stream", "evaluation", "stream from image 1", "fixed", "generator" })
                {
                    string what = $"Dropout p {p} <{typeof(T).Name}> at {bits} bits on {Tensor<T>.ShapeToString(shape)}, forward {++forward} ({mode})";
                    kernel.Training = reference.Training = mode != "evaluation";
                    if (mode.StartsWith("stream", StringComparison.Ordinal))
                    {
                        int first = mode.EndsWith('1') ? 1 : 0;
                        ((IStochasticLayer)kernelLayer).SetStream(forward, first);
                        ((IStochasticLayer)reference).SetStream(forward, first);
                    }

                    bool[]? keep = mode == "fixed" ? Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => random.Next(2) == 0).ToArray() : null;
                    kernelLayer.FixedKeep = reference.FixedKeep = keep;
                    var x = Hostile<T>(random, shape);
                    var dy = Hostile<T>(random, shape);
                    SameBits(reference.Forward(x), kernel.Forward(x), what + ", forward");
                    kernel.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Name.Should().Be($"{reference.Name} (Vector{bits})");
                    SameBits(reference.Backward(dy), kernel.Backward(dy), what + ", backward");
                    if (mode == "evaluation") SameBits(x, kernel.Infer(x), what + ", inference plan");
                }
            }

            // The generators stand where they would after the same forwards: the next masks agree.
            kernelLayer.FixedKeep = reference.FixedKeep = null;
            var last = Finite<T>(random, 6, 11);
            SameBits(reference.Forward(last), kernel.Forward(last), $"Dropout p {p} <{typeof(T).Name}> at {bits} bits, the next forward");
        }
    }

    /// <summary>The width BatchNormStep runs at: the plan's, or the widest narrower one whose vector the channels fill, else scalar.</summary>
    private static string BatchNormWidth<T>(int bits, int channels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int width = bits; width >= 128; width /= 2)
        {
            if (width / (8 * Unsafe.SizeOf<T>()) <= channels) return $"Vector{width}";
        }

        return "scalar";
    }

    [Fact]
    public void Windows_of_two_different_NaNs_and_of_signalling_NaNs_pool_to_the_layers_bits()
    {
        // Two NaNs of different payloads in one window, at every pair of positions, and a lone signalling NaN at each:
        // the cases where a vector maximum may pick the other NaN or quiet the signalling one.
        var specials = Specials<float>();
        float quiet = specials[2], other = specials[3], signalling = specials[4];
        int c = 2 * Vector<float>.Count + 1; // vector lanes and a scalar tail
        var x = new Tensor<float>(1, 2, 2 * 10, c);
        int window = 0;
        for (int a = 0; a < 4; a++)
        {
            for (int b = a + 1; b < 4; b++, window++) // 6 windows with two NaNs
            {
                for (int ch = 0; ch < c; ch++)
                {
                    x.Data[((a / 2) * 20 + 2 * window + a % 2) * c + ch] = quiet;
                    x.Data[((b / 2) * 20 + 2 * window + b % 2) * c + ch] = other;
                }
            }
        }

        for (int a = 0; a < 4; a++, window++) // 4 windows with a signalling NaN
        {
            for (int ch = 0; ch < c; ch++) x.Data[((a / 2) * 20 + 2 * window + a % 2) * c + ch] = signalling;
        }

        foreach (int bits in ComputeBackend.AcceleratedWidths)
        {
            SameBits(new MaxPool2x2<float>().Forward(x), SimdWidths.Kernel<float>(new MaxPool2x2<float>(), bits).Forward(x), $"MaxPool2x2 at {bits} bits");
            SameBits(new Relu<float>().Forward(x), SimdWidths.Kernel<float>(new Relu<float>(), bits).Forward(x), $"Relu at {bits} bits");
        }
    }

    // ----- ReluMaxPoolStep (inference and training) against Relu then MaxPool2x2 -----

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void ReluMaxPoolStep_gives_the_bits_of_Relu_then_MaxPool2x2_in_inference_and_training(int bits, string type) =>
        ForType(type, () => ReluMaxPoolMatches<float>(bits), () => ReluMaxPoolMatches<double>(bits));

    private static void ReluMaxPoolMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(13);
        var net = new Sequential<T>(new Relu<T>(), new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
        var relu = new Relu<T>();
        var pool = new MaxPool2x2<T>();
        // The channel counts around the vectors, then those of convolutional networks (16, 17, 32, 64).
        var shapes = ImageShapes<T>(bits).Concat(new[] { 16, 17, 32, 64 }.SelectMany(c => Images.Select(s => new[] { s.N, s.H, s.W, c })));
        foreach (var shape in shapes)
        {
            string what = $"Relu → MaxPool2x2<{typeof(T).Name}> at {bits} bits on {Tensor<T>.ShapeToString(shape)}";
            var x = Hostile<T>(random, shape);
            if (shape[0] >= 2)
            {
                // The second image negative-only (−∞ to −0, ties among them): no window passes a gradient.
                int size = x.Length / shape[0];
                for (int i = size; i < 2 * size; i++) x.Data[i] = T.IsNaN(x.Data[i]) ? T.NegativeZero : -T.Abs(x.Data[i]);
            }

            var expected = pool.Forward(relu.Forward(x));
            SameBits(expected, net.Infer(x), what + ", inference");
            net.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>();
            net.Invoking(n => n.Backward(expected)).Should().Throw<InvalidOperationException>().WithMessage("*Backward was called before Forward*");

            // The training plan: the same pass, keeping a byte per pooled element for backward.
            SameBits(expected, net.Forward(x), what + ", training forward");
            net.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>();
            var dy = Hostile<T>(random, expected.Shape.ToArray());
            var expectedDx = relu.Backward(pool.Backward(dy));
            var dx = net.Backward(dy);
            SameBits(expectedDx, dx, what + ", backward");
            dx.Data.AsSpan().Fill(T.NaN); // a caller writing into the returned buffer changes no later result
            SameBits(expectedDx, net.Backward(dy), what + ", backward again");
        }
    }

    [Theory]
    [InlineData("float")]
    [InlineData("double")]
    public void ReluMaxPoolStep_gives_the_layers_bits_on_every_window_of_special_values_with_and_without_the_Relu(string type) => ForType(type, WindowsMatch<float>, WindowsMatch<double>);

    /// <summary>
    /// Every window of 4 out of 10 values (two quiet NaNs, a signalling one, −∞, −1, −0, +0, ½, 1, +∞): 10⁴ windows, each
    /// channel visiting them in another order, forward and backward at every width, on vector lanes, the shifted last
    /// vector and the scalar path, with an odd last row and column.
    /// </summary>
    private static void WindowsMatch<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var specials = Specials<T>();
        T[] values = [specials[2], specials[3], specials[4], specials[8], -T.One, specials[10], specials[9], T.CreateTruncating(0.5), T.One, specials[7]];
        const int Side = 100, Windows = Side * Side; // 10⁴ = values.Length⁴
        var random = new Random(14);
        foreach (int c in new[] { 1, 3, Vector<T>.Count, Vector<T>.Count + 1, 17 }.Distinct())
        {
            var x = new Tensor<T>(1, 2 * Side + 1, 2 * Side + 1, c);
            Hostile<T>(random, x.Shape.ToArray()).Data.CopyTo(x.Data, 0); // the last row and column: anything
            for (int i = 0; i < Side; i++)
            {
                for (int j = 0; j < Side; j++)
                {
                    for (int ch = 0; ch < c; ch++)
                    {
                        int window = (i * Side + j + 37 * ch) % Windows;
                        for (int at = 0; at < 4; at++, window /= values.Length)
                        {
                            x.Data[((2 * i + at / 2) * (2 * Side + 1) + 2 * j + at % 2) * c + ch] = values[window % values.Length];
                        }
                    }
                }
            }

            var relu = new Relu<T>();
            var pool = new MaxPool2x2<T>();
            var expected = pool.Forward(relu.Forward(x));
            var dy = Hostile<T>(random, expected.Shape.ToArray());
            var expectedDx = relu.Backward(pool.Backward(dy));
            var alonePool = new MaxPool2x2<T>();
            var pooled = alonePool.Forward(x).Data.ToArray();
            var pooledDx = alonePool.Backward(dy).Data.ToArray();
            foreach (int bits in ComputeBackend.AcceleratedWidths)
            {
                string what = $"Relu → MaxPool2x2<{typeof(T).Name}> at {bits} bits, {c} channels, every window of special values";
                var net = new Sequential<T>(new Relu<T>(), new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
                SameBits(expected, net.Forward(x), what + ", forward");
                net.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>();
                SameBits(expectedDx, net.Backward(dy), what + ", backward");
                SameBits(expected, net.Infer(x), what + ", inference");

                // MaxPool2x2 alone in training: the same pass without the Relu, keeping the layer's own positions.
                what = $"MaxPool2x2<{typeof(T).Name}> at {bits} bits, {c} channels, every window of special values";
                var alone = new Sequential<T>(new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
                SameBits(new Tensor<T>(pooled, expected.Shape.ToArray()), alone.Forward(x), what + ", forward");
                alone.Runner.LastPlan!.Steps.Should().ContainSingle().Which.Should().BeOfType<ReluMaxPoolStep<T>>();
                SameBits(new Tensor<T>(pooledDx, x.Shape.ToArray()), alone.Backward(dy), what + ", backward");
            }
        }
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void A_network_trained_with_Relu_MaxPool2x2_as_one_pass_takes_the_SGD_steps_of_its_layers(int bits, string type) =>
        ForType(type, () => SgdStepsMatch<float>(bits), () => SgdStepsMatch<double>(bits));

    /// <summary>
    /// Conv 3x3 pad 1 1→32 → Relu → MaxPool2x2 → Conv 3x3 pad 1 32→64 → Relu → MaxPool2x2 → Linear 3136→10 on 28x28
    /// images: 4 SGD steps with momentum on the SIMD backend (both Relu → MaxPool2x2 pairs one pass) against the layers run
    /// one by one with that width's GEMM: the same logits every step and the same parameters after, as bits.
    /// </summary>
    private static void SgdStepsMatch<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(41);
        var net = new Sequential<T>(new Conv<T>(1, 32, 3, 3, r, padding: 1), new Relu<T>(), new MaxPool2x2<T>(),
            new Conv<T>(32, 64, 3, 3, r, padding: 1), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(), new Linear<T>(3136, 10, r));
        foreach (var conv in net.Layers.OfType<Conv<T>>())
        {
            for (int i = 0; i < conv.Bias.Value.Length; i++) conv.Bias.Value.Data[i] = T.CreateTruncating(r.NextDouble() - 0.5);
        }

        var reference = net.Clone();
        foreach (var layer in reference.Layers)
        {
            if (layer is IUsesGemm user) user.GemmProvider = GemmProvider.SimdWithWidth(bits);
        }

        net.Backend = ComputeBackend.SimdWithWidth(bits);
        var sgd = new Sgd<T>(net.Parameters, 0.05, momentum: 0.9);
        var referenceSgd = new Sgd<T>(reference.Parameters, 0.05, momentum: 0.9);
        var loss = new SoftmaxCrossEntropy<T>();
        var referenceLoss = new SoftmaxCrossEntropy<T>();
        for (int step = 0; step < 4; step++)
        {
            string what = $"{typeof(T).Name} at {bits} bits, step {step + 1}";
            int n = step == 2 ? 2 : 3; // a second shape: its own plan
            var x = Finite<T>(r, n, 28, 28, 1);
            int[] labels = Enumerable.Range(0, n).Select(_ => r.Next(10)).ToArray();

            var logits = net.Forward(x);
            net.Runner.LastPlan!.Steps.Count(s => s is ReluMaxPoolStep<T>).Should().Be(2, "both Relu → MaxPool2x2 pairs run as one pass in training");
            loss.Forward(logits, labels);
            net.Backward(loss.Backward());
            sgd.Step();

            var expected = x;
            foreach (var layer in reference.Layers) expected = layer.Forward(expected);
            SameBits(expected, logits, what + ", logits");
            referenceLoss.Forward(expected, labels);
            var g = referenceLoss.Backward();
            for (int l = reference.Layers.Count - 1; l >= 0; l--) g = reference.Layers[l].Backward(g);
            referenceSgd.Step();
        }

        for (int p = 0; p < net.Parameters.Count; p++)
        {
            SameBits(reference.Parameters[p].Value, net.Parameters[p].Value, $"{typeof(T).Name} at {bits} bits, parameter {p} ({net.Parameters[p].Name}) after 4 steps");
        }
    }

    // ----- whole networks: SIMD backend against the layers one by one with the SIMD GEMM -----

    /// <summary>Networks of Conv (several strides, paddings and channel counts), Relu, MaxPool2x2, Flatten and Linear, with their input images (H, W, C).</summary>
    private static (Sequential<T> Net, int H, int W, int C)[] Networks<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(21);
        var nets = new (Sequential<T>, int, int, int)[]
        {
            // LeNet: Conv 5x5 1→6 without ∂x (fused with Relu → MaxPool2x2), Conv 5x5 6→16 stride 1 (direct), Linear 256→10.
            (LeNet.Create<T>(r), 28, 28, 1),
            // Stride 2 with padding on 3 channels (the layer with the SIMD GEMM), an odd pool input, a 2x2 Conv.
            (new Sequential<T>(new Conv<T>(3, 5, 3, 3, r, stride: 2, padding: 1) { ComputeInputGradient = false }, new Relu<T>(), new MaxPool2x2<T>(),
                new Conv<T>(5, 9, 2, 2, r), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(), new Linear<T>(9, 7, r)), 15, 13, 3),
            // One input channel with padding and ∂x (not fused), odd sizes, 16 output channels (a whole vector and more).
            (new Sequential<T>(new Conv<T>(1, 4, 3, 3, r, padding: 1), new Relu<T>(), new MaxPool2x2<T>(),
                new Conv<T>(4, 16, 3, 3, r), new Relu<T>(), new Flatten<T>(), new Linear<T>(96, 5, r)), 11, 9, 1),
            // Padding 1 and 2 on several channels at stride 1 (direct, from the input framed by zeros), 16 and 19 outputs.
            (new Sequential<T>(new Conv<T>(3, 16, 3, 3, r, padding: 1), new Relu<T>(), new MaxPool2x2<T>(),
                new Conv<T>(16, 19, 5, 5, r, padding: 2), new Relu<T>(), new Flatten<T>(), new Linear<T>(19 * 4 * 3, 4, r)), 9, 7, 3),
            // One input channel with padding 1 and no ∂x, 6 outputs (fused, over the input framed by zeros) and 32 (direct);
            // then padding 1 on 32 channels (direct forward and backward) with 20 outputs.
            (new Sequential<T>(new Conv<T>(1, 6, 5, 5, r, padding: 2) { ComputeInputGradient = false }, new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(),
                new Linear<T>(6 * 6 * 5, 4, r)), 12, 10, 1),
            (new Sequential<T>(new Conv<T>(1, 32, 3, 3, r, padding: 1) { ComputeInputGradient = false }, new Relu<T>(), new MaxPool2x2<T>(),
                new Conv<T>(32, 20, 3, 3, r, padding: 1), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(), new Linear<T>(20 * 3 * 2, 6, r)), 12, 10, 1),
            // Stride 2 with padding 2, a 1x1 Conv, a pool after a Conv (no Relu), then Relu after Linear.
            (new Sequential<T>(new Conv<T>(2, 3, 3, 3, r, stride: 2, padding: 2), new Relu<T>(), new Conv<T>(3, 8, 1, 1, r), new MaxPool2x2<T>(),
                new Flatten<T>(), new Linear<T>(72, 4, r), new Relu<T>(), new Linear<T>(4, 3, r)), 10, 9, 2),
        };

        foreach (var (net, _, _, _) in nets)
        {
            foreach (var conv in net.Layers.OfType<Conv<T>>())
            {
                for (int i = 0; i < conv.Bias.Value.Length; i++) conv.Bias.Value.Data[i] = T.CreateTruncating(r.NextDouble() - 0.5);
            }
        }

        return nets;
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void Networks_on_the_SIMD_backend_give_the_bits_of_their_layers_run_one_by_one(int bits, string type) =>
        ForType(type, () => NetworksMatch<float>(bits), () => NetworksMatch<double>(bits));

    private static void NetworksMatch<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(22);
        foreach (var (net, h, w, c) in Networks<T>())
        {
            // The reference: an independent copy whose Conv and Linear layers multiply with the same width's GEMM.
            var reference = net.Clone();
            foreach (var layer in reference.Layers)
            {
                if (layer is IUsesGemm user) user.GemmProvider = GemmProvider.SimdWithWidth(bits);
            }

            net.Backend = ComputeBackend.SimdWithWidth(bits);
            int round = 0;
            foreach (int n in new[] { 1, 3, 3, 5, 2, 1 }) // a repeated shape accumulates gradients; later ones reuse buffers
            {
                string what = $"{net} at {bits} bits, batch {n}";
                if (round++ % 2 == 0)
                {
                    net.ZeroGradients();
                    reference.ZeroGradients();
                }

                var x = Finite<T>(random, n, h, w, c);
                var expected = x;
                foreach (var layer in reference.Layers) expected = layer.Forward(expected);
                var dy = Finite<T>(random, expected.Shape.ToArray());
                for (int i = 0; i < dy.Length; i += 3) dy.Data[i] = T.Zero; // zeros in ∂y, as Relu makes them

                SameBits(expected, net.Forward(x), what + ", output");
                if (typeof(T) == typeof(float) && net.Layers[0] is Conv<T> { InChannels: 1, ComputeInputGradient: false, OutChannels: < 16 })
                {
                    net.FusedPassesInLastForward().Should().Be(1, "LeNet's Conv 5x5 → Relu → MaxPool2x2 runs fused in float at every width");
                }

                var dx = net.Backward(dy);
                var expectedDx = dy;
                for (int l = reference.Layers.Count - 1; l >= 0; l--) expectedDx = reference.Layers[l].Backward(expectedDx);
                SameBits(expectedDx, dx, what + ", ∂x");
                for (int p = 0; p < net.Parameters.Count; p++)
                {
                    SameBits(reference.Parameters[p].Gradient, net.Parameters[p].Gradient, $"{what}, gradient of parameter {p} ({net.Parameters[p].Name})");
                }

                SameBits(expected, net.Infer(x), what + ", inference output");
            }
        }
    }

    // ----- BatchNorm networks: training steps on the SIMD backend against the layers one by one -----

    /// <summary>Networks of Conv → BatchNorm → Relu (→ MaxPool2x2) as <see cref="ModernCnn"/> builds them, with their input images (H, W, C).</summary>
    private static (Sequential<T> Net, int H, int W, int C)[] BatchNormNetworks<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(23);
        return
        [
            // The trainer's --net modern for 12x10 images of 3 channels and 4 classes, its Dropout included.
            (ModernCnn.Create<T>(5, height: 12, width: 10, channels: 3, classes: 4), 12, 10, 3),
            // BatchNorm2d → Relu on the caller's images, on 17 channels without affine, a BatchNorm2d of 33 channels not
            // followed by Relu, and BatchNorm1d → Relu after a Linear.
            (new Sequential<T>(new BatchNorm2d<T>(3), new Relu<T>(), new Conv<T>(3, 17, 3, 3, r, padding: 1), new BatchNorm2d<T>(17, affine: false),
                new Relu<T>(), new MaxPool2x2<T>(), new Conv<T>(17, 33, 3, 3, r, padding: 1), new BatchNorm2d<T>(33, momentum: 0.5), new MaxPool2x2<T>(),
                new Relu<T>(), new Flatten<T>(), new Linear<T>(33 * 2 * 2, 9, r), new BatchNorm1d<T>(9, eps: 1e-3), new Relu<T>(), new Linear<T>(9, 4, r)), 9, 8, 3),
        ];
    }

    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void BatchNorm_networks_train_on_the_SIMD_backend_to_the_bits_of_their_layers_run_one_by_one(int bits, string type) =>
        ForType(type, () => BatchNormNetworksMatch<float>(bits), () => BatchNormNetworksMatch<double>(bits));

    private static void BatchNormNetworksMatch<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(24);
        foreach (var (net, h, w, c) in BatchNormNetworks<T>())
        {
            // The reference: an independent copy (its Dropout at the same position) whose Conv and Linear layers multiply
            // with the same width's GEMM; each network steps its own SGD with momentum.
            var reference = net.Clone();
            foreach (var layer in reference.Layers)
            {
                if (layer is IUsesGemm user) user.GemmProvider = GemmProvider.SimdWithWidth(bits);
            }

            net.Backend = ComputeBackend.SimdWithWidth(bits);
            var optimizer = new Sgd<T>(net.Parameters, 0.05, momentum: 0.9);
            var referenceOptimizer = new Sgd<T>(reference.Parameters, 0.05, momentum: 0.9);
            int step = 0;
            foreach (int n in new[] { 4, 4, 2, 5 })
            {
                string what = $"{net} at {bits} bits, training step {++step} on a batch of {n}";
                var x = Finite<T>(random, n, h, w, c);
                var expected = x;
                foreach (var layer in reference.Layers) expected = layer.Forward(expected);
                SameBits(expected, net.Forward(x), what + ", output");
                var steps = net.Runner.LastPlan!.Steps;
                (steps.OfType<BatchNormStep<T>>().Count(s => s.LayerCount == 2) + steps.OfType<BatchNormReluPoolStep<T>>().Count())
                    .Should().Be(3, "each BatchNorm followed by a Relu runs with it as one step");
                steps.OfType<BatchNormReluPoolStep<T>>().Should().HaveCount(net.Layers.Count == 14 ? 2 : 1, "BatchNorm2d → Relu → MaxPool2x2 runs as one step");
                if (net.Layers.Count == 14)
                {
                    steps.Select(s => s.GetType().Name.Split('`')[0]).Should().Equal(
                        "ConvStep", "BatchNormReluPoolStep", "ConvStep", "BatchNormReluPoolStep", "ConvStep", "BatchNormStep",
                        "LayerStep", "DropoutStep", "LinearStep");
                }

                var dy = Finite<T>(random, expected.Shape.ToArray());
                var expectedDx = dy;
                for (int l = reference.Layers.Count - 1; l >= 0; l--) expectedDx = reference.Layers[l].Backward(expectedDx);
                SameBits(expectedDx, net.Backward(dy), what + ", ∂x");
                for (int p = 0; p < net.Parameters.Count; p++)
                {
                    SameBits(reference.Parameters[p].Gradient, net.Parameters[p].Gradient, $"{what}, gradient of parameter {p} ({net.Parameters[p].Name})");
                }

                optimizer.Step();
                referenceOptimizer.Step();
                for (int p = 0; p < net.Parameters.Count; p++) SameBits(reference.Parameters[p].Value, net.Parameters[p].Value, $"{what}, parameter {p} after the step");
                for (int s = 0; s < net.State.Count; s++) SameBits(reference.State[s].Value, net.State[s].Value, $"{what}, {net.State[s].Name} {s}");

                // Evaluation with the running statistics, by the training plan and by the inference plan.
                reference.Training = false;
                net.Training = false;
                expected = x;
                foreach (var layer in reference.Layers) expected = layer.Forward(expected);
                SameBits(expected, net.Forward(x), what + ", evaluation output");
                SameBits(expected, net.Infer(x), what + ", inference output");
                reference.Training = true;
                net.Training = true;
            }
        }
    }

    // ----- the measured width against every fixed width -----

    [Fact]
    public void The_measured_width_trains_LeNet_to_the_bits_of_every_fixed_width()
    {
        var random = new Random(31);
        var pixels = new byte[48 * 28 * 28];
        random.NextBytes(pixels);
        var data = new ImageDataset(pixels, Enumerable.Range(0, 48).Select(i => (byte)(i % 10)).ToArray(), 28, 28);

        (float[] Weights, string Plan) Train(ComputeBackend backend)
        {
            var net = LeNet.Create<float>(5);
            net.Backend = backend;
            using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 6, Seed = 3, Momentum = 0.9 }))
            {
                trainer.Train(data); // 8 steps
            }

            return (net.Parameters.SelectMany(p => p.Value.Data).ToArray(), net.Runner.LastPlan!.Backend);
        }

        var (measured, plan) = Train(ComputeBackend.Simd);
        plan.Should().MatchRegex(@"^simd \(Vector(128|256|512)((, Vector256)? and Vector(128|256) by step)?\)$", "one width, or several chosen step by step");
        foreach (int bits in ComputeBackend.AcceleratedWidths)
        {
            SameBits(Train(ComputeBackend.SimdWithWidth(bits)).Weights, measured, $"LeNet trained at {bits} bits against the measured width ({plan})");
        }
    }
}
