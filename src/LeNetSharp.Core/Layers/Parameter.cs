using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// A trainable tensor and its gradient, which always have the same shape. Layers add into
/// <see cref="Gradient"/> during backward; an optimizer reads it, updates <see cref="Value"/> and clears it.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Parameter<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates a parameter with a zero value and zero gradient of the given shape.</summary>
    /// <param name="name">A name unique within its layer, e.g. "weight" or "bias".</param>
    /// <param name="shape">The tensor's dimensions.</param>
    public Parameter(string name, params int[] shape)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Value = new Tensor<T>(shape);
        Gradient = new Tensor<T>(shape);
    }

    /// <summary>The parameter's name within its layer ("weight", "bias").</summary>
    public string Name { get; }

    /// <summary>The current value.</summary>
    public Tensor<T> Value { get; }

    /// <summary>The accumulated gradient of the loss with respect to <see cref="Value"/>; same shape.</summary>
    public Tensor<T> Gradient { get; }

    /// <summary>Sets the gradient to zero.</summary>
    public void ZeroGradient() => Gradient.Clear();

    /// <inheritdoc />
    public override string ToString() => $"{Name}{Value.ShapeString}";
}
