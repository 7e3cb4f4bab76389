using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Hyperbolic tangent, element-wise, any shape (PyTorch's <c>nn.Tanh()</c>, which has no settings).
/// <code>
/// input  x : any shape              output y : the same shape
/// forward  : y = tanh(x)            (in (−1, 1); ±1 for |x| above about 19 in double, 9 in float; NaN stays NaN)
/// backward : ∂x = ∂y · (1 − y·y)    (from the cached output, as PyTorch's tanh_backward)
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Tanh<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    /// <summary>Creates the layer; it has no settings and no parameters.</summary>
    public Tanh()
    {
    }

    /// <inheritdoc />
    public override string Name => "Tanh";

    /// <summary>The input's shape: the layer is element-wise.</summary>
    /// <param name="inputShape">Any shape.</param>
    /// <returns>A copy of <paramref name="inputShape"/>.</returns>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    /// <summary>"Tanh", without settings.</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new("Tanh");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> x = input.Span, y = output.Span;
        for (int i = 0; i < x.Length; i++) y[i] = T.Tanh(x[i]);
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        Span<T> y = _output!.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        for (int i = 0; i < y.Length; i++) dx[i] = dy[i] * (T.One - y[i] * y[i]);
        return inputGrad;
    }
}
