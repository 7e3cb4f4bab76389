using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// A network that runs its layers in order: forward from first to last, backward from last to first.
/// It owns the layers and lists all their parameters.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Sequential<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ILayer<T>[] _layers;
    private readonly Parameter<T>[] _parameters;

    /// <summary>Creates a network from layers applied in the given order.</summary>
    /// <param name="layers">At least one layer.</param>
    /// <exception cref="ArgumentException">No layers were given, or one is null.</exception>
    public Sequential(params ILayer<T>[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0) throw new ArgumentException("A network needs at least one layer.", nameof(layers));
        if (layers.Any(l => l is null)) throw new ArgumentException("A layer is null.", nameof(layers));
        _layers = (ILayer<T>[])layers.Clone();
        _parameters = _layers.SelectMany(l => l.Parameters).ToArray();
        GemmProvider = GemmProvider.Default;
    }

    /// <summary>
    /// The matrix multiply of this network: setting it sets it on every layer that multiplies matrices (Conv, Linear).
    /// It belongs to this network alone (copies made for threads, replicas and clones carry it), so two networks in one
    /// process never change each other's arithmetic. Default <see cref="GemmProvider.Default"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException">The value is null.</exception>
    public GemmProvider GemmProvider
    {
        get;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            field = value;
            foreach (var layer in _layers)
            {
                if (layer is IUsesGemm user) user.GemmProvider = value;
            }
        }
    }

    /// <summary>The layers, first to last.</summary>
    public IReadOnlyList<ILayer<T>> Layers => _layers;

    /// <summary>Every trainable parameter, layer by layer, in order.</summary>
    public IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>The total number of trainable scalars.</summary>
    public int ParameterCount => _parameters.Sum(p => p.Value.Length);

    /// <summary>Runs every layer forward.</summary>
    /// <param name="input">Input batch, the first layer's expected shape (for LeNet: (N, 28, 28, 1)).</param>
    /// <returns>The last layer's output (a buffer owned by that layer).</returns>
    public Tensor<T> Forward(Tensor<T> input)
    {
        var x = input;
        foreach (var layer in _layers) x = layer.Forward(x);
        return x;
    }

    /// <summary>Back-propagates from the output gradient through every layer, adding into parameter gradients.</summary>
    /// <param name="outputGradient">∂loss/∂output of the last forward.</param>
    /// <returns>∂loss/∂input.</returns>
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        var g = outputGradient;
        for (int i = _layers.Length - 1; i >= 0; i--) g = _layers[i].Backward(g);
        return g;
    }

    /// <summary>Sets every parameter gradient to zero.</summary>
    public void ZeroGradients()
    {
        foreach (var p in _parameters) p.ZeroGradient();
    }

    /// <summary>The shape after each layer for an input of the given shape, e.g. to print a summary.</summary>
    /// <param name="inputShape">Input dimensions, batch first.</param>
    /// <returns>One shape per layer.</returns>
    public IReadOnlyList<int[]> OutputShapes(ReadOnlySpan<int> inputShape)
    {
        var shapes = new List<int[]>(_layers.Length);
        int[] s = inputShape.ToArray();
        foreach (var layer in _layers)
        {
            s = layer.OutputShape(s);
            shapes.Add(s);
        }

        return shapes;
    }
}

/// <summary>A layer that multiplies matrices through a <see cref="Tensors.GemmProvider"/> of its own.</summary>
internal interface IUsesGemm
{
    GemmProvider GemmProvider { get; set; }
}
