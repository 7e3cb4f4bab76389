using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// The base of every built-in layer, and the easiest base for a layer of your own: it checks arguments, refuses a
/// backward before a forward or with a gradient of the wrong shape, and copies the layer through
/// <see cref="LayerRegistry"/>. Implement <see cref="ForwardCore"/>, <see cref="BackwardCore"/>,
/// <see cref="OutputShape"/>, <see cref="Name"/> and <see cref="Describe"/>; register the type to save, load and clone it.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public abstract class Layer<T> : ILayer<T>, ITrainingMode where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _lastOutput;

    /// <summary>Checks the element type: only <see cref="float"/> and <see cref="double"/> are supported.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is another type (e.g. <see cref="Half"/>).</exception>
    protected Layer() => ElementTypes.Require<T>($"{GetType().Name.Split('`')[0]}<{typeof(T).Name}>");

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public virtual IReadOnlyList<Parameter<T>> Parameters => Array.Empty<Parameter<T>>();

    /// <summary>
    /// True in training (the default), false in evaluation; set by the network (<see cref="Sequential{T}.Training"/>).
    /// Only layers whose forward depends on it (Dropout, BatchNorm) read it.
    /// </summary>
    public bool Training { get; set; } = true;

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
    public abstract LayerDescription Describe();

    /// <summary>
    /// A deep copy built by <see cref="LayerRegistry.Create{T}"/> from <see cref="Describe"/>, with this layer's parameter
    /// values and gradients copied in, and for an <see cref="IStatefulLayer{T}"/> its state. Override it to carry state
    /// the description and <see cref="IStatefulLayer{T}.State"/> do not hold.
    /// </summary>
    /// <returns>The copy.</returns>
    /// <exception cref="NotSupportedException">
    /// The type is not registered, its factory returned null, this layer or another kind of layer, or the copy's
    /// parameters or state differ from this layer's.
    /// </exception>
    public virtual ILayer<T> Clone()
    {
        var description = Describe();
        ILayer<T> copy;
        try
        {
            copy = LayerRegistry.Create<T>(description);
        }
        catch (InvalidOperationException e)
        {
            throw new NotSupportedException($"{Name}: {e.Message}", e);
        }

        if (ReferenceEquals(copy, this) || copy.GetType() != GetType())
        {
            throw new NotSupportedException(
                $"{Name}: the factory of '{description.Type}' returned {(ReferenceEquals(copy, this) ? "this layer" : $"a {LayerRegistry.TypeName(copy.GetType())}")}, not a new {LayerRegistry.TypeName(GetType())}.");
        }

        var from = Parameters;
        var to = copy.Parameters;
        if (to.Count != from.Count)
        {
            throw new NotSupportedException($"{Name}: the layer built from {description} has {to.Count} parameters, this one {from.Count}.");
        }

        for (int p = 0; p < from.Count; p++)
        {
            if (!to[p].Value.HasShape(from[p].Value.Shape))
            {
                throw new NotSupportedException($"{Name}: parameter '{from[p].Name}' is {from[p].Value.ShapeString}, the copy's {to[p].Value.ShapeString}.");
            }

            to[p].Value.CopyFrom(from[p].Value);
            to[p].Gradient.CopyFrom(from[p].Gradient);
        }

        if (this is IStatefulLayer<T> stateful) CopyState(stateful, copy, description);
        return copy;
    }

    /// <summary>Copies <paramref name="from"/>'s state into <paramref name="copy"/>, which must hold state of the same names and shapes.</summary>
    private void CopyState(IStatefulLayer<T> from, ILayer<T> copy, LayerDescription description)
    {
        var source = from.State;
        var target = (copy as IStatefulLayer<T>)?.State ?? [];
        if (target.Count != source.Count)
        {
            throw new NotSupportedException($"{Name}: the layer built from {description} has {target.Count} state tensors, this one {source.Count}.");
        }

        for (int s = 0; s < source.Count; s++)
        {
            if (target[s].Name != source[s].Name || !target[s].Value.HasShape(source[s].Value.Shape))
            {
                throw new NotSupportedException(
                    $"{Name}: state '{source[s].Name}' is {source[s].Value.ShapeString}, the copy's is '{target[s].Name}' {target[s].Value.ShapeString}.");
            }

            target[s].Value.CopyFrom(source[s].Value);
        }
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
    private protected void RequireImage(ReadOnlySpan<int> shape, int channels, int minH = 1, int minW = 1)
    {
        if (shape.Length != 4 || shape[3] != channels || shape[1] < minH || shape[2] < minW)
        {
            throw new ArgumentException(
                $"{Name}: expected input (N, H, W, {channels}) in NHWC with H ≥ {minH} and W ≥ {minW}, got {Tensor<T>.ShapeToString(shape)}.");
        }
    }
}
