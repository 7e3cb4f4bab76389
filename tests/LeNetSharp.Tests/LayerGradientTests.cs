using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

public class LayerGradientTests
{
    [Theory]
    [InlineData(2, 7, 6, 3, 4, 3, 3, 1, 0)]
    [InlineData(2, 7, 6, 3, 4, 3, 3, 1, 1)]
    [InlineData(2, 7, 6, 3, 4, 3, 3, 2, 0)]
    [InlineData(3, 9, 8, 2, 5, 3, 2, 2, 1)]
    [InlineData(1, 5, 5, 1, 2, 5, 5, 1, 2)]
    [InlineData(2, 9, 8, 1, 3, 3, 3, 2, 1)]   // single channel (transposed patches) with stride 2 and padding
    [InlineData(2, 6, 7, 2, 3, 2, 4, 3, 2)]
    public void Conv_gradients_match_central_differences(int n, int h, int w, int c, int oc, int kh, int kw, int stride, int pad)
    {
        var random = new Random(42);
        var conv = new Conv<double>(c, oc, kh, kw, random, stride, pad);
        GradientCheck.Random(random, oc).Data.CopyTo(conv.Bias.Value.Data, 0); // a non-zero bias is checked too
        var errors = GradientCheck.Layer(conv, GradientCheck.Random(random, n, h, w, c), random);

        errors.Keys.Should().BeEquivalentTo("input", "weight", "bias");
        errors.Values.Should().OnlyContain(e => e < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors));
    }

    [Fact]
    public void Relu_gradient_matches_central_differences()
    {
        var random = new Random(7);
        var x = GradientCheck.Random(random, 2, 5, 4, 3);
        for (int i = 0; i < x.Length; i++) x.Data[i] = (0.1 + Math.Abs(x.Data[i])) * (i % 3 == 0 ? -1 : 1); // no value near the kink

        var errors = GradientCheck.Layer(new Relu<double>(), x, random);

        errors["input"].Should().BeLessThan(GradientCheck.Tolerance);
    }

    [Theory]
    [InlineData(2, 6, 4, 3)]
    [InlineData(1, 5, 7, 2)]  // odd sizes: the last row and column are dropped
    public void MaxPool_gradient_matches_central_differences(int n, int h, int w, int c)
    {
        var random = new Random(3);
        // Distinct values 0.01 apart, shuffled: no ties and no near-ties that a 1e-6 step could flip.
        var values = Enumerable.Range(0, n * h * w * c).Select(i => i * 0.01).ToArray();
        random.Shuffle(values);
        var errors = GradientCheck.Layer(new MaxPool2x2<double>(), new Tensor<double>(values, n, h, w, c), random);

        errors["input"].Should().BeLessThan(GradientCheck.Tolerance);
    }

    [Fact]
    public void Linear_gradients_match_central_differences()
    {
        var random = new Random(11);
        var linear = new Linear<double>(7, 5, random);
        GradientCheck.Random(random, 5).Data.CopyTo(linear.Bias.Value.Data, 0);

        var errors = GradientCheck.Layer(linear, GradientCheck.Random(random, 4, 7), random);

        errors.Keys.Should().BeEquivalentTo("input", "weight", "bias");
        errors.Values.Should().OnlyContain(e => e < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", errors));
    }

    [Fact]
    public void Flatten_gradient_matches_central_differences()
    {
        var random = new Random(5);
        var errors = GradientCheck.Layer(new Flatten<double>(), GradientCheck.Random(random, 2, 3, 2, 4), random);
        errors["input"].Should().BeLessThan(GradientCheck.Tolerance);
    }

    [Fact]
    public void SoftmaxCrossEntropy_gradient_matches_central_differences()
    {
        var random = new Random(9);
        var logits = GradientCheck.Random(random, 4, 6);
        for (int i = 0; i < logits.Length; i++) logits.Data[i] *= 5;
        int[] labels = [0, 5, 2, 2];
        var loss = new SoftmaxCrossEntropy<double>();
        loss.Forward(logits, labels);
        var analytic = loss.Backward().Data.ToArray();

        var numeric = GradientCheck.Numeric(logits.Data, () => loss.Forward(logits, labels));

        GradientCheck.RelativeError(analytic, numeric).Should().BeLessThan(GradientCheck.Tolerance);
    }

    [Fact]
    public void Whole_LeNet_gradients_match_central_differences()
    {
        var random = new Random(2024);
        var net = LeNet.Create<double>(new Random(5), computeInputGradient: true);
        foreach (var p in net.Parameters.Where(p => p.Name == "bias")) GradientCheck.Random(random, p.Value.Length).Data.CopyTo(p.Value.Data, 0);
        var x = GradientCheck.Random(random, 2, 28, 28, 1);
        int[] labels = [3, 8];
        var loss = new SoftmaxCrossEntropy<double>();
        double Loss() => loss.Forward(net.Forward(x), labels);

        net.ZeroGradients();
        Loss();
        var inputGrad = net.Backward(loss.Backward()).Data.ToArray();
        var analytic = net.Parameters.Select(p => p.Gradient.Data.ToArray()).ToArray();

        // Every element of the small tensors, a random sample of 150 of each large one.
        IReadOnlyList<int> Sample(int length) => length <= 150 ? Enumerable.Range(0, length).ToArray()
            : Enumerable.Range(0, length).OrderBy(_ => random.Next()).Take(150).ToArray();
        var checks = new List<(string Name, double Error)>();
        var xi = Sample(x.Length);
        checks.Add(("input", GradientCheck.RelativeError(xi.Select(i => inputGrad[i]).ToArray(), GradientCheck.Numeric(x.Data, Loss, xi))));
        for (int p = 0; p < net.Parameters.Count; p++)
        {
            var idx = Sample(net.Parameters[p].Value.Length);
            var a = idx.Select(i => analytic[p][i]).ToArray();
            a.Should().Contain(v => v != 0, "parameter {0} should receive a gradient", p);
            checks.Add(($"{p}:{net.Parameters[p].Name}", GradientCheck.RelativeError(a, GradientCheck.Numeric(net.Parameters[p].Value.Data, Loss, idx))));
        }

        checks.Should().HaveCount(7);
        checks.Should().OnlyContain(c => c.Error < GradientCheck.Tolerance, "errors were {0}", string.Join(", ", checks));
    }
}
