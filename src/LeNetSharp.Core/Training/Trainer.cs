using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>Hyper-parameters of a training run. The defaults are the tutorial's.</summary>
public sealed partial record TrainingOptions
{
    /// <summary>
    /// Passes over the training set that one <see cref="Trainer{T}.Train(ImageDataset, IProgress{TrainingProgress}, CancellationToken)"/>
    /// call makes (default 2). A second call trains this many more, going on from the first; for
    /// <see cref="Trainer{T}.Resume"/>, the epoch count the interrupted call was to reach.
    /// </summary>
    public int Epochs { get; init; } = 2;

    /// <summary>Images per SGD step (default 3).</summary>
    public int BatchSize { get; init; } = 3;

    /// <summary>Learning rate of the first epoch (default 0.01).</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>
    /// Base of the tutorial's per-epoch decay, the default schedule: after epoch e (0-based) lr ← lr·Decay^(e+1)
    /// (default 0.95; 1 disables it). Used when <see cref="Schedule"/> is null.
    /// </summary>
    public double Decay { get; init; } = 0.95;

    /// <summary>SGD momentum (default 0, the tutorial's plain SGD).</summary>
    public double Momentum { get; init; }

    /// <summary>
    /// Weight decay (default 0): an L2 penalty added to the gradient for SGD and Adam, decoupled for AdamW. Note that
    /// PyTorch's AdamW (and the <see cref="AdamW{T}"/> constructor) default to 0.01; here AdamW gets 0 unless it is set.
    /// </summary>
    public double WeightDecay { get; init; }

    /// <summary>
    /// Seed of the shuffling order (default 1): epoch e visits the images in an order drawn from (Seed, e) alone, so a
    /// resumed run sees the same order. The weights' seed is given when the network is built.
    /// </summary>
    public int Seed { get; init; } = 1;

    /// <summary>Shuffle the training set at the start of every epoch (default true).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>
    /// Threads for data-parallel training (default 1): each batch is split into this many contiguous shards whose
    /// gradients are summed in a fixed order, so a run is deterministic for a given thread count. Batches of fewer
    /// than 8 images per thread (the tutorial's batch of 3, say) run on one thread, which is faster for them.
    /// </summary>
    public int Threads { get; init; } = 1;

    /// <summary>
    /// The fewest images a thread takes when <see cref="Threads"/> &gt; 1 splits a batch (8): below that many per
    /// thread the hand-off would cost more than it saves, and the batch runs on one thread.
    /// </summary>
    internal const int MinImagesPerThread = 8;

    /// <summary>Whether a batch of <paramref name="batchSize"/> images is split across <see cref="Threads"/> threads (more than one, each getting at least <see cref="MinImagesPerThread"/>).</summary>
    /// <param name="batchSize">Images in the batch.</param>
    /// <returns>True when the batch runs data-parallel; false when it runs on one thread.</returns>
    internal bool SplitsBatch(int batchSize) => Threads > 1 && batchSize >= MinImagesPerThread * Threads;

    /// <summary>
    /// Folder for checkpoints (default none). When set, <see cref="Trainer{T}.Train(ImageDataset, IProgress{TrainingProgress}, CancellationToken)"/> writes
    /// <see cref="TrainingCheckpoint.FileName"/> there atomically at the end of every epoch and every
    /// <see cref="CheckpointEvery"/> batches; <see cref="Trainer{T}.Resume"/> continues from it.
    /// </summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Also checkpoint every this many batches within an epoch (default 0: only at epoch ends).</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>Report progress every this many batches (default 2,000), besides the end of each epoch.</summary>
    public int ReportEvery { get; init; } = 2000;

    /// <summary>
    /// Images to evaluate after every epoch (default none), as Keras's <c>validation_data</c>, e.g. one part of
    /// <see cref="ImageDataset.Split"/>: the network runs on them in evaluation mode through
    /// <see cref="Evaluator.Evaluate{T}"/> (with <see cref="Threads"/> threads), and the epoch's summary carries
    /// <see cref="TrainingProgress.ValidationLoss"/> and <see cref="TrainingProgress.ValidationAccuracy"/>. The
    /// validation runs to its end even when the training is cancelled meanwhile.
    /// </summary>
    public ImageDataset? ValidationData { get; init; }

    /// <summary>Stop when the validation loss stops improving and restore the best weights (default none); needs <see cref="ValidationData"/>.</summary>
    public EarlyStopping? EarlyStopping { get; init; }

    /// <summary>
    /// Random distortions of the training images (default none: the images as they are, bit for bit as without this
    /// option). The validation images are never distorted.
    /// </summary>
    public ImageAugmentation? Augmentation { get; init; }

