using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

        ref T x = ref MemoryMarshal.GetArrayDataReference(input.Data);
        ref T y = ref MemoryMarshal.GetArrayDataReference(output.Data);
        ref int argmax = ref MemoryMarshal.GetArrayDataReference(_argmax);
        int rowStride = w * c, o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < oh; i++)
            {
                int topLeft = (b * h + 2 * i) * rowStride;
                for (int j = 0; j < ow; j++, topLeft += 2 * c)
                {
                    for (int ch = 0; ch < c; ch++, o++)
                    {
                        int i00 = topLeft + ch;
                        T v00 = Unsafe.Add(ref x, i00), v01 = Unsafe.Add(ref x, i00 + c);
                        T v10 = Unsafe.Add(ref x, i00 + rowStride), v11 = Unsafe.Add(ref x, i00 + rowStride + c);
                        // Branch-free; row-major window order, a later element wins only when strictly greater (ties: first).
                        int right = v01 > v00 ? 1 : 0, bottomRight = v11 > v10 ? 1 : 0;
                        T top = T.Max(v00, v01), bottom = T.Max(v10, v11);
                        int down = bottom > top ? 1 : 0;
                        Unsafe.Add(ref y, o) = T.Max(top, bottom);
                        Unsafe.Add(ref argmax, o) = i00 + down * rowStride + (right + down * (bottomRight - right)) * c;
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
        inputGrad.Clear();
        ref T dx = ref MemoryMarshal.GetArrayDataReference(inputGrad.Data);
        ref T dy = ref MemoryMarshal.GetArrayDataReference(outputGradient.Data);
        ref int argmax = ref MemoryMarshal.GetArrayDataReference(_argmax);
        int count = outputGradient.Length;
        for (int o = 0; o < count; o++) Unsafe.Add(ref dx, Unsafe.Add(ref argmax, o)) = Unsafe.Add(ref dy, o); // windows do not overlap
        return inputGrad;
    }
}
