using System.Numerics;
using System.Runtime.Intrinsics;
using LeNetSharp.Kernels;
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
    // vector and a few (11, 7). Then one output row (the ∂x rows below it summed after it), a 1x1 output, image rows
    // narrower than a vector (a row's last vector runs into the next rows, the array's last one is cut), rows of many
    // vectors, and 17, 33 and 255 out channels (whole vectors and a part, for the 512-bit transposes and compression).
    public static TheoryData<int, int, int, int, int, int, int, int> Shapes(int bits)
    {
        var data = new TheoryData<int, int, int, int, int, int, int, int>();
        foreach (var (n, h, w, c, oc, kh, kw) in new[]
        {
            (3, 12, 12, 6, 16, 5, 5), (2, 7, 9, 3, 5, 3, 2), (1, 5, 6, 2, 1, 1, 1), (2, 10, 8, 7, 19, 4, 3), (1, 6, 7, 20, 3, 2, 2),
            (3, 12, 12, 6, 8, 5, 5), (2, 9, 8, 6, 4, 5, 5), (1, 8, 8, 9, 11, 3, 5), (1, 7, 9, 13, 2, 3, 5), (1, 6, 9, 12, 7, 2, 5),
            (1, 9, 8, 2, 5, 7, 3), (2, 8, 7, 3, 16, 7, 2),
            (2, 5, 3, 2, 255, 5, 2), (6, 4, 4, 2, 17, 4, 4), (2, 6, 5, 3, 33, 6, 3), (3, 7, 2, 1, 16, 3, 2), (1, 3, 40, 5, 1, 2, 3),
        })
        {
            data.Add(bits, n, h, w, c, oc, kh, kw);
        }

        return data;
    }

    private static void SameBits<T>(int bits, int n, int h, int w, int c, int oc, int kh, int kw) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (double zeros in new[] { 0.0, 0.75, 0.97, 1.0 })
        {
            var random = new Random(kh * 31 + oc);
            var conv = new Conv<T>(c, oc, kh, kw, random) { GemmProvider = SimdWidths.Provider(bits) };
            Step(conv, SimdWidths.Kernel(conv, bits), random, zeros, n, h, w, c);
        }
    }

    /// <summary>One backward of <paramref name="kernel"/> (running <paramref name="conv"/>) against im2col + the GEMM + col2im, bit for bit.</summary>
    private static void Step<T>(Conv<T> conv, Sequential<T> kernel, Random random, double zeros, int n, int h, int w, int c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var provider = conv.GemmProvider;
        int oc = conv.OutChannels, kh = conv.KernelHeight, kw = conv.KernelWidth;
        var x = GradientCheck.Random(random, n, h, w, c).Data.Select(T.CreateTruncating).ToArray();
        var input = new Tensor<T>(n, h, w, c);
        x.CopyTo(input.Data, 0);
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
        var (expectedWeightGrad, expectedBiasGrad, expected) = ConvBackwardReference.Backward(provider, conv, x, dy.Data, n, h, w, 0);

        var dx = kernel.Backward(dy).Data;
        // As bits: Equal would take −0 for +0.
        BitAssert.SameBits<T>(expected, dx, $"∂x, zeros {zeros}", anyNaN: false);
        BitAssert.SameBits<T>(expectedWeightGrad, conv.Weight.Gradient.Data, $"∂K, zeros {zeros}", anyNaN: false);
        BitAssert.SameBits<T>(expectedBiasGrad, conv.Bias.Gradient.Data, $"∂b, zeros {zeros}", anyNaN: false);
        if (zeros < 1) expected.Any(v => v != T.Zero).Should().BeTrue("the check must not pass on an all-zero gradient");
    }

    public static TheoryData<int> Width(int bits) => new() { bits };

    // One scratch serves shapes that grow and shrink (the ring of ∂P keeps zeros around the values it stores, so a new
    // layout must start from zeros), and ∂x is written whole: it starts as NaN.
    [Theory]
    [WidthData(nameof(Width), 128)]
    [WidthData(nameof(Width), 256)]
    [WidthData(nameof(Width), 512)]
    public void One_scratch_serves_shapes_that_grow_and_shrink(int bits)
    {
        var scratch = new SparseConvScratch<float>();
        var random = new Random(bits);
        foreach (var (n, h, w, c, oc, k) in new[] { (3, 12, 12, 6, 16, 5), (2, 9, 14, 3, 7, 3), (1, 5, 5, 2, 20, 5), (3, 12, 12, 6, 16, 5), (2, 16, 7, 1, 33, 4) })
        {
            var g = new ConvGeometry(n, h, w, c, k, k, 1, 0);
            float[] Values(int length, double zeros) => Enumerable.Range(0, length).Select(_ => random.NextDouble() < zeros ? 0f : (float)(random.NextDouble() * 2 - 1)).ToArray();
            float[] x = Values(n * h * w * c, 0), kernel = Values(g.PatchColumns * oc, 0), dy = Values(g.PatchRows * oc, 0.75), dk = Values(g.PatchColumns * oc, 0);
            var expectedWeightGrad = dk.ToArray();
            var patches = new float[g.PatchRows * g.PatchColumns];
            Im2Col.Forward<float>(x, g, patches);
            var provider = SimdWidths.Provider(bits);
            Gemm.Multiply(provider, true, false, g.PatchColumns, oc, g.PatchRows, 1f, patches, dy, 1f, expectedWeightGrad);
            var patchGrad = new float[g.PatchRows * g.PatchColumns];
            Gemm.Multiply(provider, false, true, g.PatchRows, g.PatchColumns, oc, 1f, dy, kernel, 0f, patchGrad);
            var expected = new float[x.Length];
            Im2Col.Backward<float>(patchGrad, g, expected);

            var dx = Enumerable.Repeat(float.NaN, x.Length).ToArray();
            switch (bits)
            {
                case 512: Backward<Simd512<float>, Vector512<float>>(g, oc, x, dy, kernel, dk, dx, scratch); break;
                case 256: Backward<Simd256<float>, Vector256<float>>(g, oc, x, dy, kernel, dk, dx, scratch); break;
                default: Backward<Simd128<float>, Vector128<float>>(g, oc, x, dy, kernel, dk, dx, scratch); break;
            }

            BitAssert.SameBits<float>(expected, dx, $"∂x of {g}", anyNaN: false);
            BitAssert.SameBits<float>(expectedWeightGrad, dk, $"∂K of {g}", anyNaN: false);
        }
    }

    private static void Backward<TOps, TV>(ConvGeometry g, int oc, float[] x, float[] dy, float[] kernel, float[] dk, float[] dx, SparseConvScratch<float> scratch)
        where TOps : struct, ISimdOps<TV, float> where TV : struct
    {
        SparseConvBackward<TOps, TV, float>.Gather(g, oc, dy, scratch);
        SparseConvBackward<TOps, TV, float>.WeightGradient(g, oc, x, dy, dk, scratch);
        SparseConvBackward<TOps, TV, float>.InputGradient(g, oc, kernel, dx, scratch);
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
