using System.Numerics;
using System.Runtime.InteropServices;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Inference;

// The agreed API gives the byte and float overloads the same optional shape parameters (net.Predict(pixels) for a
// 28x28 digit); they differ in the pixel type, so no call is ambiguous.
#pragma warning disable RS0026

/// <summary>
/// Predictions from a trained network, as arrays the caller owns (unlike <see cref="Sequential{T}.Forward"/>, whose
/// result is a buffer the next call overwrites). These run the network itself, so they are for one thread at a time
/// (a second thread using the same network at once gets an <see cref="InvalidOperationException"/>); to predict from
/// many threads use a <see cref="Predictor"/>.
/// </summary>
/// <remarks>
/// Pixels are given in (H, W, C) order, row after row. Bytes are scaled to [0, 1] by /255 exactly as
/// <see cref="ImageDataset.FillBatch{T}"/> does for training; float pixels are used as given (already scaled, and
/// normalised the same way as the training data if it was). MNIST-style digits are white (255) on black (0):
/// see <see cref="MnistPreprocessing"/> for other images.
/// </remarks>
public static class NetworkInference
{
    /// <summary>Classifies one image given as bytes (0–255).</summary>
    /// <param name="network">A trained network.</param>
    /// <param name="pixels">height·width·channels bytes, (H, W, C) order.</param>
    /// <param name="height">Image height (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">Image width (default 0: see height).</param>
    /// <param name="channels">Channels per pixel (default 0: the InputShape's, else 1).</param>
    /// <returns>The label and K class probabilities.</returns>
    /// <exception cref="ArgumentException">The pixel count or shape does not fit the network.</exception>
    public static Prediction Predict(this Sequential<float> network, ReadOnlySpan<byte> pixels, int height = 0, int width = 0, int channels = 0) =>
        Run(network, Input(pixels, network.ImageShape(height, width, channels)))[0];

    /// <summary>Classifies one image given as floats (already scaled to [0, 1]).</summary>
    /// <param name="network">A trained network.</param>
    /// <param name="pixels">height·width·channels values, (H, W, C) order.</param>
    /// <param name="height">Image height (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">Image width (default 0: see height).</param>
    /// <param name="channels">Channels per pixel (default 0: the InputShape's, else 1).</param>
    /// <returns>The label and K class probabilities.</returns>
    /// <exception cref="ArgumentException">The pixel count or shape does not fit the network, or a value is NaN or infinite (the message names the first one's index).</exception>
    public static Prediction Predict(this Sequential<float> network, ReadOnlySpan<float> pixels, int height = 0, int width = 0, int channels = 0) =>
        Run(network, Input(pixels, network.ImageShape(height, width, channels)))[0];

    /// <summary>The K class probabilities of one image given as bytes (0–255).</summary>
    /// <inheritdoc cref="Predict(Sequential{float}, ReadOnlySpan{byte}, int, int, int)"/>
    /// <returns>K probabilities summing to 1.</returns>
    public static float[] PredictProbabilities(this Sequential<float> network, ReadOnlySpan<byte> pixels, int height = 0, int width = 0, int channels = 0) =>
        Predict(network, pixels, height, width, channels).Probabilities;

    /// <summary>The K class probabilities of one image given as floats (already scaled).</summary>
    /// <inheritdoc cref="Predict(Sequential{float}, ReadOnlySpan{float}, int, int, int)"/>
    /// <returns>K probabilities summing to 1.</returns>
    public static float[] PredictProbabilities(this Sequential<float> network, ReadOnlySpan<float> pixels, int height = 0, int width = 0, int channels = 0) =>
        Predict(network, pixels, height, width, channels).Probabilities;

    /// <summary>Classifies a batch of images in one forward pass.</summary>
    /// <param name="network">A trained network.</param>
    /// <param name="batch">Images, shape (N, H, W, C), values scaled as for training.</param>
    /// <returns>N predictions, in batch order.</returns>
    /// <exception cref="ArgumentException">The batch does not fit the network.</exception>
    public static Prediction[] Predict(this Sequential<float> network, Tensor<float> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return Run(network, batch);
    }

