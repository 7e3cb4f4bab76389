using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// Tanh, Sigmoid, LeakyRelu, Dropout, MaxPool2d, AvgPool2d and GlobalAvgPool2d beyond their maths (gradients and PyTorch
/// agreement are in <see cref="PoolAndActivationGradientTests"/> and <see cref="PyTorchLayerTests"/>): MaxPool2d(2) against
/// MaxPool2x2 as bits, settings and shapes refused with one clear message, version-2 model files (saved, loaded, and
/// crafted with bad settings), clones, Dropout's generator and modes, and no allocation after the first batch.
/// </summary>
public sealed class PoolAndActivationLayerTests : TempDirectoryTest
{
    private static byte[] Bits<T>(Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T> => MemoryMarshal.AsBytes(t.Data.AsSpan()).ToArray();

    private static Tensor<T> Random<T>(Random random, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = T.CreateTruncating(random.NextDouble() * 4 - 2);
        return t;
    }

    // ----- MaxPool2d(2) is MaxPool2x2 -----

    /// <summary>Small integers (ties in most windows), ±0, ±∞ and, when asked, quiet NaNs with payloads.</summary>
    private static Tensor<T> Awkward<T>(Random random, bool nans, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++)
        {
            t.Data[i] = random.Next(12) switch
            {
                0 => T.NegativeZero,
                1 => T.Zero,
                2 => T.PositiveInfinity,
                3 => T.NegativeInfinity,
                4 when nans => typeof(T) == typeof(float)
                    ? (T)(object)BitConverter.Int32BitsToSingle(0x7FC00000 | random.Next(1, 1 << 20))
                    : (T)(object)BitConverter.UInt64BitsToDouble(0xFFF8000000000000UL | (uint)random.Next(1, 1 << 30)),
                _ => T.CreateTruncating(random.Next(-2, 3)),
            };
        }

        return t;
    }

    [Theory]
    [InlineData(2, 6, 8, 3)]
    [InlineData(3, 7, 5, 4)]   // odd sizes: the last row and column dropped by both
    [InlineData(1, 2, 2, 17)]
    public void MaxPool2d_of_2_gives_MaxPool2x2s_bits_forward_and_backward(int n, int h, int w, int c)
    {
        Same<float>(n, h, w, c);
        Same<double>(n, h, w, c);

        static void Same<T>(int n, int h, int w, int c) where T : unmanaged, IFloatingPointIeee754<T>
        {
            var random = new Random(h * 100 + w);
            for (int round = 0; round < 20; round++)
            {
                var pool = new MaxPool2d<T>(2);
                var reference = new MaxPool2x2<T>();

                // With NaNs: the forward (the first NaN of the window, with its bits) only; MaxPool2x2 sends a NaN window's
                // gradient to its first element, MaxPool2d to the NaN.
                var x = Awkward<T>(random, nans: true, n, h, w, c);
                Bits(pool.Forward(x)).Should().Equal(Bits(reference.Forward(x)), "round {0} with NaNs", round);

                x = Awkward<T>(random, nans: false, n, h, w, c);
                Bits(pool.Forward(x)).Should().Equal(Bits(reference.Forward(x)), "round {0}", round);
                var dy = Awkward<T>(random, nans: false, n, h / 2, w / 2, c); // −0 in ∂y keeps its sign in both
                Bits(pool.Backward(dy)).Should().Equal(Bits(reference.Backward(dy)), "round {0}", round);
            }
        }
    }

    [Fact]
    public void MaxPool2d_ties_go_to_the_first_maximum_in_row_major_window_order_and_overlaps_add()
    {
        // One 3x3 image, kernel 2, stride 1: four overlapping windows over a plateau of 5s.
        var x = new Tensor<double>([1, 5, 2, 5, 5, 5, 0, 5, 3], 1, 3, 3, 1);
        var pool = new MaxPool2d<double>(2, 1);
        pool.Forward(x).Data.Should().Equal(5, 5, 5, 5);
        pool.Backward(new Tensor<double>([1, 10, 100, 1000], 1, 2, 2, 1)).Data
            .Should().Equal([0, 1 + 10, 0, 100, 1000, 0, 0, 0, 0], "windows (0,0) and (0,1) share their first 5, (1,0) and (1,1) start at theirs");

        // The padding is −∞: an all-negative border window still picks its input element.
        var padded = new MaxPool2d<double>(3, 2, 1);
        var y = padded.Forward(new Tensor<double>([-7, -8, -9, -6], 1, 2, 2, 1));
        y.Data.Should().Equal(-6);
    }

