using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// Batch normalisation over NHWC images, per channel over (N, H, W): PyTorch 1.13's <c>nn.BatchNorm2d</c> with the
/// channels last. The formulas, the running statistics and the training/evaluation switch are <see cref="BatchNorm{T}"/>'s.
/// <code>
/// input  x : (N, H, W, C), N·H·W ≥ 2 in training      output y : (N, H, W, C)
/// weight γ : (C) = 1   bias β : (C) = 0   running_mean : (C) = 0   running_var : (C) = 1
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class BatchNorm2d<T> : BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with γ = 1, β = 0, running_mean = 0 and running_var = 1.</summary>
    /// <param name="channels">C, the image's channels (≥ 1).</param>
    /// <param name="eps">ε added to the variance (default 1e-5; positive and finite).</param>
    /// <param name="momentum">The newest batch's weight in the running statistics (default 0.1; from 0 to 1).</param>
    /// <param name="affine">Whether the layer learns γ and β (default true); without, y = x̂.</param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="channels"/> is below 1, <paramref name="eps"/> is not positive and finite, or
    /// <paramref name="momentum"/> is outside [0, 1] or NaN.
    /// </exception>
    public BatchNorm2d(int channels, double eps = 1e-5, double momentum = 0.1, bool affine = true)
        : base(channels, eps, momentum, affine)
    {
    }

    /// <inheritdoc />
    private protected override string Kind => "BatchNorm2d";

    /// <inheritdoc />
    private protected override string ChannelsSetting => "channels";

    /// <summary>The layer a <see cref="BatchNorm{T}.Describe"/> result stands for (statistics and weights are overwritten by loading or cloning).</summary>
    internal static BatchNorm2d<T> FromDescription(LayerDescription d)
    {
        var (eps, momentum, affine) = ReadSettings(d);
        return new BatchNorm2d<T>(d.GetInt("channels", 1), eps, momentum, affine);
    }

    /// <inheritdoc />
    private protected override void RequireInput(ReadOnlySpan<int> shape) => RequireImage(shape, Channels);
}
