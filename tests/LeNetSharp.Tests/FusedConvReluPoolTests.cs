using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// The fused single-channel Conv → Relu → MaxPool2x2 pass that Sequential runs with a SIMD GEMM: bit for bit the three
/// layers run one by one, right against naive loops, and gradient-checked in double.
/// </summary>
public class FusedConvReluPoolTests
{
    // (batch, height, width, out channels, kernel height, kernel width): LeNet's conv1, odd channel counts (clamped
    // register blocks), odd conv output sizes (the last row/column is not pooled), pooled rows narrower than a vector,
    // 8 channels (the write-out's transpose whole) and 10 (more than it takes: element by element).
    public static TheoryData<int, int, int, int, int, int, int> Shapes(int bits)
    {
        var data = new TheoryData<int, int, int, int, int, int, int>();
        foreach (var (n, h, w, oc, kh, kw) in new[] { (3, 28, 28, 6, 5, 5), (2, 12, 13, 5, 5, 5), (1, 9, 10, 4, 3, 3), (2, 7, 40, 7, 4, 2), (1, 6, 6, 1, 5, 5), (2, 30, 20, 3, 1, 1),
            (2, 20, 21, 8, 5, 5), (1, 10, 12, 10, 3, 3), (1, 12, 12, 4, 3, 3) })
            data.Add(bits, n, h, w, oc, kh, kw);
        return data;
    }

    private static Sequential<T> Net<T>(int bits, int h, int w, int oc, int kh, int kw, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        int ph = (h - kh + 1) / 2, pw = (w - kw + 1) / 2;
        var net = new Sequential<T>(
            new Conv<T>(1, oc, kh, kw, random) { ComputeInputGradient = false }, new Relu<T>(), new MaxPool2x2<T>(),
            new Flatten<T>(), new Linear<T>(ph * pw * oc, 3, random));
        var conv = (Conv<T>)net.Layers[0];
        for (int i = 0; i < oc; i++) conv.Bias.Value.Data[i] = T.CreateTruncating(random.NextDouble() - 0.5);
        net.Backend = ComputeBackend.SimdWithWidth(bits);
        return net;
    }

    /// <summary>Inputs with negative values (whole windows below zero) and, when <paramref name="ties"/>, few distinct values (equal maxima).</summary>
    private static Tensor<T> Input<T>(int n, int h, int w, int seed, bool ties) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        var x = new Tensor<T>(n, h, w, 1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = T.CreateTruncating(ties ? random.Next(-1, 3) * 0.5 : random.NextDouble() * 2 - 0.7);
        return x;
    }

    private static (T[] Output, T[][] Gradients) RunFused<T>(Sequential<T> net, Tensor<T> x, Tensor<T> upstream) where T : unmanaged, IFloatingPointIeee754<T>
    {
        net.ZeroGradients();
        var y = net.Forward(x).Data.ToArray();
        net.FusedPassesInLastForward().Should().Be(1, "the SIMD network fuses Conv → Relu → MaxPool2x2");
        net.Backward(upstream);
        return (y, net.Parameters.Select(p => p.Gradient.Data.ToArray()).ToArray());
    }

    private static (T[] Output, T[][] Gradients) RunLayerByLayer<T>(Sequential<T> net, Tensor<T> x, Tensor<T> upstream) where T : unmanaged, IFloatingPointIeee754<T>
    {
        net.ZeroGradients();
        var t = x;
        foreach (var layer in net.Layers) t = layer.Forward(t);
        var y = t.Data.ToArray();
        var g = upstream;
        for (int i = net.Layers.Count - 1; i >= 0; i--) g = net.Layers[i].Backward(g);
        return (y, net.Parameters.Select(p => p.Gradient.Data.ToArray()).ToArray());
    }

