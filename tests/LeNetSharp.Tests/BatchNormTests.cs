using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>BatchNorm1d and BatchNorm2d against central differences and against PyTorch 1.13 (Fixtures/make_batchnorm_fixtures.py).</summary>
public class BatchNormTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>Random values with per-channel offsets and scales (statistics far from 0 and 1).</summary>
    private static Tensor<double> Input(Random random, params int[] shape)
    {
        var x = GradientCheck.Random(random, shape);
        int c = shape[^1];
        for (int i = 0; i < x.Length; i++) x.Data[i] = x.Data[i] * (1 + i % c) + 2 * (i % c) - 1;
        return x;
    }

    private static BatchNorm<double> WithRandomAffine(BatchNorm<double> layer, Random random)
    {
        if (layer.Affine)
        {
            for (int c = 0; c < layer.Channels; c++)
            {
                layer.Weight!.Value.Data[c] = (0.5 + random.NextDouble()) * (c % 2 == 0 ? 1 : -1);
                layer.Bias!.Value.Data[c] = random.NextDouble() * 2 - 1;
            }
        }

        return layer;
    }

    public static TheoryData<string> Layers => ["2d", "2d plain", "1d", "1d two"];

    private static (BatchNorm<double> Layer, Tensor<double> Input) Case(string name, Random random) => name switch
    {
        "2d" => (new BatchNorm2d<double>(3), Input(random, 2, 3, 5, 3)),
        "2d plain" => (new BatchNorm2d<double>(4, eps: 1e-3, momentum: 0.5, affine: false), Input(random, 3, 1, 3, 4)),
        "1d" => (new BatchNorm1d<double>(5), Input(random, 7, 5)),
        "1d two" => (new BatchNorm1d<double>(3, eps: 0.5), Input(random, 2, 3)),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void Training_gradients_match_central_differences(string name)
    {
        var random = new Random(17);
        var (layer, x) = Case(name, random);
        WithRandomAffine(layer, random);

        var errors = GradientCheck.Layer(layer, x, random);

        errors.Keys.Should().BeEquivalentTo(layer.Affine ? ["input", "weight", "bias"] : new[] { "input" });
        errors.Values.Should().OnlyContain(e => e < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors));
    }

    [Theory]
    [MemberData(nameof(Layers))]
    public void Evaluation_gradients_match_central_differences(string name)
    {
        var random = new Random(19);
        var (layer, x) = Case(name, random);
        WithRandomAffine(layer, random);
        layer.Forward(x); // running statistics other than 0 and 1
        layer.Training = false;

        var errors = GradientCheck.Layer(layer, x, random);

        errors.Values.Should().OnlyContain(e => e < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors));
    }

    /// <summary>
    /// The bound is one a real bug breaks: the input gradient of a layer that forgets the batch statistics depend on x
    /// (∂x = γ/σ·∂y, evaluation's formula), or keeps the mean's path but not the variance's, is far outside it.
    /// </summary>
    [Fact]
    public void The_gradient_bound_catches_a_backward_that_ignores_the_batch_statistics()
    {
        var random = new Random(23);
        var layer = WithRandomAffine(new BatchNorm2d<double>(3), random);
        var x = Input(random, 2, 3, 5, 3);
        var y = layer.Forward(x);
        var upstream = GradientCheck.Random(random, y.Shape.ToArray());
        double Loss()
        {
            var output = layer.Forward(x).Data;
            double s = 0;
            for (int i = 0; i < output.Length; i++) s += output[i] * upstream.Data[i];
            return s;
        }

        var numeric = GradientCheck.Numeric(x.Data, Loss);
        layer.Forward(x);
        var right = layer.Backward(upstream).Data.ToArray();
        GradientCheck.RelativeError(right, numeric).Should().BeLessThan(GradientCheck.Tolerance);

        // The two mutants, from the batch's statistics.
        int c = 3, m = x.Length / c;
        var mean = new double[c];
        var variance = new double[c];
        for (int i = 0; i < x.Length; i++) mean[i % c] += x.Data[i] / m;
        for (int i = 0; i < x.Length; i++) variance[i % c] += (x.Data[i] - mean[i % c]) * (x.Data[i] - mean[i % c]) / m;
        var meanDy = new double[c];
        for (int i = 0; i < x.Length; i++) meanDy[i % c] += upstream.Data[i] / m;
        var noStatistics = new double[x.Length];
        var noVariance = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double scale = layer.Weight!.Value.Data[i % c] / Math.Sqrt(variance[i % c] + layer.Eps);
            noStatistics[i] = scale * upstream.Data[i];
            noVariance[i] = scale * (upstream.Data[i] - meanDy[i % c]);
        }

        GradientCheck.RelativeError(noStatistics, numeric).Should().BeGreaterThan(1000 * GradientCheck.Tolerance);
        GradientCheck.RelativeError(noVariance, numeric).Should().BeGreaterThan(1000 * GradientCheck.Tolerance);
    }

    public static TheoryData<string> Fixtures => ["2d", "2d_plain", "1d", "1d_two"];

    /// <summary>Every step of a fixture through a layer of element type T: what it gives against what PyTorch gave.</summary>
    private static List<(string What, double[] Actual, double[] Expected)> Replay<T>(string fixture) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var f = Npy.ReadNpz(Fixture($"batchnorm_{fixture}.npz"));
        double[] settings = f["settings"].Values;
        double eps = settings[0], momentum = settings[1];
        bool affine = settings[2] == 1;
        int steps = (int)settings[3];
        int channels = f["gamma"].Values.Length;
        BatchNorm<T> layer = f["x0"].Shape.Length == 4
            ? new BatchNorm2d<T>(channels, eps, momentum, affine)
            : new BatchNorm1d<T>(channels, eps, momentum, affine);
        if (affine)
        {
            layer.Weight!.Value.CopyFrom(f["gamma"].ToTensor<T>());
            layer.Bias!.Value.CopyFrom(f["beta"].ToTensor<T>());
        }

        layer.RunningMean.Value.CopyFrom(f["running_mean0"].ToTensor<T>());
        layer.RunningVar.Value.CopyFrom(f["running_var0"].ToTensor<T>());
        static double[] Values(Tensor<T> t) => t.Data.Select(double.CreateChecked).ToArray();
        var results = new List<(string, double[], double[])>();
        void Step(string suffix)
        {
            foreach (var p in layer.Parameters) p.ZeroGradient();
            results.Add(($"y{suffix}", Values(layer.Forward(f[$"x{suffix}"].ToTensor<T>())), f[$"y{suffix}"].Values));
            results.Add(($"dx{suffix}", Values(layer.Backward(f[$"dy{suffix}"].ToTensor<T>())), f[$"dx{suffix}"].Values));
            if (affine)
            {
                results.Add(($"dgamma{suffix}", Values(layer.Weight!.Gradient), f[$"dgamma{suffix}"].Values));
                results.Add(($"dbeta{suffix}", Values(layer.Bias!.Gradient), f[$"dbeta{suffix}"].Values));
            }
        }

        for (int k = 0; k < steps; k++)
        {
            Step(k.ToString(System.Globalization.CultureInfo.InvariantCulture));
            results.Add(($"running_mean{k + 1}", Values(layer.RunningMean.Value), f[$"running_mean{k + 1}"].Values));
            results.Add(($"running_var{k + 1}", Values(layer.RunningVar.Value), f[$"running_var{k + 1}"].Values));
        }

        layer.Training = false;
        Step("_eval");
        results.Add(("running_mean after evaluation", Values(layer.RunningMean.Value), f[$"running_mean{steps}"].Values));
        results.Add(("running_var after evaluation", Values(layer.RunningVar.Value), f[$"running_var{steps}"].Values));
        return results;
    }

    /// <summary>The largest |actual − expected| / (1 + |expected|) over every array of the replay.</summary>
    private static (double Error, string Where) WorstError(List<(string What, double[] Actual, double[] Expected)> results)
    {
        double worst = 0;
        string where = "";
        foreach (var (what, actual, expected) in results)
        {
            actual.Should().HaveCount(expected.Length, what);
            for (int i = 0; i < actual.Length; i++)
            {
                double e = Math.Abs(actual[i] - expected[i]) / (1 + Math.Abs(expected[i]));
                if (!(e <= worst))
                {
                    worst = e;
                    where = $"{what}[{i}]: {actual[i]:R} vs PyTorch's {expected[i]:R}";
                }
            }
        }

        return (worst, where);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Double_matches_PyTorch_in_training_and_evaluation_with_the_running_statistics_of_every_step(string fixture)
    {
        var (error, where) = WorstError(Replay<double>(fixture));
        error.Should().BeLessThan(1e-12, "the worst was {0}", where);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Float_matches_PyTorch_to_float_precision(string fixture)
    {
        var (error, where) = WorstError(Replay<float>(fixture));
        error.Should().BeLessThan(1e-5, "the worst was {0}", where);
    }
}