    /// <summary>
    /// The largest batch a trainer accepts (4,096 images): buffers grow with the batch (about 150 KB per 28x28 image for
    /// LeNet), so a mistyped batch size is refused before anything is allocated.
    /// </summary>
    public const int MaxBatchSize = 4096;

    /// <summary>Throws when a value is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offending option (or setting of <see cref="Augmentation"/> or <see cref="EarlyStopping"/>), with its value.</exception>
    /// <exception cref="ArgumentException"><see cref="ValidationData"/> is empty, or <see cref="EarlyStopping"/> is set without it.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Epochs, 1, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(BatchSize, MaxBatchSize, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReportEvery, 1, nameof(ReportEvery));
        ArgumentOutOfRangeException.ThrowIfLessThan(Threads, 1, nameof(Threads));
        ArgumentOutOfRangeException.ThrowIfNegative(CheckpointEvery, nameof(CheckpointEvery));
        if (!(LearningRate > 0 && double.IsFinite(LearningRate))) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "Must be positive.");
        if (!(Decay > 0 && Decay <= 1)) throw new ArgumentOutOfRangeException(nameof(Decay), Decay, "Must be in (0, 1].");
        ValidateEpochEnd();
        ValidateOptimization();
    }

    /// <summary>The checks of <see cref="ValidationData"/>, <see cref="EarlyStopping"/> and <see cref="Augmentation"/>.</summary>
    private void ValidateEpochEnd()
    {
        Augmentation?.Validate();
        EarlyStopping?.Validate();
        if (ValidationData is { Count: 0 }) throw new ArgumentException("The validation set has no images.", nameof(ValidationData));
        if (EarlyStopping is not null && ValidationData is null)
        {
            throw new ArgumentException("Early stopping watches the validation loss: set ValidationData too.", nameof(EarlyStopping));
        }
    }
}

/// <summary>A progress report, sent every <see cref="TrainingOptions.ReportEvery"/> batches and at the end of each epoch.</summary>
/// <param name="Epoch">1-based epoch, counted from the start of training: a trainer's second Train call goes on from its first's (3, 4 after 1, 2).</param>
/// <param name="Epochs">
/// The epoch the current Train call ends with (1-based): 2 throughout a first call with <see cref="TrainingOptions.Epochs"/> = 2,
/// 4 throughout the second.
/// </param>
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
    TimeSpan Elapsed, double ImagesPerSecond, bool IsEpochEnd)
{
    /// <summary>
    /// The mean softmax cross-entropy on <see cref="TrainingOptions.ValidationData"/> after this epoch (Keras's
    /// <c>val_loss</c>, <see cref="EvaluationResult.Loss"/>); null within an epoch or without validation data.
    /// </summary>
    public double? ValidationLoss { get; init; }

    /// <summary>The fraction of the validation images classified right after this epoch; null within an epoch or without validation data.</summary>
    public double? ValidationAccuracy { get; init; }

    /// <summary>
    /// One line, e.g. "epoch 1/2  batch 20000/20000  loss 0.1870  train accuracy 94.31%  lr 0.01  1.9 s  31,544 images/s"
    /// (invariant culture; the accuracy is on the training images seen so far in the epoch), ending with
    /// "  validation loss 0.0712  validation accuracy 97.85%" at the end of an epoch with validation data (the time and
    /// the speed are the training's).
    /// </summary>
    /// <returns>The formatted progress.</returns>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"epoch {Epoch}/{Epochs}  batch {Batch}/{Batches}  loss {Loss:F4}  train accuracy {100 * Accuracy:F2}%  lr {LearningRate:G4}  {Elapsed.TotalSeconds:F1} s  {ImagesPerSecond:N0} images/s")
        + (ValidationLoss is { } loss ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"  validation loss {loss:F4}  validation accuracy {100 * ValidationAccuracy.GetValueOrDefault():F2}%") : "");
}

