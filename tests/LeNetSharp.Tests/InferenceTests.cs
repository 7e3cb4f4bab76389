using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public class SoftmaxTests
{
    [Fact]
    public void Matches_the_definition_and_sums_to_one()
    {
        float[] z = [1f, 2f, 3f];
        var p = Softmax.Compute(z);
        double sum = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        p[0].Should().BeApproximately((float)(Math.Exp(1) / sum), 1e-6f);
        p[1].Should().BeApproximately((float)(Math.Exp(2) / sum), 1e-6f);
        p[2].Should().BeApproximately((float)(Math.Exp(3) / sum), 1e-6f);
    }

    [Fact]
    public void Is_stable_for_huge_logits_where_the_naive_formula_overflows()
    {
        float[] z = [1000f, 999f, -1000f];
        float.Exp(1000f).Should().Be(float.PositiveInfinity, "the naive formula would give ∞/∞");
        var p = Softmax.Compute(z);
        p.Should().OnlyContain(v => float.IsFinite(v));
        p[0].Should().BeApproximately(1 / (1 + MathF.Exp(-1)), 1e-6f);
        p[2].Should().Be(0f);
        p.Sum().Should().BeApproximately(1f, 1e-6f);
    }

    [Fact]
    public void Works_in_place_in_double_and_with_infinite_logits()
    {
        double[] z = [0, Math.Log(3)];
        Softmax.Compute<double>(z, z);
        z[0].Should().BeApproximately(0.25, 1e-15);
        z[1].Should().BeApproximately(0.75, 1e-15);
        Softmax.Compute([float.PositiveInfinity, 0f, float.PositiveInfinity]).Should().Equal(0.5f, 0f, 0.5f);
    }

    [Fact]
    public void Rejects_empty_and_mismatched_spans()
    {
        FluentActions.Invoking(() => Softmax.Compute(ReadOnlySpan<float>.Empty)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => Softmax.Compute<float>(new float[3], new float[2])).Should().Throw<ArgumentException>().WithMessage("*3 logits*2*");
    }
}

public class PredictionTests
{
    [Fact]
    public void Confidence_and_runner_up_come_from_the_probabilities()
    {
        var p = new Prediction(2, [0.1f, 0.25f, 0.6f, 0.05f]);
        p.Confidence.Should().Be(0.6f);
        p.RunnerUp.Should().Be(1);
        p.ToString().Should().Be("2 (60.0%; runner-up 1, 25.0%)");
        new Prediction(0, [1f]).RunnerUp.Should().Be(-1);
    }
}

public class CloneTests
{
    [Fact]
    public void A_clone_computes_the_same_and_training_it_leaves_the_original_alone()
    {
        var net = TestData.SmallNet<double>(3);
        var data = TestData.RandomImages(30, 4);
        var copy = net.Clone();
        var before = net.Parameters.Select(p => p.Value.Data.ToArray()).ToList();

        var x = new Tensor<double>(5, 8, 8, 1);
        data.FillBatch([0, 1, 2, 3, 4], x, new int[5]);
        copy.Forward(x).Data.Should().Equal(net.Forward(x).Data);
        copy.Parameters.Should().HaveCount(net.Parameters.Count);
        copy.Layers.Zip(net.Layers).Should().OnlyContain(pair => !ReferenceEquals(pair.First, pair.Second));

        new Trainer<double>(copy, new TrainingOptions { Epochs = 1 }).Train(data);

        net.Parameters.Select(p => p.Value.Data).Should().BeEquivalentTo(before, o => o.WithStrictOrdering());
        copy.Parameters[0].Value.Data.Should().NotEqual(before[0]);
    }

    [Fact]
    public void A_clone_keeps_the_first_convolutions_input_gradient_switch()
    {
        var net = LeNet.Create<float>(new Random(1), computeInputGradient: false);
        ((Conv<float>)net.Clone().Layers[0]).ComputeInputGradient.Should().BeFalse();
        ((Conv<float>)LeNet.Create<float>(new Random(1), true).Clone().Layers[0]).ComputeInputGradient.Should().BeTrue();
    }

    [Fact]
    public void A_layer_that_cannot_be_copied_is_named()
    {
        var net = new Sequential<float>(new Flatten<float>(), new OpaqueLayer());
        FluentActions.Invoking(() => net.Clone()).Should().Throw<NotSupportedException>().WithMessage("*opaque*");
    }

    private sealed class OpaqueLayer : Layer<float>
    {
        public override string Name => "opaque";

        public override LayerDescription Describe() => new("Opaque"); // never registered

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        protected override Tensor<float> ForwardCore(Tensor<float> input) => input;

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
    }
}

