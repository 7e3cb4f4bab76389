using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Batch normalisation over (N, F), per feature over the batch: PyTorch 1.13's <c>nn.BatchNorm1d</c> on 2-D input.
/// The formulas, the running statistics and the training/evaluation switch are <see cref="BatchNorm{T}"/>'s.
/// <code>
/// input  x : (N, F), N ≥ 2 in training      output y : (N, F)
/// weight γ : (F) = 1   bias β : (F) = 0   running_mean : (F) = 0   running_var : (F) = 1
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class BatchNorm1d<T> : BatchNorm<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates the layer with γ = 1, β = 0, running_mean = 0 and running_var = 1.</summary>
    /// <param name="features">F, the features per example (≥ 1), e.g. a <see cref="Linear{T}"/> layer's outputs.</param>
    /// <param name="eps">ε added to the variance (default 1e-5; positive and finite).</param>
    /// <param name="momentum">The newest batch's weight in the running statistics (default 0.1; from 0 to 1).</param>
    /// <param name="affine">Whether the layer learns γ and β (default true); without, y = x̂.</param>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="features"/> is below 1, <paramref name="eps"/> is not positive and finite, or
    /// <paramref name="momentum"/> is outside [0, 1] or NaN.
    /// </exception>
    public BatchNorm1d(int features, double eps = 1e-5, double momentum = 0.1, bool affine = true)
        : base(CheckedFeatures(features), eps, momentum, affine)
    {
    }

    /// <inheritdoc />
    private protected override string Kind => "BatchNorm1d";

    /// <inheritdoc />
    private protected override string ChannelsSetting => "features";

    /// <summary>The layer a <see cref="BatchNorm{T}.Describe"/> result stands for (statistics and weights are overwritten by loading or cloning).</summary>
    internal static BatchNorm1d<T> FromDescription(LayerDescription d)
    {
        var (eps, momentum, affine) = ReadSettings(d);
        return new BatchNorm1d<T>(d.GetInt("features", 1), eps, momentum, affine);
    }

    /// <inheritdoc />
    private protected override void RequireInput(ReadOnlySpan<int> shape)
    {
        if (shape.Length != 2 || shape[1] != Channels)
        {
            throw new ArgumentException($"{Name}: expected input (N, {Channels}), got {Tensor<T>.ShapeToString(shape)}.");
        }
    }

    /// <summary><paramref name="features"/>, refused under its own name when below 1.</summary>
    private static int CheckedFeatures(int features)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        return features;
    }
}
