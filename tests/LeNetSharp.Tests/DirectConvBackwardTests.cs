using System.Numerics;
using LeNetSharp.Kernels;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// A stride-1 convolution's backward straight from the input (framed by its zero border when padded) and ∂y, without
/// the patch matrix or ∂P: ∂K and ∂b added to the old gradients, and ∂x, must be the bits of im2col + the SIMD GEMM at
/// the same width followed by col2im, at every width, in float and double, for any padding, kernel and channel counts.
/// </summary>
public class DirectConvBackwardTests
{
    // (batch, height, width, in channels, out channels, kernel, padding): the 3×3 network's second layer; channel counts
    // that are not whole vectors at some width (shifted last vectors); fewer input channels than a vector (∂x through
    // ∂P); a kernel wider than the image; 1×1 with padding; rows longer than a range of the weight gradient's sums;
    // ranges that span images; single-channel inputs (the 3×3 network's first layer, 9 and 25 taps, one tap, ranges of
    // ∂y rows that are not whole groups of 4 for ∂b's partial sums); batches of more than one group of 6 images for ∂x's
    // schedule, one with padding 2 around 4×4 images (5 classes of rows and of columns). Then channel counts of one
    // vector (16, 8, 4, 2: float at 512, 256, 128 bits and double at 512, 256, 128), one vector and a few (19, 11, 7)
    // and three vectors (48, 24): a last odd vector in and out.
    public static TheoryData<int, int, int, int, int, int, int, int> Shapes(int bits)
    {
        var data = new TheoryData<int, int, int, int, int, int, int, int>();
        foreach (var (n, h, w, c, oc, k, p) in new[]
        {
            (3, 14, 14, 32, 64, 3, 1), (2, 7, 9, 16, 20, 3, 1), (3, 6, 5, 17, 33, 5, 2), (1, 5, 5, 8, 8, 3, 1), (2, 9, 9, 3, 16, 3, 1),
            (1, 3, 3, 16, 16, 5, 2), (2, 4, 6, 24, 16, 1, 1), (1, 2, 140, 8, 24, 3, 1), (9, 3, 4, 16, 17, 3, 1), (2, 6, 6, 64, 64, 3, 1),
            (4, 7, 7, 1, 32, 3, 1), (2, 11, 9, 1, 24, 5, 2), (3, 8, 8, 1, 64, 3, 1), (2, 5, 6, 1, 16, 1, 0), (2, 6, 7, 2, 40, 3, 1),
            (7, 5, 6, 16, 16, 3, 1), (13, 4, 4, 32, 16, 3, 2),
            (2, 5, 6, 8, 8, 3, 1), (1, 6, 5, 4, 4, 3, 1), (2, 4, 5, 2, 2, 3, 1), (1, 5, 7, 11, 11, 3, 1), (1, 4, 6, 7, 7, 3, 2),
            (1, 5, 5, 48, 48, 3, 1), (1, 4, 4, 24, 24, 3, 1), (1, 6, 6, 16, 19, 3, 1),
        })
        {
            data.Add(bits, n, h, w, c, oc, k, p);
        }

        return data;
    }

    private static void SameBits<T>(int bits, int n, int h, int w, int c, int oc, int k, int p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var provider = SimdWidths.Provider(bits);
        foreach (double zeros in new[] { 0.0, 0.6 })
        {
            var random = new Random(k * 31 + oc + c);
            var conv = new Conv<T>(c, oc, k, k, random, padding: p) { GemmProvider = provider };
            var input = new Tensor<T>(n, h, w, c);
            GradientCheck.Random(random, n, h, w, c).Data.Select(T.CreateTruncating).ToArray().CopyTo(input.Data, 0);
            var kernel = SimdWidths.Kernel(conv, bits);
            var y = kernel.Forward(input);
            var dy = new Tensor<T>(y.Shape.ToArray());
            for (int i = 0; i < dy.Length; i++)
            {
                // Zeros of both signs, as a ReLU's and a pool's backward leave them.
                dy.Data[i] = random.NextDouble() < zeros ? (random.Next(2) == 0 ? T.Zero : T.NegativeZero) : T.CreateTruncating(random.NextDouble() * 2 - 1);
            }

            // Gradients already hold values (accumulation over batches): the new sums are added to them.
            for (int i = 0; i < conv.Weight.Gradient.Length; i++) conv.Weight.Gradient.Data[i] = T.CreateTruncating(random.NextDouble() - 0.5);
            for (int i = 0; i < oc; i++) conv.Bias.Gradient.Data[i] = T.CreateTruncating(random.NextDouble() - 0.5);
            var (expectedWeightGrad, expectedBiasGrad, expected) = ConvBackwardReference.Backward(provider, conv, input.Data, dy.Data, n, h, w, p);

            var dx = kernel.Backward(dy).Data;
            BitAssert.SameBits<T>(expected, dx, $"∂x, zeros {zeros}");
            BitAssert.SameBits<T>(expectedWeightGrad, conv.Weight.Gradient.Data, $"∂K, zeros {zeros}");
            BitAssert.SameBits<T>(expectedBiasGrad, conv.Bias.Gradient.Data, $"∂b, zeros {zeros}");
            expected.Any(v => v != T.Zero).Should().BeTrue("the check must not pass on an all-zero gradient");
        }
    }

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Float_gradients_equal_im2col_gemm_and_col2im_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int k, int p) =>
        SameBits<float>(bits, n, h, w, c, oc, k, p);

    [Theory]
    [WidthData(nameof(Shapes), 128)]
    [WidthData(nameof(Shapes), 256)]
    [WidthData(nameof(Shapes), 512)]
    public void Double_gradients_equal_im2col_gemm_and_col2im_bit_for_bit(int bits, int n, int h, int w, int c, int oc, int k, int p) =>
        SameBits<double>(bits, n, h, w, c, oc, k, p);

    [Theory]
    [InlineData(32, 14, 14, 3, 1)]
    [InlineData(7, 5, 6, 3, 1)]
    [InlineData(13, 4, 4, 3, 2)]
    [InlineData(2, 3, 3, 5, 2)]
    [InlineData(1, 1, 9, 1, 0)]
    public void The_input_gradient_schedule_visits_every_pixel_once_in_blocks_of_pixels_with_the_same_taps(int n, int h, int w, int k, int p)
    {
        var g = new ConvGeometry(n, h, w, 32, k, k, 1, p);
        var schedule = new int[InputSchedule.Length(g)];
        int blocks = InputSchedule.Build(g, schedule);
        blocks.Should().Be(schedule.Length / InputSchedule.Rows, "Length is exact");
        schedule.Where(q => q >= 0).Order().Should().Equal(Enumerable.Range(0, n * h * w));

        // Blocks of the full groups of 6 images hold pixels with the same valid taps: no chain computed and dropped.
        int full = n / InputSchedule.Rows * InputSchedule.Rows * h * w;
        string Taps(int q)
        {
            int i = q % (h * w) / w, j = q % w;
            return string.Concat(from kh in Enumerable.Range(0, k) from kw in Enumerable.Range(0, k)
                select (uint)(i + p - kh) < (uint)g.OH && (uint)(j + p - kw) < (uint)g.OW ? '1' : '0');
        }

        for (int b = 0; b < full / InputSchedule.Rows; b++)
        {
            var block = schedule.AsSpan(b * InputSchedule.Rows, InputSchedule.Rows).ToArray();
            block.Should().OnlyContain(q => q >= 0 && q < full);
            block.Select(Taps).Distinct().Should().ContainSingle("block {0}", b);
        }
    }
}
