using System.Collections;
using System.Globalization;

namespace LeNetSharp.Training;

/// <summary>
/// Stops training when the validation loss has stopped improving, as Keras's <c>EarlyStopping(monitor="val_loss")</c>
/// callback, and puts the best weights back. Set in <see cref="TrainingOptions.EarlyStopping"/>, with
/// <see cref="TrainingOptions.ValidationData"/>.
/// <para>
/// After every epoch the validation loss is compared with the best so far: lower by more than <see cref="MinDelta"/>
/// is an improvement, and the weights are kept (in memory, and as <see cref="BestModelFileName"/> in the checkpoint
/// folder when checkpoints are on). After <see cref="Patience"/> epochs in a row without one, training stops at the end
/// of that epoch: the best weights are copied back into the network before the epoch's checkpoint is written, and the
/// call returns a <see cref="TrainingResult"/> whose <see cref="TrainingResult.StopReason"/> says so.
/// </para>
/// <para>
/// The best loss and the count of epochs without improvement carry over from one Train call to the next, as the epoch
/// count does. A call after an early stop trains on from the restored weights (its epochs, the learning rate and the
/// shuffling go on from where the stopped call ended) and stops again once <see cref="Patience"/> epochs have not beaten
/// the best loss: the count starts afresh at the restore. Only the weights are restored, with the non-trainable state
/// they were reached with (BatchNorm's running statistics, as Keras's weights hold its moving averages): momentum and
/// the learning rate are not rewound. A trainer made by <see cref="Trainer{T}.Resume"/> starts with no best loss (the checkpoint
/// does not record it).
/// </para>
/// </summary>
public sealed record EarlyStopping
{
    /// <summary>The model file written in <see cref="TrainingOptions.CheckpointDirectory"/> at every improvement: the best weights so far, for <see cref="Persistence.ModelFile.Load{T}(string)"/>.</summary>
    public const string BestModelFileName = "best.model";

    /// <summary>Epochs in a row without improvement after which training stops (default 5, at least 1).</summary>
    public int Patience { get; init; } = 5;

    /// <summary>How much lower than the best the validation loss must be to count as an improvement (default 0: any decrease).</summary>
    public double MinDelta { get; init; }

    /// <summary>
    /// Also put the best weights back when a call ends all its epochs without stopping early (default false: the
    /// weights of the last epoch are kept, as Keras keeps them).
    /// </summary>
    public bool RestoreBestWeightsAtEnd { get; init; }

    /// <summary>Throws when a setting is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The offending setting, with its value.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Patience, 1, nameof(Patience));
        if (!(MinDelta >= 0 && double.IsFinite(MinDelta))) throw new ArgumentOutOfRangeException(nameof(MinDelta), MinDelta, "Must be finite and not negative.");
    }
}

/// <summary>Why a Train call returned.</summary>
public enum TrainingStopReason
{
    /// <summary>Every epoch the call was to train has ended (none, when a resumed run had nothing left).</summary>
    Completed,

    /// <summary><see cref="EarlyStopping"/> stopped it: the validation loss had not improved for its patience.</summary>
    EarlyStopped,
}

/// <summary>
/// What a Train call did: one summary per epoch it ended, in order (the reports with
/// <see cref="TrainingProgress.IsEpochEnd"/>, also enumerable as this list), why it stopped, and the best validation
/// epoch when <see cref="TrainingOptions.EarlyStopping"/> is on.
/// </summary>
public sealed class TrainingResult : IReadOnlyList<TrainingProgress>
{
    private readonly IReadOnlyList<TrainingProgress> _epochs;

    internal TrainingResult(IReadOnlyList<TrainingProgress> epochs, TrainingStopReason stopReason, int? bestEpoch, double? bestValidationLoss, bool restoredBestWeights)
    {
        _epochs = epochs;
        StopReason = stopReason;
        BestEpoch = bestEpoch;
        BestValidationLoss = bestValidationLoss;
        RestoredBestWeights = restoredBestWeights;
    }

    /// <summary>Why the call returned.</summary>
    public TrainingStopReason StopReason { get; }

    /// <summary>The 1-based epoch with the lowest validation loss so far (in this call or an earlier one); null without early stopping.</summary>
    public int? BestEpoch { get; }

    /// <summary>That epoch's validation loss; null without early stopping.</summary>
    public double? BestValidationLoss { get; }

    /// <summary>True when the call ended by copying the weights of <see cref="BestEpoch"/> back into the network.</summary>
    public bool RestoredBestWeights { get; }

    /// <summary>Epochs this call ended.</summary>
    public int Count => _epochs.Count;

    /// <summary>The summary of the <paramref name="index"/>-th epoch this call ended.</summary>
    /// <param name="index">0-based, below <see cref="Count"/>.</param>
    public TrainingProgress this[int index] => _epochs[index];

    /// <summary>The summaries in order.</summary>
    /// <returns>An enumerator over them.</returns>
    public IEnumerator<TrainingProgress> GetEnumerator() => _epochs.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>
    /// One line, e.g. "stopped early after epoch 9: validation loss not improved on 0.0421 (epoch 6) for 3 epochs; the
    /// weights of epoch 6 are restored" or "ended 2 epochs (1 to 2)" (invariant culture).
    /// </summary>
    /// <returns>The formatted result.</returns>
    public override string ToString()
    {
        var culture = CultureInfo.InvariantCulture;
        if (StopReason == TrainingStopReason.EarlyStopped)
        {
            int last = Count > 0 ? this[Count - 1].Epoch : 0;
            return string.Create(culture,
                $"stopped early after epoch {last}: validation loss not improved on {BestValidationLoss:F4} (epoch {BestEpoch}) for {last - BestEpoch} epoch{(last - BestEpoch == 1 ? "" : "s")}; the weights of epoch {BestEpoch} are restored");
        }

        string ended = Count == 0 ? "nothing left to train"
            : string.Create(culture, $"ended {Count} epoch{(Count == 1 ? "" : "s")} ({this[0].Epoch} to {this[Count - 1].Epoch})");
        return RestoredBestWeights ? string.Create(culture, $"{ended}; the weights of epoch {BestEpoch} are restored") : ended;
    }
}
