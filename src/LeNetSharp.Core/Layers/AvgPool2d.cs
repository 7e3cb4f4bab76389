using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Average pooling with a square window, any stride and padding, over NHWC images: PyTorch's
/// <c>nn.AvgPool2d(kernel_size, stride=None, padding=0)</c> with its defaults count_include_pad=True (zero padding counts
/// in the average), ceil_mode False and no divisor_override; stride defaults to the kernel.
/// <code>
/// input  x : (N, H, W, C)         output y : (N, OH, OW, C)      OH = ⌊(H + 2·padding − kernel) / stride⌋ + 1, likewise OW
/// forward  : y[n,i,j,c] = (Σ x[n, h, w, c] over the window's input elements) / kernel²
///            (window h = i·stride − padding … + kernel − 1, likewise w; the padding adds zeros to the sum but still
///            counts in kernel², so a window at the border averages its input elements with zeros)
/// backward : ∂x[n, h, w, c] += ∂y[n,i,j,c] / kernel² for every window (i, j) that holds (h, w); overlapping windows
///            (stride &lt; kernel) add up, elements under no window get 0
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class AvgPool2d<T> : Pool2d<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _divisor;
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private PoolWindows _windows;

    /// <summary>Creates the layer.</summary>
    /// <param name="kernel">The window's height and width (≥ 1), PyTorch's <c>kernel_size</c>.</param>
    /// <param name="stride">Step between windows (≥ 1); null (the default) for <paramref name="kernel"/>, as PyTorch's <c>stride=None</c>.</param>
    /// <param name="padding">Zero rows and columns added on every side, from 0 (the default) to kernel/2 as PyTorch allows; they count in the average.</param>
    /// <exception cref="ArgumentOutOfRangeException">kernel or stride below 1, or padding negative or above kernel/2; the message names the setting.</exception>
    public AvgPool2d(int kernel, int? stride = null, int padding = 0)
        : base("AvgPool2d", kernel, stride, padding)
    {
        _divisor = T.CreateChecked((double)kernel * kernel);
    }

    /// <summary>The layer a <see cref="Pool2d{T}.Describe"/> result stands for.</summary>
    internal static AvgPool2d<T> FromDescription(LayerDescription d) => new(d.GetInt("kernel", 1), d.GetInt("stride", 1), d.GetInt("padding", 0));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var g = _windows = Windows(input.Shape);
        int oh = g.OH, ow = g.OW, c = g.C;
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
                        T sum = T.Zero;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++)
                                sum += x[((b * g.H + h) * g.W + w) * c + ch];
                        y[o] = sum / _divisor;
                    }
                }
            }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var g = _windows;
        int oh = g.OH, ow = g.OW, c = g.C;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, g.H, g.W, c);
        inputGrad.Clear();
        Span<T> dy = outputGradient.Span, dx = inputGrad.Span;
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
                        T share = dy[o] / _divisor;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++)
                                dx[((b * g.H + h) * g.W + w) * c + ch] += share;
                    }
                }
            }

        return inputGrad;
    }
}
