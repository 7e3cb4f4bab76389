using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// Central-difference checks in double (<see cref="GradientCheck"/>: random upstream gradient, relative error below 1e-6)
/// of Tanh, Sigmoid, LeakyRelu, Dropout, MaxPool2d, AvgPool2d and GlobalAvgPool2d, on odd sizes, strides and paddings.
/// </summary>
public class PoolAndActivationGradientTests
{
    private static void ShouldMatch(Dictionary<string, double> errors)
    {
        errors.Keys.Should().BeEquivalentTo("input"); // none of these layers has parameters
        errors.Values.Should().OnlyContain(e => e < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors)); // false for NaN too
    }

    [Fact]
    public void Tanh_gradient_matches_central_differences()
    {
        var random = new Random(31);
        var x = GradientCheck.Random(random, 2, 5, 3, 3);
        for (int i = 0; i < x.Length; i++) x.Data[i] *= 3;
        ShouldMatch(GradientCheck.Layer(new Tanh<double>(), x, random));
    }

    [Fact]
    public void Sigmoid_gradient_matches_central_differences()
    {
        var random = new Random(32);
        var x = GradientCheck.Random(random, 3, 7, 5);
        for (int i = 0; i < x.Length; i++) x.Data[i] *= 6; // both branches of the stable form, x < 0 and x ≥ 0
        ShouldMatch(GradientCheck.Layer(new Sigmoid<double>(), x, random));
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.2)]
    [InlineData(-0.3)] // a negative slope: the mask must come from x, not from y
    [InlineData(1.5)]
    public void LeakyRelu_gradient_matches_central_differences(double slope)
    {
        var random = new Random(33);
        var x = GradientCheck.Random(random, 2, 5, 4, 3);
        for (int i = 0; i < x.Length; i++) x.Data[i] = (0.1 + Math.Abs(x.Data[i])) * (i % 3 == 0 ? -1 : 1); // no value near the kink
        ShouldMatch(GradientCheck.Layer(new LeakyRelu<double>(slope), x, random));
    }

    [Theory]
    [InlineData(0.4)]
    [InlineData(0.0)]
    [InlineData(0.9)]
    public void Dropout_gradient_in_training_with_a_fixed_mask_matches_central_differences(double p)
    {
        var random = new Random(34);
        var x = GradientCheck.Random(random, 2, 5, 3, 4);
        var dropout = new Dropout<double>(p) { FixedKeep = Enumerable.Range(0, x.Length).Select(_ => random.NextDouble() >= p).ToArray() };
        ShouldMatch(GradientCheck.Layer(dropout, x, random));
        dropout.Forward(x).Data.Count(v => v == 0).Should().Be(dropout.FixedKeep.Count(k => !k), "the fixed mask was used");
    }

    [Fact]
    public void Dropout_gradient_in_evaluation_is_the_identity_and_matches_central_differences()
    {
        var random = new Random(35);
        var x = GradientCheck.Random(random, 3, 11);
        ShouldMatch(GradientCheck.Layer(new Dropout<double>(0.5) { Training = false }, x, random));
    }

    /// <summary>Distinct values 0.01 apart, shuffled: no ties and no near-ties that a 1e-6 step could flip.</summary>
    private static Tensor<double> Distinct(Random random, params int[] shape)
    {
        var values = Enumerable.Range(0, shape.Aggregate(1, (a, d) => a * d)).Select(i => i * 0.01 - 1).ToArray();
        random.Shuffle(values);
        return new Tensor<double>(values, shape);
    }

    public static TheoryData<int, int, int, int, int, int?, int> Pools => new()
    {
        // n, h, w, c, kernel, stride (null: the kernel), padding
        { 2, 6, 4, 3, 2, null, 0 },
        { 1, 5, 7, 2, 2, null, 0 },  // odd sizes: the last row and column are dropped
        { 2, 7, 9, 3, 3, 2, 1 },     // overlapping windows, padded
        { 1, 6, 5, 2, 3, 1, 1 },     // stride 1: every element in up to 9 windows
        { 2, 5, 6, 1, 4, 2, 2 },     // padding = kernel/2
        { 1, 9, 7, 2, 5, 3, 2 },
        { 2, 7, 8, 2, 3, null, 0 },  // remainder dropped
        { 1, 5, 5, 3, 1, 2, 0 },     // 1x1 windows
    };

    [Theory]
    [MemberData(nameof(Pools))]
    public void MaxPool2d_gradient_matches_central_differences(int n, int h, int w, int c, int kernel, int? stride, int padding)
    {
        var random = new Random(36);
        ShouldMatch(GradientCheck.Layer(new MaxPool2d<double>(kernel, stride, padding), Distinct(random, n, h, w, c), random));
    }

    [Theory]
    [MemberData(nameof(Pools))]
    public void AvgPool2d_gradient_matches_central_differences(int n, int h, int w, int c, int kernel, int? stride, int padding)
    {
        var random = new Random(37);
        ShouldMatch(GradientCheck.Layer(new AvgPool2d<double>(kernel, stride, padding), GradientCheck.Random(random, n, h, w, c), random));
    }

    [Theory]
    [InlineData(2, 5, 7, 3)]
    [InlineData(3, 1, 1, 4)]
    [InlineData(1, 4, 1, 2)]
    public void GlobalAvgPool2d_gradient_matches_central_differences(int n, int h, int w, int c)
    {
        var random = new Random(38);
        ShouldMatch(GradientCheck.Layer(new GlobalAvgPool2d<double>(), GradientCheck.Random(random, n, h, w, c), random));
    }

    [Fact]
    public void A_network_of_the_new_layers_has_the_gradients_of_central_differences()
    {
        // Conv → LeakyRelu → MaxPool2d 3/2/1 → Tanh → AvgPool2d 2/1 → Sigmoid → Dropout (fixed mask) → GlobalAvgPool2d → Linear:
        // each layer's backward feeds the next one's, and the parameters before the pools get their gradients through them.
        var random = new Random(39);
        var dropout = new Dropout<double>(0.25);
        var net = new Sequential<double>(
            new Conv<double>(2, 3, 3, 3, random, 1, 1), new LeakyRelu<double>(0.1), new MaxPool2d<double>(3, 2, 1), new Tanh<double>(),
            new AvgPool2d<double>(2, 1), new Sigmoid<double>(), dropout, new GlobalAvgPool2d<double>(), new Linear<double>(3, 4, random));
        var x = GradientCheck.Random(random, 2, 7, 6, 2);
        dropout.FixedKeep = Enumerable.Range(0, 2 * 3 * 2 * 3).Select(i => i % 4 != 1).ToArray();
        int[] labels = [1, 3];
        var loss = new SoftmaxCrossEntropy<double>();
        double Loss() => loss.Forward(net.Forward(x), labels);

        net.ZeroGradients();
        Loss();
        var inputGrad = net.Backward(loss.Backward()).Data.ToArray();
        var errors = new List<(string, double)> { ("input", GradientCheck.RelativeError(inputGrad, GradientCheck.Numeric(x.Data, Loss))) };
        foreach (var p in net.Parameters)
        {
            var analytic = p.Gradient.Data.ToArray();
            analytic.Should().Contain(v => v != 0, "{0} should receive a gradient", p.Name);
            errors.Add((p.Name, GradientCheck.RelativeError(analytic, GradientCheck.Numeric(p.Value.Data, Loss))));
        }

        errors.Should().HaveCount(5);
        errors.Should().OnlyContain(e => e.Item2 < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors));
    }
}
