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

    /// <summary>
    /// The same shape of network for other images and classes: Conv 5x5 C→6 → Relu → MaxPool2x2 → Conv 5x5 6→16 → Relu
    /// → MaxPool2x2 → Flatten → Linear (16·h·w)→classes, where h = ⌊(⌊(height − 4) / 2⌋ − 4) / 2⌋ (w likewise; a pool
    /// drops an odd last row or column). For 28x28x1 images and 10 classes it is <see cref="Create{T}(int)"/>'s network,
    /// weight for weight.
    /// </summary>
    /// <param name="seed">Seed of the weight initialisation.</param>
    /// <param name="height">Image height: at least 16 (the smallest the two 5x5 convolutions and pools leave a pixel of).</param>
    /// <param name="width">Image width: at least 16.</param>
    /// <param name="channels">Channels per pixel (1 grey, 3 colour), 1 to 65,536.</param>
    /// <param name="classes">Number of classes, 2 to 65,536.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new untrained network for (N, height, width, channels) images, whose backward skips ∂loss/∂image.</returns>
    /// <exception cref="ArgumentOutOfRangeException">
    /// A side is below 16, the last layer would take more than 65,536 features (a side above about 268: give a network of
    /// your own, with more pooling), or channels or classes are out of range.
    /// </exception>
    public static Sequential<T> ForImages<T>(int seed, int height, int width, int channels, int classes)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int Smallest = 16, Max = Persistence.ModelFile.MaxDimension;
        if (height < Smallest || width < Smallest)
        {
            throw new ArgumentOutOfRangeException(height < Smallest ? nameof(height) : nameof(width), height < Smallest ? height : width,
                $"LeNet takes images of at least {Smallest}x{Smallest} pixels (two 5x5 convolutions, each followed by a 2x2 pool), got {height}x{width}.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(channels, Max);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(classes, Max);
        static long Side(int side) => ((side - 4) / 2 - 4) / 2;
        long features = 16 * Side(height) * Side(width);
        if (features > Max)
        {
            throw new ArgumentOutOfRangeException(nameof(height), height,
                $"LeNet on {height}x{width} images would end in a Linear layer of {features:N0} inputs, above the {Max:N0} a model file stores: use smaller images or a network with more pooling.");
        }

        return Build<T>(new Random(seed), channels, (int)features, classes, computeInputGradient: false);
    }

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
        return Build<T>(random, 1, 4 * 4 * 16, Classes, computeInputGradient);
    }

    /// <summary>The layers, weights drawn from <paramref name="random"/> in layer order.</summary>
    private static Sequential<T> Build<T>(Random random, int channels, int features, int classes, bool computeInputGradient)
        where T : unmanaged, IFloatingPointIeee754<T> => new(
            new Conv<T>(channels, 6, 5, 5, random) { ComputeInputGradient = computeInputGradient },
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Conv<T>(6, 16, 5, 5, random),
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Flatten<T>(),
            new Linear<T>(features, classes, random));
}