/// <summary>
/// Trains a classifier with mini-batches, by default with SGD and the tutorial's per-epoch decay (the optimizer and the
/// schedule come from <see cref="TrainingOptions"/>): shuffle, then for each batch forward → softmax cross-entropy →
/// backward → <see cref="IOptimizer{T}.Step"/>. Each Train call goes on from the previous
/// one (epoch count, schedule, shuffling order), so training in several calls ends with the weights of one call.
/// Nothing is written to the console: progress goes to an <see cref="IProgress{T}"/>. After the first batch of each
/// size, a step allocates nothing.
/// </summary>
/// <typeparam name="T">Element type (float for speed).</typeparam>
public sealed partial class Trainer<T> : IDisposable where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Sequential<T> _network;
    private readonly GradientWorker<T>[] _workers;   // [0] trains the caller's network; the others, replicas
    private readonly WorkerPool? _pool;
    private readonly Action<int> _runShard;
    private ImageDataset? _shardData;
    private int[] _shardIndices = [];
    private int _shardCount;
    private int _shardEpoch;
    private ImageDataset? _checkedData; // the last dataset found to fit the network (checked once, not per step)

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
        Optimizer = options.CreateOptimizer(network.Parameters);
        StartSchedule(options);
        _workers = new GradientWorker<T>[options.Threads];
        _workers[0] = new GradientWorker<T>(network);
        for (int i = 1; i < _workers.Length; i++) _workers[i] = new GradientWorker<T>(network.Clone());
        _pool = options.Threads > 1 ? new WorkerPool(options.Threads) : null;
        _runShard = RunShard;
    }

    /// <summary>The hyper-parameters.</summary>
    public TrainingOptions Options { get; }

    /// <summary>The optimizer (<see cref="TrainingOptions.Optimizer"/>); its learning rate follows the schedule.</summary>
    public IOptimizer<T> Optimizer { get; }

    /// <summary>The network being trained.</summary>
    public Sequential<T> Network => _network;

    /// <summary>
    /// Where training stands: epochs ended, the next batch to run and the running sums of the epoch in progress. When a
    /// Train call returns or throws, it matches the weights exactly (the batches stepped), so the next call, or a
    /// checkpoint saved then, goes on from there.
    /// </summary>
    public TrainingPosition Position { get; private set; }

    /// <summary>The dataset this run trains on (recorded in checkpoints); none until Train is called.</summary>
    internal DatasetIdentity TrainedOn { get; private set; } = DatasetIdentity.None;

    /// <summary>The checkpoint this trainer was resumed from, if any.</summary>
    private string? _resumedFrom;

    /// <summary>
    /// The epoch count at which a Train call that did not return ends (it was cancelled or failed; or, after
    /// <see cref="Resume"/>, the call the checkpoint was written in); null when every call has returned.
    /// </summary>
    private int? _unfinishedEnd;

    /// <summary>
    /// Continues training from the checkpoint in <paramref name="checkpointDirectory"/>: network, optimizer state,
    /// learning rate, epoch, batch and shuffling order. The resumed trainer's first
    /// <see cref="Train(ImageDataset, IProgress{TrainingProgress}, CancellationToken)"/> call finishes the interrupted
    /// one, up to <see cref="TrainingOptions.Epochs"/> epochs in all, and its later calls train on as any trainer's do:
    /// with any thread count the weights end exactly as the uninterrupted trainer's would.
    /// </summary>
    /// <param name="checkpointDirectory">A folder written by a run with <see cref="TrainingOptions.CheckpointDirectory"/>.</param>
    /// <param name="options">
    /// The run's options. Batch size, seed, shuffling, decay, the optimizer and its settings, gradient clipping, the
    /// schedule and the augmentation must equal the checkpoint's (the augmentation from checkpoint version 4 on).
    /// Epochs is the epoch count the interrupted Train call was to reach (its reports'
    /// <see cref="TrainingProgress.Epochs"/>): for a run of one call, the Epochs it began with; more trains longer;
    /// when the checkpoint is already there, the first call trains nothing. The initial learning rate comes from the
    /// checkpoint, as do the optimizer's state (momentum buffers, Adam's moments and step count) and the schedule's place.
    /// </param>
    /// <returns>A trainer whose Train carries on where the checkpoint stopped.</returns>
    /// <exception cref="FileNotFoundException">There is no checkpoint in the folder.</exception>
    /// <exception cref="Persistence.ModelFormatException">The checkpoint is corrupt or was written with other options.</exception>
    public static Trainer<T> Resume(string checkpointDirectory, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var checkpoint = TrainingCheckpoint.Load<T>(checkpointDirectory);
        checkpoint.EnsureCompatible(options);
        var trainer = new Trainer<T>(checkpoint.Network, options with { LearningRate = checkpoint.InitialLearningRate ?? options.LearningRate });
        checkpoint.RestoreOptimizer(trainer.Optimizer);
        trainer.ResumeSchedule(checkpoint);
        trainer.Position = checkpoint.Position;
        trainer.TrainedOn = checkpoint.TrainedOn;
        trainer._resumedFrom = checkpoint.Path;
        trainer._unfinishedEnd = options.Epochs;
        return trainer;
    }

    // Both Train overloads take the optional progress and token; the epoch count has no default, so no call is
    // ambiguous: Train(data) trains the options' epochs, Train(data, 1) one.
