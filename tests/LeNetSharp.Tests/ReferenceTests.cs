using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>Each layer and kernel against a hand-computed literal or a naive loop.</summary>
public class ReferenceTests
{
    [Fact]
    public void Im2Col_matches_hand_computed_patches_without_padding()
    {
        double[] x = [1, 2, 3, 4, 5, 6, 7, 8, 9]; // one 3x3 single-channel image
        var g = new ConvGeometry(1, 3, 3, 1, 2, 2, 1, 0);
        var cols = new double[g.PatchRows * g.PatchColumns];

        Im2Col.Forward<double>(x, g, cols);

        cols.Should().Equal(1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9);
    }

    [Fact]
    public void Im2Col_matches_hand_computed_patches_with_padding_and_channels()
    {
        // 2x2 image with 2 channels (c0 = 1..4, c1 = 10..40), kernel 3x3, padding 1, stride 2: OH = (2 + 2 − 3) / 2 + 1 = 1.
        double[] x = [1, 10, 2, 20, 3, 30, 4, 40];
        var g = new ConvGeometry(1, 2, 2, 2, 3, 3, 2, 1);
        var cols = new double[g.PatchRows * g.PatchColumns];

        Im2Col.Forward<double>(x, g, cols);

        g.OH.Should().Be(1);
        cols.Should().Equal(
            0, 0, 0, 0, 0, 0,      // kernel row 0: all padding
            0, 0, 1, 10, 2, 20,    // kernel row 1: pad, (0,0), (0,1)
            0, 0, 3, 30, 4, 40);   // kernel row 2: pad, (1,0), (1,1)
    }

    [Fact]
    public void Im2Col_with_padding_1_stride_1_matches_hand_computed_rows()
    {
        double[] x = [1, 2, 3, 4];
        var g = new ConvGeometry(1, 2, 2, 1, 3, 3, 1, 1);
        var cols = new double[g.PatchRows * g.PatchColumns];

        Im2Col.Forward<double>(x, g, cols);

        cols.Should().Equal(
            0, 0, 0, 0, 1, 2, 0, 3, 4,
            0, 0, 0, 1, 2, 0, 3, 4, 0,
            0, 1, 2, 0, 3, 4, 0, 0, 0,
            1, 2, 0, 3, 4, 0, 0, 0, 0);
    }

    [Theory]
    [InlineData(2, 5, 4, 3, 3, 3, 1, 0)]
    [InlineData(2, 5, 4, 3, 3, 3, 2, 1)]
    [InlineData(1, 6, 7, 2, 2, 3, 3, 2)]
    [InlineData(1, 3, 3, 1, 2, 2, 1, 3)]   // padding wider than the kernel: whole windows in the padding
    public void Col2Im_is_the_adjoint_of_Im2Col(int n, int h, int w, int c, int kh, int kw, int stride, int pad)
    {
        var random = new Random(1);
        var g = new ConvGeometry(n, h, w, c, kh, kw, stride, pad);
        var x = GradientCheck.Random(random, n, h, w, c).Data;
        var y = GradientCheck.Random(random, g.PatchRows, g.PatchColumns).Data;
        var cols = new double[y.Length];
        var back = new double[x.Length];

        Im2Col.Forward<double>(x, g, cols);
        Im2Col.Backward<double>(y, g, back);

        double lhs = cols.Zip(y, (a, b) => a * b).Sum(), rhs = x.Zip(back, (a, b) => a * b).Sum();
        lhs.Should().BeApproximately(rhs, 1e-12 * Math.Max(1, Math.Abs(lhs)));
        lhs.Should().NotBe(0);
    }

