using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// The windows of a square pool over an NHWC batch, with PyTorch's geometry (dilation 1, ceil_mode False):
/// <code>
/// input (N, H, W, C), kernel k, stride s, padding p    output (N, OH, OW, C)
/// OH = ⌊(H + 2p − k) / s⌋ + 1, likewise OW          window (i, j) covers rows i·s − p … i·s − p + k − 1 and
///                                                    columns j·s − p … j·s − p + k − 1, clipped to the input
/// </code>
/// With p ≤ k/2 every window holds at least one input element, as PyTorch requires.
/// </summary>
internal readonly record struct PoolWindows(int N, int H, int W, int C, int Kernel, int Stride, int Padding)
{
    public int OH => (int)((H + 2L * Padding - Kernel) / Stride + 1);

    public int OW => (int)((W + 2L * Padding - Kernel) / Stride + 1);

    /// <summary>Whether windows share input elements (then backward adds their gradients).</summary>
    public bool Overlap => Stride < Kernel;

    /// <summary>The rows [start, end) of output row i's windows inside the input.</summary>
    public (int Start, int End) Rows(int i) => (Math.Max(i * Stride - Padding, 0), Math.Min(i * Stride - Padding + Kernel, H));

    /// <summary>The columns [start, end) of output column j's windows inside the input.</summary>
    public (int Start, int End) Columns(int j) => (Math.Max(j * Stride - Padding, 0), Math.Min(j * Stride - Padding + Kernel, W));

    /// <summary>Checks the settings as a pool's constructor does.</summary>
    /// <exception cref="ArgumentOutOfRangeException">kernel or stride below 1, padding negative or above kernel/2.</exception>
    public static void CheckSettings(string layer, int kernel, int stride, int padding)
    {
        if (kernel < 1) throw new ArgumentOutOfRangeException(nameof(kernel), kernel, $"{layer}: kernel must be at least 1, got {kernel}.");
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, $"{layer}: stride must be at least 1, got {stride}.");
        if (padding < 0 || padding > kernel / 2)
        {
            throw new ArgumentOutOfRangeException(nameof(padding), padding,
                $"{layer}: padding must be from 0 to kernel/2 = {kernel / 2} (PyTorch's limit: at most half the kernel), got {padding}.");
        }
    }

    /// <summary>
    /// The windows for an input of <paramref name="shape"/>, or an exception naming the layer, the expected and the actual
    /// shape: the input must be (N, H, W, C) and the padded image at least one kernel high and wide.
    /// </summary>
    /// <exception cref="ArgumentException">The shape does not fit.</exception>
    public static PoolWindows For<T>(string layer, ReadOnlySpan<int> shape, int kernel, int stride, int padding)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (shape.Length != 4 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 || shape[3] < 1)
        {
            throw new ArgumentException($"{layer}: expected input (N, H, W, C) in NHWC, got {Tensor<T>.ShapeToString(shape)}.");
        }

        long paddedH = shape[1] + 2L * padding, paddedW = shape[2] + 2L * padding;
        if (paddedH < kernel || paddedW < kernel)
        {
            throw new ArgumentException(
                $"{layer}: the {kernel}x{kernel} pool is larger than the input {Tensor<T>.ShapeToString(shape)}"
                + (padding > 0 ? $" padded to {paddedH}x{paddedW}" : "")
                + $"; expected (N, H, W, C) with H + 2·{padding} ≥ {kernel} and W + 2·{padding} ≥ {kernel}.");
        }

        if ((paddedH - kernel) / stride + 1 > Array.MaxLength || (paddedW - kernel) / stride + 1 > Array.MaxLength)
        {
            throw new ArgumentException($"{layer}: the output of {Tensor<T>.ShapeToString(shape)} would be too large for one array.");
        }

        return new(shape[0], shape[1], shape[2], shape[3], kernel, stride, padding);
    }
}