#pragma warning disable RS0026
    /// <summary>
    /// Trains <see cref="TrainingOptions.Epochs"/> more epochs over <paramref name="data"/>, going on where the trainer
    /// stands, as Keras's <c>fit</c> does when called again: the epoch count, the learning-rate schedule and the
    /// shuffling order continue from the previous call, so two calls of E epochs end with the weights of one call of
    /// 2·E, bit for bit. After a call that did not return (cancelled, or failed in a layer) or on a trainer from
    /// <see cref="Resume"/>, this call finishes that one instead: the rest of its epochs, from the batch it stopped at.
    /// </summary>
    /// <param name="data">Training images; their shape must fit the network's input.</param>
    /// <param name="progress">Receives reports; may be null.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <returns>
    /// One summary per epoch this call ended, in order (the reports with <see cref="TrainingProgress.IsEpochEnd"/>);
    /// empty when there was nothing left to train (a resumed checkpoint that had reached its epoch count); and why the
    /// call returned: all its epochs ended, or <see cref="TrainingOptions.EarlyStopping"/> stopped it (see
    /// <see cref="EarlyStopping"/> for what a later call does then).
    /// </returns>
    /// <exception cref="OperationCanceledException">
    /// Cancelled (checked before every batch); the weights hold the last completed step and <see cref="Position"/> says
    /// which, so the next Train call goes on from it, and <see cref="TrainingCheckpoint.Save{T}"/> can record the run to resume it.
    /// </exception>
    /// <exception cref="ArgumentException">
    /// Before any work: the dataset has no images or fewer than one batch, the network does not take the dataset's
    /// images, or its output count differs from the dataset's class count (the message names both).
    /// </exception>
    /// <exception cref="Persistence.ModelFormatException">
    /// Before any step: the trainer was resumed from a checkpoint made on another dataset (another image count or
    /// content); the message names the checkpoint and both datasets.
    /// </exception>
    /// <exception cref="NonFiniteLossException">
    /// A batch's loss was NaN or infinite (the run diverged): training stops at once, saving nothing more; the
    /// exception names the epoch and batch. The network's weights are then unusable; checkpoints written before hold
    /// the last finite state.
    /// </exception>
    public TrainingResult Train(ImageDataset data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return TrainUntil(data, _unfinishedEnd ?? EpochsAhead(Options.Epochs), progress, cancellationToken);
    }

    /// <summary>
    /// Trains over <paramref name="data"/> until <paramref name="epochs"/> more epochs have ended, going on where the
    /// trainer stands like <see cref="Train(ImageDataset, IProgress{TrainingProgress}, CancellationToken)"/>: the learning
    /// rate follows <see cref="TrainingOptions.Schedule"/> (by default, after epoch e (0-based) it is multiplied by
    /// <see cref="TrainingOptions.Decay"/>^(e + 1)), the optimizer keeps its state, and epoch e's order is
    /// drawn from (<see cref="TrainingOptions.Seed"/>, e) alone, so calls of 1, 2 and 3 epochs end with the weights of one
    /// call of 6, bit for bit. An epoch left part-done (by a cancelled call or a mid-epoch checkpoint) is finished
    /// first and counts as the first of them; a call that did not return is not finished beyond that.
    /// </summary>
    /// <example>
    /// Evaluating after every epoch, with the weights one call of 10 epochs would pass through:
    /// <code>
    /// for (int e = 0; e &lt; 10; e++)
    /// {
    ///     trainer.Train(train, epochs: 1);
    ///     Console.WriteLine($"epoch {trainer.Position.Epoch}: {Evaluator.Evaluate(trainer.Network, test)}");
    /// }
    /// </code>
    /// </example>
    /// <param name="data">Training images; their shape must fit the network's input.</param>
    /// <param name="epochs">
    /// How many epochs are to end (≥ 1); <see cref="TrainingOptions.Epochs"/> is ignored. Its reports'
    /// <see cref="TrainingProgress.Epochs"/> is <see cref="Position"/>.Epoch + epochs.
    /// </param>
    /// <param name="progress">Receives reports; may be null.</param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <returns>
    /// One summary per epoch this call ended, in order (the reports with <see cref="TrainingProgress.IsEpochEnd"/>), and
    /// why the call returned: all its epochs ended, or <see cref="TrainingOptions.EarlyStopping"/> stopped it.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="epochs"/> is less than 1, or would take the epoch count past <see cref="int.MaxValue"/>.</exception>
    /// <exception cref="OperationCanceledException">
    /// Cancelled (checked before every batch); the weights hold the last completed step and <see cref="Position"/> says
    /// which, so a later Train call goes on from it, and <see cref="TrainingCheckpoint.Save{T}"/> can record the run to resume it.
    /// </exception>
    /// <exception cref="ArgumentException">
    /// Before any work: the dataset has no images or fewer than one batch, the network does not take the dataset's
    /// images, or its output count differs from the dataset's class count (the message names both).
    /// </exception>
    /// <exception cref="Persistence.ModelFormatException">
    /// Before any step: the trainer was resumed from a checkpoint made on another dataset (another image count or
    /// content); the message names the checkpoint and both datasets.
    /// </exception>
    /// <exception cref="NonFiniteLossException">
    /// A batch's loss was NaN or infinite (the run diverged): training stops at once, saving nothing more; the
    /// exception names the epoch and batch. The network's weights are then unusable; checkpoints written before hold
    /// the last finite state.
    /// </exception>
    public TrainingResult Train(ImageDataset data, int epochs, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        return TrainUntil(data, EpochsAhead(epochs), progress, cancellationToken);
    }
