using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Trainer;

namespace LeNetSharp.Tests;

/// <summary>
/// The trainer's bench command beyond the tutorial's network: --arch FILE (a model file or an .onnx, on MNIST-shaped
/// data or on synthetic images of the network's own size), --net modern, --optimizer and --momentum; the FLOP counts it
/// reports; and the options it refuses. Runs are a few timed steps on a small IDX folder: the lines, not the speeds.
/// </summary>
public sealed class TrainerBenchTests : TempDirectoryTest
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TrainerCliTests.Run(args);

    /// <summary>The issue's network: conv 3x3 pad 1 1→32, ReLU, max-pool, conv 3x3 pad 1 32→64, ReLU, max-pool, Linear 3136→10.</summary>
    private static Sequential<float> Conv3x3()
    {
        var random = new Random(1);
        return new Sequential<float>(
            new Conv<float>(1, 32, 3, 3, random, padding: 1), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(32, 64, 3, 3, random, padding: 1), new Relu<float>(), new MaxPool2x2<float>(),
            new Flatten<float>(), new Linear<float>(3136, 10, random));
    }

    private static readonly int[] Mnist = [1, 28, 28, 1];

    /// <summary>A bench run (2 timed steps unless --steps is given) that succeeds, as lines; asserts the last line has its usual form.</summary>
    private static List<string> Bench(params string[] args)
    {
        var (code, output, err) = Run(["bench", .. args.Contains("--steps") ? args : ["--steps", "2", .. args]]);
        code.Should().Be(0, err);
        err.Should().BeEmpty();
        var lines = output.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        lines[^1].Should().MatchRegex(@"^train: \d+ images/s \(\d+\.\d\d s/epoch\), infer: \d+ images/s$");
        return lines;
    }

    [Fact]
    public void Flops_of_lenet_count_the_first_convolution_without_its_input_gradient()
    {
        var lenet = LeNet.Create<float>(1);
        // conv1 2·24·24·6·25, conv2 2·8·8·16·150, linear 2·256·10.
        Flops.Inference(lenet, Mnist).Should().Be(172_800 + 307_200 + 5_120);
        Flops.Training(lenet, Mnist).Should().Be(2 * 172_800 + 3 * 307_200 + 3 * 5_120, "conv1 computes no input gradient");
        Flops.Training(lenet, [3, 28, 28, 1]).Should().Be(3 * 1_282_560, "a batch is its images' sum");
        Flops.Training(LeNet.Create<float>(new Random(1), computeInputGradient: true), Mnist).Should().Be(3 * (172_800 + 307_200 + 5_120));
    }

    [Fact]
    public void Flops_of_the_3x3_network_are_the_issues_figures()
    {
        var network = Conv3x3();
        network.Layers[0].Should().BeOfType<Conv<float>>().Which.ComputeInputGradient = false;
        // Forward: conv1 2·28·28·32·9 = 451,584, conv2 2·14·14·64·288 = 7,225,344, linear 2·3136·10 = 62,720: 7.74 MFLOP.
        Flops.Inference(network, Mnist).Should().Be(7_739_648);
        // Training: 3× forward less conv1's input gradient: 22.77 MFLOP ("about 22.8").
        Flops.Training(network, Mnist).Should().Be(3 * 7_739_648 - 451_584).And.Be(22_767_360);

        var layers = Flops.PerLayer(network, Mnist);
        layers.Select(l => l.MultiplyAdds).Should().Equal(true, false, false, true, false, false, false, true);
        layers[1].Should().Be(new LayerFlops("Relu", 25_088, 50_176, false), "element-wise: its 28·28·32 inputs forward, again backward");
        layers[6].Forward.Should().Be(0, "Flatten does no arithmetic");
        layers.Where(l => !l.MultiplyAdds).Sum(l => l.Forward).Should().Be(2 * 25_088 + 2 * 12_544);
    }

    [Fact]
    public void Flops_of_the_committed_onnx_3x3_network_match_and_its_first_convolution_skips_the_input_gradient()
    {
        string onnx = TestData.RepositoryPath("tests", "peers", "conv3x3.onnx");
        var network = Recipe.LoadNetwork(onnx, out var shape);
        shape.Should().Be((28, 28, 1));
        network.Layers.Select(l => l.Name).Should().Equal(Conv3x3().Layers.Select(l => l.Name));
        network.Layers[0].Should().BeOfType<Conv<float>>().Which.ComputeInputGradient.Should().BeFalse("nothing reads the images' gradient");
        (Flops.Inference(network, Mnist), Flops.Training(network, Mnist)).Should().Be((7_739_648.0, 22_767_360.0));
    }

    [Fact]
    public void Flops_of_the_modern_cnn_count_batch_norm_and_dropout_as_elements()
    {
        var modern = ModernCnn.Create<float>(1);
        // conv1 2·28·28·32·25 = 1,254,400 (no input gradient), conv2 2·14·14·64·288 = 7,225,344,
        // conv3 2·7·7·64·576 = 3,612,672, linear 2·3136·10 = 62,720.
        Flops.Inference(modern, Mnist).Should().Be(12_155_136);
        Flops.Training(modern, Mnist).Should().Be(2 * 1_254_400 + 3 * (7_225_344 + 3_612_672 + 62_720));
        var layers = Flops.PerLayer(modern, Mnist);
        layers[1].Should().Be(new LayerFlops(modern.Layers[1].Name, 25_088, 50_176, false), "BatchNorm2d over 28·28·32");
        layers[12].Should().Be(new LayerFlops(modern.Layers[12].Name, 0, 2 * 3136, false), "Dropout is the identity in inference");
    }

    [Fact]
    public void Bench_arch_times_a_saved_model_and_an_onnx_on_the_data()
    {
        string data = TestData.SyntheticIdx(Path.Combine(Dir, "data"), 64, 16);
        var network = LeNet.Create<float>(7);
        string saved = Path.Combine(Dir, "seven.model"), exported = Path.Combine(Dir, "seven.onnx");
        ModelFile.Save(network, saved);
        OnnxModel.Export(network, exported);
        byte[] before = File.ReadAllBytes(saved);
        foreach (string arch in new[] { saved, exported })
        {
            var lines = Bench("--data", data, "--arch", arch, "--batch", "4", "--momentum", "0.9");
            lines[0].Should().Be($"data: unrecognised IDX dataset in {data}");
            lines[1].Should().Be($"arch: {arch}: 8 layers, Conv 5x5 1→6 stride 1 pad 0 → Relu → MaxPool2x2 → Conv 5x5 6→16 stride 1 pad 0 → Relu → MaxPool2x2 → Flatten → Linear 256→10");
            lines[2].Should().Match("bench: backend *, batch 4, 2 timed steps, threads 1, optimizer sgd (momentum 0.9), lr 0.01, inference batch 16");
            lines.Should().ContainMatch("per step of the plan at batch 4, * (median ms a batch over * training steps, the step's share of their time, FLOPs an image;*");
            lines.Should().ContainMatch("  total *100.0%*0.494*1.300", "LeNet's 485,120 multiply-add FLOPs forward and 1,282,560 training, and 8,960 and 17,920 element-wise");
            lines.Should().ContainMatch("  (FLOPs: 2 a multiply-add in Conv and Linear*");
            lines.Should().ContainMatch("(the benchmarked network on the test set after its training steps: accuracy: *(*/16))");
            lines.Should().ContainMatch("train (1.28 MFLOP/image): * images/s, * GFLOP/s = *% of the core's peak*; median of 1-step chunks *");
            lines.Should().ContainMatch("infer (0.49 MFLOP/image): * images/s, * GFLOP/s = *% of the core's peak*");
            lines.Should().NotContain(l => l.StartsWith("GEMM shapes", StringComparison.Ordinal), "those are LeNet's own shapes at the tutorial's settings");
        }

        File.ReadAllBytes(saved).Should().Equal(before, "bench only reads --arch");
    }

    [Fact]
    public void Bench_of_lenet_with_fewer_steps_than_its_chunk_times_one_chunk_of_the_whole_run()
    {
        string data = TestData.SyntheticIdx(Path.Combine(Dir, "data"), 64, 16);
        var lines = Bench("--data", data, "--steps", "5");
        lines.Should().ContainMatch("train (1.28 MFLOP/image): * images/s, *; median of 5-step chunks *", "the tutorial's 200-step chunk is longer than the run");
    }

    [Fact]
    public void Bench_arch_of_another_image_size_runs_on_synthetic_images_and_says_so()
    {
        var random = new Random(2);
        string arch = Path.Combine(Dir, "rgb.model");
        // 12x12x3 → conv 3x3 → 10x10x4 → pool → 5x5x4 = 100: the smallest square it takes is 12 (a model file records none).
        ModelFile.Save(new Sequential<float>(
            new Conv<float>(3, 4, 3, 3, random), new BatchNorm2d<float>(4), new Relu<float>(), new MaxPool2x2<float>(), new Flatten<float>(),
            new Linear<float>(100, 3, random)), arch);
        var lines = Bench("--data", Path.Combine(Dir, "no-mnist-here"), "--arch", arch, "--batch", "8", "--optimizer", "adamw", "--infer-batch", "64");
        lines[0].Should().Be("data: synthetic, 10,000 random 12x12x3 images in 3 classes (seed 1): the network does not take MNIST's 28x28x1 images");
        lines[1].Should().StartWith($"arch: {arch}: 6 layers, Conv 3x3 3→4 stride 1 pad 0 → BatchNorm2d 4");
        lines[2].Should().EndWith(", batch 8, 2 timed steps, threads 1, optimizer adamw (weight decay 0.01), lr 0.01, inference batch 64");
        lines.Should().NotContain(l => l.StartsWith("(the benchmarked network on the test set", StringComparison.Ordinal), "random labels have no accuracy to report");
        double forward = 2.0 * 10 * 10 * 4 * 27 + 2.0 * 100 * 3;
        lines.Should().ContainMatch($"infer ({forward / 1e6:F2} MFLOP/image): *");
        lines[^1].Should().MatchRegex(@"^train: \d+ images/s \(\d+\.\d\d s/epoch\)");
    }

    [Fact]
    public void Bench_net_modern_takes_its_recipes_batch_and_optimizer_on_one_thread()
    {
        static Options Parsed(params string[] args)
        {
            Options? parsed = null;
            new Cli(o => { parsed = o; return 0; }, TextWriter.Null, TextWriter.Null).Invoke(args).Should().Be(0);
            return parsed!;
        }

        var o = Parsed("bench", "--net", "modern");
        (o.Net, o.Batch, o.Optimizer, o.EffectiveWeightDecay, o.Threads).Should().Be(("modern", 64, "adamw", 0.01, 1));
        var mine = Parsed("bench", "--net", "modern", "--batch", "16", "--optimizer", "sgd", "--momentum", "0.9", "--threads", "2");
        (mine.Batch, mine.Optimizer, mine.Momentum, mine.Threads).Should().Be((16, "sgd", 0.9, 2));
        var plain = Parsed("bench");
        (plain.Arch, plain.Net, plain.Batch, plain.Optimizer, plain.Momentum, plain.Threads).Should().Be(((string?)null, "lenet", 3, "sgd", 0.0, 1));

        string data = TestData.SyntheticIdx(Path.Combine(Dir, "data"), 80, 16);
        var lines = Bench("--data", data, "--net", "modern", "--batch", "16", "--steps", "1");
        lines[1].Should().StartWith("net: modern: 14 layers, Conv 5x5 1→32 stride 1 pad 2 → BatchNorm2d 32");
        lines[2].Should().Match("bench: backend *, batch 16, 1 timed steps, threads 1, optimizer adamw (weight decay 0.01), lr 0.01, inference batch 16");
        lines.Should().ContainMatch("train (35.21 MFLOP/image): *").And.ContainMatch("infer (12.16 MFLOP/image): *");
    }

    [Theory]
    [InlineData("error: --arch does not combine with --net: --arch times the file's network, --net builds a new one (see bench --help)", "bench", "--arch", "a.onnx", "--net", "modern")]
    [InlineData("error: --momentum is a setting of --optimizer sgd, not of adamw (see bench --help)", "bench", "--net", "modern", "--momentum", "0.9")]
    [InlineData("error: --momentum is a setting of --optimizer sgd, not of adam (see bench --help)", "bench", "--optimizer", "adam", "--momentum", "0.9")]
    [InlineData("error: --arch expects a path, got an empty string (see bench --help)", "bench", "--arch", "")]
    [InlineData("error: --net expects lenet, modern, got 'modrn'; did you mean 'modern'? (see bench --help)", "bench", "--net", "modrn")]
    [InlineData("error: unknown option '--lr' (see bench --help)", "bench", "--lr", "0.1")]
    public void Bench_options_that_do_not_fit_are_usage_errors(string message, params string[] args)
    {
        var (code, output, err) = Run(args);
        code.Should().Be(2);
        err.TrimEnd().Should().Be(message);
        output.Should().BeEmpty();
    }

    [Fact]
    public void Bench_arch_that_cannot_run_is_one_error_line_before_any_timing()
    {
        var random = new Random(1);
        string Save(string name, Sequential<float> network)
        {
            string path = Path.Combine(Dir, name);
            ModelFile.Save(network, path);
            return path;
        }

        string data = TestData.SyntheticIdx(Path.Combine(Dir, "data"), 64, 16);
        string maps = Save("maps.model", new Sequential<float>(new Conv<float>(1, 2, 5, 5, random), new Relu<float>()));
        string five = Save("five.model", new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 5, random)));
        string one = Save("one.model", new Sequential<float>(new Flatten<float>(), new Linear<float>(100, 1, random)));
        string missing = Path.Combine(Dir, "missing.onnx");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["--arch", maps], $"error: {maps}: the network turns the data's 28x28x1 images into (24, 24, 2) each, not scores, one per class: end it with Flatten and Linear."),
            (["--arch", five], $"error: {five}: the network gives 5 outputs per image, but the data has 10 classes."),
            (["--arch", one], $"error: {one}: the network gives 1 output per image; bench needs one score per class, at least 2."),
            (["--arch", missing], $"error: {missing}: model file not found."),
            (["--arch", Save("lenet.model", LeNet.Create<float>(1)), "--batch", "64"], $"error: bench --batch 64 needs more training images than that; {data} has 64."),
        })
        {
            var (code, output, err) = Run(["bench", "--data", data, "--steps", "1", .. args]);
            code.Should().Be(1, string.Join(' ', args));
            err.TrimEnd().Should().Be(expected).And.NotContain("\n");
            output.Should().NotContain("peak", "nothing is timed");
        }
    }
}
