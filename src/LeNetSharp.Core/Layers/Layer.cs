using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>Shared checks and helpers for the built-in layers.</summary>
/// <typeparam name="T">Element type.</typeparam>
public abstract class Layer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _lastOutput;

    /// <summary>Checks the element type: only <see cref="float"/> and <see cref="double"/> are supported.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is another type (e.g. <see cref="Half"/>).</exception>
    protected Layer() => ElementTypes.Require<T>($"{GetType().Name.Split('`')[0]}<{typeof(T).Name}>");

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public virtual IReadOnlyList<Parameter<T>> Parameters => Array.Empty<Parameter<T>>();

    /// <inheritdoc />
    public abstract int[] OutputShape(ReadOnlySpan<int> inputShape);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input)
    {
        ArgumentNullException.ThrowIfNull(input);
        _lastOutput = ForwardCore(input);
        return _lastOutput;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        ArgumentNullException.ThrowIfNull(outputGradient);
        if (_lastOutput is null)
        {
            throw new InvalidOperationException($"{Name}: Backward was called before Forward.");
        }

        if (!outputGradient.HasShape(_lastOutput.Shape))
        {
            throw new ArgumentException(
                $"{Name}: output gradient has shape {outputGradient.ShapeString}, expected {_lastOutput.ShapeString} (the last forward output).",
                nameof(outputGradient));
        }

        return BackwardCore(outputGradient);
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>Forward after the null check: validate <paramref name="input"/>, compute and cache.</summary>
    /// <param name="input">The input batch.</param>
    /// <returns>The output buffer.</returns>
    protected abstract Tensor<T> ForwardCore(Tensor<T> input);

    /// <summary>Backward after the checks: <paramref name="outputGradient"/> has the last output's shape.</summary>
    /// <param name="outputGradient">∂loss/∂output.</param>
    /// <returns>∂loss/∂input.</returns>
    protected abstract Tensor<T> BackwardCore(Tensor<T> outputGradient);

    /// <summary>Throws unless <paramref name="shape"/> is (N, H, W, channels) with H ≥ minH and W ≥ minW.</summary>
    /// <param name="shape">The input's shape.</param>
    /// <param name="channels">Required channel count (last dimension).</param>
    /// <param name="minH">Smallest allowed height.</param>
    /// <param name="minW">Smallest allowed width.</param>
    /// <exception cref="ArgumentException">The shape does not fit; the message names expected and actual shapes.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected void RequireImage(ReadOnlySpan<int> shape, int channels, int minH = 1, int minW = 1)
    {
        if (shape.Length != 4 || shape[3] != channels || shape[1] < minH || shape[2] < minW)
        {
            throw new ArgumentException(
                $"{Name}: expected input (N, H, W, {channels}) in NHWC with H ≥ {minH} and W ≥ {minW}, got {Tensor<T>.ShapeToString(shape)}.");
        }
    }
}
