using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// A convolution's backward with the SIMD GEMM skips ∂y's zeros and stores neither P nor ∂P: its input gradient must
/// equal ∂P = ∂y·Kᵀ through the GEMM followed by col2im, and its weight and bias gradients Pᵀ·∂y through the GEMM and
/// the column sums added to the old gradients, bit for bit, at every width, whatever the shape and however sparse ∂y is.
/// </summary>
public class SparseConvBackwardTests
{
    // (batch, height, width, in channels, out channels, kernel height, kernel width): LeNet's conv2, odd sizes, runs
    // shorter than a vector, a 1x1 kernel, more channels than a vector. Then runs (KW·C) that take 1, 2, 3, 4 and 5
    // vectors at some width and their blocks of 5, 3 and 2 kernel rows, with kernels of 5 and 7 rows (blocks with rows
    // left over); out channels of one vector (8, 4, 2: float at 256 and 128 bits, double at 512, 256, 128) and one
    // vector and a few (11, 7).
    public static TheoryData<int, int, int, int, int, int, int, int> Shapes(int bits)
    {
        var data = new TheoryData<int, int, int, int, int, int, int, int>();
        foreach (var (n, h, w, c, oc, kh, kw) in new[]
        {
            (3, 12, 12, 6, 16, 5, 5), (2, 7, 9, 3, 5, 3, 2), (1, 5, 6, 2, 1, 1, 1), (2, 10, 8, 7, 19, 4, 3), (1, 6, 7, 20, 3, 2, 2),
            (3, 12, 12, 6, 8, 5, 5), (2, 9, 8, 6, 4, 5, 5), (1, 8, 8, 9, 11, 3, 5), (1, 7, 9, 13, 2, 3, 5), (1, 6, 9, 12, 7, 2, 5),
            (1, 9, 8, 2, 5, 7, 3), (2, 8, 7, 3, 16, 7, 2),
        })
        {
            data.Add(bits, n, h, w, c, oc, kh, kw);
        }

        return data;
    }

    private static void SameBits<T>(int bits, int n, int h, int w, int c, int oc, int kh, int kw) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var provider = SimdWidths.Provider(bits);
        foreach (double zeros in new[] { 0.0, 0.75, 0.97, 1.0 })
        {
            var random = new Random(kh * 31 + oc);
            var conv = new Conv<T>(c, oc, kh, kw, random) { GemmProvider = provider };
            var x = GradientCheck.Random(random, n, h, w, c).Data.Select(T.CreateTruncating).ToArray();
            var input = new Tensor<T>(n, h, w, c);
            x.CopyTo(input.Data, 0);
            var kernel = SimdWidths.Kernel(conv, bits);
            var y = kernel.Forward(input);
            var dy = new Tensor<T>(y.Shape.ToArray());
            for (int i = 0; i < dy.Length; i++)
            {
                double u = random.NextDouble();
                dy.Data[i] = u < zeros ? (random.Next(2) == 0 ? T.Zero : T.NegativeZero) : T.CreateTruncating(random.NextDouble() * 2 - 1);
            }

            // Gradients already hold values (accumulation over batches): the new sums are added to them.
            for (int i = 0; i < conv.Weight.Gradient.Length; i++) conv.Weight.Gradient.Data[i] = T.CreateTruncating(random.NextDouble() - 0.5);
            for (int i = 0; i < oc; i++) conv.Bias.Gradient.Data[i] = T.CreateTruncating(random.NextDouble() - 0.5);
            var expectedWeightGrad = conv.Weight.Gradient.Data.ToArray();
            var expectedBiasGrad = conv.Bias.Gradient.Data.ToArray();

            var g = new ConvGeometry(n, h, w, c, kh, kw, 1, 0);
            var patches = new T[g.PatchRows * g.PatchColumns];
            Im2Col.Forward<T>(x, g, patches);
            Gemm.Multiply(provider, true, false, g.PatchColumns, oc, g.PatchRows, T.One, patches, dy.Data, T.One, expectedWeightGrad);
            RowOps.AddColumnSums<T>(dy.Data, expectedBiasGrad);
            var patchGrad = new T[g.PatchRows * g.PatchColumns];
            Gemm.Multiply(provider, false, true, g.PatchRows, g.PatchColumns, oc, T.One, dy.Data, conv.Weight.Value.Data, T.Zero, patchGrad);
            var expected = new T[n * h * w * c];
            Im2Col.Backward<T>(patchGrad, g, expected);

            var dx = kernel.Backward(dy).Data;
            dx.Should().Equal(expected, "zeros {0}", zeros);
            conv.Weight.Gradient.Data.Should().Equal(expectedWeightGrad, "∂K, zeros {0}", zeros);
            conv.Bias.Gradient.Data.Should().Equal(expectedBiasGrad, "∂b, zeros {0}", zeros);
            if (zeros < 1) expected.Any(v => v != T.Zero).Should().BeTrue("the check must not pass on an all-zero gradient");
        }
    }

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Float_gradients_equal_im2col_and_gemm_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int kh, int kw) =>
        SameBits<float>(bits, n, h, w, c, oc, kh, kw);

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Double_gradients_equal_im2col_and_gemm_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int kh, int kw) =>
        SameBits<double>(bits, n, h, w, c, oc, kh, kw);
}
