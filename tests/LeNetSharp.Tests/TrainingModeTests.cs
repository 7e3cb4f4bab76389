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