public class ConcurrencyTests
{
    [Fact]
    public void A_second_thread_entering_a_busy_network_gets_a_clear_error_not_wrong_numbers()
    {
        var gate = new GateLayer { Armed = true };
        var net = new Sequential<float>(gate, new Flatten<float>());
        var x = new Tensor<float>(1, 2, 2, 1);
        var first = new Thread(() => net.Forward(x));
        first.Start();
        gate.Entered.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue();

        FluentActions.Invoking(() => net.Forward(x)).Should().Throw<InvalidOperationException>()
            .WithMessage("*used from two threads at once*Clone()*Predictor*");
        FluentActions.Invoking(() => net.Backward(new Tensor<float>(1, 4))).Should().Throw<InvalidOperationException>();

        gate.Release.Set();
        first.Join();
        gate.Armed = false;
        net.Forward(x).Should().NotBeNull("the network is free again once the first call returned");
    }

    [Fact]
    public void Two_threads_evaluating_one_network_both_get_the_right_count()
    {
        var net = TrainedMnist.Network;
        var test = TrainedMnist.Test;
        int expected = Evaluator.Evaluate(net, test).Correct;

        var counts = new int[2][];
        using var start = new Barrier(2);
        var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            counts[t] = Enumerable.Range(0, 3).Select(_ => Evaluator.Evaluate(net, test).Correct).ToArray();
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        counts.SelectMany(c => c).Should().AllBeEquivalentTo(expected);
        Evaluator.Evaluate(net, test, threads: 2).Correct.Should().Be(expected, "the count does not depend on the thread count");
    }

    [Fact]
    public void A_predictor_gives_from_many_threads_what_the_network_gives_on_one()
    {
        var net = TrainedMnist.Network;
        var test = TrainedMnist.Test.Take(400);
        var expected = net.Clone().Predict(test);
        using var predictor = new Predictor(net, concurrency: 2);

        var got = new Prediction[test.Count];
        Parallel.For(0, test.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => got[i] = predictor.Predict(test.Pixels(i)));

        got.Select(p => p.Label).Should().Equal(expected.Select(p => p.Label));
        for (int i = 0; i < got.Length; i++) got[i].Probabilities.Should().Equal(expected[i].Probabilities);
    }

    [Theory]
    [InlineData(float.NaN, 0)]
    [InlineData(float.PositiveInfinity, 100)]
    [InlineData(float.NegativeInfinity, 783)]
    [InlineData(float.NaN, 781)]
    public void Non_finite_pixels_are_refused_naming_the_first_index(float bad, int index)
    {
        var net = TrainedMnist.Network.Clone();
        var pixels = new float[784];
        pixels[index] = bad;
        if (index < 783) pixels[783] = float.NaN; // a later one is not the one named
        string message = $"*Pixel {index} is {bad}*finite*";
        FluentActions.Invoking(() => net.Predict(pixels.AsSpan())).Should().Throw<ArgumentException>().WithMessage(message);
        FluentActions.Invoking(() => net.PredictProbabilities(pixels.AsSpan())).Should().Throw<ArgumentException>().WithMessage(message);
        using var predictor = new Predictor(net, concurrency: 1);
        FluentActions.Invoking(() => predictor.Predict(pixels.AsSpan())).Should().Throw<ArgumentException>().WithMessage(message);
        pixels[index] = 0;
        pixels[783] = 0;
        predictor.Predict(pixels.AsSpan()).Probabilities.Should().OnlyContain(p => float.IsFinite(p));
    }

    [Fact]
    public void A_huge_image_shape_is_reported_with_its_real_feature_count()
    {
        FluentActions.Invoking(() => new Predictor(LeNet.Create<float>(1), 100000, 100000, concurrency: 1)).Should().Throw<ArgumentException>()
            .Where(e => !e.Message.Contains('-') && !e.Message.Contains("1407665552") && e.Message.Contains("(100000, 100000, 1)"))
            .WithMessage("*(1, 24997, 24997, 16)*9,997,600,144*");
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(Predictor.MaxConcurrency + 1)]
    [InlineData(100000)]
    public void A_concurrency_outside_0_to_MaxConcurrency_is_refused(int concurrency)
    {
        FluentActions.Invoking(() => new Predictor(LeNet.Create<float>(1), concurrency: concurrency)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be("concurrency");
    }

    [Fact]
    public void The_default_concurrency_is_the_processor_count_within_MaxConcurrency()
    {
        using var predictor = new Predictor(LeNet.Create<float>(1));
        predictor.Concurrency.Should().Be(Math.Min(Environment.ProcessorCount, Predictor.MaxConcurrency));
    }

    [Fact]
    public void A_disposed_predictor_refuses_work()
    {
        var predictor = new Predictor(LeNet.Create<float>(1), concurrency: 1);
        predictor.Dispose();
        FluentActions.Invoking(() => predictor.Predict(new byte[784])).Should().Throw<ObjectDisposedException>();
    }
}

public class NetworkInferenceTests
{
    [Fact]
    public void Results_belong_to_the_caller_and_a_second_call_does_not_change_the_first()
    {
        var net = TrainedMnist.Network.Clone();
        var test = TrainedMnist.Test;
        var first = net.Predict(test.Pixels(0));
        var copy = first.Probabilities.ToArray();
        var second = net.Predict(test.Pixels(1));

        first.Probabilities.Should().Equal(copy);
        first.Label.Should().Be(7);
        second.Label.Should().Be(2);
        first.Probabilities.Sum().Should().BeApproximately(1f, 1e-5f);
        first.Confidence.Should().Be(first.Probabilities.Max());
    }