    [Theory]
    [InlineData(2, 5, 4, 1, 3, 3, 1, 0)]
    [InlineData(2, 5, 4, 3, 3, 3, 2, 1)]
    [InlineData(1, 6, 7, 1, 2, 3, 3, 2)]
    [InlineData(1, 3, 3, 2, 2, 2, 1, 3)]
    public void Transposed_patches_are_the_transpose_and_their_scatter_is_the_adjoint(int n, int h, int w, int c, int kh, int kw, int stride, int pad)
    {
        var random = new Random(8);
        var g = new ConvGeometry(n, h, w, c, kh, kw, stride, pad);
        int m = g.PatchRows, k = g.PatchColumns;
        var x = GradientCheck.Random(random, n, h, w, c).Data;
        var cols = new double[m * k];
        var colsT = new double[m * k];
        Im2Col.Forward<double>(x, g, cols);

        Im2Col.ForwardTransposed<double>(x, g, colsT);

        for (int r = 0; r < m; r++)
            for (int j = 0; j < k; j++)
                colsT[j * m + r].Should().Be(cols[r * k + j]);

        var y = GradientCheck.Random(random, k, m).Data;
        var back = new double[x.Length];
        Im2Col.BackwardTransposed<double>(y, g, back);
        double lhs = colsT.Zip(y, (a, b) => a * b).Sum(), rhs = x.Zip(back, (a, b) => a * b).Sum();
        lhs.Should().BeApproximately(rhs, 1e-12 * Math.Max(1, Math.Abs(lhs)));
    }

