using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="Relu{T}"/> with <see cref="Vector{T}"/>: the same IEEE maximum and the same mask, so the same bits.
/// </summary>
internal sealed class ReluStep<T>(Relu<T> layer) : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    public override string Name => $"{layer.Name} ({VectorOps.WidthName<T>()})";

    public override int LayerCount => 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        VectorOps.Relu<T>(input.Span, output.Span);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        VectorOps.ReluBackward<T>(_output!.Span, outputGradient.Span, inputGrad.Span);
        return inputGrad;
    }
}

/// <summary>
/// <see cref="MaxPool2x2{T}"/> with <see cref="Vector{T}"/>: the maximum of neighbouring pixels in the top and in the
/// bottom row of each window, then of the two, the layer's order (which decides which NaN a window of several passes
/// on); backward makes the layer's three comparisons lane by lane. The same bits as the layer.
/// </summary>
internal sealed class MaxPool2x2Step<T>(MaxPool2x2<T> layer) : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly MaxPool2x2<T> _layer = layer;
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private Tensor<T>? _input;    // x of the last forward (the caller's tensor; not copied)
    private T[] _rowMax = [];     // the bottom rows' maxima of one row of windows

    public override string Name => $"{_layer.Name} ({VectorOps.WidthName<T>()})";

    public override int LayerCount => 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        var s = input.Shape;
        _layer.RequireInput(s);
        int n = s[0], h = s[1], w = s[2], c = s[3];
        int oh = h / 2, ow = w / 2, rowStride = w * c, pairs = 2 * ow * c;
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, n, oh, ow, c);
        if (_rowMax.Length != ow * c) _rowMax = new T[ow * c];

        // As the layer: max(max(top left, top right), max(bottom left, bottom right)), one row of windows at a time.
        Span<T> y = output.Span;
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < oh; i++, o += ow * c)
            {
                int top = (b * h + 2 * i) * rowStride;
                var row = y.Slice(o, ow * c);
                VectorOps.MaxOfNeighbourBlocks<T>(input.Span.Slice(top, pairs), c, row);
                VectorOps.MaxOfNeighbourBlocks<T>(input.Span.Slice(top + rowStride, pairs), c, _rowMax);
                VectorOps.Max<T>(row, _rowMax, row);
            }
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        // The argmax is found here, from the cached input: the first maximum of each window in row-major order takes
        // the gradient. Forward stays a pure (vectorised) max, so inference never pays for the search.
        var x = _input!;
        int n = x.Dim(0), h = x.Dim(1), w = x.Dim(2), c = x.Dim(3), oh = h / 2, ow = w / 2, rowStride = w * c;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, h, w, c);
        if (h % 2 != 0 || w % 2 != 0) inputGrad.Clear(); // else every element is written below
        ref T xs = ref MemoryMarshal.GetArrayDataReference(x.Data);
        ref T dx = ref MemoryMarshal.GetArrayDataReference(inputGrad.Data);
        ref T dy = ref MemoryMarshal.GetArrayDataReference(outputGradient.Data);
        int vc = Vector.IsHardwareAccelerated && c % Vector<T>.Count == 0 ? c : 0; // channels done with vectors
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < oh; i++)
            {
                int topLeft = (b * h + 2 * i) * rowStride;
                for (int j = 0; j < ow; j++, topLeft += 2 * c)
                {
                    for (int ch = 0; ch < vc; ch += Vector<T>.Count, o += Vector<T>.Count)
                    {
                        // The same comparisons as below, lane by lane; every position of the window is written (∂y or +0).
                        nuint i00 = (nuint)(topLeft + ch), i01 = i00 + (nuint)c, i10 = i00 + (nuint)rowStride, i11 = i10 + (nuint)c;
                        var v00 = Vector.LoadUnsafe(ref xs, i00);
                        var v01 = Vector.LoadUnsafe(ref xs, i01);
                        var v10 = Vector.LoadUnsafe(ref xs, i10);
                        var v11 = Vector.LoadUnsafe(ref xs, i11);
                        var g = Vector.LoadUnsafe(ref dy, (nuint)o);
                        var right = Vector.GreaterThan(v01, v00);
                        var bottomRight = Vector.GreaterThan(v11, v10);
                        var down = Vector.GreaterThan(Vector.Max(v10, v11), Vector.Max(v00, v01));
                        var top = Vector.AndNot(g, down); // ∂y where the maximum is in the top row
                        var bottom = g & down;
                        Vector.AndNot(top, right).StoreUnsafe(ref dx, i00);
                        (top & right).StoreUnsafe(ref dx, i01);
                        Vector.AndNot(bottom, bottomRight).StoreUnsafe(ref dx, i10);
                        (bottom & bottomRight).StoreUnsafe(ref dx, i11);
                    }

                    for (int ch = vc; ch < c; ch++, o++)
                    {
                        int i00 = topLeft + ch, i10 = i00 + rowStride;
                        T v00 = Unsafe.Add(ref xs, i00), v01 = Unsafe.Add(ref xs, i00 + c);
                        T v10 = Unsafe.Add(ref xs, i10), v11 = Unsafe.Add(ref xs, i10 + c);
                        // Branch-free; a later element wins only when strictly greater, so ties go to the first.
                        int right = v01 > v00 ? 1 : 0, bottomRight = v11 > v10 ? 1 : 0;
                        int down = T.Max(v10, v11) > T.Max(v00, v01) ? 1 : 0;
                        int at = i00 + down * rowStride + (right + down * (bottomRight - right)) * c;
                        Unsafe.Add(ref dx, i00) = T.Zero; // windows do not overlap: each is written whole
                        Unsafe.Add(ref dx, i00 + c) = T.Zero;
                        Unsafe.Add(ref dx, i10) = T.Zero;
                        Unsafe.Add(ref dx, i10 + c) = T.Zero;
                        Unsafe.Add(ref dx, at) = Unsafe.Add(ref dy, o);
                    }
                }
            }
        }

        return inputGrad;
    }
}