#pragma warning restore RS0026

    /// <summary>The epoch count reached when <paramref name="epochs"/> more epochs have ended.</summary>
    private int EpochsAhead(int epochs)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(epochs, int.MaxValue - Position.Epoch);
        return Position.Epoch + epochs;
    }

    /// <summary>Trains from <see cref="Position"/> until <paramref name="end"/> epochs have ended (none when it is already there) or early stopping stops it.</summary>
    private TrainingResult TrainUntil(ImageDataset data, int end, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        RequireFit(data);
        if (Options.ValidationData is { } validation)
        {
            NetworkChecks.RequireFit(_network, validation.Height, validation.Width, validation.Channels, validation.Classes, "the validation data");
        }

        if (data.Count == 0) throw new ArgumentException("The training set has no images; there is nothing to train on.");
        if (Options.BatchSize > data.Count)
        {
            throw new ArgumentException($"The batch size ({Options.BatchSize:N0}) is larger than the training set ({data.Count:N0} images).");
        }

        if (Options.CheckpointDirectory is not null || _resumedFrom is not null)
        {
            var identity = DatasetIdentity.Of(data);
            if (_resumedFrom is not null && !TrainedOn.IsNone && TrainedOn != identity)
            {
                throw new Persistence.ModelFormatException(_resumedFrom,
                    $"was made on another dataset ({TrainedOn}) than this run's ({identity}); resume with the same images, or start a new run.");
            }

            TrainedOn = identity;
        }

        RequireScheduleCovers(data.Count, end);
        _unfinishedEnd = end; // cleared when this call returns: a call after an exception finishes this one
        var order = new int[data.Count];
        var summaries = new List<TrainingProgress>();
        bool stopped = false;
        for (int epoch = Position.Epoch; epoch < end; epoch++)
        {
            ShuffledOrder(Options, epoch, order);
            var summary = RunEpoch(data, order, epoch, end, progress, cancellationToken);
            ScheduleAfterEpoch(epoch, data.Count);
            Position = new TrainingPosition(epoch + 1, 0, 0, 0, 0);
            summary = ValidateEpoch(summary, epoch, ref stopped);
            SaveCheckpoint();
            summaries.Add(summary);
            progress?.Report(summary); // after the epoch is closed: a report handler that throws leaves nothing half-done
            if (stopped) break;
        }

        _unfinishedEnd = null;
        return EndCall(summaries, stopped);
    }

    /// <summary>
    /// The order in which epoch <paramref name="epoch"/> visits the images: a Fisher–Yates shuffle seeded from
    /// (<see cref="TrainingOptions.Seed"/>, epoch) alone, or 0, 1, 2, … when shuffling is off.
    /// </summary>
    /// <param name="options">Seed and shuffle switch.</param>
    /// <param name="epoch">0-based epoch.</param>
    /// <param name="order">Filled with a permutation of 0 .. order.Length − 1.</param>
    internal static void ShuffledOrder(TrainingOptions options, int epoch, Span<int> order)
    {
        ArgumentNullException.ThrowIfNull(options);
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (!options.Shuffle) return;
        ulong z = (ulong)(uint)options.Seed << 32 | (uint)epoch; // SplitMix64 of (seed, epoch)
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        new Random((int)((z ^ (z >> 31)) & int.MaxValue)).Shuffle(order);
    }

    /// <summary>
    /// One SGD step on the images at <paramref name="indices"/>: forward, loss, backward, update.
    /// </summary>
    /// <param name="data">The dataset.</param>
    /// <param name="indices">The batch's image indices.</param>
    /// <returns>The batch's mean loss and how many images were classified right before the update.</returns>
    /// <exception cref="ArgumentException">The network does not fit the dataset (checked once per dataset).</exception>
    /// <exception cref="ObjectDisposedException">The trainer was disposed and <see cref="TrainingOptions.Threads"/> &gt; 1.</exception>
    /// <remarks>
    /// When a layer throws during the step, the exception reaches the caller as thrown, the parameters are not
    /// updated, and every gradient the step had begun to add is cleared: a later step starts clean. The step uses the
    /// optimizer's current learning rate: Train sets it from the schedule before each step, this method does not.
    /// <para>
    /// With <see cref="TrainingOptions.Augmentation"/>, the images are distorted as epoch <see cref="Position"/>.Epoch
    /// of a Train call distorts them (the same image gets the same distortion until that epoch ends).
    /// </para>
    /// </remarks>
    public (double Loss, int Correct) Step(ImageDataset data, ReadOnlySpan<int> indices) => Step(data, indices, Position.Epoch);

    /// <summary><see cref="Step(ImageDataset, ReadOnlySpan{int})"/> in epoch <paramref name="epoch"/> (0-based): the epoch whose augmentation draws to use.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private (double Loss, int Correct) Step(ImageDataset data, ReadOnlySpan<int> indices, int epoch)
    {
        ArgumentNullException.ThrowIfNull(data);
        RequireFit(data);
        int n = indices.Length;
        bool parallel = Options.SplitsBatch(n);
        SetTraining(parallel); // a step trains, whatever mode the caller left the network in
        if (parallel) CopyWeightsToReplicas(); // a one-thread step, or the caller, may have changed them since the last split
        try
        {
            if (parallel) RunShards(data, indices, epoch);
            else _workers[0].Run(data, indices, Options.Augmentation, epoch, StepsTaken, 0);
        }
        catch
        {
            ClearGradients();
            throw;
        }

        if (!parallel)
        {
            Optimizer.Step();
            return (_workers[0].Loss, _workers[0].Correct);
        }

        double loss = 0;
        int correct = 0;
        for (int w = 0; w < _workers.Length; w++)
        {
            int size = ShardSize(w, n);
            loss += _workers[w].Loss * size / n;
            correct += _workers[w].Correct;
        }

        var master = _network.Parameters;
        T scale0 = T.CreateChecked((double)ShardSize(0, n) / n);
        foreach (var p in master) VectorOps.Scale(p.Gradient.Span, scale0);
        for (int w = 1; w < _workers.Length; w++)
        {
            T scale = T.CreateChecked((double)ShardSize(w, n) / n);
            var replica = _workers[w].Network.Parameters;
            for (int p = 0; p < master.Count; p++)
            {
                VectorOps.AddScaled(master[p].Gradient.Span, replica[p].Gradient.Span, scale);
                replica[p].ZeroGradient();
            }
        }

        Optimizer.Step();
        return (loss, correct);
    }

    /// <summary>Gives every replica the network's current weights (before a batch is split across them).</summary>
    private void CopyWeightsToReplicas()
    {
        var master = _network.Parameters;
        for (int w = 1; w < _workers.Length; w++)
        {
            var replica = _workers[w].Network.Parameters;
            for (int p = 0; p < master.Count; p++) replica[p].Value.CopyFrom(master[p].Value);
        }
    }

    /// <summary>
    /// Data-parallel: worker i takes the i-th contiguous shard; the gradient of the batch mean is
    /// Σ_i (n_i / n)·∇(shard i's mean), summed in worker order by <see cref="Step(ImageDataset, ReadOnlySpan{int})"/>.
    /// </summary>
    private void RunShards(ImageDataset data, ReadOnlySpan<int> indices, int epoch)
    {
        // Replicas follow the network's backend, even when it was changed after the trainer was made.
        for (int w = 1; w < _workers.Length; w++)
        {
            if (_workers[w].Network.Backend != _network.Backend) _workers[w].Network.Backend = _network.Backend;
        }

        Scratch.Ensure(ref _shardIndices, indices.Length);
        indices.CopyTo(_shardIndices);
        _shardData = data;
        _shardCount = indices.Length;
        _shardEpoch = epoch;
        _pool!.Run(_runShard);
    }

    /// <summary>Turns training mode on in the network (and, for a split batch, in every replica) unless it already is.</summary>
    private void SetTraining(bool replicas)
    {
        for (int w = 0; w < (replicas ? _workers.Length : 1); w++)
        {
            if (!_workers[w].Network.Training) _workers[w].Network.Training = true;
        }
    }

    /// <summary>Clears the gradients of the network and of every replica (after a step that failed half-way).</summary>
    private void ClearGradients()
    {
        foreach (var worker in _workers) worker.Network.ZeroGradients();
    }

    /// <summary>Stops the worker threads (when <see cref="TrainingOptions.Threads"/> &gt; 1).</summary>
    public void Dispose() => _pool?.Dispose();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void RequireFit(ImageDataset data)
    {
        if (ReferenceEquals(data, _checkedData)) return;
        NetworkChecks.RequireFit(_network, data.Height, data.Width, data.Channels, data.Classes, "the dataset");
        _checkedData = data;
    }

    private int ShardSize(int worker, int n) => n / _workers.Length + (worker < n % _workers.Length ? 1 : 0);

    private int ShardStart(int worker, int n)
    {
        int start = 0;
        for (int w = 0; w < worker; w++) start += ShardSize(w, n);
        return start;
    }

    private void RunShard(int worker)
    {
        int start = ShardStart(worker, _shardCount);
        _workers[worker].Run(_shardData!, _shardIndices.AsSpan(start, ShardSize(worker, _shardCount)), Options.Augmentation, _shardEpoch, StepsTaken, start);
    }

    /// <summary>The optimizer's steps taken (in checkpoints): the step key of random layers' draws (<see cref="IStochasticLayer"/>).</summary>
    private long StepsTaken => Optimizer is Optimizer<T> o ? o.Steps : 0;

    /// <summary>
    /// Runs epoch <paramref name="epoch"/> (0-based) from <see cref="Position"/>'s batch when it is that epoch's, else
    /// from its start, sending the reports within it; returns the epoch's summary, not yet sent. When a batch, a
    /// checkpoint or a report throws, <see cref="Position"/> is set to the batches stepped before the exception goes on.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private TrainingProgress RunEpoch(ImageDataset data, int[] order, int epoch, int end, IProgress<TrainingProgress>? progress, CancellationToken ct)
    {
        int batchSize = Options.BatchSize, batches = (order.Length + batchSize - 1) / batchSize;
        var position = Position.Epoch == epoch ? Position : new TrainingPosition(epoch, 0, 0, 0, 0);
        double lossSum = position.LossSum;
        long correct = position.Correct, seen = position.Seen, seenHere = 0;
        int done = position.Batch;
        var clock = Stopwatch.StartNew();
        TrainingProgress Report(int batch, bool isEnd) => new(
            epoch + 1, end, batch, batches, lossSum / Math.Max(1, batch), (double)correct / Math.Max(1, seen),
            Optimizer.LearningRate, clock.Elapsed, seenHere / Math.Max(1e-9, clock.Elapsed.TotalSeconds), isEnd);

        try
        {
            for (int b = position.Batch; b < batches; b++)
            {
                ct.ThrowIfCancellationRequested();
                int start = b * batchSize, n = Math.Min(batchSize, order.Length - start);
                ApplySchedule(epoch, (long)epoch * batches + b);
                var (loss, right) = Step(data, order.AsSpan(start, n), epoch);
                done = b + 1;
                lossSum += loss;
                correct += right;
                seen += n;
                seenHere += n;
                if (!double.IsFinite(loss)) throw new NonFiniteLossException(epoch + 1, b + 1, batches, loss, Optimizer.LearningRate);
                if (Options.CheckpointEvery > 0 && done % Options.CheckpointEvery == 0 && done < batches)
                {
                    Position = new TrainingPosition(epoch, done, lossSum, correct, seen);
                    SaveCheckpoint();
                }

                if (done % Options.ReportEvery == 0 && done < batches) progress?.Report(Report(done, false));
            }
        }
        catch
        {
            // Position then matches the weights exactly (done batches stepped): the next Train call, or a checkpoint
            // saved now, goes on from here. (A step that throws changes no weight; a non-finite loss's step counts.)
            Position = new TrainingPosition(epoch, done, lossSum, correct, seen);
            throw;
        }

        return Report(batches, true);
    }

    // Early stopping: the best validation loss so far, its 1-based epoch (0: none yet), the epochs ended since, and
    // the weights and running statistics it was reached with (allocated at the first improvement). Kept across Train calls.
    private double _bestLoss = double.PositiveInfinity;
    private int _bestEpoch;
    private int _sinceBest;
    private T[][]? _bestWeights;

    /// <summary>
    /// After epoch <paramref name="epoch"/> (0-based) has ended: evaluates <see cref="TrainingOptions.ValidationData"/>
    /// (not cancellable: the epoch is already closed) into the summary and runs early stopping, which keeps the weights
    /// of an improvement, or sets <paramref name="stop"/> and restores them once its patience has run out.
    /// </summary>
    private TrainingProgress ValidateEpoch(TrainingProgress summary, int epoch, ref bool stop)
    {
        if (Options.ValidationData is not { } validation) return summary;
        var result = Evaluator.Evaluate(_network, validation, threads: Options.Threads);
        summary = summary with { ValidationLoss = result.Loss, ValidationAccuracy = result.Accuracy };
        if (Options.EarlyStopping is not { } stopping) return summary;
        if (result.Loss < _bestLoss - stopping.MinDelta)
        {
            _bestLoss = result.Loss;
            _bestEpoch = epoch + 1;
            _sinceBest = 0;
            var tensors = BestTensors();
            _bestWeights ??= [.. tensors.Select(t => new T[t.Length])];
            for (int t = 0; t < tensors.Count; t++) tensors[t].Span.CopyTo(_bestWeights[t]);
            if (Options.CheckpointDirectory is { } directory) Persistence.ModelFile.Save(_network, Path.Combine(directory, EarlyStopping.BestModelFileName));
        }
        else if (++_sinceBest >= stopping.Patience)
        {
            stop = true;
            RestoreBestWeights();
        }

        return summary;
    }

    /// <summary>Copies the best weights back into the network (its replicas get them at the next split batch) and counts patience afresh.</summary>
    private void RestoreBestWeights()
    {
        if (_bestWeights is null) return;
        var tensors = BestTensors();
        for (int t = 0; t < tensors.Count; t++) _bestWeights[t].CopyTo(tensors[t].Span);
        _sinceBest = 0;
    }

    /// <summary>
    /// What early stopping keeps of the best epoch: every parameter, then the non-trainable state (BatchNorm's running
    /// statistics, which evaluation uses with the weights they were gathered with), as Keras's weights include them.
    /// </summary>
    private List<Tensor<T>> BestTensors() => [.. _network.Parameters.Select(p => p.Value), .. _network.State.Select(s => s.Value)];

    /// <summary>The result of a call that ended its epochs or was <paramref name="stopped"/> early; restores the best weights at the end when asked.</summary>
    private TrainingResult EndCall(List<TrainingProgress> summaries, bool stopped)
    {
        bool restored = stopped && _bestWeights is not null;
        if (!stopped && Options.EarlyStopping is { RestoreBestWeightsAtEnd: true } && _bestWeights is not null && _bestEpoch != Position.Epoch)
        {
            RestoreBestWeights();
            SaveCheckpoint(); // the checkpoint holds the weights the trainer goes on from
            restored = true;
        }

        bool watching = Options.EarlyStopping is not null && _bestEpoch > 0;
        return new TrainingResult(summaries, stopped ? TrainingStopReason.EarlyStopped : TrainingStopReason.Completed,
            watching ? _bestEpoch : null, watching ? _bestLoss : null, restored);
    }

    private void SaveCheckpoint()
    {
        if (Options.CheckpointDirectory is { } directory) TrainingCheckpoint.Save(directory, this);
    }
}

