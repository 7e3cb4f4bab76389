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
/// <see cref="MaxPool2x2{T}"/> with <see cref="Vector{T}"/> for inference: the maximum of neighbouring pixels in the top
/// and in the bottom row of each window, then of the two, the layer's order (which decides which NaN a window of several
/// passes on). The same bits as the layer. Training plans run <see cref="ReluMaxPoolStep{T}"/> without its Relu, which
/// keeps each window's position for backward.
/// </summary>
internal sealed class MaxPool2x2Step<T>(MaxPool2x2<T> layer) : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly MaxPool2x2<T> _layer = layer;
    private Tensor<T>? _output;
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

    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient) =>
        throw new InvalidOperationException("MaxPool2x2's vector step is for inference; training keeps the window positions (ReluMaxPoolStep).");
}
