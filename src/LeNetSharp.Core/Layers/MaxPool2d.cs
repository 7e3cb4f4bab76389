using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Max pooling with a square window, any stride and padding, over NHWC images: PyTorch's
/// <c>nn.MaxPool2d(kernel_size, stride=None, padding=0)</c> (stride defaults to the kernel; dilation 1, ceil_mode False).
/// <code>
/// input  x : (N, H, W, C)         output y : (N, OH, OW, C)      OH = ⌊(H + 2·padding − kernel) / stride⌋ + 1, likewise OW
/// forward  : y[n,i,j,c] = max of x[n, h, w, c] over the window h = i·stride − padding … + kernel − 1 (likewise w);
///            the padding is −∞ (never the maximum: with padding ≤ kernel/2 every window holds an input element).
///            IEEE maximum, +0 above −0; a NaN in the window wins: the first in row-major window order, with its bits.
/// backward : ∂x[argmax] += ∂y, 0 where no window's argmax lies; the argmax is the first maximum in row-major window
///            order (ties go to the first; the first NaN if the window holds one), found from the cached input.
///            Overlapping windows (stride &lt; kernel) add their gradients where they share an argmax.
/// </code>
/// <c>new MaxPool2d&lt;T&gt;(2)</c> gives the same bits as <see cref="MaxPool2x2{T}"/>, forward and backward; keep
/// MaxPool2x2 for the tutorial's network, which the compute backends run with fused kernels, and use this layer for
/// other windows: it always runs this reference code. PyTorch sends the gradient of a window with several NaNs to the last.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class MaxPool2d<T> : Pool2d<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private Tensor<T>? _input;    // x of the last forward (the caller's tensor; not copied)
    private PoolWindows _windows;

    /// <summary>Creates the layer.</summary>
    /// <param name="kernel">The window's height and width (≥ 1), PyTorch's <c>kernel_size</c>.</param>
    /// <param name="stride">Step between windows (≥ 1); null (the default) for <paramref name="kernel"/>, as PyTorch's <c>stride=None</c>.</param>
    /// <param name="padding">−∞ rows and columns added on every side, from 0 (the default) to kernel/2 as PyTorch allows.</param>
    /// <exception cref="ArgumentOutOfRangeException">kernel or stride below 1, or padding negative or above kernel/2; the message names the setting.</exception>
    public MaxPool2d(int kernel, int? stride = null, int padding = 0)
        : base("MaxPool2d", kernel, stride, padding)
    {
    }

    /// <summary>The layer a <see cref="Pool2d{T}.Describe"/> result stands for.</summary>
    internal static MaxPool2d<T> FromDescription(LayerDescription d) => new(d.GetInt("kernel", 1), d.GetInt("stride", 1), d.GetInt("padding", 0));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var g = _windows = Windows(input.Shape);
        int oh = g.OH, ow = g.OW, c = g.C;
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, g.N, oh, ow, c);
        Span<T> x = input.Span, y = output.Span;
        int o = 0;
        for (int b = 0; b < g.N; b++)
            for (int i = 0; i < oh; i++)
            {
                var (h0, h1) = g.Rows(i);
                for (int j = 0; j < ow; j++)
                {
                    var (w0, w1) = g.Columns(j);
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        T max = x[((b * g.H + h0) * g.W + w0) * c + ch];
                        for (int h = h0; h < h1; h++)
                            for (int w = h == h0 ? w0 + 1 : w0; w < w1; w++)
                                max = ScalarOps.MaxKeepingNaN(max, x[((b * g.H + h) * g.W + w) * c + ch]);
                        y[o] = max;
                    }
                }
            }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        // The argmax is found here, from the cached input, so a forward used for inference never pays for it.
        var g = _windows;
        int oh = g.OH, ow = g.OW, c = g.C;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, g.H, g.W, c);
        inputGrad.Clear(); // every position that is no window's argmax gets 0
        Span<T> x = _input!.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        bool overlap = g.Overlap;
        int o = 0;
        for (int b = 0; b < g.N; b++)
            for (int i = 0; i < oh; i++)
            {
                var (h0, h1) = g.Rows(i);
                for (int j = 0; j < ow; j++)
                {
                    var (w0, w1) = g.Columns(j);
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        int arg = ((b * g.H + h0) * g.W + w0) * c + ch;
                        T max = x[arg];
                        for (int h = h0; h < h1 && !T.IsNaN(max); h++)
                            for (int w = h == h0 ? w0 + 1 : w0; w < w1; w++)
                            {
                                int at = ((b * g.H + h) * g.W + w) * c + ch;
                                if (x[at] > max || T.IsNaN(x[at]))
                                {
                                    arg = at;
                                    max = x[at];
                                    if (T.IsNaN(max)) break;
                                }
                            }

                        // Disjoint windows assign (as MaxPool2x2, so a −0 gradient keeps its sign); overlapping ones add.
                        if (overlap) dx[arg] += dy[o];
                        else dx[arg] = dy[o];
                    }
                }
            }

        return inputGrad;
    }
}