    [Fact]
    public void Byte_float_batch_and_dataset_forms_agree_with_each_other_and_with_the_evaluator()
    {
        var net = TrainedMnist.Network.Clone();
        var test = TrainedMnist.Test.Take(1000);
        var all = net.Predict(test);

        int correct = all.Where((p, i) => p.Label == test.Label(i)).Count();
        correct.Should().Be(Evaluator.Evaluate(net, test).Correct);

        var floats = test.Pixels(5).ToArray().Select(b => b * (1f / 255)).ToArray(); // the library scales by ×(1/255)
        net.Predict(floats).Probabilities.Should().Equal(net.Predict(test.Pixels(5)).Probabilities);
        net.PredictProbabilities(test.Pixels(5)).Should().Equal(all[5].Probabilities);

        var batch = new Tensor<float>(3, 28, 28, 1);
        test.FillBatch([5, 6, 7], batch, new int[3]);
        net.Predict(batch).Select(p => p.Label).Should().Equal(all[5].Label, all[6].Label, all[7].Label);
        net.PredictProbabilities(test).Should().HaveCount(1000).And.OnlyContain(p => p.Length == 10);
    }

    [Fact]
    public void Activations_are_copies_of_every_layers_output()
    {
        var net = TrainedMnist.Network.Clone();
        var pixels = TrainedMnist.Test.Pixels(0).ToArray().Select(b => b * (1f / 255)).ToArray();
        var maps = net.Activations(pixels);

        maps.Select(m => m.ShapeString).Should().Equal(
            "(1, 24, 24, 6)", "(1, 24, 24, 6)", "(1, 12, 12, 6)", "(1, 8, 8, 16)", "(1, 8, 8, 16)", "(1, 4, 4, 16)", "(1, 256)", "(1, 10)");
        var logits = maps[^1].Data.ToArray();
        net.Predict(TrainedMnist.Test.Pixels(1)); // reuses the network's buffers
        maps[^1].Data.Should().Equal(logits);
        Softmax.Compute(logits).Should().Equal(net.Predict(pixels).Probabilities);
        maps[1].Data.Should().OnlyContain(v => v >= 0, "the second map is after Relu");
    }

    [Fact]
    public void A_wrong_pixel_count_is_refused_with_both_counts()
    {
        var net = LeNet.Create<float>(1);
        FluentActions.Invoking(() => net.Predict(new byte[100])).Should().Throw<ArgumentException>().WithMessage("*784*100*");
    }
}

public class FormattingTests
{
    [Fact]
    public void Summary_lists_layers_output_shapes_and_parameters_like_keras()
    {
        var summary = LeNet.Create<float>(1).Summary(28, 28, 1);
        summary.Should().Contain("Layer (type)").And.Contain("Output Shape").And.Contain("Param #");
        var lines = summary.Split('\n');
        lines.Should().Contain(l => l.StartsWith("Conv 5x5 1→6") && l.Contains("(None, 24, 24, 6)") && l.TrimEnd().EndsWith(" 156"));
        lines.Should().Contain(l => l.StartsWith("MaxPool2x2") && l.Contains("(None, 4, 4, 16)") && l.TrimEnd().EndsWith(" 0"));
        lines.Should().Contain(l => l.StartsWith("Linear") && l.Contains("(None, 10)") && l.TrimEnd().EndsWith(" 2,570"));
        lines.Should().Contain("Total params: 5,142");
        FluentActions.Invoking(() => LeNet.Create<float>(1).Summary(10, 10, 1)).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void ToString_names_the_layers_and_parameter_count()
    {
        LeNet.Create<float>(1).ToString().Should().StartWith("Sequential<Single>: 8 layers, 5,142 parameters: Conv 5x5 1→6").And.EndWith("→ Linear 256→10");
    }

    [Fact]
    public void Evaluation_and_progress_format_themselves_without_assuming_the_split()
    {
        var net = TestData.SmallNet<float>(1);
        var data = TestData.RandomImages(40, 2);
        var result = Evaluator.Evaluate(net, data);
        result.ToString().Should().MatchRegex(@"^accuracy: \d+\.\d\d% \(\d+/40\)$");
        result.ToString("test").Should().Be("test " + result.ToString());
        result.ToString("validation").Should().StartWith("validation accuracy: ");

        var progress = new TrainingProgress(1, 2, 300, 20000, 0.18701, 0.94312, 0.01, TimeSpan.FromSeconds(1.94), 31544.2, false);
        progress.ToString().Should().Be("epoch 1/2  batch 300/20000  loss 0.1870  train accuracy 94.31%  lr 0.01  1.9 s  31,544 images/s");
    }
}
