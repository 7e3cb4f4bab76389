using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// A named tensor a layer keeps and updates by itself, which is not trained: BatchNorm's running mean and variance
/// (PyTorch's buffers, Keras's non-trainable weights). It has no gradient, so no optimizer can take it; a model file,
/// a checkpoint and <see cref="ILayer{T}.Clone"/> carry it with the layer's parameters.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class StateTensor<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates a zero-filled state tensor of the given shape.</summary>
    /// <param name="name">A name unique among its layer's parameters and state, e.g. "running_mean".</param>
    /// <param name="shape">The tensor's dimensions.</param>
    public StateTensor(string name, params int[] shape)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Value = new Tensor<T>(shape);
    }

    /// <summary>The tensor's name within its layer ("running_mean", "running_var").</summary>
    public string Name { get; }

    /// <summary>The current value.</summary>
    public Tensor<T> Value { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Name}{Value.ShapeString}";
}

/// <summary>
/// A layer with non-trainable <see cref="State"/> besides its <see cref="ILayer{T}.Parameters"/>. The network lists it
/// in <see cref="Sequential{T}.State"/> and counts it as "Non-trainable params" in <see cref="Sequential{T}.Summary"/>;
/// model files store it after the layer's parameters; <see cref="Layer{T}.Clone"/> copies it. Optimizers never see it:
/// they are given <see cref="Sequential{T}.Parameters"/>, which holds trainable parameters only.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public interface IStatefulLayer<T> : ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The non-trainable tensors, in a fixed order (the order a model file stores them in).</summary>
    IReadOnlyList<StateTensor<T>> State { get; }
}
