using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Data;

/// <summary>
/// Random affine distortions of training images, as Keras's <c>RandomTranslation</c>, <c>RandomRotation</c> and
/// <c>RandomZoom</c> layers: each image is shifted, turned about its centre and scaled by amounts drawn uniformly from
/// the ranges below, read back with bilinear sampling, and whatever comes from outside the image is 0 (the
/// background: the normalised value of 0 when the dataset is <see cref="ImageDataset.Normalize"/>d). The defaults are
/// the classic MNIST recipe: ±2 pixels, ±10° and 0.9–1.1. <see cref="FlipHorizontal"/> adds Keras's
/// <c>RandomFlip("horizontal")</c> for images whose mirror image is of the same class (clothes, objects; not digits).
/// <para>
/// Deterministic: the distortion of image i in epoch e is drawn from (<see cref="Seed"/>, e, i) alone, so the same
/// seed gives the same batches whatever the batch order, the batch size or the thread count, and a resumed run sees
/// the images it would have seen. Filling a batch allocates nothing.
/// </para>
/// </summary>
/// <example>
/// <code>
/// var options = new TrainingOptions { Augmentation = new ImageAugmentation() };        // the MNIST recipe
/// var shiftsOnly = new ImageAugmentation { MaxRotation = 0, MinScale = 1, MaxScale = 1 };
/// </code>
/// </example>
public sealed record ImageAugmentation
{
    /// <summary>The largest shift along each axis, in pixels (default 2): both shifts are drawn from [−MaxShift, MaxShift]; 0 for none.</summary>
    public double MaxShift { get; init; } = 2;

    /// <summary>The largest rotation, in degrees (default 10, at most 180): the angle is drawn from [−MaxRotation, MaxRotation]; 0 for none.</summary>
    public double MaxRotation { get; init; } = 10;

    /// <summary>The smallest scale factor (default 0.9): below 1 shrinks the digit.</summary>
    public double MinScale { get; init; } = 0.9;

    /// <summary>The largest scale factor (default 1.1); equal to <see cref="MinScale"/> for a fixed scale, both 1 for none.</summary>
    public double MaxScale { get; init; } = 1.1;

    /// <summary>
    /// Mirror each image left to right with probability ½ (default false), before the other distortions: for clothes,
    /// objects and photos, whose mirror image is of the same class; not for digits or letters.
    /// </summary>
    public bool FlipHorizontal { get; init; }