/// <summary>Where a training run stands.</summary>
/// <param name="Epoch">0-based epoch in progress (or next to start): the number of epochs ended.</param>
/// <param name="Batch">Batches of that epoch already done.</param>
/// <param name="LossSum">Sum of those batches' mean losses.</param>
/// <param name="Correct">Images of that epoch classified right so far.</param>
/// <param name="Seen">Images of that epoch seen so far.</param>
public readonly record struct TrainingPosition(int Epoch, int Batch, double LossSum, long Correct, long Seen);

/// <summary>
/// Training diverged: a batch's loss was NaN or infinite (typically a learning rate far too high). Training stopped
/// at that batch; the network's weights are no longer usable, so a caller keeps its previous model.
/// </summary>
public sealed class NonFiniteLossException : ArithmeticException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="epoch">1-based epoch.</param>
    /// <param name="batch">1-based batch within the epoch.</param>
    /// <param name="batches">Batches per epoch.</param>
    /// <param name="loss">The loss found (NaN or ±infinity).</param>
    /// <param name="learningRate">The learning rate in use.</param>
    public NonFiniteLossException(int epoch, int batch, int batches, double loss, double learningRate)
        : base(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"training diverged: the loss became {loss} at epoch {epoch}, batch {batch}/{batches} (learning rate {learningRate:G4}); lower the learning rate."))
    {
        Epoch = epoch;
        Batch = batch;
        Loss = loss;
    }

    /// <summary>1-based epoch where the loss stopped being finite.</summary>
    public int Epoch { get; }

    /// <summary>1-based batch (within <see cref="Epoch"/>) where the loss stopped being finite.</summary>
    public int Batch { get; }

    /// <summary>The non-finite loss.</summary>
    public double Loss { get; }
}