    private static void SameBits<T>(int bits, int n, int h, int w, int oc, int kh, int kw) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (bool ties in new[] { false, true })
        {
            var net = Net<T>(bits, h, w, oc, kh, kw, seed: 11);
            var x = Input<T>(n, h, w, seed: 12, ties);
            var upstream = new Tensor<T>(n, 3);
            var random = new Random(13);
            for (int i = 0; i < upstream.Length; i++) upstream.Data[i] = T.CreateTruncating(random.NextDouble() * 2 - 1);

            var fused = RunFused(net, x, upstream);
            var plain = RunLayerByLayer(net, x, upstream);

            fused.Output.Should().Equal(plain.Output, "ties: {0}", ties);
            for (int p = 0; p < plain.Gradients.Length; p++) fused.Gradients[p].Should().Equal(plain.Gradients[p], "parameter {0}, ties: {1}", p, ties);
            plain.Gradients[0].Any(v => v != T.Zero).Should().BeTrue("the check must not pass on all-zero gradients");
        }
    }

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Float_fused_pass_equals_the_three_layers_bit_for_bit(int bits, int n, int h, int w, int oc, int kh, int kw) =>
        SameBits<float>(bits, n, h, w, oc, kh, kw);

    [Theory]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Double_fused_pass_equals_the_three_layers_bit_for_bit(int bits, int n, int h, int w, int oc, int kh, int kw) =>
        SameBits<double>(bits, n, h, w, oc, kh, kw);

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Fused_pass_matches_naive_loops(int bits, int n, int h, int w, int oc, int kh, int kw)
    {
        var net = Net<double>(bits == 128 ? 256 : bits, h, w, oc, kh, kw, seed: 21); // double at 128 bits holds 2 lanes: too narrow for 5 columns
        if (bits == 128) net = Net<double>(128, h, w, oc, kh, Math.Min(kw, 4), seed: 21);
        var conv = (Conv<double>)net.Layers[0];
        kw = conv.KernelWidth;
        var x = Input<double>(n, h, w, seed: 22, ties: false);
        int oh = h - kh + 1, ow = w - kw + 1, ph = oh / 2, pw = ow / 2;
        var dp = GradientCheck.Random(new Random(23), n, ph, pw, oc);

        // Naive: conv, relu, pool with the first maximum of each window, then ∂K and ∂b through that maximum.
        double[] k = conv.Weight.Value.Data, b = conv.Bias.Value.Data;
        var expected = new double[n * ph * pw * oc];
        var dk = new double[k.Length];
        var db = new double[oc];
        for (int img = 0; img < n; img++)
        for (int i = 0; i < ph; i++)
        for (int j = 0; j < pw; j++)
        for (int c = 0; c < oc; c++)
        {
            double best = double.NegativeInfinity;
            int bi = 0, bj = 0;
            for (int di = 0; di < 2; di++)
            for (int dj = 0; dj < 2; dj++)
            {
                double y = b[c];
                for (int u = 0; u < kh; u++)
                    for (int v = 0; v < kw; v++) y += x.Data[(img * h + 2 * i + di + u) * w + 2 * j + dj + v] * k[(u * kw + v) * oc + c];
                if (y > best) (best, bi, bj) = (y, 2 * i + di, 2 * j + dj);
            }

            int at = ((img * ph + i) * pw + j) * oc + c;
            expected[at] = Math.Max(best, 0);
            if (best <= 0) continue;
            db[c] += dp.Data[at];
            for (int u = 0; u < kh; u++)
                for (int v = 0; v < kw; v++) dk[(u * kw + v) * oc + c] += x.Data[(img * h + bi + u) * w + bj + v] * dp.Data[at];
        }

        net.ZeroGradients();
        FusedConvReluPoolStep<double>.Applies(net.Layers, 0, x.Shape, bits).Should().BeTrue();
        var fused = new FusedConvReluPoolStep<double>(conv, bits);
        var output = fused.Forward(x, keepForBackward: true);
        fused.Backward(dp).Data.Should().OnlyContain(v => v == 0, "a first layer's input gradient is not computed");

        for (int i = 0; i < expected.Length; i++) output.Data[i].Should().BeApproximately(expected[i], 1e-12, "output {0}", i);
        for (int i = 0; i < dk.Length; i++) conv.Weight.Gradient.Data[i].Should().BeApproximately(dk[i], 1e-12, "∂K {0}", i);
        for (int i = 0; i < oc; i++) conv.Bias.Gradient.Data[i].Should().BeApproximately(db[i], 1e-12, "∂b {0}", i);
    }

    [Theory]
    [InlineData(128, 4, 3)]
    [InlineData(256, 5, 5)]
    public void Fused_network_gradients_match_central_differences(int bits, int kh, int kw)
    {
        var net = Net<double>(bits, 12, 13, 4, kh, kw, seed: 31);
        var x = Input<double>(2, 12, 13, seed: 32, ties: false);
        var upstream = GradientCheck.Random(new Random(33), 2, 3);
        double Loss()
        {
            var y = net.Forward(x).Data;
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += y[i] * upstream.Data[i];
            return s;
        }

        net.ZeroGradients();
        net.Forward(x);
        net.FusedPassesInLastForward().Should().Be(1);
        net.Backward(upstream);
        foreach (var p in net.Parameters)
        {
            var analytic = p.Gradient.Data.ToArray();
            GradientCheck.RelativeError(analytic, GradientCheck.Numeric(p.Value.Data, Loss)).Should().BeLessThan(GradientCheck.Tolerance, p.Name);
        }
    }

    [Fact]
    public void MathNet_or_an_input_gradient_runs_the_three_layers()
    {
        var net = Net<float>(128, 12, 12, 2, 5, 5, seed: 1);
        var x = Input<float>(1, 12, 12, seed: 2, ties: false);
        net.Backend = ComputeBackend.Reference;
        net.Forward(x);
        net.FusedPassesInLastForward().Should().Be(0);
        net.Backend = ComputeBackend.SimdWithWidth(128);
        ((Conv<float>)net.Layers[0]).ComputeInputGradient = true;
        net.Forward(x);
        net.FusedPassesInLastForward().Should().Be(0);
    }

    [Theory]
    [InlineData(128, double.PositiveInfinity)]
    [InlineData(256, double.PositiveInfinity)]
    [InlineData(256, double.NegativeInfinity)]
    public void An_infinite_upstream_gradient_gives_the_three_layers_bias_gradient(int bits, double infinity)
    {
        // One 2x2 window [1, 0; 0, 0] of a 1x1 convolution (weight 1, bias 0): its maximum is the first pixel, and ∂p = ±∞
        // reaches ∂b as ±∞. (The bias partial sums once took ∂p by a multiply with a unit vector: 0·∞ made them NaN.)
        var sums = new double[2][];
        foreach (bool fused in new[] { true, false })
        {
            var net = new Sequential<float>(new Conv<float>(1, 1, 1, 1, new Random(1)) { ComputeInputGradient = false }, new Relu<float>(), new MaxPool2x2<float>());
            var conv = (Conv<float>)net.Layers[0];
            conv.Weight.Value.Data[0] = 1;
            conv.Bias.Value.Data[0] = 0;
            net.Backend = ComputeBackend.SimdWithWidth(bits);
            var x = new Tensor<float>([1f, 0f, 0f, 0f], 1, 2, 2, 1);
            var upstream = new Tensor<float>([(float)infinity], 1, 1, 1, 1);
            var (_, gradients) = fused ? RunFused(net, x, upstream) : RunLayerByLayer(net, x, upstream);
            sums[fused ? 0 : 1] = [gradients[0][0], gradients[1][0]];
        }

        sums[1].Should().Equal(infinity, infinity);
        sums[0].Should().Equal(sums[1], "∂K and ∂b, fused against the three layers");
    }

    /// <summary>
    /// A 1x1 convolution (weight −1e-30, bias −0) of pixels 1e-20, −1e-20, 0 and −1: the products underflow to −0 or +0,
    /// so conv outputs are zeros of both signs (plus some 1e-30), and with <paramref name="nan"/> a few pixels are NaN.
    /// </summary>
    private static (Sequential<float> Net, Tensor<float> X) SignedZeroNet(int bits, bool nan)
    {
        var net = new Sequential<float>(new Conv<float>(1, 3, 1, 1, new Random(1)) { ComputeInputGradient = false }, new Relu<float>(), new MaxPool2x2<float>());
        var conv = (Conv<float>)net.Layers[0];
        conv.Weight.Value.Data.AsSpan().Fill(-1e-30f);
        conv.Bias.Value.Data.AsSpan().Fill(-0f);
        net.Backend = ComputeBackend.SimdWithWidth(bits);
        var random = new Random(2);
        var x = new Tensor<float>(2, 10, 12, 1);
        float[] values = [1e-20f, -1e-20f, 0f, 1e-20f, -1f];
        for (int i = 0; i < x.Length; i++) x.Data[i] = nan && i % 37 == 5 ? float.NaN : values[random.Next(values.Length)];
        return (net, x);
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Theory]
    [WidthData(nameof(ConvWidths), 128)]
    [WidthData(nameof(ConvWidths), 256)]
    [WidthData(nameof(ConvWidths), 512)]
    public void Zeros_of_both_signs_pool_to_the_three_layers_plus_zero(int bits)
    {
        // The pass takes the CPU's own maximum, which may return −0 over +0; ReLU must still give +0 as the layers'
        // IEEE maxima do (Equal on floats would not see the sign, so bits are compared).
        var (net, x) = SignedZeroNet(bits, nan: false);
        var conv = net.Layers[0].Forward(x).Data;
        conv.Should().Contain(v => v == 0 && float.IsNegative(v)).And.Contain(v => v == 0 && !float.IsNegative(v));
        var upstream = new Tensor<float>(2, 5, 6, 3);
        upstream.Data.AsSpan().Fill(1f);

        var fused = RunFused(net, x, upstream);
        var plain = RunLayerByLayer(net, x, upstream);

        Bits(fused.Output).Should().Equal(Bits(plain.Output));
        Bits(plain.Output).Should().Contain(0).And.NotContain(BitConverter.SingleToInt32Bits(-0f));
        for (int p = 0; p < plain.Gradients.Length; p++) Bits(fused.Gradients[p]).Should().Equal(Bits(plain.Gradients[p]), "parameter {0}", p);
    }

    [Theory]
    [WidthData(nameof(ConvWidths), 128)]
    [WidthData(nameof(ConvWidths), 256)]
    [WidthData(nameof(ConvWidths), 512)]
    public void A_NaN_anywhere_in_a_window_makes_its_pooled_value_NaN_as_in_the_three_layers(int bits)
    {
        var (net, x) = SignedZeroNet(bits, nan: true);
        var plain = x;
        foreach (var layer in net.Layers) plain = layer.Forward(plain);
        float[] expected = plain.Data.ToArray();
        float[] fused = net.Forward(x).Data.ToArray();
        net.FusedPassesInLastForward().Should().Be(1);

        expected.Should().Contain(float.NaN).And.Contain(v => !float.IsNaN(v));
        fused.Select(float.IsNaN).Should().Equal(expected.Select(float.IsNaN), "NaN in the same windows");
        Bits(fused.Where(v => !float.IsNaN(v)).ToArray()).Should().Equal(Bits(expected.Where(v => !float.IsNaN(v)).ToArray()));
    }

    public static TheoryData<int> ConvWidths(int bits) => new() { bits };

    [Fact]
    public void A_batch_of_more_pixels_than_the_fused_backward_can_index_runs_the_three_layers()
    {
        ILayer<float>[] layers = [new Conv<float>(1, 6, 5, 5, new Random(1)) { ComputeInputGradient = false }, new Relu<float>(), new MaxPool2x2<float>()];
        FusedConvReluPoolStep<float>.Applies(layers, 0, [3, 28, 28, 1], 128).Should().BeTrue();
        FusedConvReluPoolStep<float>.Applies(layers, 0, [FusedConvReluPoolStep<float>.MaxPixels / 784, 28, 28, 1], 128).Should().BeTrue();
        FusedConvReluPoolStep<float>.Applies(layers, 0, [FusedConvReluPoolStep<float>.MaxPixels / 784 + 1, 28, 28, 1], 128).Should().BeFalse();
        FusedConvReluPoolStep<float>.Applies(layers, 0, [684_785, 28, 28, 1], 128).Should().BeFalse("2^29 pixels and more overflowed the int offsets");
    }
}
