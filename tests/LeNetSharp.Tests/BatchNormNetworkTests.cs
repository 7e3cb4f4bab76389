using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// BatchNorm in networks: the running statistics saved, loaded and cloned, counted as non-trainable and never touched
/// by the optimizer, taken from the trained network when a batch is split across threads; a network with BatchNorm
/// training and evaluating deterministically; and hostile settings, inputs and model files refused with one message.
/// </summary>
public sealed class BatchNormNetworkTests : TempDirectoryTest
{
    /// <summary>For 8x8 images, 3 classes: Conv 3x3 1→4, BatchNorm2d, Relu, MaxPool2x2, Flatten, Linear 36→6, BatchNorm1d, Relu, Linear 6→3.</summary>
    private static Sequential<T> SmallNet<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        return new Sequential<T>(
            new Conv<T>(1, 4, 3, 3, random), new BatchNorm2d<T>(4), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(),
            new Linear<T>(36, 6, random), new BatchNorm1d<T>(6, eps: 1e-3, momentum: 0.25), new Relu<T>(), new Linear<T>(6, 3, random));
    }

    private static Tensor<T> RandomBatch<T>(Random random, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var x = new Tensor<T>(shape);
        for (int i = 0; i < x.Length; i++) x.Data[i] = T.CreateChecked(random.NextDouble() * 2 - 0.5);
        return x;
    }

    /// <summary>γ and β away from 1 and 0, and running statistics moved by three training forwards.</summary>
    private static void Disturb<T>(Sequential<T> net, Random random) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var bn in net.Layers.OfType<BatchNorm<T>>())
        {
            for (int c = 0; c < bn.Channels; c++)
            {
                bn.Weight!.Value.Data[c] = T.CreateChecked(0.5 + random.NextDouble());
                bn.Bias!.Value.Data[c] = T.CreateChecked(random.NextDouble() - 0.5);
            }
        }

        net.Training = true;
        for (int i = 0; i < 3; i++) net.Forward(RandomBatch<T>(random, 5, 8, 8, 1));
    }

    private static T[][] StateOf<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T> =>
        net.State.Select(s => s.Value.Data.ToArray()).ToArray();

    private static T[][] ParametersOf<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T> =>
        net.Parameters.Select(p => p.Value.Data.ToArray()).ToArray();

    // ----- saving, loading, cloning -----

    [Fact]
    public void Float_network_saves_as_version_2_and_loads_and_clones_to_identical_outputs_in_both_modes() => RoundTrip<float>();

    [Fact]
    public void Double_network_saves_as_version_2_and_loads_and_clones_to_identical_outputs_in_both_modes() => RoundTrip<double>();

    private void RoundTrip<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(3);
        var net = SmallNet<T>(1);
        Disturb(net, random);
        net.State.Should().HaveCount(4);
        net.State[1].Value.Data.Should().NotEqual(Enumerable.Repeat(T.One, 4), "the training forwards moved running_var");

        string path = Path.Combine(Dir, "bn.lnsm");
        ModelFile.Save(net, path);
        BinaryPrimitives.ReadUInt16LittleEndian(File.ReadAllBytes(path).AsSpan(4)).Should().Be(2);
        var loaded = ModelFile.Load<T>(path);
        var clone = net.Clone();
        foreach (var copy in new[] { loaded, clone })
        {
            copy.Layers.Select(l => l.Name).Should().Equal(net.Layers.Select(l => l.Name));
            StateOf(copy).Should().BeEquivalentTo(StateOf(net), o => o.WithStrictOrdering());
            ParametersOf(copy).Should().BeEquivalentTo(ParametersOf(net), o => o.WithStrictOrdering());
        }

        var x = RandomBatch<T>(random, 4, 8, 8, 1);
        foreach (bool training in new[] { false, true, false })
        {
            var outputs = new[] { net, loaded, clone }.Select(n =>
            {
                n.Training = training;
                return n.Forward(x).Data.ToArray();
            }).ToArray();
            outputs[1].Should().Equal(outputs[0], "the loaded network in {0} mode", training ? "training" : "evaluation");
            outputs[2].Should().Equal(outputs[0], "the clone in {0} mode", training ? "training" : "evaluation");
        }

        StateOf(loaded).Should().BeEquivalentTo(StateOf(net), o => o.WithStrictOrdering(), "a training forward moves every copy's statistics alike");
        StateOf(clone).Should().BeEquivalentTo(StateOf(net), o => o.WithStrictOrdering());
        clone.State[0].Value.Data[0] += T.One;
        net.State[0].Value.Data[0].Should().NotBe(clone.State[0].Value.Data[0], "a clone's statistics are its own");
    }

    [Fact]
    public void A_float_file_loads_as_double_with_the_same_statistics()
    {
        var net = SmallNet<float>(2);
        Disturb(net, new Random(4));
        string path = Path.Combine(Dir, "f.lnsm");
        ModelFile.Save(net, path);
        var loaded = ModelFile.Load<double>(path);
        StateOf(loaded).Select(a => a.Select(v => (float)v).ToArray()).Should().BeEquivalentTo(StateOf(net), o => o.WithStrictOrdering());
    }

    [Fact]
    public void A_layer_without_affine_stores_only_its_running_statistics()
    {
        var net = new Sequential<double>(new Flatten<double>(), new BatchNorm1d<double>(64, affine: false));
        net.Parameters.Should().BeEmpty();
        net.Forward(RandomBatch<double>(new Random(5), 3, 8, 8, 1));
        string path = Path.Combine(Dir, "plain.lnsm");
        ModelFile.Save(net, path);
        var loaded = ModelFile.Load<double>(path);
        ((BatchNorm1d<double>)loaded.Layers[1]).Affine.Should().BeFalse();
        StateOf(loaded).Should().BeEquivalentTo(StateOf(net), o => o.WithStrictOrdering());
    }

    // ----- counting and the optimizer -----

    [Fact]
    public void Running_statistics_are_non_trainable_parameters_in_the_counts_and_the_summary()
    {
        var net = SmallNet<float>(1);
        int trainable = (4 * 9 + 4) + (4 + 4) + (36 * 6 + 6) + (6 + 6) + (6 * 3 + 3);
        net.ParameterCount.Should().Be(trainable);
        net.NonTrainableParameterCount.Should().Be(2 * 4 + 2 * 6);
        net.State.Select(s => s.Name).Should().Equal("running_mean", "running_var", "running_mean", "running_var");

        string summary = net.Summary(8, 8, 1);
        var lines = summary.Split('\n');
        lines.Should().Contain(l => l.StartsWith("BatchNorm2d 4 eps 1E-05 momentum 0.1 ", StringComparison.Ordinal) && l.EndsWith(" 16", StringComparison.Ordinal));
        lines.Should().Contain(l => l.StartsWith("BatchNorm1d 6 eps 0.001 momentum 0.25 ", StringComparison.Ordinal) && l.EndsWith(" 24", StringComparison.Ordinal));
        lines.Should().Contain($"Total params: {trainable + 20:N0}").And.Contain($"Trainable params: {trainable:N0}").And.Contain("Non-trainable params: 20");
    }

    [Fact]
    public void The_optimizer_never_updates_the_running_statistics()
    {
        var net = SmallNet<float>(1);
        Disturb(net, new Random(6));
        using var trainer = new Trainer<float>(net, new TrainingOptions { BatchSize = 4, Momentum = 0.9, WeightDecay = 0.1 });
        var stateTensors = net.State.Select(s => s.Value).ToHashSet(ReferenceEqualityComparer.Instance);
        trainer.Optimizer.Parameters.Should().NotContain(p => stateTensors.Contains(p.Value));
        trainer.Optimizer.Parameters.Should().HaveCount(10, "γ and β of both layers are trained");

        var before = StateOf(net);
        foreach (var p in net.Parameters) p.Gradient.Span.Fill(1);
        trainer.Optimizer.Step();
        trainer.Optimizer.Step();
        StateOf(net).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
    }

    // ----- training and evaluation -----

    /// <summary>LeNet with BatchNorm after each convolution and a hidden BatchNorm1d layer before the classifier.</summary>
    private static Sequential<float> MnistNet(int seed)
    {
        var random = new Random(seed);
        return new Sequential<float>(
            new Conv<float>(1, 6, 5, 5, random), new BatchNorm2d<float>(6), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(6, 16, 5, 5, random), new BatchNorm2d<float>(16), new Relu<float>(), new MaxPool2x2<float>(),
            new Flatten<float>(), new Linear<float>(256, 32, random), new BatchNorm1d<float>(32), new Relu<float>(), new Linear<float>(32, 10, random));
    }

    [Fact]
    public void A_network_with_BatchNorm_trains_on_MNIST_and_evaluates_deterministically_on_any_thread_count()
    {
        var train = Mnist.Load(TestData.MnistDirectory(), MnistSplit.Train).Take(1600);
        var test = Mnist.Load(TestData.MnistDirectory(), MnistSplit.Test).Take(400);
        var net = MnistNet(7);
        using var trainer = new Trainer<float>(net, new TrainingOptions { BatchSize = 16, LearningRate = 0.05, Momentum = 0.9 });
        var losses = new List<double>();
        for (int start = 0; start < train.Count; start += 16)
        {
            losses.Add(trainer.Step(train, Enumerable.Range(start, 16).ToArray()).Loss);
        }

        double first = losses.Take(10).Average(), last = losses.TakeLast(20).Average();
        last.Should().BeLessThan(first / 3, "the loss falls: the first 10 steps averaged {0}, the last 20 {1}", first, last);
        net.Training.Should().BeTrue();

        var result = Evaluator.Evaluate(net, test, batchSize: 50);
        result.Accuracy.Should().BeGreaterThan(0.85, "evaluation uses the running statistics the training gathered");
        net.Training.Should().BeTrue("evaluation puts the mode back");
        var state = StateOf(net);
        Evaluator.Evaluate(net, test, batchSize: 50).ConfusionMatrix.Should().BeEquivalentTo(result.ConfusionMatrix, "evaluating again gives the same answers");
        Evaluator.Evaluate(net, test, batchSize: 50, threads: 2).ConfusionMatrix.Should().BeEquivalentTo(result.ConfusionMatrix, "so do two threads");
        StateOf(net).Should().BeEquivalentTo(state, o => o.WithStrictOrdering(), "evaluation leaves the running statistics alone");

        // The evaluator keeps its copies between calls: they must get the network's statistics, not keep their own.
        foreach (var bn in net.Layers.OfType<BatchNorm<float>>()) bn.RunningMean.Value.Span.Fill(0.5f);
        var moved = Evaluator.Evaluate(net, test, batchSize: 50);
        moved.ConfusionMatrix.Should().NotBeEquivalentTo(result.ConfusionMatrix, "other running statistics give other answers");
        Evaluator.Evaluate(net, test, batchSize: 50, threads: 2).ConfusionMatrix.Should().BeEquivalentTo(moved.ConfusionMatrix);
    }

    [Fact]
    public void Steps_and_evaluation_allocate_nothing_after_the_first_batch()
    {
        var data = TestData.RandomImages(30, 3);
        using var trainer = new Trainer<float>(SmallNet<float>(1), new TrainingOptions());
        int[] batch = [0, 1, 2];
        var x = RandomBatch<float>(new Random(12), 3, 8, 8, 1);
        void Round()
        {
            trainer.Step(data, batch);
            trainer.Network.Training = false;
            trainer.Network.Forward(x);
            trainer.Network.Training = true;
        }

        for (int i = 0; i < 300; i++) Round(); // warm-up: buffers and JIT tiers
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 300; i++) Round();
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void With_a_batch_split_across_threads_the_running_statistics_are_the_trained_networks_own_from_the_first_shard()
    {
        var data = TestData.RandomImages(32, seed: 8);
        int[] batch = Enumerable.Range(0, 16).ToArray();
        (float[][] State, float[][] Parameters) Run()
        {
            var net = SmallNet<float>(9);
            var before = net.Clone();
            using (var trainer = new Trainer<float>(net, new TrainingOptions { BatchSize = 16, Threads = 2 }))
            {
                trainer.Step(data, batch);
            }

            // The first shard is the first 8 images: the network's own layers normalised it and took its statistics.
            var shard = new Tensor<float>(8, 8, 8, 1);
            data.FillBatch(batch.AsSpan(0, 8), shard, new int[8]);
            before.Forward(shard);
            StateOf(net).Should().BeEquivalentTo(StateOf(before), o => o.WithStrictOrdering());
            return (StateOf(net), ParametersOf(net));
        }

        var (state, parameters) = Run();
        var again = Run();
        again.State.Should().BeEquivalentTo(state, o => o.WithStrictOrdering(), "the same thread count gives the same statistics");
        again.Parameters.Should().BeEquivalentTo(parameters, o => o.WithStrictOrdering());
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_ends_with_the_uninterrupted_runs_weights_and_statistics()
    {
        var data = TestData.RandomImages(40, seed: 10);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 8 };
        var whole = SmallNet<float>(11);
        using (var trainer = new Trainer<float>(whole, options)) trainer.Train(data);

        string directory = Path.Combine(Dir, "checkpoint");
        using (var trainer = new Trainer<float>(SmallNet<float>(11), options with { Epochs = 1, CheckpointDirectory = directory })) trainer.Train(data);
        using var resumed = Trainer<float>.Resume(directory, options);
        resumed.Train(data);

        StateOf(resumed.Network).Should().BeEquivalentTo(StateOf(whole), o => o.WithStrictOrdering());
        ParametersOf(resumed.Network).Should().BeEquivalentTo(ParametersOf(whole), o => o.WithStrictOrdering());
    }

    // ----- hostile settings and inputs -----

    public static TheoryData<int, double, double, string> BadSettings => new()
    {
        { 0, 1e-5, 0.1, "channels" },
        { -3, 1e-5, 0.1, "channels" },
        { 3, 0, 0.1, "eps" },
        { 3, -1e-5, 0.1, "eps" },
        { 3, double.NaN, 0.1, "eps" },
        { 3, double.PositiveInfinity, 0.1, "eps" },
        { 3, 1e-5, -0.01, "momentum" },
        { 3, 1e-5, 1.01, "momentum" },
        { 3, 1e-5, double.NaN, "momentum" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void Settings_out_of_range_are_refused_naming_the_argument(int channels, double eps, double momentum, string argument)
    {
        FluentActions.Invoking(() => new BatchNorm2d<float>(channels, eps, momentum)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be(argument);
        FluentActions.Invoking(() => new BatchNorm1d<double>(channels, eps, momentum)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be(argument == "channels" ? "features" : argument);
    }

    [Fact]
    public void The_edges_of_the_ranges_are_taken()
    {
        new BatchNorm2d<float>(1, eps: double.Epsilon, momentum: 0).Momentum.Should().Be(0);
        new BatchNorm1d<float>(1, momentum: 1).Momentum.Should().Be(1);
    }

    [Fact]
    public void The_wrong_channel_count_or_rank_is_refused_naming_both_shapes()
    {
        var bn2 = new BatchNorm2d<float>(3);
        FluentActions.Invoking(() => bn2.Forward(new Tensor<float>(2, 4, 4, 5))).Should().Throw<ArgumentException>()
            .WithMessage("BatchNorm2d 3 eps 1E-05 momentum 0.1: expected input (N, H, W, 3) in NHWC with H ≥ 1 and W ≥ 1, got (2, 4, 4, 5).");
        FluentActions.Invoking(() => bn2.OutputShape([2, 3])).Should().Throw<ArgumentException>().WithMessage("*expected input (N, H, W, 3)*, got (2, 3).");
        var bn1 = new BatchNorm1d<float>(4);
        FluentActions.Invoking(() => bn1.Forward(new Tensor<float>(2, 5))).Should().Throw<ArgumentException>()
            .WithMessage("BatchNorm1d 4 eps 1E-05 momentum 0.1: expected input (N, 4), got (2, 5).");
        FluentActions.Invoking(() => bn1.Forward(new Tensor<float>(2, 1, 1, 4))).Should().Throw<ArgumentException>().WithMessage("*expected input (N, 4), got (2, 1, 1, 4).");
        var net = new Sequential<float>(new Flatten<float>(), new BatchNorm1d<float>(10));
        FluentActions.Invoking(() => net.Forward(new Tensor<float>(2, 3, 3, 1))).Should().Throw<ArgumentException>().WithMessage("*expected input (N, 10), got (2, 9).");
    }

    [Fact]
    public void A_training_batch_with_one_value_per_channel_is_refused_as_PyTorch_refuses_it()
    {
        var bn1 = new BatchNorm1d<float>(4);
        FluentActions.Invoking(() => bn1.Forward(new Tensor<float>(1, 4))).Should().Throw<ArgumentException>()
            .WithMessage("BatchNorm1d 4 eps 1E-05 momentum 0.1: Expected more than 1 value per channel when training, got input size (1, 4).*");
        var bn2 = new BatchNorm2d<double>(3);
        FluentActions.Invoking(() => bn2.Forward(new Tensor<double>(1, 1, 1, 3))).Should().Throw<ArgumentException>()
            .WithMessage("*Expected more than 1 value per channel when training, got input size (1, 1, 1, 3).*");
        bn2.RunningMean.Value.Data.Should().OnlyContain(v => v == 0, "nothing was updated");
        bn2.Forward(new Tensor<double>(1, 1, 2, 3)).Length.Should().Be(6, "one image of two pixels has two values per channel");

        bn1.Training = false;
        var y = bn1.Forward(new Tensor<float>([1, 2, 3, 4], 1, 4)).Data;
        for (int i = 0; i < 4; i++) y[i].Should().BeApproximately((float)((i + 1) / Math.Sqrt(1 + 1e-5)), 1e-6f, "evaluation takes a single example");
    }

    // ----- model files -----

    /// <summary>A version-2 model file of one BatchNorm layer (float32) with the given description and tensors, checksummed.</summary>
    private string Crafted(string type, (string Name, double Value)[] settings, params (string Name, float[] Values)[] tensors)
    {
        string path = Path.Combine(Dir, "crafted.lnsm");
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            void Name(string name)
            {
                byte[] bytes = Encoding.UTF8.GetBytes(name);
                w.Write((byte)bytes.Length);
                w.Write(bytes);
            }

            w.Write("LNSM"u8);
            w.Write((ushort)2);
            w.Write((byte)4);
            w.Write(1);
            Name(type);
            w.Write((byte)settings.Length);
            foreach (var (name, value) in settings)
            {
                Name(name);
                w.Write(value);
            }

            w.Write((byte)tensors.Length);
            foreach (var (name, values) in tensors)
            {
                Name(name);
                w.Write((byte)1);
                w.Write(values.Length);
                foreach (float v in values) w.Write(v);
            }
        }

        ms.Write(SHA256.HashData(ms.ToArray()));
        File.WriteAllBytes(path, ms.ToArray());
        return path;
    }

    private static (string, double)[] Settings2d(int channels = 3, double eps = 1e-5, double momentum = 0.1, double affine = 1) =>
        [("channels", channels), ("eps", eps), ("momentum", momentum), ("affine", affine)];

    private static (string, float[])[] Tensors(float[]? mean = null, float[]? variance = null) =>
        [("weight", [1, 1, 1]), ("bias", [0, 0, 0]), ("running_mean", mean ?? [0, 0, 0]), ("running_var", variance ?? [1, 1, 1])];

    [Fact]
    public void A_hand_written_file_in_the_documented_format_loads()
    {
        var net = ModelFile.Load<float>(Crafted("BatchNorm2d", Settings2d(eps: 1e-3, momentum: 0.5), Tensors([1, 2, 3], [4, 5, 6])));
        var bn = net.Layers.Single().Should().BeOfType<BatchNorm2d<float>>().Subject;
        (bn.Eps, bn.Momentum, bn.Affine).Should().Be((1e-3, 0.5, true));
        bn.RunningMean.Value.Data.Should().Equal(1, 2, 3);
        bn.RunningVar.Value.Data.Should().Equal(4, 5, 6);
    }

    public static TheoryData<string> BadFiles => new(BadFileOf.Keys);

    private static readonly Dictionary<string, (string Type, (string, double)[] Settings, (string, float[])[] Tensors, string Message)> BadFileOf = new()
    {
        ["a NaN running mean"] = ("BatchNorm2d", Settings2d(), Tensors(mean: [0, float.NaN, 0]),
            "layer 0 (BatchNorm2d(channels=3, eps=1E-05, momentum=0.1, affine=1)): running_mean[1] is NaN, expected a finite number."),
        ["a NaN running variance"] = ("BatchNorm2d", Settings2d(), Tensors(variance: [1, 1, float.NaN]),
            "layer 0 (BatchNorm2d(*)): running_var[2] is NaN, expected a finite number ≥ 0."),
        ["an infinite running variance"] = ("BatchNorm2d", Settings2d(), Tensors(variance: [float.PositiveInfinity, 1, 1]),
            "layer 0 (BatchNorm2d(*)): running_var[0] is Infinity, expected a finite number ≥ 0."),
        ["a negative running variance"] = ("BatchNorm2d", Settings2d(), Tensors(variance: [1, -0.5f, 1]),
            "layer 0 (BatchNorm2d(*)): running_var[1] is -0.5, expected a finite number ≥ 0."),
        ["no running statistics"] = ("BatchNorm2d", Settings2d(), Tensors()[..2],
            "truncated: layer 0 (BatchNorm2d(channels=3, eps=1E-05, momentum=0.1, affine=1)) needs 12 weights (48 bytes), the file has 47 bytes left."),
        ["a fifth tensor"] = ("BatchNorm2d", Settings2d(), [.. Tensors(), ("num_batches_tracked", [3])],
            "layer 0 (BatchNorm2d 3 eps 1E-05 momentum 0.1): expected 4 tensors, found 5."),
        ["the statistics in the wrong order"] = ("BatchNorm2d", Settings2d(), [.. Tensors()[..2], ("running_var", [1, 1, 1]), ("running_mean", [0, 0, 0])],
            "layer 0: expected tensor 'running_mean' (3), found 'running_var' (3)."),
        ["statistics of the wrong length"] = ("BatchNorm2d", Settings2d(), [.. Tensors()[..2], ("running_mean", [0, 0]), ("running_var", [1, 1, 1])],
            "layer 0: expected tensor 'running_mean' (3), found 'running_mean' (2)."),
        ["eps 0"] = ("BatchNorm2d", Settings2d(eps: 0), Tensors(), "layer 0 (BatchNorm2d(*)): eps must be positive and finite (PyTorch's default is 1e-5). Actual value was 0."),
        ["eps −1"] = ("BatchNorm2d", Settings2d(eps: -1), Tensors(), "layer 0 (BatchNorm2d(*)): eps must be positive and finite*Actual value was -1."),
        ["eps NaN"] = ("BatchNorm2d", Settings2d(eps: double.NaN), Tensors(), "layer 0: Layer 'BatchNorm2d': setting 'eps' is NaN, expected a finite number."),
        ["momentum 2"] = ("BatchNorm2d", Settings2d(momentum: 2), Tensors(), "layer 0 (BatchNorm2d(*)): momentum must be in [0, 1] (PyTorch's default is 0.1). Actual value was 2."),
        ["affine 0.5"] = ("BatchNorm2d", Settings2d(affine: 0.5), Tensors(), "layer 0 (BatchNorm2d(*)): Layer 'BatchNorm2d': setting 'affine' must be a whole number from 0 to 1, found 0.5."),
        ["no channels"] = ("BatchNorm2d", Settings2d(channels: 0), Tensors(), "layer 0 (BatchNorm2d(*)): Layer 'BatchNorm2d': setting 'channels' must be a whole number from 1 to 65536, found 0."),
        ["65,536 channels and no room for them"] = ("BatchNorm2d", Settings2d(channels: 65536), Tensors(),
            "truncated: layer 0 (BatchNorm2d(channels=65536, *)) needs 262,144 weights (1,048,576 bytes), the file has * bytes left."),
        ["a BatchNorm1d described by channels"] = ("BatchNorm1d", Settings2d(), Tensors(),
            "layer 0 (BatchNorm1d(*)): Layer 'BatchNorm1d' has no setting 'features' (it has: channels, eps, momentum, affine)."),
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_file_is_refused_in_one_line_naming_the_file_the_layer_and_what_was_found(string what)
    {
        var (type, settings, tensors, message) = BadFileOf[what];
        string path = Crafted(type, settings, tensors);
        var e = FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>().Which;
        e.Message.Should().NotContainAny("\n", "\r");
        e.Message.Should().Match($"{path}: {message}");
    }

    [Fact]
    public void Saving_non_finite_running_statistics_is_refused_and_writes_nothing()
    {
        var net = SmallNet<float>(1);
        string path = Path.Combine(Dir, "nan.lnsm");
        ((BatchNorm1d<float>)net.Layers[6]).RunningVar.Value.Data[2] = float.NaN;
        FluentActions.Invoking(() => ModelFile.Save(net, path)).Should().Throw<InvalidOperationException>()
            .WithMessage("The model format cannot store layer 6 (BatchNorm1d 6 eps 0.001 momentum 0.25): running_var[2] is NaN, expected a finite number ≥ 0. A model file holding it would not load back.");
        File.Exists(path).Should().BeFalse();
    }
}
