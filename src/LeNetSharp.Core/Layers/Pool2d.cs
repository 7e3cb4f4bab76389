using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// What <see cref="MaxPool2d{T}"/> and <see cref="AvgPool2d{T}"/> share: a square window, its stride and padding, the
/// output size PyTorch gives (floor), the checks, the name and the description. Each subclass adds its forward and
/// backward.
/// <code>
/// input x : (N, H, W, C)   output y : (N, OH, OW, C),  OH = (H + 2·padding − kernel) / stride + 1 (floor), likewise OW
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public abstract class Pool2d<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly string _type;
    private readonly string _name;

    /// <summary>Checks and keeps the settings.</summary>
    /// <param name="type">The registered type name, e.g. "MaxPool2d".</param>
    /// <param name="kernel">The window's height and width (≥ 1).</param>
    /// <param name="stride">Step between windows (≥ 1); null for <paramref name="kernel"/>.</param>
    /// <param name="padding">Rows and columns added on every side, from 0 to kernel/2.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range; the message names it.</exception>
    private protected Pool2d(string type, int kernel, int? stride, int padding)
    {
        int s = stride ?? kernel;
        PoolWindows.CheckSettings(type, kernel, s, padding);
        _type = type;
        Kernel = kernel;
        Stride = s;
        Padding = padding;
        _name = $"{type} {kernel}x{kernel} stride {s} pad {padding}";
    }

    /// <summary>The window's height and width.</summary>
    public int Kernel { get; }

    /// <summary>Step between windows.</summary>
    public int Stride { get; }

    /// <summary>Padding on every side (what it holds is the subclass's: −∞ for max pooling, zeros counted in the average for average pooling).</summary>
    public int Padding { get; }

    /// <inheritdoc />
    public override string Name => _name;

    /// <summary>(N, OH, OW, C) for an input (N, H, W, C).</summary>
    /// <param name="inputShape">(N, H, W, C), at least one kernel high and wide once padded.</param>
    /// <returns>The output's shape.</returns>
    /// <exception cref="ArgumentException">The input is not (N, H, W, C), or the pool is larger than the padded input; the message names both.</exception>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        var g = Windows(inputShape);
        return [g.N, g.OH, g.OW, g.C];
    }

    /// <summary>The type name with its settings "kernel", "stride" and "padding".</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new(_type, ("kernel", Kernel), ("stride", Stride), ("padding", Padding));

    /// <summary>The windows over an input of <paramref name="shape"/>; throws, naming both, when the pool does not fit.</summary>
    private protected PoolWindows Windows(ReadOnlySpan<int> shape) => PoolWindows.For<T>(_name, shape, Kernel, Stride, Padding);
}