    [Fact]
    public void AvgPool2d_counts_the_zero_padding_in_the_average_as_PyTorch_by_default()
    {
        // 2x2 ones, kernel 3, padding 1, stride 2: one window, 4 ones and 5 padding zeros: 4/9 (count_include_pad=True).
        var y = new AvgPool2d<double>(3, 2, 1).Forward(new Tensor<double>([1, 1, 1, 1], 1, 2, 2, 1));
        y.Data.Should().Equal(4.0 / 9);
    }

    [Fact]
    public void Sigmoid_is_finite_and_saturates_for_large_inputs_and_keeps_NaN()
    {
        var x = new Tensor<float>([-1e30f, -800, -100, 0, 100, 800, 1e30f, float.NegativeInfinity, float.PositiveInfinity, float.NaN], 10);
        var yf = new Sigmoid<float>().Forward(x).Data;
        yf.Should().Equal(0, 0, yf[2], 0.5f, 1, 1, 1, 0, 1, float.NaN);
        yf[2].Should().BeInRange(float.Epsilon, 1e-43f, "e^−100, a denormal, not 0/0 or 1/∞ rounded away");
        var xd = new Tensor<double>([-1e300, -800, -40, 40, 800, 1e300], 6);
        var y = new Sigmoid<double>().Forward(xd).Data;
        y.Should().OnlyContain(v => double.IsFinite(v) && v >= 0 && v <= 1);
        y[2].Should().BeApproximately(Math.Exp(-40), 1e-30);
        y[^1].Should().Be(1);
    }

    // ----- settings and shapes refused -----

    public static TheoryData<string, string, string> BadSettings => new()
    {
        { "Dropout p −0.1", "p", "*p must be at least 0 and below 1*got -0.1*" },
        { "Dropout p 1", "p", "*got 1.*" },
        { "Dropout p 1.5", "p", "*got 1.5.*" },
        { "Dropout p NaN", "p", "*got NaN.*" },
        { "Dropout p ∞", "p", "*got Infinity.*" },
        { "LeakyRelu slope NaN", "slope", "*slope must be a finite number, got NaN.*" },
        { "LeakyRelu slope −∞", "slope", "*got -Infinity.*" },
        { "MaxPool2d kernel 0", "kernel", "MaxPool2d: kernel must be at least 1, got 0.*" },
        { "AvgPool2d kernel −3", "kernel", "AvgPool2d: kernel must be at least 1, got -3.*" },
        { "MaxPool2d stride 0", "stride", "MaxPool2d: stride must be at least 1, got 0.*" },
        { "AvgPool2d stride −1", "stride", "AvgPool2d: stride must be at least 1, got -1.*" },
        { "MaxPool2d padding −1", "padding", "MaxPool2d: padding must be from 0 to kernel/2 = 1*got -1.*" },
        { "MaxPool2d padding 2 for kernel 3", "padding", "MaxPool2d: padding must be from 0 to kernel/2 = 1 (PyTorch's limit*got 2.*" },
        { "AvgPool2d padding 1 for kernel 1", "padding", "AvgPool2d: padding must be from 0 to kernel/2 = 0*got 1.*" },
    };

