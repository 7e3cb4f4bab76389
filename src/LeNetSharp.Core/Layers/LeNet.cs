using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// The tutorial's LeNet-style network for 28x28 grey images:
/// <code>
/// (N,28,28,1) Conv 5x5 1→6 → (N,24,24,6) Relu → MaxPool2x2 → (N,12,12,6)
///             Conv 5x5 6→16 → (N,8,8,16) Relu → MaxPool2x2 → (N,4,4,16)
///             Flatten → (N,256) Linear 256→10 → logits (N,10)
/// </code>
/// Parameters: 156 + 2,416 + 2,570 = 5,142 (see <see cref="Sequential{T}.ParameterCount"/>).
/// </summary>
public static class LeNet
{
    /// <summary>Image height and width the network expects.</summary>
    public const int ImageSize = 28;

    /// <summary>Number of classes (digits).</summary>
    public const int Classes = 10;

    /// <summary>Builds the network with weights drawn from a generator seeded with <paramref name="seed"/>.</summary>
    /// <param name="seed">Seed of the weight initialisation: the same seed gives the same weights.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new untrained network whose backward skips ∂loss/∂image (see the other overload).</returns>
    public static Sequential<T> Create<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T> => Create<T>(new Random(seed));

    /// <summary>Builds the network with weights drawn from <paramref name="random"/>.</summary>
    /// <param name="random">The source of initial weights.</param>
    /// <param name="computeInputGradient">
    /// Whether backward computes ∂loss/∂image (default false: training never needs it, and skipping it saves
    /// about an eighth of the work; see <see cref="Conv{T}.ComputeInputGradient"/>).
    /// </param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new untrained network.</returns>
    public static Sequential<T> Create<T>(Random random, bool computeInputGradient = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(random);
        return new Sequential<T>(
            new Conv<T>(1, 6, 5, 5, random) { ComputeInputGradient = computeInputGradient },
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Conv<T>(6, 16, 5, 5, random),
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Flatten<T>(),
            new Linear<T>(4 * 4 * 16, Classes, random));
    }
}
