using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>Checks, before any work, that a network can take images of a given shape and says what it returns.</summary>
internal static class NetworkChecks
{
    /// <summary>
    /// Throws unless <paramref name="network"/> takes (N, height, width, channels) images and returns (N, K) logits,
    /// with K = <paramref name="classes"/> when given. Returns K.
    /// </summary>
    /// <param name="network">The network.</param>
    /// <param name="height">Image height.</param>
    /// <param name="width">Image width.</param>
    /// <param name="channels">Channels per pixel.</param>
    /// <param name="classes">The dataset's class count, or null when there is no dataset.</param>
    /// <param name="what">What the images are, for the message (e.g. "the dataset").</param>
    /// <exception cref="ArgumentException">
    /// The message names the network's and the images' shapes or counts, or the layer at which one image would cost more
    /// than <see cref="NetworkLimits"/> allows (activations or multiply-adds).
    /// </exception>
    public static int RequireFit<T>(Sequential<T> network, int height, int width, int channels, int? classes, string what)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        string images = $"{what}'s images ({height}, {width}, {channels}) (H, W, C)";
        IReadOnlyList<int[]> shapes;
        try
        {
            shapes = network.OutputShapes([1, height, width, channels]);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"The network does not fit {images}: {e.Message}", e);
        }

        NetworkLimits.Check(network.Layers, [height, width, channels], problem => new ArgumentException($"The network is over the library's ceilings for {images}: {problem}"));
        int[] output = shapes[^1];
        if (output.Length != 2)
        {
            throw new ArgumentException(
                $"The network turns {images} into {Tensor<T>.ShapeToString(output)}, not (N, classes) logits: end it with Flatten and Linear.");
        }

        if (classes is int k && output[1] != k)
        {
            throw new ArgumentException($"The network has {output[1]} outputs but {what} has {k} classes.");
        }

        return output[1];
    }
}