    private static readonly Dictionary<string, Func<object>> Constructors = new()
    {
        ["Dropout p −0.1"] = () => new Dropout<float>(-0.1),
        ["Dropout p 1"] = () => new Dropout<float>(1),
        ["Dropout p 1.5"] = () => new Dropout<double>(1.5),
        ["Dropout p NaN"] = () => new Dropout<float>(double.NaN),
        ["Dropout p ∞"] = () => new Dropout<float>(double.PositiveInfinity),
        ["LeakyRelu slope NaN"] = () => new LeakyRelu<float>(double.NaN),
        ["LeakyRelu slope −∞"] = () => new LeakyRelu<double>(double.NegativeInfinity),
        ["MaxPool2d kernel 0"] = () => new MaxPool2d<float>(0),
        ["AvgPool2d kernel −3"] = () => new AvgPool2d<float>(-3, 1),
        ["MaxPool2d stride 0"] = () => new MaxPool2d<float>(2, 0),
        ["AvgPool2d stride −1"] = () => new AvgPool2d<double>(2, -1),
        ["MaxPool2d padding −1"] = () => new MaxPool2d<float>(3, 1, -1),
        ["MaxPool2d padding 2 for kernel 3"] = () => new MaxPool2d<float>(3, 1, 2),
        ["AvgPool2d padding 1 for kernel 1"] = () => new AvgPool2d<float>(1, 1, 1),
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void A_setting_out_of_range_is_refused_naming_it(string what, string parameter, string message)
    {
        var e = FluentActions.Invoking(Constructors[what]).Should().Throw<ArgumentOutOfRangeException>().Which;
        e.ParamName.Should().Be(parameter);
        e.Message.Should().Match(message);
    }

    [Fact]
    public void A_pool_larger_than_its_padded_input_or_an_input_not_NHWC_is_refused_naming_both_shapes()
    {
        FluentActions.Invoking(() => new MaxPool2d<float>(5).Forward(new Tensor<float>(1, 3, 7, 2))).Should().Throw<ArgumentException>()
            .WithMessage("MaxPool2d 5x5 stride 5 pad 0: the 5x5 pool is larger than the input (1, 3, 7, 2); expected (N, H, W, C) with H + 2·0 ≥ 5 and W + 2·0 ≥ 5.");
        FluentActions.Invoking(() => new AvgPool2d<double>(5, 1, 1).OutputShape([1, 9, 2, 1])).Should().Throw<ArgumentException>()
            .WithMessage("AvgPool2d 5x5 stride 1 pad 1: the 5x5 pool is larger than the input (1, 9, 2, 1) padded to 11x4; expected (N, H, W, C) with H + 2·1 ≥ 5 and W + 2·1 ≥ 5.");
        new AvgPool2d<double>(5, 1, 2).OutputShape([1, 1, 1, 1]).Should().Equal([1, 1, 1, 1], "a 1x1 image padded by 2 holds one 5x5 window");

        FluentActions.Invoking(() => new MaxPool2d<float>(2).Forward(new Tensor<float>(4, 16))).Should().Throw<ArgumentException>()
            .WithMessage("MaxPool2d 2x2 stride 2 pad 0: expected input (N, H, W, C) in NHWC, got (4, 16).");
        FluentActions.Invoking(() => new GlobalAvgPool2d<float>().Forward(new Tensor<float>(2, 3, 4))).Should().Throw<ArgumentException>()
            .WithMessage("GlobalAvgPool2d: expected input (N, H, W, C) in NHWC, got (2, 3, 4).");
        FluentActions.Invoking(() => new GlobalAvgPool2d<float>().OutputShape([2, 0, 4, 1])).Should().Throw<ArgumentException>()
            .WithMessage("GlobalAvgPool2d: expected input (N, H, W, C) in NHWC, got (2, 0, 4, 1).");
        FluentActions.Invoking(() => new AvgPool2d<float>(2).OutputShape([2, -4, 4, 1])).Should().Throw<ArgumentException>()
            .WithMessage("*expected input (N, H, W, C) in NHWC, got (2, -4, 4, 1).");

        // Through a network: the message names the layer and both shapes.
        var net = new Sequential<float>(new Conv<float>(1, 2, 3, 3, new Random(1)), new MaxPool2d<float>(7), new Flatten<float>(), new Linear<float>(2, 2, new Random(1)));
        FluentActions.Invoking(() => net.Forward(new Tensor<float>(1, 8, 8, 1))).Should().Throw<ArgumentException>().WithMessage("*7x7 pool is larger than the input (1, 6, 6, 2)*");
    }

    [Fact]
    public void Backward_before_forward_or_with_a_gradient_of_another_shape_is_refused()
    {
        foreach (var layer in AllLayers<float>())
        {
            FluentActions.Invoking(() => layer.Backward(new Tensor<float>(2, 2))).Should().Throw<InvalidOperationException>()
                .WithMessage($"{layer.Name}: Backward was called before Forward.");
            var y = layer.Forward(Random<float>(new Random(1), 2, 7, 5, 3));
            FluentActions.Invoking(() => layer.Backward(new Tensor<float>(y.Length + 1))).Should().Throw<ArgumentException>()
                .WithMessage($"{layer.Name}: output gradient has shape ({y.Length + 1}), expected {y.ShapeString} (the last forward output).*");
        }
    }

    // ----- saving, loading and cloning -----

    /// <summary>One of each new layer, all taking (N, 7, 5, 3) images.</summary>
    private static ILayer<T>[] AllLayers<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
    [
        new Tanh<T>(), new Sigmoid<T>(), new LeakyRelu<T>(0.2), new Dropout<T>(0.3, 5), new MaxPool2d<T>(3, 2, 1), new AvgPool2d<T>(3, 1, 1),
        new GlobalAvgPool2d<T>(),
    ];

    public static TheoryData<int> LayerIndices => new(Enumerable.Range(0, 7));

    /// <summary>A network around layer <paramref name="index"/> of <see cref="AllLayers{T}"/>: Conv, the layer, and what turns its output into 3 logits.</summary>
    private static Sequential<T> NetAround<T>(int index) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(index);
        var layer = AllLayers<T>()[index];
        int[] shape = layer.OutputShape([1, 7, 5, 2]);
        int features = shape.Skip(1).Aggregate(1, (a, d) => a * d);
        return new Sequential<T>(new Conv<T>(3, 2, 3, 3, random, 1, 1), layer, new Flatten<T>(), new Linear<T>(features, 3, random));
    }

