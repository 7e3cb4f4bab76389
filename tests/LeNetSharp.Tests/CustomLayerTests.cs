using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// A layer written outside the library against the public base class, as a user would: a learnable per-feature scale
/// (y = x ⊙ s, ∂s += Σ_rows x ⊙ ∂y, ∂x = ∂y ⊙ s) with a setting of its own. Once registered it saves, loads, clones,
/// predicts and trains on two threads like the built-in layers.
/// </summary>
public sealed class Scale<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _input, _output, _inputGrad;

    public Scale(int features, double initial)
    {
        Features = features;
        Initial = initial;
        Factor = new Parameter<T>("factor", features);
        Factor.Value.Span.Fill(T.CreateChecked(initial));
    }

    public int Features { get; }

    public double Initial { get; }

    public Parameter<T> Factor { get; }

    public override string Name => $"Scale {Features}";

    public override IReadOnlyList<Parameter<T>> Parameters => [Factor];

    public override int[] OutputShape(ReadOnlySpan<int> inputShape) =>
        inputShape.Length == 2 && inputShape[1] == Features ? inputShape.ToArray()
        : throw new ArgumentException($"{Name}: expected (N, {Features}), got {Tensor<T>.ShapeToString(inputShape)}.");

    public override LayerDescription Describe() => new("Scale", ("features", Features), ("initial", Initial));

    public static Scale<T> FromDescription(LayerDescription d) => new(d.GetInt("features", min: 1), d.Get("initial"));

    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        OutputShape(input.Shape);
        _input = input;
        if (_output is null || !_output.HasShape(input.Shape)) _output = new Tensor<T>(input.Shape.ToArray());
        for (int i = 0; i < input.Length; i++) _output.Data[i] = input.Data[i] * Factor.Value.Data[i % Features];
        return _output;
    }

    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        if (_inputGrad is null || !_inputGrad.HasShape(outputGradient.Shape)) _inputGrad = new Tensor<T>(outputGradient.Shape.ToArray());
        for (int i = 0; i < outputGradient.Length; i++)
        {
            Factor.Gradient.Data[i % Features] += _input!.Data[i] * outputGradient.Data[i];
            _inputGrad.Data[i] = outputGradient.Data[i] * Factor.Value.Data[i % Features];
        }

        return _inputGrad;
    }
}

public class CustomLayerTests : TempDirectoryTest
{
    static CustomLayerTests()
    {
        LayerRegistry.Register<float>("Scale", Scale<float>.FromDescription);
        LayerRegistry.Register<double>("Scale", Scale<double>.FromDescription);
    }

    private static Sequential<float> Net(int seed)
    {
        var random = new Random(seed);
        return new Sequential<float>(
            new Conv<float>(1, 4, 3, 3, random), new Relu<float>(), new MaxPool2x2<float>(), new Flatten<float>(),
            new Scale<float>(36, 0.75), new Linear<float>(36, 3, random));
    }

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    private static void Train(Sequential<float> net, int threads)
    {
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 2, BatchSize = 32, Seed = 3, Threads = threads });
        trainer.Train(TestData.RandomImages(256, seed: 4));
    }

    [Fact]
    public void A_registered_layer_saves_loads_clones_and_trains_on_two_threads_like_a_built_in_one()
    {
        var one = Net(1);
        var two = Net(1);
        var again = Net(1);
        Train(one, threads: 1);
        Train(two, threads: 2);
        Train(again, threads: 2);
        Weights(again).Should().Equal(Weights(two), "two-thread training is deterministic");
        float[] reference = Weights(one);
        for (int i = 0; i < reference.Length; i++)
        {
            Weights(two)[i].Should().BeApproximately(reference[i], 1e-4f, "two threads compute one thread's update up to rounding (parameter {0})", i);
        }

        ((Scale<float>)two.Layers[4]).Factor.Value.Data.Should().NotEqual(Enumerable.Repeat(0.75f, 36), "the scale is trained");

        string path = Path.Combine(Dir, "scale.model");
        ModelFile.Save(two, path);
        var loaded = ModelFile.Load<float>(path);
        loaded.Layers[4].Should().BeOfType<Scale<float>>().Which.Initial.Should().Be(0.75);
        Weights(loaded).Should().Equal(Weights(two));
        var asDouble = ModelFile.Load<double>(path);
        asDouble.Layers[4].Should().BeOfType<Scale<double>>();

        var clone = two.Clone();
        clone.Layers[4].Should().NotBeSameAs(two.Layers[4]);
        var images = TestData.RandomImages(16, seed: 5);
        var x = new Tensor<float>(16, 8, 8, 1);
        images.FillBatch(Enumerable.Range(0, 16).ToArray(), x, new int[16]);
        float[] expected = two.Forward(x).Data.ToArray();
        clone.Forward(x).Data.Should().Equal(expected);
        loaded.Forward(x).Data.Should().Equal(expected);
        ((Scale<float>)clone.Layers[4]).Factor.Value.Data[0] = 9f;
        two.Forward(x).Data.Should().Equal(expected, "the clone's weights are its own");

        using var predictor = new Predictor(two, 8, 8, 1, concurrency: 2);
        predictor.Predict(x.Data.AsSpan(0, 64)).Label.Should().Be(two.Predict(x.Data.AsSpan(0, 64), 8, 8, 1).Label);
    }

    [Fact]
    public void A_layer_that_is_not_registered_is_refused_by_name_and_nothing_is_written()
    {
        var net = new Sequential<float>(new Flatten<float>(), new Unregistered(), new Linear<float>(64, 3, new Random(1)));
        string path = Path.Combine(Dir, "x.model");
        File.WriteAllText(path, "keep me");
        FluentActions.Invoking(() => ModelFile.Save(net, path)).Should().Throw<NotSupportedException>().WithMessage("*'Unregistered'*not registered*");
        File.ReadAllText(path).Should().Be("keep me");
        FluentActions.Invoking(() => net.Clone()).Should().Throw<NotSupportedException>().WithMessage("*Unregistered*");

        // It still trains: the SIMD backend, unable to copy the network to time its widths, takes a default width.
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 8, Seed = 1 });
        trainer.Train(TestData.RandomImages(32, seed: 2)).Should().NotBeNull();
    }

    private sealed class Unregistered : Layer<float>
    {
        public override string Name => "Unregistered";

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        public override LayerDescription Describe() => new("Unregistered");

        protected override Tensor<float> ForwardCore(Tensor<float> input) => input;

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
    }
}
