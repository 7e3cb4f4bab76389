using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Logistic sigmoid, element-wise, any shape (PyTorch's <c>nn.Sigmoid()</c>, which has no settings).
/// <code>
/// input  x : any shape              output y : the same shape
/// forward  : y = 1 / (1 + e^−x)     computed as 1 / (1 + e^−x) for x ≥ 0 and e^x / (1 + e^x) for x &lt; 0, so the
///                                   exponential never overflows: y → 0 and 1 for large |x|, and NaN only for a NaN x
/// backward : ∂x = ∂y · (1 − y) · y  (from the cached output, as PyTorch's sigmoid_backward)
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Sigmoid<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    /// <summary>Creates the layer; it has no settings and no parameters.</summary>
    public Sigmoid()
    {
    }

    /// <inheritdoc />
    public override string Name => "Sigmoid";

    /// <summary>The input's shape: the layer is element-wise.</summary>
    /// <param name="inputShape">Any shape.</param>
    /// <returns>A copy of <paramref name="inputShape"/>.</returns>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    /// <summary>"Sigmoid", without settings.</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new("Sigmoid");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> x = input.Span, y = output.Span;
        for (int i = 0; i < x.Length; i++) y[i] = Logistic(x[i]);
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        Span<T> y = _output!.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        for (int i = 0; i < y.Length; i++) dx[i] = dy[i] * (T.One - y[i]) * y[i];
        return inputGrad;
    }

    /// <summary>1 / (1 + e^−x) without overflow: e^−x for x ≥ 0 and e^x for x &lt; 0 are at most 1. NaN takes the second branch and stays NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static T Logistic(T x)
    {
        if (x >= T.Zero) return T.One / (T.One + T.Exp(-x));
        T e = T.Exp(x);
        return e / (T.One + e);
    }
}