    [Theory]
    [MemberData(nameof(LayerIndices))]
    public void Each_layer_saves_and_loads_through_a_version_2_model_file_with_identical_outputs(int index)
    {
        RoundTrip<float>(index);
        RoundTrip<double>(index);

        void RoundTrip<T>(int index) where T : unmanaged, IFloatingPointIeee754<T>
        {
            var net = NetAround<T>(index);
            string path = Path.Combine(Dir, $"{index}-{typeof(T).Name}.model");
            ModelFile.Save(net, path);
            BitConverter.ToUInt16(File.ReadAllBytes(path), 4).Should().Be(2, "{0} is not one of version 1's five layer types", net.Layers[1].Name);
            var loaded = ModelFile.Load<T>(path);

            loaded.Layers.Select(l => l.GetType()).Should().Equal(net.Layers.Select(l => l.GetType()));
            loaded.Layers.Select(l => l.Describe().ToString()).Should().Equal(net.Layers.Select(l => l.Describe().ToString()));
            var x = Random<T>(new Random(9), 2, 7, 5, 3);
            Bits(loaded.Forward(x)).Should().Equal(Bits(net.Forward(x)), "training mode (a loaded Dropout starts from its seed, as the unused original)");
            loaded.Training = net.Training = false;
            Bits(loaded.Forward(x)).Should().Equal(Bits(net.Forward(x)), "evaluation mode");
        }
    }

    [Theory]
    [MemberData(nameof(LayerIndices))]
    public void Each_layer_clones_to_an_independent_copy_with_identical_outputs_and_gradients(int index)
    {
        var layer = AllLayers<double>()[index];
        var random = new Random(3);
        var x = Random<double>(random, 2, 7, 5, 3);
        layer.Forward(x); // a Dropout draws here: its clone must continue from where it is now
        var copy = layer.Clone();
        copy.Should().BeOfType(layer.GetType()).And.NotBeSameAs(layer);
        copy.Describe().ToString().Should().Be(layer.Describe().ToString());

        var yCopy = copy.Forward(x);
        var y = layer.Forward(x);
        yCopy.Should().NotBeSameAs(y, "buffers of its own");
        Bits(yCopy).Should().Equal(Bits(y));
        var dy = Random<double>(random, y.Shape.ToArray());
        Bits(copy.Backward(dy)).Should().Equal(Bits(layer.Backward(dy)));
    }

    [Fact]
    public void A_network_of_the_new_layers_saves_loads_and_clones_with_identical_outputs_on_every_backend()
    {
        var random = new Random(4);
        var net = new Sequential<float>(
            new Conv<float>(1, 4, 3, 3, random, 1, 1), new LeakyRelu<float>(), new MaxPool2d<float>(3, 2, 1), new Tanh<float>(),
            new AvgPool2d<float>(2, 1), new Sigmoid<float>(), new Dropout<float>(0.2, 11), new GlobalAvgPool2d<float>(), new Linear<float>(4, 3, random));
        string path = Path.Combine(Dir, "all.model");
        ModelFile.Save(net, path);
        var x = Random<float>(random, 3, 8, 8, 1);
        foreach (var backend in new[] { ComputeBackend.Reference, ComputeBackend.Simd })
        {
            net.Backend = backend;
            var loaded = ModelFile.Load<float>(path);
            loaded.Backend = backend;
            net.Training = loaded.Training = false;
            var expected = Bits(net.Forward(x));
            Bits(loaded.Forward(x)).Should().Equal(expected, "{0}", backend);
            Bits(net.Clone().Forward(x)).Should().Equal(expected, "{0}", backend);
            net.Training = true;
        }

        net.Summary(8, 8, 1).Should().Contain("Dropout p 0.2").And.Contain("MaxPool2d 3x3 stride 2 pad 1").And.Contain("GlobalAvgPool2d");
    }

