using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// 2x2 max pooling with stride 2 over NHWC images. An odd last row or column is dropped (floor), as in
/// PyTorch's default.
/// <code>
/// input  x : (N, H, W, C)          output y : (N, H/2, W/2, C)
/// forward  : y[n,i,j,c] = max over the window x[n, 2i..2i+1, 2j..2j+1, c]   (IEEE maximum, +0 above −0; a NaN in
///            the window wins: the first in row-major window order, with its bits)
/// backward : ∂x[argmax] = ∂y, 0 elsewhere; the argmax is the first maximum in row-major window order
///            (so ties go to the first), found from the cached input
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class MaxPool2x2<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private Tensor<T>? _input;    // x of the last forward (the caller's tensor; not copied)

    /// <inheritdoc />
    public override string Name => "MaxPool2x2";

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireInput(inputShape);
        return [inputShape[0], inputShape[1] / 2, inputShape[2] / 2, inputShape[3]];
    }

    /// <inheritdoc />
    public override LayerDescription Describe() => new("MaxPool2x2");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3), oh = h / 2, ow = w / 2;
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, n, oh, ow, c);
        Span<T> x = input.Span, y = output.Span;
        int o = 0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        int topLeft = ((b * h + 2 * i) * w + 2 * j) * c + ch, bottomLeft = topLeft + w * c;
                        y[o] = ScalarOps.MaxKeepingNaN(
                            ScalarOps.MaxKeepingNaN(x[topLeft], x[topLeft + c]), ScalarOps.MaxKeepingNaN(x[bottomLeft], x[bottomLeft + c]));
                    }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        // The argmax is found here, from the cached input, so a forward used for inference never pays for it.
        var input = _input!;
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3), oh = h / 2, ow = w / 2;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, h, w, c);
        inputGrad.Clear(); // every position but the argmax of its window (and a dropped odd row or column) gets 0
        Span<T> x = input.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        int o = 0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        int topLeft = ((b * h + 2 * i) * w + 2 * j) * c + ch, bottomLeft = topLeft + w * c;
                        dx[FirstMaximum(x, topLeft, bottomLeft, c)] = dy[o];
                    }

        return inputGrad;
    }

    /// <summary>
    /// The index of the window's first maximum in row-major order (top-left, top-right, bottom-left, bottom-right): a
    /// later element wins only when strictly greater, so ties go to the first. A comparison with NaN is false.
    /// </summary>
    internal static int FirstMaximum(ReadOnlySpan<T> x, int topLeft, int bottomLeft, int c)
    {
        T v00 = x[topLeft], v01 = x[topLeft + c], v10 = x[bottomLeft], v11 = x[bottomLeft + c];
        bool down = T.Max(v10, v11) > T.Max(v00, v01);
        return down ? (v11 > v10 ? bottomLeft + c : bottomLeft) : (v01 > v00 ? topLeft + c : topLeft);
    }

    internal void RequireInput(ReadOnlySpan<int> shape) => RequireImage(shape, shape.Length == 4 ? shape[3] : 1, 2, 2);
}
