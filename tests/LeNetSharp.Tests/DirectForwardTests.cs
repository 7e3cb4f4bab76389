using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// Conv and Linear forward without a patch matrix or a padded weight copy (DirectConv), and the network's inference-only
/// forward: the same bits as im2col + the SIMD GEMM at every width, gradients unchanged after a direct forward.
/// </summary>
public class DirectForwardTests
{
    // (batch, height, width, channels, out channels, kernel height, kernel width): LeNet's conv2; out channels that are
    // not a whole number of vectors (overlapping last vector, or too few for one: the GEMM path); pixel counts that are
    // not a multiple of the 6- and 12-pixel blocks; 1x1 kernels. Out channels of exactly one vector (16, 8, 4, 2: float
    // at 512, 256, 128 bits and double at 512, 256, 128), one vector and a few (19, 11, 7, 3), and three vectors (48,
    // 24) take the 12-pixel one-vector block for their last vector.
    public static TheoryData<int, int, int, int, int, int, int, int> ConvShapes(int bits)
    {
        var data = new TheoryData<int, int, int, int, int, int, int, int>();
        foreach (var (n, h, w, c, oc, kh, kw) in new[]
        {
            (3, 12, 12, 6, 16, 5, 5), (2, 7, 9, 3, 8, 3, 2), (1, 6, 6, 2, 12, 1, 1), (5, 5, 5, 4, 20, 3, 3), (1, 4, 5, 2, 3, 2, 2),
            (3, 12, 12, 6, 8, 5, 5), (2, 6, 7, 5, 4, 3, 3), (1, 5, 9, 3, 2, 2, 3), (1, 7, 7, 4, 19, 3, 3), (2, 5, 6, 3, 11, 2, 2),
            (1, 5, 5, 3, 7, 2, 2), (1, 6, 6, 2, 24, 3, 3), (1, 4, 6, 3, 48, 2, 2),
        })
            data.Add(bits, n, h, w, c, oc, kh, kw);
        return data;
    }

    private static T[] Random<T>(Random random, int length) where T : unmanaged, IFloatingPointIeee754<T> =>
        Enumerable.Range(0, length).Select(_ => T.CreateTruncating(random.NextDouble() * 2 - 1)).ToArray();

    private static void ConvSameBits<T>(int bits, int n, int h, int w, int c, int oc, int kh, int kw) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(5);
        var conv = new Conv<T>(c, oc, kh, kw, random) { GemmProvider = SimdWidths.Provider(bits) };
        Random<T>(random, oc).CopyTo(conv.Bias.Value.Data, 0);
        var x = new Tensor<T>(n, h, w, c);
        Random<T>(random, x.Length).CopyTo(x.Data, 0);

        var g = new ConvGeometry(n, h, w, c, kh, kw, 1, 0);
        var patches = new T[g.PatchRows * g.PatchColumns];
        Im2Col.Forward<T>(x.Data, g, patches);
        var expected = new T[g.PatchRows * oc];
        RowOps.BroadcastRows<T>(conv.Bias.Value.Span, expected);
        Gemm.Multiply(conv.GemmProvider, false, false, g.PatchRows, oc, g.PatchColumns, T.One, patches, conv.Weight.Value.Data, T.One, expected);

