using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Data;

/// <summary>
/// Labelled images, NHWC, kept either as bytes (0–255, one per pixel and channel), scaled to [0, 1] only when a batch is
/// filled, so 60,000 MNIST images take 47 MB rather than 188 MB; or as floats used as given (e.g. pixels already
/// scaled or processed elsewhere). Optionally normalised (<see cref="Normalize"/>): every value v in [0, 1] becomes
/// (v − mean) / standardDeviation as the batch is filled, with no copy of the data and no allocation.
/// </summary>
public sealed class ImageDataset
{
    private readonly byte[]? _pixels;
    private readonly float[]? _floatPixels;
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
        : this(pixels, null, labels, height, width, channels, classes, 0f, 1f)
    {
    }

    /// <summary>
    /// A dataset of float pixels (wrapped, not copied), used as given: typically in [0, 1], or processed elsewhere. (A
    /// factory rather than a constructor so that <c>new ImageDataset([], [], …)</c> stays unambiguous.)
    /// </summary>
    /// <param name="pixels">count·height·width·channels finite values, image after image, each in (H, W, C) order.</param>
    /// <param name="labels">count class indices, each below <paramref name="classes"/>.</param>
    /// <param name="height">Image height (≥ 1).</param>
    /// <param name="width">Image width (≥ 1).</param>
    /// <param name="channels">Channels per pixel (≥ 1).</param>
    /// <param name="classes">Number of classes (≥ 2).</param>
    /// <returns>The dataset.</returns>
    /// <exception cref="ArgumentException">The lengths disagree, a label is out of range, or a value is NaN or infinite.</exception>
    public static ImageDataset FromFloats(float[] pixels, byte[] labels, int height, int width, int channels = 1, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        int bad = Array.FindIndex(pixels, v => !float.IsFinite(v));
        if (bad >= 0) throw new ArgumentException($"Pixel value {pixels[bad]} at index {bad} is not finite.", nameof(pixels));
        return new ImageDataset(null, pixels, labels, height, width, channels, classes, 0f, 1f);
    }

    private ImageDataset(byte[]? pixels, float[]? floatPixels, byte[] labels, int height, int width, int channels, int classes, float mean, float standardDeviation)
    {
        if (pixels is null) ArgumentNullException.ThrowIfNull(floatPixels, nameof(pixels));
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        long imageSize = (long)height * width * channels;
        long length = pixels?.LongLength ?? floatPixels!.LongLength;
        if (length != labels.Length * imageSize)
        {
            throw new ArgumentException(
                $"{labels.Length} labels need {labels.Length * imageSize} pixel values for ({height}, {width}, {channels}) images, got {length}.",
                nameof(pixels));
        }

        int bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0) throw new ArgumentException($"Label {labels[bad]} at index {bad} is not below {classes}.", nameof(labels));
        _pixels = pixels;
        _floatPixels = floatPixels;
        _labels = labels;
        Height = height;
        Width = width;
        Channels = channels;
        Classes = classes;
        Mean = mean;
        StandardDeviation = standardDeviation;
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

    /// <summary>Values per image: Height·Width·Channels (the length of <see cref="Pixels"/> and <see cref="FloatPixels"/>).</summary>
    public int ValuesPerImage => Height * Width * Channels;

    /// <summary>True when the pixels are floats (<see cref="FloatPixels"/>), false when bytes (<see cref="Pixels"/>).</summary>
    public bool HasFloatPixels => _floatPixels is not null;

    /// <summary>The mean subtracted from every scaled pixel value when a batch is filled (0 unless <see cref="Normalize"/>d).</summary>
    public float Mean { get; }

    /// <summary>The standard deviation every centred pixel value is divided by when a batch is filled (1 unless <see cref="Normalize"/>d).</summary>
    public float StandardDeviation { get; }

    /// <summary>The class of image <paramref name="index"/>.</summary>
    /// <param name="index">0-based image index.</param>
    public int Label(int index) => _labels[index];

    /// <summary>The raw pixels of image <paramref name="index"/>, (H, W, C) order, not scaled or normalised.</summary>
    /// <param name="index">0-based image index.</param>
    /// <exception cref="InvalidOperationException">The dataset holds float pixels (see <see cref="FloatPixels"/>).</exception>
    public ReadOnlySpan<byte> Pixels(int index) => (_pixels ?? throw new InvalidOperationException(
        "This dataset holds float pixels: read them with FloatPixels.")).AsSpan(index * ValuesPerImage, ValuesPerImage);

    /// <summary>The pixels of image <paramref name="index"/> of a float dataset, (H, W, C) order, as given (not normalised).</summary>
    /// <param name="index">0-based image index.</param>
    /// <exception cref="InvalidOperationException">The dataset holds bytes (see <see cref="Pixels"/>).</exception>
    public ReadOnlySpan<float> FloatPixels(int index) => (_floatPixels ?? throw new InvalidOperationException(
        "This dataset holds byte pixels: read them with Pixels.")).AsSpan(index * ValuesPerImage, ValuesPerImage);

