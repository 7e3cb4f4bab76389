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
/// <see cref="MaxPool2x2{T}"/> for inference at the plan's vector width: <see cref="ReluMaxPoolStep{T}"/>'s sweep without
/// the Relu and without the positions (each window's maximum, the layer's bits). Training plans run
/// <see cref="ReluMaxPoolStep{T}"/> without its Relu, which keeps each window's position for backward.
/// </summary>
internal sealed class MaxPool2x2Step<T>(MaxPool2x2<T> layer, int bits, int channels) : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly string _width = ReluMaxPoolStep<T>.WidthName(bits, channels);
    private Tensor<T>? _output;

    public override string Name => $"{layer.Name} ({_width})";

    public override int LayerCount => 1;

    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        layer.RequireInput(input.Shape);
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3);
        var output = Tensor<T>.Reuse(ref _output, n, h / 2, w / 2, c);
        ReluMaxPoolStep<T>.Pool(bits, input.Data, n, h, w, c, relu: false, output.Data, []);
        return output;
    }

    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient) =>
        throw new InvalidOperationException("MaxPool2x2's vector step is for inference; training keeps the window positions (ReluMaxPoolStep).");
}
