using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// The mean of each channel over the whole image, NHWC to one vector per image: PyTorch's
/// <c>nn.AdaptiveAvgPool2d(1)</c> followed by <c>flatten(1)</c>, or <c>x.mean(dim=(2, 3))</c> on NCHW. No settings.
/// <code>
/// input  x : (N, H, W, C)           output y : (N, C)
/// forward  : y[n,c] = (Σ_{h,w} x[n,h,w,c]) / (H·W)
/// backward : ∂x[n,h,w,c] = ∂y[n,c] / (H·W)
/// </code>
/// It takes any height and width, so a network ending GlobalAvgPool2d → Linear needs no Flatten and no fixed image size
/// before it.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class GlobalAvgPool2d<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private int _h, _w;             // the last input's height and width

    /// <summary>Creates the layer; it has no settings and no parameters.</summary>
    public GlobalAvgPool2d()
    {
    }

    /// <inheritdoc />
    public override string Name => "GlobalAvgPool2d";

    /// <summary>(N, C) for an input (N, H, W, C).</summary>
    /// <param name="inputShape">(N, H, W, C).</param>
    /// <returns>The output's shape.</returns>
    /// <exception cref="ArgumentException">The input is not (N, H, W, C); the message names the expected and actual shapes.</exception>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireInput(inputShape);
        return [inputShape[0], inputShape[3]];
    }

    /// <summary>"GlobalAvgPool2d", without settings.</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new("GlobalAvgPool2d");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        int n = input.Dim(0), h = _h = input.Dim(1), w = _w = input.Dim(2), c = input.Dim(3);
        T count = T.CreateChecked(h * w);
        var output = Tensor<T>.Reuse(ref _output, n, c);
        Span<T> x = input.Span, y = output.Span;
        for (int b = 0; b < n; b++)
        {
            Span<T> row = y.Slice(b * c, c);
            row.Clear();
            for (int p = 0; p < h * w; p++)
            {
                ReadOnlySpan<T> pixel = x.Slice((b * h * w + p) * c, c);
                for (int ch = 0; ch < c; ch++) row[ch] += pixel[ch];
            }

            for (int ch = 0; ch < c; ch++) row[ch] /= count;
        }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int n = outputGradient.Dim(0), c = outputGradient.Dim(1), h = _h, w = _w;
        T count = T.CreateChecked(h * w);
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, h, w, c);
        Span<T> dy = outputGradient.Span, dx = inputGrad.Span;
        for (int b = 0; b < n; b++)
        {
            for (int ch = 0; ch < c; ch++) dx[b * h * w * c + ch] = dy[b * c + ch] / count;
            ReadOnlySpan<T> first = dx.Slice(b * h * w * c, c);
            for (int p = 1; p < h * w; p++) first.CopyTo(dx.Slice((b * h * w + p) * c, c));
        }

        return inputGrad;
    }

    private void RequireInput(ReadOnlySpan<int> shape)
    {
        if (shape.Length != 4 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 || shape[3] < 1)
        {
            throw new ArgumentException($"GlobalAvgPool2d: expected input (N, H, W, C) in NHWC, got {Tensor<T>.ShapeToString(shape)}.");
        }
    }
}
