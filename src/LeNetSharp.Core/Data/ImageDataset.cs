using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Data;

/// <summary>
/// Labelled images kept as bytes (0–255), one byte per pixel and channel, NHWC; pixels are scaled to [0, 1]
/// only when a batch is filled, so 60,000 MNIST images take 47 MB rather than 188 MB.
/// </summary>
public sealed class ImageDataset
{
    private readonly byte[] _pixels;
    private readonly byte[] _labels;

    /// <summary>Wraps pixel and label arrays (no copy).</summary>
    /// <param name="pixels">count·height·width·channels bytes, image after image, each in (H, W, C) order.</param>
    /// <param name="labels">count class indices, each below <paramref name="classes"/>.</param>
    /// <param name="height">Image height (≥ 1).</param>
    /// <param name="width">Image width (≥ 1).</param>
    /// <param name="channels">Channels per pixel (≥ 1).</param>
    /// <param name="classes">Number of classes (≥ 2).</param>
    /// <exception cref="ArgumentException">The lengths disagree or a label is out of range.</exception>
    public ImageDataset(byte[] pixels, byte[] labels, int height, int width, int channels = 1, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        long imageSize = (long)height * width * channels;
        if (pixels.Length != labels.Length * imageSize)
        {
            throw new ArgumentException(
                $"{labels.Length} labels need {labels.Length * imageSize} pixel bytes for ({height}, {width}, {channels}) images, got {pixels.Length}.",
                nameof(pixels));
        }

        int bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0) throw new ArgumentException($"Label {labels[bad]} at index {bad} is not below {classes}.", nameof(labels));
        _pixels = pixels;
        _labels = labels;
        Height = height;
        Width = width;
        Channels = channels;
        Classes = classes;
    }

    /// <summary>Number of images.</summary>
    public int Count => _labels.Length;

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Channels per pixel.</summary>
    public int Channels { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>Bytes per image: Height·Width·Channels.</summary>
    public int ImageSize => Height * Width * Channels;

    /// <summary>The class of image <paramref name="index"/>.</summary>
    /// <param name="index">0-based image index.</param>
    public int Label(int index) => _labels[index];

    /// <summary>The raw pixels of image <paramref name="index"/>, (H, W, C) order.</summary>
    /// <param name="index">0-based image index.</param>
    public ReadOnlySpan<byte> Pixels(int index) => _pixels.AsSpan(index * ImageSize, ImageSize);

    /// <summary>A copy of the first <paramref name="count"/> images and labels.</summary>
    /// <param name="count">How many to keep; clipped to <see cref="Count"/>.</param>
    /// <returns>A new dataset, or this one when nothing is cut.</returns>
    public ImageDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count >= Count) return this;
        return new ImageDataset(_pixels.AsSpan(0, count * ImageSize).ToArray(), _labels[..count], Height, Width, Channels, Classes);
    }

    /// <summary>
    /// Copies the images at <paramref name="indices"/> into <paramref name="batch"/> (N, H, W, C) scaled to
    /// [0, 1], and their labels into <paramref name="labels"/>. Allocates nothing.
    /// </summary>
    /// <param name="indices">N image indices.</param>
    /// <param name="batch">Destination of shape (N, Height, Width, Channels).</param>
    /// <param name="labels">Destination of at least N labels.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">The batch tensor has the wrong shape.</exception>
    public void FillBatch<T>(ReadOnlySpan<int> indices, Tensor<T> batch, Span<int> labels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(batch);
        int n = indices.Length, size = ImageSize;
        if (batch.Rank != 4 || batch.Dim(0) != n || batch.Dim(1) != Height || batch.Dim(2) != Width || batch.Dim(3) != Channels)
        {
            throw new ArgumentException($"Batch tensor should be ({n}, {Height}, {Width}, {Channels}), got {batch.ShapeString}.", nameof(batch));
        }

        T scale = T.One / T.CreateChecked(255);
        Span<T> x = batch.Span;
        for (int i = 0; i < n; i++)
        {
            VectorOps.ScaleBytes(_pixels.AsSpan(indices[i] * size, size), x.Slice(i * size, size), scale);
            labels[i] = _labels[indices[i]];
        }
    }
}