    // ----- Dropout's generator and modes -----

    [Fact]
    public void Dropout_drops_about_p_of_the_elements_scales_the_rest_by_1_over_1_minus_p_and_repeats_with_its_seed()
    {
        var x = new Tensor<double>(Enumerable.Repeat(1.0, 100_000).ToArray(), 10, 10_000);
        var a = new Dropout<double>(0.3, seed: 42);
        var b = new Dropout<double>(0.3, seed: 42);
        var first = a.Forward(x).Data.ToArray();
        first.Should().OnlyContain(v => v == 0 || v == 1 / 0.7);
        first.Count(v => v == 0).Should().BeInRange(29_400, 30_600, "p = 0.3 of 100,000 (±4.3σ)");
        b.Forward(x).Data.Should().Equal(first, "the same seed draws the same mask");
        var second = a.Forward(x).Data.ToArray();
        second.Should().NotEqual(first, "every training forward draws a new mask");
        b.Forward(x).Data.Should().Equal(second);
        new Dropout<double>(0.3, seed: 43).Forward(x).Data.Should().NotEqual(first, "another seed, another mask");

        var dy = new Tensor<double>(Enumerable.Range(0, x.Length).Select(i => (double)i).ToArray(), 10, 10_000);
        var dx = a.Backward(dy).Data;
        for (int i = 0; i < dx.Length; i++) dx[i].Should().Be(dy.Data[i] * second[i]);

        new Dropout<float>(0.0).Forward(new Tensor<float>([1, -2, 3], 3)).Data.Should().Equal(1, -2, 3);
        new Dropout<float>(0.999).Forward(new Tensor<float>(Enumerable.Repeat(1f, 1000).ToArray(), 1000)).Data.Count(v => v != 0).Should().BeLessThan(10);
    }

    [Fact]
    public void Dropout_in_evaluation_is_the_identity_and_draws_nothing()
    {
        var x = Random<float>(new Random(5), 4, 6, 3, 2);
        var dropout = new Dropout<float>(0.5, seed: 3) { Training = false };
        Bits(dropout.Forward(x)).Should().Equal(Bits(x));
        var dy = Random<float>(new Random(6), 4, 6, 3, 2);
        Bits(dropout.Backward(dy)).Should().Equal(Bits(dy));

        dropout.Training = true;
        var expected = new Dropout<float>(0.5, seed: 3).Forward(x);
        Bits(dropout.Forward(x)).Should().Equal(Bits(expected), "evaluation forwards did not advance the generator");
    }

    [Fact]
    public void A_Dropout_clone_continues_from_the_originals_generator_state_and_then_draws_independently()
    {
        var x = new Tensor<float>(Enumerable.Repeat(1f, 64).ToArray(), 8, 8);
        var original = new Dropout<float>(0.5, seed: 9);
        var reference = new Dropout<float>(0.5, seed: 9);
        original.Forward(x);
        reference.Forward(x);
        original.Training = false;
        var copy = (Dropout<float>)original.Clone();
        copy.Training.Should().BeFalse("the clone keeps the mode");
        copy.Training = true;
        original.Training = true;

        var next = reference.Forward(x).Data.ToArray();
        copy.Forward(x).Data.Should().Equal(next, "the copy draws what the original would draw next");
        copy.Forward(x);
        copy.Forward(x);
        original.Forward(x).Data.Should().Equal(next, "the copy's draws leave the original's generator alone");
    }