    /// <summary>The class probabilities of a batch of images, one array of K per image.</summary>
    /// <inheritdoc cref="Predict(Sequential{float}, Tensor{float})"/>
    /// <returns>N arrays of K probabilities.</returns>
    public static float[][] PredictProbabilities(this Sequential<float> network, Tensor<float> batch) =>
        Array.ConvertAll(Predict(network, batch), p => p.Probabilities);

    /// <summary>
    /// Classifies every image of <paramref name="data"/> in batches of <paramref name="batchSize"/>; the labels are
    /// exactly the evaluator's (same batches, same argmax).
    /// </summary>
    /// <param name="network">A trained network whose input fits the images and whose outputs match the classes.</param>
    /// <param name="data">The images (their labels are not used).</param>
    /// <param name="batchSize">Images per forward pass (default 16).</param>
    /// <returns>One prediction per image, in dataset order.</returns>
    /// <exception cref="ArgumentException">The network does not fit the images, or its output count differs from the class count.</exception>
    public static Prediction[] Predict(this Sequential<float> network, ImageDataset data, int batchSize = 16)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        NetworkChecks.RequireFit(network, data.Height, data.Width, data.Channels, data.Classes, "the dataset");
        var results = new Prediction[data.Count];
        batchSize = Math.Min(batchSize, data.Count);
        if (batchSize == 0) return results;
        var indices = new int[batchSize];
        var labels = new int[batchSize];
        var batch = new Tensor<float>(batchSize, data.Height, data.Width, data.Channels);
        for (int start = 0; start < data.Count; start += batchSize)
        {
            // As in the evaluator: a short last batch repeats its last image, and only the first n answers count.
            int n = Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < batchSize; i++) indices[i] = start + Math.Min(i, n - 1);
            data.FillBatch(indices, batch, labels);
            var answers = Run(network, batch);
            Array.Copy(answers, 0, results, start, n);
        }

        return results;
    }

    /// <summary>The class probabilities of every image of <paramref name="data"/>, one array of K per image.</summary>
    /// <inheritdoc cref="Predict(Sequential{float}, ImageDataset, int)"/>
    /// <returns>Count arrays of K probabilities, in dataset order.</returns>
    public static float[][] PredictProbabilities(this Sequential<float> network, ImageDataset data, int batchSize = 16) =>
        Array.ConvertAll(Predict(network, data, batchSize), p => p.Probabilities);

    /// <summary>
    /// A copy of every layer's output for one image (batch 1), e.g. to draw the feature maps after each conv and pool.
    /// </summary>
    /// <param name="network">A network.</param>
    /// <param name="pixels">height·width·channels values, (H, W, C) order, scaled as for training.</param>
    /// <param name="height">Image height (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">Image width (default 0: see height).</param>
    /// <param name="channels">Channels per pixel (default 0: the InputShape's, else 1).</param>
    /// <returns>
    /// One tensor per layer, in layer order, each owned by the caller; for LeNet: (1, 24, 24, 6), (1, 24, 24, 6),
    /// (1, 12, 12, 6), (1, 8, 8, 16), (1, 8, 8, 16), (1, 4, 4, 16), (1, 256), (1, 10) — the last being the logits.
    /// </returns>
    /// <exception cref="ArgumentException">The pixel count or shape does not fit the network.</exception>
    public static IReadOnlyList<Tensor<float>> Activations(this Sequential<float> network, ReadOnlySpan<float> pixels, int height = 0, int width = 0, int channels = 0)
    {
        ArgumentNullException.ThrowIfNull(network);
        var input = Input(pixels, network.ImageShape(height, width, channels));
        var outputs = new Tensor<float>[network.Layers.Count];
        network.ForwardObserved(input, (i, y) => outputs[i] = y.Clone());
        return outputs;
    }

    /// <summary>A copy of every layer's output for one image given as bytes (0–255).</summary>
    /// <inheritdoc cref="Activations(Sequential{float}, ReadOnlySpan{float}, int, int, int)"/>
    public static IReadOnlyList<Tensor<float>> Activations(this Sequential<float> network, ReadOnlySpan<byte> pixels, int height = 0, int width = 0, int channels = 0) =>
        Activations(network, Input(pixels, network.ImageShape(height, width, channels)).Span, height, width, channels);

    /// <summary>A new (1, H, W, C) tensor of <paramref name="pixels"/> scaled by 1/255.</summary>
    internal static Tensor<float> Input(ReadOnlySpan<byte> pixels, (int Height, int Width, int Channels) shape) => Input(pixels, shape.Height, shape.Width, shape.Channels);

    /// <summary>A new (1, H, W, C) tensor holding a copy of <paramref name="pixels"/>.</summary>
    internal static Tensor<float> Input(ReadOnlySpan<float> pixels, (int Height, int Width, int Channels) shape) => Input(pixels, shape.Height, shape.Width, shape.Channels);

    /// <summary>A new (1, H, W, C) tensor of <paramref name="pixels"/> scaled by 1/255.</summary>
    internal static Tensor<float> Input(ReadOnlySpan<byte> pixels, int height, int width, int channels)
    {
        var input = new Tensor<float>(CheckImage(pixels.Length, height, width, channels));
        Fill(pixels, input);
        return input;
    }

    /// <summary>A new (1, H, W, C) tensor holding a copy of <paramref name="pixels"/>.</summary>
    internal static Tensor<float> Input(ReadOnlySpan<float> pixels, int height, int width, int channels)
    {
        RequireFinite(pixels);
        var input = new Tensor<float>(CheckImage(pixels.Length, height, width, channels));
        pixels.CopyTo(input.Span);
        return input;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the index of the first NaN or infinite value.</summary>
    internal static void RequireFinite(ReadOnlySpan<float> pixels)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && pixels.Length >= Vector<float>.Count)
        {
            // v − v is 0 for every finite v and NaN for NaN and ±∞; scan whole vectors until one has a non-zero lane.
            var values = MemoryMarshal.Cast<float, Vector<float>>(pixels);
            for (; i < values.Length; i++)
            {
                var v = values[i];
                if (!Vector.EqualsAll(v - v, Vector<float>.Zero)) break;
            }

            i *= Vector<float>.Count;
        }

        for (; i < pixels.Length; i++)
        {
            if (!float.IsFinite(pixels[i]))
            {
                throw new ArgumentException(
                    $"Pixel {i} is {pixels[i]}; every pixel must be a finite number (scaled to [0, 1] as in training).", nameof(pixels));
            }
        }
    }

    /// <summary>Writes <paramref name="pixels"/>/255 into <paramref name="input"/> (same length).</summary>
    internal static void Fill(ReadOnlySpan<byte> pixels, Tensor<float> input)
    {
        if (pixels.Length != input.Length) throw new ArgumentException($"Expected {input.Length} pixels for an image {input.ShapeString}, got {pixels.Length}.", nameof(pixels));
        VectorOps.ScaleBytes(pixels, input.Span, 1f / 255);
    }

    /// <summary>Runs one forward pass and turns each row of logits into a caller-owned <see cref="Prediction"/>.</summary>
    internal static Prediction[] Run(Sequential<float> network, Tensor<float> batch)
    {
        ArgumentNullException.ThrowIfNull(network);
        var logits = network.Infer(batch);
        if (logits.Rank != 2)
        {
            NetworkChecks.RequireFit(network, batch.Dim(1), batch.Dim(2), batch.Dim(3), null, "the input");
        }

        int n = logits.Dim(0), k = logits.Dim(1);
        var results = new Prediction[n];
        Span<int> labels = n <= 64 ? stackalloc int[n] : new int[n];
        SoftmaxCrossEntropy<float>.ArgMaxRows(logits, labels);
        for (int i = 0; i < n; i++)
        {
            var p = new float[k];
            Softmax.Compute(logits.Span.Slice(i * k, k), p.AsSpan());
            results[i] = new Prediction(labels[i], p);
        }

        return results;
    }

    private static int[] CheckImage(int count, int height, int width, int channels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        long expected = (long)height * width * channels;
        if (count != expected)
        {
            throw new ArgumentException(
                $"An image of ({height}, {width}, {channels}) (H, W, C) has {expected} pixels, got {count}.", "pixels");
        }

        return [1, height, width, channels];
    }
}
