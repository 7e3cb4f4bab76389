using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// 2x2 max pooling with stride 2 over NHWC images. An odd last row or column is dropped (floor), as in
/// PyTorch's default.
/// <code>
/// input  x : (N, H, W, C)          output y : (N, H/2, W/2, C)
/// forward  : y[n,i,j,c] = max over the window x[n, 2i..2i+1, 2j..2j+1, c]; the argmax is recorded
///            (ties go to the first maximum in row-major window order)
/// backward : ∂x[argmax] = ∂y, 0 elsewhere
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class MaxPool2x2<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private int[] _argmax = [];   // for every output element, the flat index of its maximum in x
    private int _n, _h, _w, _c;

    /// <inheritdoc />
    public override string Name => "MaxPool2x2";

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireImage(inputShape, inputShape.Length == 4 ? inputShape[3] : 1, 2, 2);
        return [inputShape[0], inputShape[1] / 2, inputShape[2] / 2, inputShape[3]];
    }

    /// <inheritdoc />
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var s = input.Shape;
        RequireImage(s, s.Length == 4 ? s[3] : 1, 2, 2);
        int n = _n = s[0], h = _h = s[1], w = _w = s[2], c = _c = s[3];
        int oh = h / 2, ow = w / 2;
        var output = Tensor<T>.Reuse(ref _output, n, oh, ow, c);
        if (_argmax.Length != output.Length) _argmax = new int[output.Length];

        ReadOnlySpan<T> x = input.Span;
        Span<T> y = output.Span;
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < oh; i++)
            {
                for (int j = 0; j < ow; j++)
                {
                    int topLeft = ((b * h + 2 * i) * w + 2 * j) * c;
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        int i00 = topLeft + ch, i01 = i00 + c, i10 = i00 + w * c, i11 = i10 + c;
                        int best = i00;
                        if (x[i01] > x[best]) best = i01;
                        if (x[i10] > x[best]) best = i10;
                        if (x[i11] > x[best]) best = i11;
                        y[o] = x[best];
                        _argmax[o] = best;
                    }
                }
            }
        }

        return output;
    }

    /// <inheritdoc />
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, _n, _h, _w, _c);
        Span<T> dx = inputGrad.Span;
        dx.Clear();
        ReadOnlySpan<T> dy = outputGradient.Span;
        for (int o = 0; o < dy.Length; o++) dx[_argmax[o]] = dy[o]; // windows do not overlap: no sums needed
        return inputGrad;
    }
}
