using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// A small modern CNN built from batch normalisation, max pooling and dropout, for images the size of MNIST's; the
/// network of the trainer's <c>--net modern</c>. For 28x28 grey images and 10 classes:
/// <code>
/// (N,28,28,1)  Conv 5x5 1→32 pad 2  → (N,28,28,32) BatchNorm2d → Relu → MaxPool2x2 → (N,14,14,32)
///              Conv 3x3 32→64 pad 1 → (N,14,14,64) BatchNorm2d → Relu → MaxPool2x2 → (N,7,7,64)
///              Conv 3x3 64→64 pad 1 → (N,7,7,64)   BatchNorm2d → Relu
///              Flatten → (N,3136) Dropout p 0.3 → Linear 3136→10 → logits (N,10)
/// </code>
/// Parameters: 832 + 64 + 18,496 + 128 + 36,928 + 128 + 31,370 = 87,946 trainable, and 320 running statistics. About
/// 6.1 million multiply-adds an image forward (the 3x3 convolutions take 89 %): seventeen times LeNet's parameters
/// and twenty-five times its work.
/// </summary>
public static class ModernCnn
{
    /// <summary>The dropout probability in front of the classifier.</summary>
    public const double DropoutProbability = 0.3;

    /// <summary>
    /// Builds the network for <paramref name="height"/> x <paramref name="width"/> x <paramref name="channels"/> images
    /// and <paramref name="classes"/> classes, its weights drawn from a generator seeded with <paramref name="seed"/>
    /// (He-scaled uniform, as <see cref="Conv{T}"/> and <see cref="Linear{T}"/> draw them; batch norms start at γ = 1,
    /// β = 0). The dropout layer is seeded with <paramref name="seed"/> too.
    /// </summary>
    /// <param name="seed">Seed of the weights and of the dropout masks.</param>
    /// <param name="height">Image height, at least 4 (default 28); each pooling halves it, rounding down.</param>
    /// <param name="width">Image width, at least 4 (default 28).</param>
    /// <param name="channels">Image channels, 1 to 64 (default 1: grey).</param>
    /// <param name="classes">Number of classes, 2 to 10,000 (default 10).</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new untrained network in training mode.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of its range.</exception>
    public static Sequential<T> Create<T>(int seed, int height = 28, int width = 28, int channels = 1, int classes = 10)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 4);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 4);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(channels, 64);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(classes, 10_000);
        var random = new Random(seed);
        return new Sequential<T>(
            new Conv<T>(channels, 32, 5, 5, random, padding: 2) { ComputeInputGradient = false },
            new BatchNorm2d<T>(32),
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Conv<T>(32, 64, 3, 3, random, padding: 1),
            new BatchNorm2d<T>(64),
            new Relu<T>(),
            new MaxPool2x2<T>(),
            new Conv<T>(64, 64, 3, 3, random, padding: 1),
            new BatchNorm2d<T>(64),
            new Relu<T>(),
            new Flatten<T>(),
            new Dropout<T>(DropoutProbability, seed),
            new Linear<T>(height / 4 * (width / 4) * 64, classes, random));
    }
}
