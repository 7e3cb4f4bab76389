using System.Collections.Concurrent;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Inference;

/// <summary>
/// Thread-safe inference: a pool of <see cref="Concurrency"/> independent copies (<see cref="Sequential{T}.Clone"/>)
/// of a trained network, so any number of threads may call <see cref="Predict(ReadOnlySpan{byte})"/> at once (e.g. a
/// web server's requests). A call takes an idle copy, runs it and gives it back; when every copy is busy it waits for
/// one. Results are exactly what the network itself would give, and caller-owned.
/// </summary>
/// <remarks>
/// The copies are made when the predictor is built: training <see cref="Network"/> further afterwards does not
/// change the predictor's answers (build a new one). Each copy keeps the buffers of one image, about 0.1 MB for LeNet.
/// </remarks>
public sealed class Predictor : IDisposable
{
    /// <summary>
    /// The largest <see cref="Concurrency"/> accepted: 64 (each concurrent prediction has its own copy of the network,
    /// its weights and one image's buffers, about 0.1 MB for LeNet); more than the machine has cores only makes callers
    /// wait in a longer queue.
    /// </summary>
    public const int MaxConcurrency = 64;

    private readonly ConcurrentBag<Slot> _idle = new();
    private readonly SemaphoreSlim _free;
    private volatile bool _disposed;

    /// <summary>Builds the pool for images of the given shape.</summary>
    /// <param name="network">The trained network (the template; it is copied, not used, by the predictor).</param>
    /// <param name="height">Image height (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">Image width (default 0: see height).</param>
    /// <param name="channels">Channels per pixel (default 0: the InputShape's, else 1).</param>
    /// <param name="concurrency">How many predictions can run at once (one network copy each), 1 to <see cref="MaxConcurrency"/> (default 0: <see cref="Environment.ProcessorCount"/>, at most <see cref="MaxConcurrency"/>).</param>
    /// <exception cref="ArgumentException">The network does not take (N, height, width, channels) images or does not return (N, K) logits.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="concurrency"/> is negative or above <see cref="MaxConcurrency"/>.</exception>
    public Predictor(Sequential<float> network, int height = 0, int width = 0, int channels = 0, int concurrency = 0)
    {
        ArgumentNullException.ThrowIfNull(network);
        (height, width, channels) = network.ImageShape(height, width, channels);
        ArgumentOutOfRangeException.ThrowIfNegative(concurrency);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(concurrency, MaxConcurrency);
        Classes = NetworkChecks.RequireFit(network, height, width, channels, null, "the predictor");
        Network = network;
        Height = height;
        Width = width;
        Channels = channels;
        Concurrency = concurrency == 0 ? Math.Min(Environment.ProcessorCount, MaxConcurrency) : concurrency;
        for (int i = 0; i < Concurrency; i++) _idle.Add(new Slot(network.Clone(), new Tensor<float>(1, height, width, channels)));
        _free = new SemaphoreSlim(Concurrency, Concurrency);
    }

    /// <summary>The network the pool was copied from (the template: don't mutate it while the predictor is in use).</summary>
    public Sequential<float> Network { get; }

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Channels per pixel.</summary>
    public int Channels { get; }

    /// <summary>K, the number of classes (the network's outputs).</summary>
    public int Classes { get; }

    /// <summary>
    /// How many predictions can run at once; a call made while that many are running waits for one to finish. The
    /// predictor holds one copy of the network per concurrent prediction.
    /// </summary>
    public int Concurrency { get; }

    /// <summary>Classifies one image given as bytes (0–255, scaled by 1/255 as in training). Safe from any thread.</summary>
    /// <param name="pixels">Height·Width·Channels bytes, (H, W, C) order.</param>
    /// <returns>The label and K class probabilities, owned by the caller.</returns>
    /// <exception cref="ArgumentException">Wrong pixel count.</exception>
    /// <exception cref="ObjectDisposedException">The predictor was disposed.</exception>
    public Prediction Predict(ReadOnlySpan<byte> pixels)
    {
        var slot = Rent();
        try
        {
            NetworkInference.Fill(pixels, slot.Input);
            return NetworkInference.Run(slot.Network, slot.Input)[0];
        }
        finally
        {
            Return(slot);
        }
    }

    /// <summary>Classifies one image given as floats (already scaled). Safe from any thread.</summary>
    /// <param name="pixels">Height·Width·Channels values, (H, W, C) order.</param>
    /// <returns>The label and K class probabilities, owned by the caller.</returns>
    /// <exception cref="ArgumentException">Wrong pixel count, or a value is NaN or infinite (the message names the first one's index).</exception>
    /// <exception cref="ObjectDisposedException">The predictor was disposed.</exception>
    public Prediction Predict(ReadOnlySpan<float> pixels)
    {
        NetworkInference.RequireFinite(pixels);
        var slot = Rent();
        try
        {
            if (pixels.Length != slot.Input.Length)
            {
                throw new ArgumentException($"Expected {slot.Input.Length} pixels for an image {slot.Input.ShapeString}, got {pixels.Length}.", nameof(pixels));
            }

            pixels.CopyTo(slot.Input.Span);
            return NetworkInference.Run(slot.Network, slot.Input)[0];
        }
        finally
        {
            Return(slot);
        }
    }

    /// <summary>The K class probabilities of one image given as bytes. Safe from any thread.</summary>
    /// <param name="pixels">Height·Width·Channels bytes, (H, W, C) order.</param>
    /// <returns>K probabilities summing to 1.</returns>
    public float[] PredictProbabilities(ReadOnlySpan<byte> pixels) => Predict(pixels).Probabilities;

    /// <summary>A copy of every layer's output for one image (batch 1), as <see cref="NetworkInference.Activations(Sequential{float}, ReadOnlySpan{float}, int, int, int)"/>. Safe from any thread.</summary>
    /// <param name="pixels">Height·Width·Channels values, (H, W, C) order, scaled as for training.</param>
    /// <returns>One caller-owned tensor per layer, batch 1.</returns>
    public IReadOnlyList<Tensor<float>> Activations(ReadOnlySpan<float> pixels)
    {
        var slot = Rent();
        try
        {
            return slot.Network.Activations(pixels, Height, Width, Channels);
        }
        finally
        {
            Return(slot);
        }
    }

    /// <summary>Releases the pool; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        _disposed = true;
    }

    private Slot Rent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _free.Wait();
        if (_idle.TryTake(out var slot)) return slot;
        _free.Release();
        throw new InvalidOperationException("Predictor: no idle network although a slot was free (internal error).");
    }

    private void Return(Slot slot)
    {
        _idle.Add(slot);
        _free.Release();
    }

    private sealed record Slot(Sequential<float> Network, Tensor<float> Input);
}
