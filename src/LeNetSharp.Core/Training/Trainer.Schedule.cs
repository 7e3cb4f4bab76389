using System.Numerics;

namespace LeNetSharp.Training;

// The learning-rate schedule: the trainer sets the optimizer's rate from it before every step.
public sealed partial class Trainer<T>
{
    private ILearningRateSchedule _schedule = null!;
    private long _ratePeriod = -1; // the period whose rate _rate holds
    private double _rate;

    /// <summary>
    /// Where the schedule is anchored: epoch 0 and the initial learning rate, or, for a run resumed from a version-2
    /// checkpoint (which recorded only the rate of the epoch it stopped in), that epoch and rate.
    /// </summary>
    internal (long Epoch, double Rate) ScheduleOrigin { get; private set; }

    private void StartSchedule(TrainingOptions options)
    {
        _schedule = options.EffectiveSchedule;
        ScheduleOrigin = (0, options.LearningRate);
        _ratePeriod = -1;
    }

    /// <summary>Continues the schedule of a checkpoint (its origin) and sets the rate it recorded.</summary>
    private void ResumeSchedule(TrainingCheckpoint.Contents<T> checkpoint)
    {
        if (checkpoint.ScheduleOrigin.Epoch != 0)
        {
            (long epoch, double rate) = checkpoint.ScheduleOrigin;
            _schedule = new ResumedTutorialSchedule(Options.Decay, epoch, rate);
            ScheduleOrigin = checkpoint.ScheduleOrigin;
            _ratePeriod = -1;
        }

        Optimizer.LearningRate = checkpoint.LearningRate;
    }

    /// <summary>The rate of <paramref name="period"/>, checked (cached: per-epoch schedules are asked once an epoch).</summary>
    private double RateOf(long period)
    {
        if (period != _ratePeriod)
        {
            _rate = ScheduleRules.Checked(_schedule, ScheduleOrigin.Rate, period);
            _ratePeriod = period;
        }

        return _rate;
    }

    /// <summary>
    /// Refuses, before the call trains, a schedule with no usable rate for the last step of a call that ends at epoch
    /// <paramref name="end"/> on <paramref name="images"/> images (a one-cycle or cosine schedule given fewer steps than
    /// the run takes), naming the steps the run takes.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The schedule's message, and the run's steps: epochs × batches, the last batch of an epoch partial.</exception>
    private void RequireScheduleCovers(int images, int end)
    {
        if (end <= Position.Epoch) return;
        long batches = (images + (long)Options.BatchSize - 1) / Options.BatchSize;
        long last = _schedule.Unit == ScheduleUnit.Step ? end * batches - 1 : end - 1;
        try
        {
            ScheduleRules.Checked(_schedule, ScheduleOrigin.Rate, last);
        }
        catch (ArgumentOutOfRangeException e)
        {
            string steps = _schedule.Unit == ScheduleUnit.Step
                ? $"{end * batches:N0} steps ({end} epochs × {batches:N0} batches of up to {Options.BatchSize} images; a last short batch is a step)"
                : $"{end} epochs";
            throw new ArgumentOutOfRangeException(e.ParamName, e.ActualValue, $"{e.Message.Split(" (Parameter", 2)[0].Split(Environment.NewLine)[0]} The run takes {steps}.");
        }
    }

    /// <summary>Sets the optimizer's rate for the step about to run: batch <paramref name="step"/> of the run, in epoch <paramref name="epoch"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The schedule has no positive, finite rate for it; the message names the schedule.</exception>
    private void ApplySchedule(int epoch, long step) =>
        Optimizer.LearningRate = RateOf(_schedule.Unit == ScheduleUnit.Step ? step : epoch);

    /// <summary>
    /// After epoch <paramref name="epoch"/> has ended, sets the rate of the step that comes next, so that
    /// <see cref="IOptimizer{T}.LearningRate"/> and a checkpoint show it (with the tutorial's schedule: lr·Decay^(e+1)).
    /// When the schedule has no usable rate there (a cosine ending at 0, a one-cycle run to its end) the rate stays:
    /// the step that would use it refuses it.
    /// </summary>
    private void ScheduleAfterEpoch(int epoch, int images)
    {
        long batches = (images + (long)Options.BatchSize - 1) / Options.BatchSize;
        try
        {
            ApplySchedule(epoch + 1, (epoch + 1L) * batches);
        }
#pragma warning disable CA1031 // the same call at the next step reports it, where the position is consistent
        catch (Exception)
        {
        }
#pragma warning restore CA1031
    }
}