        SimdWidths.Kernel(conv, bits).Forward(x).Data.Should().Equal(expected);
    }

    [Theory]
    [WidthData(nameof(ConvShapes), 128)]
    [WidthData(nameof(ConvShapes), 256)]
    [WidthData(nameof(ConvShapes), 512)]
    public void Float_conv_forward_equals_im2col_and_gemm_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int kh, int kw) =>
        ConvSameBits<float>(bits, n, h, w, c, oc, kh, kw);

    [Theory]
    [WidthData(nameof(ConvShapes), 128)]
    [WidthData(nameof(ConvShapes), 256)]
    [WidthData(nameof(ConvShapes), 512)]
    public void Double_conv_forward_equals_im2col_and_gemm_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int kh, int kw) =>
        ConvSameBits<double>(bits, n, h, w, c, oc, kh, kw);

    [Theory]
    [InlineData(128)]
    [InlineData(256)]
    public void Backward_after_a_direct_forward_gives_the_gemm_paths_gradients(int bits)
    {
        if (SimdWidths.SkipReason(bits) is not null) return;
        // Padding 1 runs the same layer through im2col + GEMM; pad the input by hand for the direct one.
        var random = new Random(9);
        var direct = new Conv<double>(3, 8, 3, 3, random) { GemmProvider = SimdWidths.Provider(bits) };
        var padded = new Conv<double>(3, 8, 3, 3, new Random(1), padding: 1) { GemmProvider = SimdWidths.Provider(bits) };
        padded.Weight.Value.CopyFrom(direct.Weight.Value);
        Random<double>(random, 8).CopyTo(direct.Bias.Value.Data, 0);
        padded.Bias.Value.CopyFrom(direct.Bias.Value);
        var x = new Tensor<double>(2, 5, 6, 3);
        Random<double>(random, x.Length).CopyTo(x.Data, 0);
        var xp = new Tensor<double>(2, 7, 8, 3);
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 5; i++)
                x.Data.AsSpan((b * 5 + i) * 6 * 3, 6 * 3).CopyTo(xp.Data.AsSpan(((b * 7 + i + 1) * 8 + 1) * 3));

        var kernel = SimdWidths.Kernel(direct, bits);
        var y = kernel.Forward(xp).Data.ToArray();
        padded.Forward(x).Data.Should().Equal(y, "padding 1 computes the same sums in the same order");
        var dy = GradientCheck.Random(random, 2, 5, 6, 8);
        var dx = kernel.Backward(dy);
        var dxPadded = padded.Backward(dy);
        direct.Weight.Gradient.Data.Should().Equal(padded.Weight.Gradient.Data);
        direct.Bias.Gradient.Data.Should().Equal(padded.Bias.Gradient.Data);
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 6 * 3; j++)
                    dx.Data[((b * 7 + i + 1) * 8 + 1) * 3 + j].Should().Be(dxPadded.Data[(b * 5 + i) * 6 * 3 + j]);
    }

    // (batch, in, out): LeNet's Linear at inference and training batches; batches of 1 to 8 rows (the small-batch
    // backward, its vectors over the batch at 128, 256 or 512 bits) and 9 (the GEMM); outputs of one vector at some
    // width (4, 8, 16), a vector and a few (10, 21), several vectors with a shifted last one (40), fewer than a vector
    // (3); in-feature counts that are not a multiple of the backward's 8-row blocks.
    public static TheoryData<int, int, int, int> LinearShapes(int bits)
    {
        var data = new TheoryData<int, int, int, int>();
        foreach (var (n, i, o) in new[]
        {
            (16, 256, 10), (3, 256, 10), (7, 5, 16), (1, 9, 3), (13, 30, 21), (2, 19, 4), (5, 33, 8), (8, 12, 40), (4, 7, 17),
            (6, 64, 10), (9, 20, 10), (3, 1, 21),
        })
        {
            data.Add(bits, n, i, o);
        }

        return data;
    }

    [Theory]
    [WidthData(nameof(LinearShapes), 128)]
    [WidthData(nameof(LinearShapes), 256)]
    [WidthData(nameof(LinearShapes), 512)]
    public void Linear_forward_equals_the_gemm_bit_for_bit(int bits, int n, int inFeatures, int outFeatures)
    {
        var random = new Random(3);
        var linear = new Linear<float>(inFeatures, outFeatures, random) { GemmProvider = SimdWidths.Provider(bits) };
        Random<float>(random, outFeatures).CopyTo(linear.Bias.Value.Data, 0);
        var x = new Tensor<float>(n, inFeatures);
        Random<float>(random, x.Length).CopyTo(x.Data, 0);
        var expected = new float[n * outFeatures];
        RowOps.BroadcastRows<float>(linear.Bias.Value.Span, expected);
        Gemm.Multiply(linear.GemmProvider, false, false, n, outFeatures, inFeatures, 1f, x.Data, linear.Weight.Value.Data, 1f, expected);

        SimdWidths.Kernel(linear, bits).Forward(x).Data.Should().Equal(expected);
    }

    private static void LinearBackwardSameBits<T>(int bits, int n, int inFeatures, int outFeatures) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // Small batches take loops of their own for ∂W and ∂x: the same bits as the GEMM, onto gradients that already hold values.
        var random = new Random(4);
        var linear = new Linear<T>(inFeatures, outFeatures, random) { GemmProvider = SimdWidths.Provider(bits) };
        var x = new Tensor<T>(n, inFeatures);
        Random<T>(random, x.Length).CopyTo(x.Data, 0);
        var dy = new Tensor<T>(n, outFeatures);
        Random<T>(random, dy.Length).CopyTo(dy.Data, 0);
        Random<T>(random, linear.Weight.Gradient.Length).CopyTo(linear.Weight.Gradient.Data, 0);
        Random<T>(random, outFeatures).CopyTo(linear.Bias.Gradient.Data, 0);
        var expectedWeightGrad = linear.Weight.Gradient.Data.ToArray();
        Gemm.Multiply(linear.GemmProvider, true, false, inFeatures, outFeatures, n, T.One, x.Data, dy.Data, T.One, expectedWeightGrad);
        var expectedBiasGrad = linear.Bias.Gradient.Data.ToArray();
        RowOps.AddColumnSums<T>(dy.Data, expectedBiasGrad);
        var expectedInputGrad = new T[n * inFeatures];
        Gemm.Multiply(linear.GemmProvider, false, true, n, inFeatures, outFeatures, T.One, dy.Data, linear.Weight.Value.Data, T.Zero, expectedInputGrad);

        var kernel = SimdWidths.Kernel(linear, bits);
        kernel.Forward(x);
        var dx = kernel.Backward(dy).Data;

        dx.Should().Equal(expectedInputGrad);
        linear.Weight.Gradient.Data.Should().Equal(expectedWeightGrad);
        linear.Bias.Gradient.Data.Should().Equal(expectedBiasGrad);

        // A second step: the buffers are reused and the gradients accumulate.
        Gemm.Multiply(linear.GemmProvider, true, false, inFeatures, outFeatures, n, T.One, x.Data, dy.Data, T.One, expectedWeightGrad);
        kernel.Forward(x);
        kernel.Backward(dy).Data.Should().Equal(expectedInputGrad);
        linear.Weight.Gradient.Data.Should().Equal(expectedWeightGrad);
    }

    [Theory]
    [WidthData(nameof(LinearShapes), 128)]
    [WidthData(nameof(LinearShapes), 256)]
    [WidthData(nameof(LinearShapes), 512)]
    public void Linear_backward_equals_the_gemm_bit_for_bit(int bits, int n, int inFeatures, int outFeatures) =>
        LinearBackwardSameBits<float>(bits, n, inFeatures, outFeatures);

    [Theory]
    [WidthData(nameof(LinearShapes), 128)]
    [WidthData(nameof(LinearShapes), 256)]
    [WidthData(nameof(LinearShapes), 512)]
    public void Double_linear_backward_equals_the_gemm_bit_for_bit(int bits, int n, int inFeatures, int outFeatures) =>
        LinearBackwardSameBits<double>(bits, n, inFeatures, outFeatures);

    [Theory]
    [WidthData(nameof(Widths), 128)]
    [WidthData(nameof(Widths), 256)]
    [WidthData(nameof(Widths), 512)]
    public void Inference_forward_equals_forward_and_refuses_backward(int bits)
    {
        var net = LeNet.Create<float>(4);
        net.Backend = ComputeBackend.SimdWithWidth(bits);
        var x = new Tensor<float>(5, 28, 28, 1);
        Random<float>(new Random(6), x.Length).CopyTo(x.Data, 0);
        var expected = net.Forward(x).Data.ToArray();

        net.Infer(x).Data.Should().Equal(expected);
        var act = () => net.Backward(new Tensor<float>(5, 10));
        act.Should().Throw<InvalidOperationException>().WithMessage("*before Forward*");
        net.Forward(x);
        net.Backward(new Tensor<float>(5, 10)); // a training forward makes backward valid again
    }

    public static TheoryData<int> Widths(int bits) => new() { bits };

    [Theory]
    [InlineData(2, 5, 9, 7)]   // channels not a whole vector, odd sizes (the last row and column are dropped)
    [InlineData(3, 16, 10, 10)] // whole vectors of channels
    [InlineData(1, 8, 4, 5)]
    public void Inference_relu_and_pool_in_one_pass_equal_the_two_layers(int c, int oc, int h, int w)
    {
        var random = new Random(oc);
        var net = new Sequential<float>(
            new Conv<float>(c, oc, 3, 3, random), new Relu<float>(), new MaxPool2x2<float>(), new Flatten<float>(),
            new Linear<float>((h - 2) / 2 * ((w - 2) / 2) * oc, 4, random));
        var x = new Tensor<float>(3, h, w, c);
        // Few distinct values, half of them negative: ties, whole windows below zero, and zeros of both signs.
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.Next(-2, 3) * 0.5f * (i % 7 == 0 ? -0f : 1f);
        foreach (var backend in new[] { ComputeBackend.SimdWithWidth(128), ComputeBackend.Simd, ComputeBackend.Reference })
        {
            net.Backend = backend;
            var expected = net.Forward(x).Data.ToArray();
            var pooled = ((MaxPool2x2<float>)net.Layers[2]).Forward(net.Layers[1].Forward(net.Layers[0].Forward(x))).Data.ToArray();
            pooled.Should().Contain(0f, "some windows are all below zero");
            net.Infer(x).Data.Should().Equal(expected, backend.Name);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Inference_relu_and_pool_give_plus_zero_for_both_zeros_and_NaN_where_a_window_has_one(bool nan)
    {
        // A 1x1 convolution (weights −1e-30, bias −0) of pixels ±1e-20, 0 and −1: products underflow to zeros of both
        // signs. The pass takes the CPU's own maximum, which may return −0 or drop a NaN; its output must still be the
        // layers' bits (compared as bits: Equal on floats does not see a zero's sign).
        var random = new Random(3);
        var conv = new Conv<float>(2, 8, 1, 1, random);
        conv.Weight.Value.Data.AsSpan().Fill(-1e-30f);
        conv.Bias.Value.Data.AsSpan().Fill(-0f);
        var net = new Sequential<float>(conv, new Relu<float>(), new MaxPool2x2<float>());
        var x = new Tensor<float>(2, 6, 8, 2);
        float[] values = [1e-20f, -1e-20f, 0f, -1f];
        for (int i = 0; i < x.Length; i++) x.Data[i] = nan && i % 29 == 3 ? float.NaN : values[random.Next(values.Length)];
        foreach (var backend in new[] { ComputeBackend.SimdWithWidth(128), ComputeBackend.Simd, ComputeBackend.Reference })
        {
            net.Backend = backend;
            float[] expected = net.Forward(x).Data.ToArray();
            float[] got = net.Infer(x).Data.ToArray();
            if (backend != ComputeBackend.Reference)
            {
                net.Runner.LastPlan!.Steps.Should().ContainSingle(s => s is ReluMaxPoolStep<float>, "Relu → MaxPool2x2 is the inference pass under test");
            }

            if (backend != ComputeBackend.Reference) conv.Forward(x).Data.Should().Contain(v => v == 0 && float.IsNegative(v), "the test needs −0 conv outputs");
            got.Select(float.IsNaN).Should().Equal(expected.Select(float.IsNaN), backend.Name);
            got.Where(v => !float.IsNaN(v)).Select(BitConverter.SingleToInt32Bits).Should()
                .Equal(expected.Where(v => !float.IsNaN(v)).Select(BitConverter.SingleToInt32Bits), backend.Name);
            expected.Should().Contain(v => float.IsNaN(v) == nan);
        }
    }
}