    /// <summary>A copy of the first <paramref name="count"/> images and labels.</summary>
    /// <param name="count">How many to keep; clipped to <see cref="Count"/>.</param>
    /// <returns>A new dataset with the same normalisation, or this one when nothing is cut.</returns>
    public ImageDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count >= Count) return this;
        return new ImageDataset(
            _pixels?.AsSpan(0, count * ValuesPerImage).ToArray(), _floatPixels?.AsSpan(0, count * ValuesPerImage).ToArray(), _labels[..count],
            Height, Width, Channels, Classes, Mean, StandardDeviation);
    }

    /// <summary>
    /// The mean and (population) standard deviation of every pixel value of every image, as batches would hold them
    /// before normalisation (bytes scaled to [0, 1]; floats as given): the arguments for <see cref="Normalize"/>.
    /// Compute them on the training set and use the same values for the test set. For MNIST's training set:
    /// 0.1307 and 0.3081.
    /// </summary>
    /// <returns>The mean and standard deviation.</returns>
    public (float Mean, float StandardDeviation) PixelStatistics()
    {
        double sum = 0, sumSquares = 0;
        long n;
        if (_pixels is { } bytes)
        {
            Span<long> histogram = stackalloc long[256];
            foreach (byte b in bytes) histogram[b]++;
            for (int v = 0; v < 256; v++)
            {
                double x = v / 255.0;
                sum += histogram[v] * x;
                sumSquares += histogram[v] * x * x;
            }

            n = bytes.LongLength;
        }
        else
        {
            foreach (float v in _floatPixels!)
            {
                sum += v;
                sumSquares += (double)v * v;
            }

            n = _floatPixels.LongLength;
        }

        double mean = sum / n;
        return ((float)mean, (float)Math.Sqrt(Math.Max(0, sumSquares / n - mean * mean)));
    }

    /// <summary>
    /// The same images and labels (shared, not copied) with normalisation: each value v (bytes scaled to [0, 1], or
    /// floats as given) becomes (v − <paramref name="mean"/>) / <paramref name="standardDeviation"/> when a batch is
    /// filled. Centred inputs of unit spread let SGD take larger steps; a network trained on normalised data must be
    /// evaluated on data normalised with the same two values (those of the training set, see <see cref="PixelStatistics"/>).
    /// </summary>
    /// <param name="mean">Subtracted from every value.</param>
    /// <param name="standardDeviation">Divides every centred value; positive.</param>
    /// <returns>A dataset sharing this one's arrays; this one is unchanged.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The mean is not finite, or the deviation is not positive and finite.</exception>
    public ImageDataset Normalize(float mean, float standardDeviation)
    {
        if (!float.IsFinite(mean)) throw new ArgumentOutOfRangeException(nameof(mean), mean, "Must be finite.");
        if (!(standardDeviation > 0 && float.IsFinite(standardDeviation)))
        {
            throw new ArgumentOutOfRangeException(nameof(standardDeviation), standardDeviation, "Must be positive and finite.");
        }

        return new ImageDataset(_pixels, _floatPixels, _labels, Height, Width, Channels, Classes, mean, standardDeviation);
    }

    /// <summary>
    /// Copies the images at <paramref name="indices"/> into <paramref name="batch"/> (N, H, W, C) — bytes scaled to
    /// [0, 1], floats as given, then normalised when <see cref="Normalize"/> was used — and their labels into
    /// <paramref name="labels"/>. Allocates nothing.
    /// </summary>
    /// <param name="indices">N image indices.</param>
    /// <param name="batch">Destination of shape (N, Height, Width, Channels).</param>
    /// <param name="labels">Destination of at least N labels.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">The batch tensor has the wrong shape.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void FillBatch<T>(ReadOnlySpan<int> indices, Tensor<T> batch, Span<int> labels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(batch);
        int n = indices.Length, size = ValuesPerImage;
        if (batch.Rank != 4 || batch.Dim(0) != n || batch.Dim(1) != Height || batch.Dim(2) != Width || batch.Dim(3) != Channels)
        {
            throw new ArgumentException($"Batch tensor should be ({n}, {Height}, {Width}, {Channels}), got {batch.ShapeString}.", nameof(batch));
        }

        // v → (v·s − mean) / std = v·(s / std) − mean / std, with s = 1/255 for bytes (exactly the unnormalised
        // scale when mean = 0 and std = 1) and 1 for floats.
        bool normalised = Mean != 0 || StandardDeviation != 1;
        T stdev = T.CreateChecked(StandardDeviation), offset = -T.CreateChecked(Mean) / stdev;
        T scale = (_pixels is null ? T.One : T.One / T.CreateChecked(255)) / stdev;
        Span<T> x = batch.Span;
        for (int i = 0; i < n; i++)
        {
            var destination = x.Slice(i * size, size);
            if (_pixels is not null)
            {
                VectorOps.ScaleBytes(_pixels.AsSpan(indices[i] * size, size), destination, scale);
                if (normalised) VectorOps.AddConstant(destination, offset);
            }
            else
            {
                var source = _floatPixels.AsSpan(indices[i] * size, size);
                for (int j = 0; j < size; j++) destination[j] = T.CreateTruncating(source[j]) * scale + offset;
            }

            labels[i] = _labels[indices[i]];
        }
    }
}