    [Fact]
    public void Under_a_trainer_a_Dropout_mask_depends_on_the_seed_the_step_and_the_images_place_in_the_batch()
    {
        var x = new Tensor<float>(Enumerable.Repeat(1f, 6 * 50).ToArray(), 6, 50);
        float[] Mask(Dropout<float> d, long step, int first, int images)
        {
            ((IStochasticLayer)d).SetStream(step, first);
            return d.Forward(new Tensor<float>(x.Data.AsSpan(0, images * 50).ToArray(), images, 50)).Data.ToArray();
        }

        var whole = Mask(new Dropout<float>(0.5, seed: 4), 7, 0, 6);
        var shard = Mask(new Dropout<float>(0.5, seed: 4), 7, 2, 4);
        shard.Should().Equal(whole[100..], "images 2 to 5 get their masks whichever replica runs them");
        Mask(new Dropout<float>(0.5, seed: 4), 7, 0, 4).Should().Equal(whole[..200]);
        shard.Should().NotEqual(whole[..200], "two shards of one batch never share draws");
        Mask(new Dropout<float>(0.5, seed: 4), 8, 0, 6).Should().NotEqual(whole, "another step, another mask");
        Mask(new Dropout<float>(0.5, seed: 5), 7, 0, 6).Should().NotEqual(whole, "another seed, another mask");

        var layer = new Dropout<float>(0.5, seed: 4);
        Mask(layer, 7, 0, 6);
        layer.Forward(x).Data.Should().Equal(new Dropout<float>(0.5, seed: 4).Forward(x).Data,
            "the stream serves one forward; the layer's own generator is untouched by it");
    }

