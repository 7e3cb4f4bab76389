using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Data;

/// <summary>
/// Labelled images, NHWC, kept either as bytes (0–255, one per pixel and channel), scaled to [0, 1] only when a batch is
/// filled, so 60,000 MNIST images take 47 MB rather than 188 MB; or as floats used as given (e.g. pixels already
/// scaled or processed elsewhere). Optionally normalised (<see cref="Normalize"/>): every value v in [0, 1] becomes
/// (v − mean) / standardDeviation as the batch is filled, with no copy of the data and no allocation.
/// <see cref="Take"/>, <see cref="Skip"/>, <see cref="Split"/> and <see cref="Normalize"/> give views that share the
/// pixel and label arrays (a split keeps one index per image, 4 bytes against MNIST's 784 per image). Classes may be
/// named (<see cref="ClassNames"/>, e.g. the folder names of an image folder); views keep the names.
/// </summary>
public sealed class ImageDataset
{
    private readonly byte[]? _pixels;
    private readonly float[]? _floatPixels;
    private readonly byte[] _labels;

    // A view: image i is stored image _map[_start + i], or _start + i when there is no map.
    private readonly int[]? _map;
    private readonly int _start;
    private readonly int _count;

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
        _count = labels.Length;
    }

    /// <summary>
    /// A view of <paramref name="parent"/>'s arrays (already checked): <paramref name="count"/> images from
    /// <paramref name="start"/> of <paramref name="map"/>, or of the stored images when it is null; with
    /// <paramref name="classNames"/> (checked, or null).
    /// </summary>
    private ImageDataset(ImageDataset parent, int[]? map, int start, int count, float mean, float standardDeviation, IReadOnlyList<string>? classNames)
    {
        _pixels = parent._pixels;
        _floatPixels = parent._floatPixels;
        _labels = parent._labels;
        _map = map;
        _start = start;
        _count = count;
        Height = parent.Height;
        Width = parent.Width;
        Channels = parent.Channels;
        Classes = parent.Classes;
        Mean = mean;
        StandardDeviation = standardDeviation;
        ClassNames = classNames;
    }

    /// <summary>Number of images.</summary>
    public int Count => _count;

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Channels per pixel.</summary>
    public int Channels { get; }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }

    /// <summary>
    /// The name of each class, by label (name i for label i), e.g. the sub-folder names of an image folder; null when
    /// the classes are only numbered (MNIST's digits). Set with <see cref="WithClassNames"/>; <see cref="Take"/>,
    /// <see cref="Skip"/>, <see cref="Split"/> and <see cref="Normalize"/> keep them.
    /// </summary>
    public IReadOnlyList<string>? ClassNames { get; }

    /// <summary>
    /// The same images and labels (shared, not copied) with names for the classes, or with none.
    /// </summary>
    /// <param name="classNames">
    /// <see cref="Classes"/> names, name i for label i: each 1 to 255 UTF-8 bytes, not blank, without control characters,
    /// all different; or null to drop the names. The list is copied.
    /// </param>
    /// <returns>A dataset sharing this one's arrays; this one is unchanged.</returns>
    /// <exception cref="ArgumentException">The count differs from <see cref="Classes"/>, or a name breaks a rule above.</exception>
    public ImageDataset WithClassNames(IReadOnlyList<string>? classNames)
    {
        var names = classNames is null ? null : Data.ClassNames.Checked(classNames, nameof(classNames));
        if (names is not null && names.Count != Classes)
        {
            throw new ArgumentException($"The dataset has {Classes} classes, got {names.Count} class names.", nameof(classNames));
        }

        return new ImageDataset(this, _map, _start, _count, Mean, StandardDeviation, names);
    }

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
    /// <exception cref="ArgumentOutOfRangeException">The index is negative or not below <see cref="Count"/>.</exception>
    public int Label(int index) => _labels[Stored(index)];

    /// <summary>The raw pixels of image <paramref name="index"/>, (H, W, C) order, not scaled or normalised.</summary>
    /// <param name="index">0-based image index.</param>
    /// <exception cref="InvalidOperationException">The dataset holds float pixels (see <see cref="FloatPixels"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The index is negative or not below <see cref="Count"/>.</exception>
    public ReadOnlySpan<byte> Pixels(int index) => (_pixels ?? throw new InvalidOperationException(
        "This dataset holds float pixels: read them with FloatPixels.")).AsSpan(Stored(index) * ValuesPerImage, ValuesPerImage);

    /// <summary>The pixels of image <paramref name="index"/> of a float dataset, (H, W, C) order, as given (not normalised).</summary>
    /// <param name="index">0-based image index.</param>
    /// <exception cref="InvalidOperationException">The dataset holds bytes (see <see cref="Pixels"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The index is negative or not below <see cref="Count"/>.</exception>
    public ReadOnlySpan<float> FloatPixels(int index) => (_floatPixels ?? throw new InvalidOperationException(
        "This dataset holds byte pixels: read them with Pixels.")).AsSpan(Stored(index) * ValuesPerImage, ValuesPerImage);

    /// <summary>Where image <paramref name="index"/> of this dataset (or view) is stored in the shared arrays.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The index is negative or not below <see cref="Count"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Stored(int index)
    {
        if ((uint)index >= (uint)_count) ThrowIndex(index);
        return _map is null ? _start + index : _map[_start + index];
    }

    private void ThrowIndex(int index) =>
        throw new ArgumentOutOfRangeException(nameof(index), index, $"Image index {index} is outside the dataset's {_count:N0} images.");

    /// <summary>
    /// The first <paramref name="count"/> images and labels, as Keras's <c>x[:count]</c>: a view sharing this dataset's
    /// arrays (nothing is copied, so the view keeps them alive) with the same normalisation.
    /// </summary>
    /// <param name="count">How many to keep (≥ 1); clipped to <see cref="Count"/>.</param>
    /// <returns>The view, or this dataset when nothing is cut.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is below 1.</exception>
    public ImageDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count >= Count) return this;
        return new ImageDataset(this, _map, _start, count, Mean, StandardDeviation, ClassNames);
    }

    /// <summary>
    /// Every image but the first <paramref name="count"/>, as Keras's <c>x[count:]</c>: a view sharing this dataset's
    /// arrays with the same normalisation. <c>Take(n)</c> and <c>Skip(n)</c> are disjoint and together the whole set.
    /// </summary>
    /// <param name="count">How many to leave out, from 0 (this dataset is returned) to <see cref="Count"/> − 1.</param>
    /// <returns>The view, or this dataset when <paramref name="count"/> is 0.</returns>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="count"/> is negative, or would leave no image (an empty dataset is almost always a mistake, and
    /// <see cref="Take"/> refuses one too).
    /// </exception>
    public ImageDataset Skip(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count >= Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Skipping {count:N0} of {Count:N0} images would leave none.");
        }

        if (count == 0) return this;
        return new ImageDataset(this, _map, _start + count, Count - count, Mean, StandardDeviation, ClassNames);
    }

    /// <summary>
    /// Splits the images at random into a training and a validation part, as scikit-learn's <c>train_test_split</c>:
    /// round(<paramref name="fraction"/>·<see cref="Count"/>) images, drawn by a Fisher–Yates shuffle seeded with
    /// <paramref name="seed"/> alone (the same on every machine and run), go to validation, the rest to training. Each
    /// part keeps its images in this dataset's order and shares its arrays (only an index per image is allocated) and
    /// its normalisation. Every image is in exactly one part.
    /// </summary>
    /// <example>
    /// <code>
    /// var (train, validation) = Mnist.Load(dir, MnistSplit.Train).Split(0.1, seed: 1); // 54,000 and 6,000 images
    /// </code>
    /// </example>
    /// <param name="fraction">The share of images for validation, strictly between 0 and 1.</param>
    /// <param name="seed">Seed of the draw.</param>
    /// <returns>The training part and the validation part.</returns>
    /// <exception cref="ArgumentOutOfRangeException">
    /// <paramref name="fraction"/> is not strictly between 0 and 1 (or NaN), or would leave one part empty.
    /// </exception>
    public (ImageDataset Train, ImageDataset Validation) Split(double fraction, int seed)
    {
        if (!(fraction > 0 && fraction < 1)) throw new ArgumentOutOfRangeException(nameof(fraction), fraction, "Must be strictly between 0 and 1.");
        int validation = (int)Math.Round(Count * fraction, MidpointRounding.AwayFromZero);
        if (validation < 1 || validation > Count - 1)
        {
            throw new ArgumentOutOfRangeException(nameof(fraction), fraction,
                $"A fraction {fraction} of {Count:N0} images leaves no image for {(validation < 1 ? "validation" : "training")}.");
        }

        var order = new int[Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var random = new SplitMix64((ulong)(uint)seed);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = random.Below(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }

        // order[..validation] are the validation images; each part is put back in this dataset's order.
        int train = Count - validation;
        Array.Sort(order, 0, validation);
        Array.Sort(order, validation, train);
        var map = new int[Count];
        for (int i = 0; i < train; i++) map[i] = Stored(order[validation + i]);
        for (int i = 0; i < validation; i++) map[train + i] = Stored(order[i]);
        return (new ImageDataset(this, map, 0, train, Mean, StandardDeviation, ClassNames), new ImageDataset(this, map, train, validation, Mean, StandardDeviation, ClassNames));
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
        long n = (long)Count * ValuesPerImage;
        if (_pixels is not null)
        {
            Span<long> histogram = stackalloc long[256];
            if (_map is null)
            {
                foreach (byte b in _pixels.AsSpan(_start * ValuesPerImage, Count * ValuesPerImage)) histogram[b]++;
            }
            else
            {
                for (int i = 0; i < Count; i++)
                    foreach (byte b in Pixels(i)) histogram[b]++;
            }

            for (int v = 0; v < 256; v++)
            {
                double x = v / 255.0;
                sum += histogram[v] * x;
                sumSquares += histogram[v] * x * x;
            }
        }
        else
        {
            for (int i = 0; i < Count; i++)
            {
                foreach (float v in FloatPixels(i))
                {
                    sum += v;
                    sumSquares += (double)v * v;
                }
            }
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

        return new ImageDataset(this, _map, _start, _count, mean, standardDeviation, ClassNames);
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
    /// <exception cref="ArgumentOutOfRangeException">An index is negative or not below <see cref="Count"/>.</exception>
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
            int stored = Stored(indices[i]);
            var destination = x.Slice(i * size, size);
            if (_pixels is not null)
            {
                VectorOps.ScaleBytes(_pixels.AsSpan(stored * size, size), destination, scale);
                if (normalised) VectorOps.AddConstant(destination, offset);
            }
            else
            {
                var source = _floatPixels.AsSpan(stored * size, size);
                for (int j = 0; j < size; j++) destination[j] = T.CreateTruncating(source[j]) * scale + offset;
            }

            labels[i] = _labels[stored];
        }
    }
}
