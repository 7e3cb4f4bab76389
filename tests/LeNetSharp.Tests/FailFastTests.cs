using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public class FailFastTests
{
    [Fact]
    public void Element_types_other_than_float_and_double_are_refused_when_built()
    {
        FluentActions.Invoking(() => LeNet.Create<Half>(1)).Should().Throw<NotSupportedException>()
            .WithMessage("Conv<Half>: element type Half is not supported; *float*double*");
        FluentActions.Invoking(() => new Relu<Half>()).Should().Throw<NotSupportedException>();
        FluentActions.Invoking(() => new Sequential<Half>()).Should().Throw<NotSupportedException>();
        FluentActions.Invoking(() => new SoftmaxCrossEntropy<Half>()).Should().Throw<NotSupportedException>();
        new Relu<float>().Should().NotBeNull();
        new Relu<double>().Should().NotBeNull();
    }

    public static TheoryData<string> MisfitNetworks => new() { "11 outputs", "relu only", "wrong image size" };

    private static Sequential<float> Misfit(string kind) => kind switch
    {
        "11 outputs" => new Sequential<float>(new Flatten<float>(), new Linear<float>(64, 11, new Random(1))),
        "relu only" => new Sequential<float>(new Relu<float>()),
        _ => LeNet.Create<float>(1), // 28x28 network, 8x8 images
    };

    [Theory]
    [MemberData(nameof(MisfitNetworks))]
    public void The_evaluator_refuses_a_network_that_does_not_fit_the_dataset_naming_both(string kind)
    {
        var data = new ImageDataset(new byte[5 * 64], new byte[5], 8, 8, 1, 10);
        var e = FluentActions.Invoking(() => Evaluator.Evaluate(Misfit(kind), data)).Should().Throw<ArgumentException>().Which;
        e.Message.Should().Match(m => m.Contains("(8, 8, 1)") || m.Contains("10 classes"));
        if (kind == "11 outputs") e.Message.Should().Be("The network has 11 outputs but the dataset has 10 classes.");
        if (kind == "relu only") e.Message.Should().Contain("(1, 8, 8, 1)").And.Contain("not (N, classes) logits");
    }

    [Theory]
    [MemberData(nameof(MisfitNetworks))]
    public void The_trainer_refuses_it_before_any_step(string kind)
    {
        var net = Misfit(kind);
        var before = net.Parameters.Select(p => p.Value.Data.ToArray()).ToList();
        var data = new ImageDataset(new byte[5 * 64], new byte[5], 8, 8, 1, 10);
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1 });
        FluentActions.Invoking(() => trainer.Train(data)).Should().Throw<ArgumentException>().WithMessage("*network*");
        FluentActions.Invoking(() => trainer.Step(data, [0, 1])).Should().Throw<ArgumentException>();
        net.Parameters.Select(p => p.Value.Data).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
        FluentActions.Invoking(() => net.Predict(data)).Should().Throw<ArgumentException>();
    }

    /// <summary>A pass-through layer that throws on a chosen image value, copied by its own Clone.</summary>
    private sealed class FaultyLayer : Layer<float>
    {
        public override string Name => "faulty";

        public override LayerDescription Describe() => new("faulty");

        public override ILayer<float> Clone() => new FaultyLayer();

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        protected override Tensor<float> ForwardCore(Tensor<float> input) =>
            input.Data.Contains(1f) ? throw new InvalidDataException("faulty layer saw a white pixel") : input;

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
    }

    private static (Sequential<float> Net, ImageDataset Data) FaultyCase()
    {
        var pixels = new byte[64 * 64];
        pixels[^1] = 255; // only the last image has a white pixel: it falls to the last worker
        var data = new ImageDataset(pixels, new byte[64], 8, 8, 1, 3);
        var random = new Random(1);
        return (new Sequential<float>(new FaultyLayer(), new Flatten<float>(), new Linear<float>(64, 3, random)), data);
    }

    [Fact]
    public void A_worker_failure_in_parallel_evaluation_surfaces_unwrapped()
    {
        var (net, data) = FaultyCase();
        FluentActions.Invoking(() => Evaluator.Evaluate(net, data, batchSize: 8, threads: 2)).Should().Throw<InvalidDataException>()
            .WithMessage("faulty layer saw a white pixel");
    }

    [Fact]
    public void A_worker_failure_in_parallel_training_surfaces_unwrapped()
    {
        var (net, data) = FaultyCase();
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 64, Threads = 2, Shuffle = false });
        FluentActions.Invoking(() => trainer.Train(data)).Should().Throw<InvalidDataException>().WithMessage("faulty layer saw a white pixel");
    }
}
