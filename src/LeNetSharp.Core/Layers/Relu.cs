using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Rectified linear unit, element-wise, any shape.
/// <code>
/// forward  : y = max(x, 0)
/// backward : ∂x = ∂y where y &gt; 0, else 0   (the derivative at exactly 0 is taken as 0)
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Relu<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    /// <inheritdoc />
    public override string Name => "Relu";

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var output = ReuseLike(ref _output, input);
        VectorOps.Relu<T>(input.Span, output.Span);
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = ReuseLike(ref _inputGrad, outputGradient);
        VectorOps.ReluBackward<T>(_output!.Span, outputGradient.Span, inputGrad.Span);
        return inputGrad;
    }

    private static Tensor<T> ReuseLike(ref Tensor<T>? buffer, Tensor<T> like) => like.Rank switch
    {
        2 => Tensor<T>.Reuse(ref buffer, like.Dim(0), like.Dim(1)),
        4 => Tensor<T>.Reuse(ref buffer, like.Dim(0), like.Dim(1), like.Dim(2), like.Dim(3)),
        _ => Tensor<T>.Reuse(ref buffer, like.Shape),
    };
}
