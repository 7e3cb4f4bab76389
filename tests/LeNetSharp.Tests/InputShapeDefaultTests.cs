using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;

namespace LeNetSharp.Tests;

/// <summary>Prediction, Predictor and ONNX export take a network's recorded InputShape when given no image size.</summary>
public sealed class InputShapeDefaultTests : TempDirectoryTest
{
    [Fact]
    public void Without_an_image_size_the_networks_input_shape_is_used_else_28x28x1()
    {
        var net = ModernCnn.Create<float>(3, height: 12, width: 10, channels: 3, classes: 4);
        net.InputShape = (12, 10, 3);
        net.Training = false;
        var pixels = Enumerable.Range(0, 12 * 10 * 3).Select(i => (byte)(i * 7)).ToArray();
        var expected = net.Predict(pixels, 12, 10, 3);
        net.Predict(pixels).Probabilities.Should().Equal(expected.Probabilities);
        using (var predictor = new Predictor(net, concurrency: 1)) predictor.Predict(pixels).Probabilities.Should().Equal(expected.Probabilities);

        string path = Path.Combine(Dir, "net.onnx");
        OnnxModel.Export(net, path);
        OnnxModel.Import(path, out var shape);
        shape.Should().Be((12, 10, 3));

        net.Predict(pixels, 12, 10).Probabilities.Should().Equal(expected.Probabilities, "channels from the InputShape");
        FluentActions.Invoking(() => net.Predict(pixels, 12, 0, 3)).Should().Throw<ArgumentException>()
            .WithMessage("Give the image's height and width together (12, 0 given), or neither (0) for the network's InputShape.");
        LeNet.Create<float>(1).Predict(new byte[784]).Probabilities.Should().HaveCount(10, "no InputShape: 28x28x1");
    }

    [Fact]
    public void Loading_from_a_stream_left_at_its_end_says_to_rewind_it()
    {
        using var stream = new MemoryStream();
        ModelFile.Save(LeNet.Create<float>(1), stream);
        FluentActions.Invoking(() => ModelFile.Load<float>(stream, "in-memory")).Should().Throw<ModelFormatException>()
            .WithMessage("in-memory: truncated: 0 bytes, a model file has at least *(the stream is at its end, position *: rewind it to read what was written).");
        stream.Position = 0;
        ModelFile.Load<float>(stream, "in-memory").ParameterCount.Should().Be(5142);
    }
}

/// <summary>A step schedule shorter than the run is refused before the first step, with the steps the run takes.</summary>
public sealed class ScheduleLengthTests
{
    [Fact]
    public void A_one_cycle_too_short_for_the_run_is_refused_before_training_naming_the_steps_it_takes()
    {
        var data = TestData.RandomImages(180, 4);
        var options = new Training.TrainingOptions { Epochs = 1, BatchSize = 16, Schedule = new Training.OneCycleSchedule(11) };
        using var trainer = new Training.Trainer<float>(TestData.SmallNet<float>(1), options);
        var before = trainer.Network.Parameters.SelectMany(p => p.Value.Data).ToArray();
        FluentActions.Invoking(() => trainer.Train(data)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*has no rate for step 11 (0-based): the cycle has 11 steps; give it more. The run takes 12 steps (1 epochs × 12 batches of up to 16 images; a last short batch is a step).*");
        trainer.Network.Parameters.SelectMany(p => p.Value.Data).Should().Equal(before, "nothing was trained");
    }
}
