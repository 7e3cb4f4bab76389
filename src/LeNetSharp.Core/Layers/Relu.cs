using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Rectified linear unit, element-wise, any shape.
/// <code>
/// forward  : y = max(x, 0)          (IEEE maximum: −0 becomes +0; a NaN is passed on with its bits, quiet or signalling)
/// backward : ∂x = ∂y where y &gt; 0, else 0   (the derivative at exactly 0 is taken as 0)
/// </code>
/// The mask "y &gt; 0" is all backward needs, so the layer keeps its output, not its input.
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
    public override LayerDescription Describe() => new("Relu");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> x = input.Span, y = output.Span;
        for (int i = 0; i < x.Length; i++) y[i] = ScalarOps.Relu(x[i]); // not T.Max, whose NaN bits vary by JIT tier
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        Span<T> y = _output!.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        for (int i = 0; i < y.Length; i++) dx[i] = y[i] > T.Zero ? dy[i] : T.Zero;
        return inputGrad;
    }
}