    [Theory]
    [InlineData(2, 7, 6, 3, 4, 3, 3, 1, 0)]
    [InlineData(2, 7, 6, 3, 4, 3, 3, 2, 1)]
    [InlineData(3, 28, 28, 1, 6, 5, 5, 1, 0)]
    [InlineData(2, 9, 8, 1, 3, 3, 3, 2, 1)]   // single channel: the transposed-patch path, with stride and padding
    public void Conv_forward_matches_naive_loops(int n, int h, int w, int c, int oc, int kh, int kw, int stride, int pad)
    {
        var random = new Random(17);
        var conv = new Conv<double>(c, oc, kh, kw, random, stride, pad);
        GradientCheck.Random(random, oc).Data.CopyTo(conv.Bias.Value.Data, 0);
        var x = GradientCheck.Random(random, n, h, w, c);

        var y = conv.Forward(x);

        int oh = (h + 2 * pad - kh) / stride + 1, ow = (w + 2 * pad - kw) / stride + 1;
        y.Shape.ToArray().Should().Equal(n, oh, ow, oc);
        double[] k = conv.Weight.Value.Data, b = conv.Bias.Value.Data;
        for (int bi = 0; bi < n; bi++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        for (int o = 0; o < oc; o++)
        {
            double sum = b[o];
            for (int u = 0; u < kh; u++)
            for (int v = 0; v < kw; v++)
            for (int ci = 0; ci < c; ci++)
            {
                int iy = i * stride - pad + u, ix = j * stride - pad + v;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                sum += x.Data[((bi * h + iy) * w + ix) * c + ci] * k[((u * kw + v) * c + ci) * oc + o];
            }

            y.Data[((bi * oh + i) * ow + j) * oc + o].Should().BeApproximately(sum, 1e-12);
        }
    }

    [Fact]
    public void Linear_forward_matches_naive_loops()
    {
        var random = new Random(4);
        var linear = new Linear<double>(6, 3, random);
        GradientCheck.Random(random, 3).Data.CopyTo(linear.Bias.Value.Data, 0);
        var x = GradientCheck.Random(random, 2, 6);

        var y = linear.Forward(x);

        for (int r = 0; r < 2; r++)
        for (int o = 0; o < 3; o++)
        {
            double sum = linear.Bias.Value.Data[o];
            for (int i = 0; i < 6; i++) sum += x.Data[r * 6 + i] * linear.Weight.Value.Data[i * 3 + o];
            y.Data[r * 3 + o].Should().BeApproximately(sum, 1e-12);
        }
    }

    [Fact]
    public void MaxPool_matches_literal_and_routes_gradient_to_first_maximum()
    {
        // One 4x4 single-channel image; the top-right window has a tie (7, 7): the first one wins.
        double[] x =
        [
            1, 5, 7, 7,
            3, 2, 0, 6,
            9, 8, 1, 1,
            4, 9, 2, 3,
        ];
        var pool = new MaxPool2x2<double>();

        var y = pool.Forward(new Tensor<double>(x, 1, 4, 4, 1));
        var dx = pool.Backward(new Tensor<double>([10.0, 20, 30, 40], 1, 2, 2, 1));

        y.Data.Should().Equal(5, 7, 9, 3);
        dx.Data.Should().Equal(
            0, 10, 20, 0,
            0, 0, 0, 0,
            30, 0, 0, 0,
            0, 0, 0, 40);
    }

    [Theory]
    [InlineData(3, 24, 24, 6)]   // LeNet's first pool: fewer channels than a vector
    [InlineData(2, 8, 8, 16)]    // its second: whole vectors of channels
    [InlineData(1, 7, 5, 3)]     // odd sizes
    public void MaxPool_forward_matches_naive_loops(int n, int h, int w, int c)
    {
        var random = new Random(12);
        var x = new Tensor<float>(n, h, w, c);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.NextSingle() * 2 - 1;

        var y = new MaxPool2x2<float>().Forward(x);

        int oh = h / 2, ow = w / 2;
        y.Shape.ToArray().Should().Equal(n, oh, ow, c);
        for (int b = 0; b < n; b++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        for (int ch = 0; ch < c; ch++)
        {
            float Pixel(int r, int q) => x.Data[((b * h + r) * w + q) * c + ch];
            float expected = Math.Max(Math.Max(Pixel(2 * i, 2 * j), Pixel(2 * i, 2 * j + 1)), Math.Max(Pixel(2 * i + 1, 2 * j), Pixel(2 * i + 1, 2 * j + 1)));
            y.Data[((b * oh + i) * ow + j) * c + ch].Should().Be(expected);
        }
    }

    [Theory]
    [InlineData(3, 24, 24, 6)]   // fewer channels than a vector
    [InlineData(2, 8, 8, 16)]    // whole vectors of channels
    [InlineData(1, 7, 5, 3)]     // odd sizes: the dropped row and column get 0
    public void MaxPool_backward_matches_naive_loops_with_ties(int n, int h, int w, int c)
    {
        var random = new Random(13);
        var x = new Tensor<float>(n, h, w, c);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.Next(-1, 3) * 0.5f; // few values: many ties
        var pool = new MaxPool2x2<float>();
        var y = pool.Forward(x);
        var dy = new Tensor<float>(y.Shape.ToArray());
        for (int i = 0; i < dy.Length; i++) dy.Data[i] = random.NextSingle() + 0.5f;
        pool.Backward(dy); // a first call leaves values in the buffer: the second must overwrite every element
        for (int i = 0; i < dy.Length; i++) dy.Data[i] = random.NextSingle() + 0.5f;

        var dx = pool.Backward(dy).Data;

        var expected = new float[x.Length];
        int oh = h / 2, ow = w / 2;
        for (int b = 0; b < n; b++)
        for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++)
        for (int ch = 0; ch < c; ch++)
        {
            int Index(int r, int q) => ((b * h + r) * w + q) * c + ch;
            int best = Index(2 * i, 2 * j); // the first maximum in row-major order
            foreach (int at in new[] { Index(2 * i, 2 * j + 1), Index(2 * i + 1, 2 * j), Index(2 * i + 1, 2 * j + 1) })
                if (x.Data[at] > x.Data[best]) best = at;
            expected[best] = dy.Data[((b * oh + i) * ow + j) * c + ch];
        }

        dx.Should().Equal(expected);
    }

    [Fact]
    public void MaxPool_keeps_channels_apart()
    {
        // 2x2 image, 2 channels interleaved (NHWC): channel 0 = 1, 4, 3, 2; channel 1 = 8, 5, 6, 7.
        var pool = new MaxPool2x2<double>();
        var y = pool.Forward(new Tensor<double>([1.0, 8, 4, 5, 3, 6, 2, 7], 1, 2, 2, 2));
        y.Data.Should().Equal(4, 8);
    }

    [Fact]
    public void SoftmaxCrossEntropy_matches_literals()
    {
        var loss = new SoftmaxCrossEntropy<double>();
        // Row 0: logits (1, 2, 3), label 2: loss = log(e + e² + e³) − 3 = 0.4076059644443803.
        // Row 1: logits (0, 0, 0), label 0: loss = log 3.
        var logits = new Tensor<double>([1.0, 2, 3, 0, 0, 0], 2, 3);

        double value = loss.Forward(logits, [2, 0]);
        var grad = loss.Backward().Data;

        value.Should().BeApproximately((0.4076059644443803 + Math.Log(3)) / 2, 1e-15);
        double e1 = Math.Exp(1), e2 = Math.Exp(2), e3 = Math.Exp(3), s = e1 + e2 + e3;
        grad.Should().BeEquivalentTo(
            new[] { e1 / s / 2, e2 / s / 2, (e3 / s - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6 },
            o => o.WithStrictOrdering().Using<double>(c => c.Subject.Should().BeApproximately(c.Expectation, 1e-15)).WhenTypeIs<double>());
    }

    [Theory]
    [InlineData(1000.0)]
    [InlineData(-1000.0)]
    public void SoftmaxCrossEntropy_is_stable_for_huge_logits(double big)
    {
        var loss = new SoftmaxCrossEntropy<float>();
        var logits = new Tensor<float>([(float)big, (float)-big, 0f], 1, 3);

        float value = loss.Forward(logits, [1]);
        var grad = loss.Backward().Data;

        // −log p[1] = log Σ exp(z − max) − (z[1] − max): 2000 when big = 1000; 0 when big = −1000 (label 1 holds the max).
        value.Should().BeApproximately(big > 0 ? 2000f : 0f, 1e-3f);
        grad.Should().OnlyContain(g => float.IsFinite(g));
        grad.Sum().Should().BeApproximately(0f, 1e-6f);
    }

    [Fact]
    public void SoftmaxCrossEntropy_rejects_bad_labels_with_a_sentence()
    {
        var loss = new SoftmaxCrossEntropy<double>();
        var act = () => loss.Forward(new Tensor<double>(2, 3), [0, 3]);
        act.Should().Throw<ArgumentException>().WithMessage("*label 3 at row 1 is outside [0, 3)*");
    }
}

public class LayerContractTests
{
    [Fact]
    public void Backward_before_forward_says_so()
    {
        var conv = new Conv<float>(1, 2, 3, 3, new Random(1));
        FluentActions.Invoking(() => conv.Backward(new Tensor<float>(1, 2, 2, 2)))
            .Should().Throw<InvalidOperationException>().WithMessage("Conv 3x3 1→2 stride 1 pad 0: Backward was called before Forward.");
    }

    [Fact]
    public void Wrong_input_shape_names_expected_and_actual_shapes()
    {
        var net = LeNet.Create<float>(1);
        FluentActions.Invoking(() => net.Forward(new Tensor<float>(2, 32, 32, 3)))
            .Should().Throw<ArgumentException>()
            .WithMessage("Conv 5x5 1→6 stride 1 pad 0: expected input (N, H, W, 1) in NHWC with H ≥ 5 and W ≥ 5, got (2, 32, 32, 3).");
        FluentActions.Invoking(() => new Linear<float>(256, 10, new Random(1)).Forward(new Tensor<float>(3, 255)))
            .Should().Throw<ArgumentException>().WithMessage("Linear 256→10: expected input (N, 256), got (3, 255).");
    }

    [Fact]
    public void Gradient_of_the_wrong_shape_is_refused()
    {
        var relu = new Relu<float>();
        relu.Forward(new Tensor<float>(2, 3));
        FluentActions.Invoking(() => relu.Backward(new Tensor<float>(3, 2)))
            .Should().Throw<ArgumentException>().WithMessage("Relu: output gradient has shape (3, 2), expected (2, 3) (the last forward output).*");
    }

    [Fact]
    public void LeNet_has_the_tutorial_shapes()
    {
        var net = LeNet.Create<float>(1);
        net.OutputShapes([3, 28, 28, 1]).Select(s => Tensor<float>.ShapeToString(s)).Should().Equal(
            "(3, 24, 24, 6)", "(3, 24, 24, 6)", "(3, 12, 12, 6)", "(3, 8, 8, 16)", "(3, 8, 8, 16)", "(3, 4, 4, 16)", "(3, 256)", "(3, 10)");
        net.ParameterCount.Should().Be(5142);
    }
}
