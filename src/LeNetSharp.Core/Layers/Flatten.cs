using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Reshapes (N, d1, d2, …) to (N, d1·d2·…) in row-major order, without copying: for the NHWC pool output
/// (N, 4, 4, 16) the 256 features are ordered (h, w, c), exactly as numpy's reshape of the tutorial.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Flatten<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;      // a view on the last input's data
    private Tensor<T>? _inputGrad;   // a view on the last output gradient's data
    private int[] _inputShape = [];

    /// <inheritdoc />
    public override string Name => "Flatten";

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        if (inputShape.Length < 2)
        {
            throw new ArgumentException($"Flatten: expected (N, d1, …) with at least 2 dimensions, got {Tensor<T>.ShapeToString(inputShape)}.");
        }

        long features = 1;
        foreach (int d in inputShape[1..]) features *= d; // ≤ 3 dimensions of int each: no long overflow in practice
        if (features > Array.MaxLength)
        {
            throw new ArgumentException(
                $"Flatten: {Tensor<T>.ShapeToString(inputShape)} has {features:N0} features per image, more than the largest array ({Array.MaxLength:N0}).");
        }

        return [inputShape[0], (int)features];
    }

    /// <inheritdoc />
    public override LayerDescription Describe() => new("Flatten");

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        if (_output is null || !ReferenceEquals(_output.Data, input.Data) || !input.HasShape(_inputShape))
        {
            int[] outShape = OutputShape(input.Shape);
            _inputShape = input.Shape.ToArray();
            _output = new Tensor<T>(input.Data, outShape);
        }

        return _output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        if (_inputGrad is null || !ReferenceEquals(_inputGrad.Data, outputGradient.Data) || !_inputGrad.HasShape(_inputShape))
        {
            _inputGrad = new Tensor<T>(outputGradient.Data, _inputShape);
        }

        return _inputGrad;
    }
}
