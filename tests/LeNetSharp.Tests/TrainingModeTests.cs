using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>Training and evaluation mode: set on every layer by the network, on by the trainer, off while evaluating.</summary>
public class TrainingModeTests
{
    /// <summary>A pass-through layer that records the mode of each forward.</summary>
    private sealed class ModeRecorder : Layer<float>
    {
        public List<bool> Seen { get; } = [];

        public override string Name => "mode recorder";

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        public override LayerDescription Describe() => new("ModeRecorder");

        public override ILayer<float> Clone() => new ModeRecorder { Training = Training };

        protected override Tensor<float> ForwardCore(Tensor<float> input)
        {
            Seen.Add(Training);
            return input;
        }

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
    }

    private static (Sequential<float> Net, ModeRecorder Recorder) Net()
    {
        var recorder = new ModeRecorder();
        return (new Sequential<float>(new Flatten<float>(), recorder, new Linear<float>(64, 3, new Random(1))), recorder);
    }

    [Fact]
    public void Evaluation_and_prediction_run_in_evaluation_mode_and_put_the_mode_back()
    {
        var (net, recorder) = Net();
        var data = TestData.RandomImages(20, seed: 1);
        net.Training.Should().BeTrue("a network starts in training mode");
        Evaluator.Evaluate(net, data, batchSize: 10);
        net.Predict(data.Pixels(0), 8, 8, 1);
        recorder.Seen.Should().OnlyContain(training => !training);
        net.Training.Should().BeTrue();
        recorder.Training.Should().BeTrue("the layers are put back too");
    }

    [Fact]
    public void A_network_built_from_layers_left_in_evaluation_mode_starts_in_training_mode_layers_included()
    {
        // E.g. the layers of an imported network (which arrives in evaluation mode) recombined without its Dropout: the
        // trainer goes by the network's mode, so a layer left in evaluation would train a BatchNorm on its running statistics.
        var recorder = new ModeRecorder { Training = false };
        var bn = new BatchNorm2d<float>(1) { Training = false };
        var net = new Sequential<float>(bn, recorder, new Flatten<float>(), new Linear<float>(64, 3, new Random(1)));
        net.Training.Should().BeTrue();
        bn.Training.Should().BeTrue("a new network's layers are in its mode");
        recorder.Training.Should().BeTrue();

        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 5 });
        trainer.Step(TestData.RandomImages(20, seed: 2), [0, 1, 2, 3, 4]);
        recorder.Seen.Should().Equal(true);
        bn.RunningMean.Value.Span[0].Should().BeGreaterThan(0, "a training step moves the running mean towards the batch's (pixels in [0, 1])");
    }

    [Fact]
    public void The_trainer_turns_training_on_whatever_mode_the_network_was_left_in()
    {
        var (net, recorder) = Net();
        net.Training = false;
        recorder.Training.Should().BeFalse("setting the network's mode sets its layers'");
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 5 });
        trainer.Step(TestData.RandomImages(20, seed: 2), [0, 1, 2, 3, 4]);
        recorder.Seen.Should().Equal(true);
        net.Training.Should().BeTrue();
    }

    [Fact]
    public void A_clone_keeps_the_mode()
    {
        var (net, _) = Net();
        net.Training = false;
        var copy = net.Clone();
        copy.Training.Should().BeFalse();
        ((ModeRecorder)copy.Layers[1]).Training.Should().BeFalse();
    }
}