    /// <summary>Seed of the draws (default 1), independent of the shuffling seed.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Throws when a setting is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offending setting, with its value.</exception>
    public void Validate()
    {
        if (!(MaxShift >= 0 && double.IsFinite(MaxShift))) throw new ArgumentOutOfRangeException(nameof(MaxShift), MaxShift, "Must be finite and not negative.");
        if (!(MaxRotation >= 0 && MaxRotation <= 180)) throw new ArgumentOutOfRangeException(nameof(MaxRotation), MaxRotation, "Must be in [0, 180] degrees.");
        if (!(MinScale >= 0.01 && MinScale <= 100)) throw new ArgumentOutOfRangeException(nameof(MinScale), MinScale, "Must be in [0.01, 100].");
        if (!(MaxScale >= MinScale && MaxScale <= 100))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxScale), MaxScale, $"Must be in [MinScale ({MinScale}), 100].");
        }
    }

    /// <summary>
    /// Like <see cref="ImageDataset.FillBatch{T}"/>, with each image distorted as epoch <paramref name="epoch"/> of a
    /// training run distorts it: what the network is trained on (e.g. to look at it). Labels are those of the images.
    /// Allocates nothing.
    /// </summary>
    /// <param name="data">The images.</param>
    /// <param name="indices">N image indices.</param>
    /// <param name="epoch">The 0-based epoch whose draws to use.</param>
    /// <param name="batch">Destination of shape (N, Height, Width, Channels).</param>
    /// <param name="labels">Destination of at least N labels.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">The batch tensor has the wrong shape, or fewer than N labels fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range, or an index is outside the dataset.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void FillBatch<T>(ImageDataset data, ReadOnlySpan<int> indices, int epoch, Tensor<T> batch, Span<int> labels)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(batch);
        Validate();
        int n = indices.Length, size = data.ValuesPerImage;
        if (batch.Rank != 4 || batch.Dim(0) != n || batch.Dim(1) != data.Height || batch.Dim(2) != data.Width || batch.Dim(3) != data.Channels)
        {
            throw new ArgumentException($"Batch tensor should be ({n}, {data.Height}, {data.Width}, {data.Channels}), got {batch.ShapeString}.", nameof(batch));
        }

        if (labels.Length < n) throw new ArgumentException($"{n} labels do not fit in {labels.Length}.", nameof(labels));
        for (int i = 0; i < n; i++)
        {
            Warp(data, indices[i], Draw(epoch, indices[i]), batch.Span.Slice(i * size, size));
            labels[i] = data.Label(indices[i]);
        }
    }

    /// <summary>The distortion of image <paramref name="index"/> in epoch <paramref name="epoch"/>: four uniform draws from (Seed, epoch, index).</summary>
    internal Distortion Draw(int epoch, int index)
    {
        ulong key = SplitMix64.Mix((ulong)(uint)Seed << 32 | (uint)epoch) ^ (ulong)(uint)index * 0xd1b54a32d192ed03UL;
        var random = new SplitMix64(key);
        double shiftX = MaxShift * (2 * random.NextDouble() - 1);
        double shiftY = MaxShift * (2 * random.NextDouble() - 1);
        double degrees = MaxRotation * (2 * random.NextDouble() - 1);
        double scale = MinScale + (MaxScale - MinScale) * random.NextDouble();
        bool mirror = FlipHorizontal && random.NextDouble() < 0.5;
        return new Distortion(shiftX, shiftY, degrees, scale, mirror);
    }

    /// <summary>
    /// Writes image <paramref name="index"/> of <paramref name="data"/>, distorted by <paramref name="d"/>, into
    /// <paramref name="destination"/> (H, W, C), scaled and normalised as <see cref="ImageDataset.FillBatch{T}"/> does.
    /// The ink at (x, y), measured from the image centre ((W − 1)/2, (H − 1)/2), lands at Scale·R·(x, y) + (ShiftX, ShiftY),
    /// R turning counter-clockwise as displayed (y pointing down) by Degrees; so each output pixel reads the source at
    /// R⁻¹·((x, y) − shift) / Scale, bilinearly, 0 outside; mirrored first when <see cref="Distortion.Mirror"/>, so that
    /// the source column read is W − 1 − that x. The identity distortion gives FillBatch's values bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Warp<T>(ImageDataset data, int index, in Distortion d, Span<T> destination) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int height = data.Height, width = data.Width, channels = data.Channels;
        bool bytes = !data.HasFloatPixels;
        ReadOnlySpan<byte> sourceBytes = bytes ? data.Pixels(index) : default;
        ReadOnlySpan<float> sourceFloats = bytes ? default : data.FloatPixels(index);

        // The same scale and offset as ImageDataset.FillBatch, so the identity distortion gives its bits.
        bool addOffset = !bytes || data.Mean != 0 || data.StandardDeviation != 1; // FillBatch adds it to floats always, to bytes when normalised
        T stdev = T.CreateChecked(data.StandardDeviation), offset = -T.CreateChecked(data.Mean) / stdev;
        T scale = (bytes ? T.One / T.CreateChecked(255) : T.One) / stdev;

        // SinCosPi is exact at multiples of 90°, so a quarter turn moves pixels onto pixels.
        var (sin, cos) = double.SinCosPi(d.Degrees / 180);
        double inverse = 1 / d.Scale, cx = (width - 1) / 2.0, cy = (height - 1) / 2.0;
        for (int y = 0; y < height; y++)
        {
            double v = (y - cy - d.ShiftY) * inverse;
            for (int x = 0; x < width; x++)
            {
                double u = (x - cx - d.ShiftX) * inverse;
                double sx = cx + (u * cos - v * sin), sy = cy + (u * sin + v * cos);
                if (d.Mirror) sx = 2 * cx - sx;
                var pixel = destination.Slice((y * width + x) * channels, channels);
                if (!(sx > -1 && sx < width && sy > -1 && sy < height))
                {
                    // Every tap is outside: the background.
                    for (int c = 0; c < channels; c++) pixel[c] = addOffset ? T.Zero * scale + offset : T.Zero * scale;
                    continue;
                }

                double fx = Math.Floor(sx), fy = Math.Floor(sy);
                int x0 = (int)fx, y0 = (int)fy;
                double ax = sx - fx, ay = sy - fy;
                T w00 = T.CreateTruncating((1 - ax) * (1 - ay)), w01 = T.CreateTruncating(ax * (1 - ay));
                T w10 = T.CreateTruncating((1 - ax) * ay), w11 = T.CreateTruncating(ax * ay);
                bool left = x0 >= 0, right = x0 + 1 < width, top = y0 >= 0, bottom = y0 + 1 < height;
                int i00 = (y0 * width + x0) * channels, i01 = i00 + channels, i10 = i00 + width * channels, i11 = i10 + channels;
                for (int c = 0; c < channels; c++)
                {
                    T value = T.Zero;
                    if (top && left) value += w00 * (bytes ? T.CreateTruncating(sourceBytes[i00 + c]) : T.CreateTruncating(sourceFloats[i00 + c]));
                    if (top && right) value += w01 * (bytes ? T.CreateTruncating(sourceBytes[i01 + c]) : T.CreateTruncating(sourceFloats[i01 + c]));
                    if (bottom && left) value += w10 * (bytes ? T.CreateTruncating(sourceBytes[i10 + c]) : T.CreateTruncating(sourceFloats[i10 + c]));
                    if (bottom && right) value += w11 * (bytes ? T.CreateTruncating(sourceBytes[i11 + c]) : T.CreateTruncating(sourceFloats[i11 + c]));
                    pixel[c] = addOffset ? value * scale + offset : value * scale;
                }
            }
        }
    }

    /// <summary>One image's distortion.</summary>
    /// <param name="ShiftX">Pixels to the right.</param>
    /// <param name="ShiftY">Pixels down.</param>
    /// <param name="Degrees">Counter-clockwise as displayed.</param>
    /// <param name="Scale">Scale factor about the centre.</param>
    /// <param name="Mirror">Whether the image is mirrored left to right before the rest.</param>
    internal readonly record struct Distortion(double ShiftX, double ShiftY, double Degrees, double Scale, bool Mirror = false);
}