    [Fact]
    public void Training_a_Dropout_network_on_two_threads_drops_what_one_thread_drops()
    {
        // The same masks per image whatever the split: the weights differ only by the order of float sums (≈1e-7),
        // where a mask drawn per replica would move them by the learning rate's scale.
        var data = TestData.RandomImages(64, seed: 8);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 32, LearningRate = 0.1, Seed = 3 };
        using var one = new Trainer<float>(TestData.SmallDropoutNet<float>(2), options);
        using var two = new Trainer<float>(TestData.SmallDropoutNet<float>(2), options with { Threads = 2 });
        one.Train(data);
        two.Train(data);
        var a = one.Network.Parameters.SelectMany(p => p.Value.Data).ToArray();
        var b = two.Network.Parameters.SelectMany(p => p.Value.Data).ToArray();
        a.Zip(b, (u, v) => Math.Abs(u - v)).Max().Should().BeLessThan(1e-5f);
    }

    [Fact]
    public void A_network_with_Dropout_evaluates_and_predicts_deterministically_as_without_it()
    {
        var data = TestData.RandomImages(40, seed: 3);
        var with = new Sequential<float>(new Conv<float>(1, 4, 3, 3, new Random(1)), new Relu<float>(), new Dropout<float>(0.5, 1), new MaxPool2x2<float>(),
            new Flatten<float>(), new Dropout<float>(0.5, 2), new Linear<float>(36, 3, new Random(2)));
        var without = new Sequential<float>(with.Layers.Where(l => l is not Dropout<float>).Select(l => l.Clone()).ToArray());

        var first = Evaluator.Evaluate(with, data, batchSize: 7);
        Evaluator.Evaluate(with, data, batchSize: 7, threads: 2).ConfusionMatrix.Should().BeEquivalentTo(first.ConfusionMatrix);
        Evaluator.Evaluate(without, data).ConfusionMatrix.Should().BeEquivalentTo(first.ConfusionMatrix, "Dropout is the identity in evaluation");
        with.Predict(data.Pixels(0), 8, 8, 1).Probabilities.Should().Equal(without.Predict(data.Pixels(0), 8, 8, 1).Probabilities);
        with.Training.Should().BeTrue("evaluation puts the mode back");

        var batch = new Tensor<float>(2, 8, 8, 1);
        data.FillBatch([0, 1], batch, new int[2]);
        var a = with.Forward(batch).Data.ToArray();
        with.Forward(batch).Data.Should().NotEqual(a, "a training forward draws new masks");
    }

    [Fact]
    public void The_trainer_trains_a_network_of_the_new_layers()
    {
        var random = new Random(8);
        var net = new Sequential<float>(
            new Conv<float>(1, 4, 3, 3, random, 1, 1), new LeakyRelu<float>(), new MaxPool2d<float>(3, 2, 1), new Dropout<float>(0.1, 3),
            new AvgPool2d<float>(2, 1), new Tanh<float>(), new Sigmoid<float>(), new GlobalAvgPool2d<float>(), new Linear<float>(4, 3, random));
        var data = TestData.RandomImages(30, seed: 4);
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 2, BatchSize = 10, Seed = 1 });
        var progress = trainer.Train(data);
        progress.Should().NotBeEmpty();
        progress.Should().OnlyContain(p => double.IsFinite(p.Loss));
    }

    // ----- no allocation after the first batch -----

    [Theory]
    [MemberData(nameof(LayerIndices))]
    public void Forward_and_backward_allocate_nothing_after_the_first_batch(int index)
    {
        var layer = AllLayers<float>()[index];
        var x = Random<float>(new Random(7), 4, 7, 5, 3);
        var dy = Random<float>(new Random(8), layer.OutputShape(x.Shape));
        for (int i = 0; i < 3; i++)
        {
            layer.Forward(x);
            layer.Backward(dy); // the first passes allocate the buffers (and tier up the JIT)
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
        {
            layer.Forward(x);
            layer.Backward(dy);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0, "{0} reuses its buffers", layer.Name);
    }

    // ----- hand-crafted version-2 model files -----

    private static void Name(BinaryWriter w, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        w.Write((byte)bytes.Length);
        w.Write(bytes);
    }

    public static TheoryData<string, string, double[], string> CraftedSettings => new()
    {
        { "Dropout", "p,seed", [double.NaN, 0], "layer 0: Layer 'Dropout': setting 'p' is NaN, expected a finite number." },
        { "Dropout", "p,seed", [1, 0], "layer 0 (Dropout(p=1, seed=0)): Layer 'Dropout': setting 'p' must be at least 0 and below 1, found 1." },
        { "Dropout", "p,seed", [-0.5, 0], "layer 0 (Dropout(p=-0.5, seed=0)): Layer 'Dropout': setting 'p' must be at least 0 and below 1, found -0.5." },
        { "Dropout", "p,seed", [0.5, 2.5], "layer 0 (Dropout(p=0.5, seed=2.5)): Layer 'Dropout': setting 'seed' must be a whole number from -2147483648 to 2147483647, found 2.5." },
        { "Dropout", "p", [0.5], "layer 0 (Dropout(p=0.5)): Layer 'Dropout' has no setting 'seed' (it has: p)." },
        { "LeakyRelu", "slope", [double.PositiveInfinity], "layer 0: Layer 'LeakyRelu': setting 'slope' is Infinity, expected a finite number." },
        { "MaxPool2d", "kernel,stride,padding", [0, 1, 0], "layer 0 (MaxPool2d(kernel=0, stride=1, padding=0)): Layer 'MaxPool2d': setting 'kernel' must be a whole number from 1 to 2147483647, found 0." },
        { "MaxPool2d", "kernel,stride,padding", [3, 1e10, 0], "layer 0 (*): Layer 'MaxPool2d': setting 'stride' must be a whole number from 1 to 2147483647, found 10000000000." },
        { "AvgPool2d", "kernel,stride,padding", [3, 1, 2], "layer 0 (AvgPool2d(kernel=3, stride=1, padding=2)): Layer 'AvgPool2d': setting 'padding' must be a whole number from 0 to 1, found 2." },
        { "AvgPool2d", "kernel,stride,padding", [3, double.NaN, 0], "layer 0: Layer 'AvgPool2d': setting 'stride' is NaN, expected a finite number." },
        { "AvgPool2d", "kernel,padding", [3, 0], "layer 0 (AvgPool2d(kernel=3, padding=0)): Layer 'AvgPool2d' has no setting 'stride' (it has: kernel, padding)." },
    };

    [Theory]
    [MemberData(nameof(CraftedSettings))]
    public void A_model_file_with_bad_settings_for_a_new_layer_is_refused_in_one_line(string type, string names, double[] values, string message)
    {
        string path = Path.Combine(Dir, "crafted.model");
        using (var ms = new MemoryStream())
        {
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
            {
                w.Write("LNSM"u8);
                w.Write((ushort)2);
                w.Write((byte)4);
                w.Write(1);
                Name(w, type);
                string[] settings = names.Split(',');
                w.Write((byte)settings.Length);
                for (int i = 0; i < settings.Length; i++)
                {
                    Name(w, settings[i]);
                    w.Write(values[i]);
                }

                w.Write((byte)0); // no tensors
            }

            ms.Write(SHA256.HashData(ms.ToArray())); // a valid checksum: only the reader's checks can stop it
            File.WriteAllBytes(path, ms.ToArray());
        }

        var e = FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>().Which;
        e.Message.Should().NotContainAny("\n", "\r");
        e.Message.Should().Match($"{path}: {message}");
    }
}
