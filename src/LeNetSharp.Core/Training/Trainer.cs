using System.Diagnostics;
using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>Hyper-parameters of a training run. The defaults are the tutorial's.</summary>
public sealed record TrainingOptions
{
    /// <summary>Passes over the training set (default 2).</summary>
    public int Epochs { get; init; } = 2;

    /// <summary>Images per SGD step (default 3).</summary>
    public int BatchSize { get; init; } = 3;

    /// <summary>Learning rate of the first epoch (default 0.01).</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>Base of the per-epoch decay: after epoch e (0-based) lr ← lr·Decay^(e+1) (default 0.95; 1 disables it).</summary>
    public double Decay { get; init; } = 0.95;

    /// <summary>SGD momentum (default 0, the tutorial's plain SGD).</summary>
    public double Momentum { get; init; }

    /// <summary>L2 weight decay (default 0).</summary>
    public double WeightDecay { get; init; }

    /// <summary>Seed of the shuffling order (default 1). The weights' seed is given when the network is built.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Shuffle the training set at the start of every epoch (default true).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Report progress every this many batches (default 2,000), besides the end of each epoch.</summary>
    public int ReportEvery { get; init; } = 2000;

    /// <summary>Throws when a value is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offending option, with its value.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Epochs, 1, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReportEvery, 1, nameof(ReportEvery));
        if (!(LearningRate > 0 && double.IsFinite(LearningRate))) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "Must be positive.");
        if (!(Decay > 0 && Decay <= 1)) throw new ArgumentOutOfRangeException(nameof(Decay), Decay, "Must be in (0, 1].");
    }
}

/// <summary>A progress report, sent every <see cref="TrainingOptions.ReportEvery"/> batches and at the end of each epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Total epochs.</param>
/// <param name="Batch">Batches done in this epoch.</param>
/// <param name="Batches">Batches per epoch.</param>
/// <param name="Loss">Mean loss over this epoch's batches so far.</param>
/// <param name="Accuracy">Fraction of this epoch's training images classified right so far (before each step).</param>
/// <param name="LearningRate">The rate used in this epoch.</param>
/// <param name="Elapsed">Time since this epoch began.</param>
/// <param name="ImagesPerSecond">Training throughput in this epoch so far.</param>
/// <param name="IsEpochEnd">True for the report that closes an epoch.</param>
public readonly record struct TrainingProgress(
    int Epoch, int Epochs, int Batch, int Batches, double Loss, double Accuracy, double LearningRate,
    TimeSpan Elapsed, double ImagesPerSecond, bool IsEpochEnd);

/// <summary>
/// Trains a classifier with mini-batch SGD and the tutorial's per-epoch decay: shuffle, then for each batch
/// forward → softmax cross-entropy → backward → <see cref="Sgd{T}.Step"/>. Nothing is written to the console:
/// progress goes to an <see cref="IProgress{T}"/>. After the first batch of each size, a step allocates nothing.
/// </summary>
/// <typeparam name="T">Element type (float for speed).</typeparam>
public sealed class Trainer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Sequential<T> _network;
    private readonly SoftmaxCrossEntropy<T> _loss = new();
    private readonly Random _shuffle;
    private Tensor<T>? _batch;
    private int[] _labels = [];
    private int[] _predictions = [];

    /// <summary>Creates a trainer for <paramref name="network"/>.</summary>
    /// <param name="network">The network; its parameters are updated in place.</param>
    /// <param name="options">Hyper-parameters; validated here.</param>
    public Trainer(Sequential<T> network, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _network = network;
        Options = options;
        _shuffle = new Random(options.Seed);
        Optimizer = new Sgd<T>(network.Parameters, options.LearningRate, options.Momentum, options.WeightDecay);
    }

    /// <summary>The hyper-parameters.</summary>
    public TrainingOptions Options { get; }

    /// <summary>The optimizer; its learning rate follows the schedule.</summary>
    public Sgd<T> Optimizer { get; }

    /// <summary>Runs <see cref="TrainingOptions.Epochs"/> epochs over <paramref name="data"/>.</summary>
    /// <param name="data">Training images; their shape must fit the network's input.</param>
    /// <param name="progress">Receives reports; may be null.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <returns>One summary per epoch.</returns>
    /// <exception cref="OperationCanceledException">Cancelled; the weights hold the last completed step.</exception>
    public IReadOnlyList<TrainingProgress> Train(ImageDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var order = Enumerable.Range(0, data.Count).ToArray();
        var summaries = new List<TrainingProgress>(Options.Epochs);
        for (int epoch = 0; epoch < Options.Epochs; epoch++)
        {
            if (Options.Shuffle) _shuffle.Shuffle(order);
            summaries.Add(RunEpoch(data, order, epoch, progress, cancellationToken));
            Optimizer.LearningRate = TutorialSchedule.Next(Optimizer.LearningRate, epoch, Options.Decay);
        }

        return summaries;
    }

    /// <summary>
    /// One SGD step on the images at <paramref name="indices"/>: forward, loss, backward, update.
    /// </summary>
    /// <param name="data">The dataset.</param>
    /// <param name="indices">The batch's image indices.</param>
    /// <returns>The batch's mean loss and how many images were classified right before the update.</returns>
    public (double Loss, int Correct) Step(ImageDataset data, ReadOnlySpan<int> indices)
    {
        ArgumentNullException.ThrowIfNull(data);
        int n = indices.Length;
        var batch = Tensor<T>.Reuse(ref _batch, n, data.Height, data.Width, data.Channels);
        if (_labels.Length != n)
        {
            _labels = new int[n];
            _predictions = new int[n];
        }

        data.FillBatch(indices, batch, _labels);
        var logits = _network.Forward(batch);
        double loss = double.CreateChecked(_loss.Forward(logits, _labels));
        SoftmaxCrossEntropy<T>.ArgMaxRows(logits, _predictions);
        int correct = 0;
        for (int i = 0; i < n; i++) if (_predictions[i] == _labels[i]) correct++;
        _network.Backward(_loss.Backward());
        Optimizer.Step();
        return (loss, correct);
    }

    private TrainingProgress RunEpoch(ImageDataset data, int[] order, int epoch, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        int batchSize = Options.BatchSize, batches = (order.Length + batchSize - 1) / batchSize;
        double lossSum = 0;
        long correct = 0, seen = 0;
        var clock = Stopwatch.StartNew();
        TrainingProgress Report(int batch, bool end) => new(
            epoch + 1, Options.Epochs, batch, batches, lossSum / Math.Max(1, batch), (double)correct / Math.Max(1, seen),
            Optimizer.LearningRate, clock.Elapsed, seen / Math.Max(1e-9, clock.Elapsed.TotalSeconds), end);

        for (int b = 0; b < batches; b++)
        {
            ct.ThrowIfCancellationRequested();
            int start = b * batchSize, n = Math.Min(batchSize, order.Length - start);
            var (loss, right) = Step(data, order.AsSpan(start, n));
            lossSum += loss;
            correct += right;
            seen += n;
            if ((b + 1) % Options.ReportEvery == 0 && b + 1 < batches) progress?.Report(Report(b + 1, false));
        }

        var summary = Report(batches, true);
        progress?.Report(summary);
        return summary;
    }
}
