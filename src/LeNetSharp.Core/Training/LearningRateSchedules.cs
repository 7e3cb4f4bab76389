using System.Globalization;

namespace LeNetSharp.Training;

/// <summary>What a schedule's period counts.</summary>
public enum ScheduleUnit
{
    /// <summary>Epochs ended: the rate changes between epochs (PyTorch's <c>scheduler.step()</c> after each epoch).</summary>
    Epoch,

    /// <summary>Optimizer steps taken: the rate changes before every step (<c>scheduler.step()</c> after each batch).</summary>
    Step,
}

/// <summary>
/// A learning-rate schedule: the rate as a function of the initial rate and the period (epoch or step), and nothing
/// else, so any schedule works with any optimizer and a resumed run finds its rate from where it stands. The trainer
/// sets <see cref="IOptimizer{T}.LearningRate"/> from it before every step and refuses a rate that is not positive
/// and finite, naming the schedule (its <see cref="object.ToString"/>).
/// </summary>
public interface ILearningRateSchedule
{
    /// <summary>Whether <see cref="RateAt"/>'s period counts epochs or steps.</summary>
    ScheduleUnit Unit { get; }

    /// <summary>The learning rate of a period.</summary>
    /// <param name="initialRate">The run's initial rate (<see cref="TrainingOptions.LearningRate"/>).</param>
    /// <param name="period">0-based: the epochs ended, or the steps taken, before the one the rate is for.</param>
    /// <returns>The rate (positive and finite for a usable schedule).</returns>
    double RateAt(double initialRate, long period);
}

/// <summary>The rules every built-in schedule applies to its arguments and its rates.</summary>
internal static class ScheduleRules
{
    /// <summary>Throws unless the initial rate is positive and finite and the period is not negative.</summary>
    public static void RequireArguments(ILearningRateSchedule schedule, double initialRate, long period)
    {
        if (!(initialRate > 0 && double.IsFinite(initialRate)))
        {
            throw new ArgumentOutOfRangeException(nameof(initialRate), initialRate, $"{schedule}: the initial learning rate must be positive and finite.");
        }

        if (period < 0) throw new ArgumentOutOfRangeException(nameof(period), period, $"{schedule}: the period must be ≥ 0.");
    }

    /// <summary>Returns <paramref name="rate"/>, or throws naming the schedule when it is not positive and finite.</summary>
    public static double Usable(ILearningRateSchedule schedule, double rate, long period)
    {
        if (rate > 0 && double.IsFinite(rate)) return rate;
        throw new ArgumentOutOfRangeException(nameof(period), period, string.Create(CultureInfo.InvariantCulture,
            $"{schedule} gives the learning rate {rate} for {Unit(schedule)} {period} (0-based); a learning rate must be positive and finite."));
    }

    /// <summary><paramref name="schedule"/>'s rate for <paramref name="period"/>, checked, whoever wrote the schedule.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The rate is not positive and finite; the message names the schedule.</exception>
    public static double Checked(ILearningRateSchedule schedule, double initialRate, long period) =>
        Usable(schedule, schedule.RateAt(initialRate, period), period);

    public static string Unit(ILearningRateSchedule schedule) => schedule.Unit == ScheduleUnit.Step ? "step" : "epoch";

    public static string Per(ScheduleUnit unit) => unit == ScheduleUnit.Step ? "per step" : "per epoch";

    public static ScheduleUnit RequireUnit(ScheduleUnit unit) =>
        Enum.IsDefined(unit) ? unit : throw new ArgumentOutOfRangeException(nameof(unit), unit, "The unit must be Epoch or Step.");

    public static string Format(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}

/// <summary>The initial rate throughout.</summary>
public sealed record ConstantSchedule : ILearningRateSchedule
{
    /// <inheritdoc />
    public ScheduleUnit Unit => ScheduleUnit.Epoch;

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        return initialRate;
    }

    /// <summary>"ConstantSchedule".</summary>
    /// <returns>The description.</returns>
    public override string ToString() => "ConstantSchedule";
}

/// <summary>
/// The tutorial's schedule, the trainer's default: after epoch e (0-based) the rate is multiplied by decay^(e + 1),
/// so with 0.01 and 0.95 epoch 0 trains at 0.01, epoch 1 at 0.0095, epoch 2 at 0.0095·0.9025, … (PyTorch's
/// <c>MultiplicativeLR</c> with <c>lambda e: decay ** e</c>). The rate of epoch e is computed by those e
/// multiplications, in that order, so it has the bits the tutorial's running product has.
/// </summary>
public sealed record TutorialSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="decay">The base of the decay, in (0, 1] (default 0.95, the tutorial's; 1 keeps the rate).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="decay"/> is outside (0, 1].</exception>
    public TutorialSchedule(double decay = 0.95)
    {
        if (!(decay > 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "TutorialSchedule: the decay must be in (0, 1].");
        Decay = decay;
    }

    /// <summary>The base of the decay.</summary>
    public double Decay { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit => ScheduleUnit.Epoch;

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        return ScheduleRules.Usable(this, From(initialRate, 0, period, Decay), period);
    }

    /// <summary>The rate of epoch <paramref name="epoch"/> when epoch <paramref name="start"/> trains at <paramref name="rate"/>.</summary>
    internal static double From(double rate, long start, long epoch, double decay)
    {
        // Decay 1 multiplies by 1 every epoch; a product that certainly underflows (its logarithm far below that of the
        // smallest double, whatever the rounding) is 0. Either way the answer comes at once, for any period.
        if (decay == 1 || epoch <= start) return rate;
        double exponent = ((double)start + 1 + epoch) * (epoch - start) / 2; // Σ (e + 1) for e = start … epoch − 1
        if (Math.Log(rate) + exponent * Math.Log(decay) < -800) return 0;
        for (long e = start; e < epoch && rate != 0; e++) rate = Next(rate, e, decay);
        return rate;
    }

    /// <summary>The learning rate to use after <paramref name="completedEpoch"/> ends.</summary>
    /// <param name="learningRate">The rate used during that epoch.</param>
    /// <param name="completedEpoch">The 0-based index of the epoch that just ended.</param>
    /// <param name="decay">The base of the decay (the tutorial's is 0.95).</param>
    /// <returns>learningRate · decay^(completedEpoch + 1).</returns>
    internal static double Next(double learningRate, long completedEpoch, double decay) =>
        learningRate * Math.Pow(decay, completedEpoch + 1);

    /// <summary>E.g. "TutorialSchedule(decay 0.95)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() => ScheduleRules.Format($"TutorialSchedule(decay {Decay})");
}

/// <summary>
/// The tutorial's schedule continued from a version-2 checkpoint, which recorded the rate of the epoch it stopped in
/// rather than the initial one: the same running product, started from that epoch and rate.
/// </summary>
internal sealed class ResumedTutorialSchedule(double decay, long epoch, double rate) : ILearningRateSchedule
{
    public ScheduleUnit Unit => ScheduleUnit.Epoch;

    public double RateAt(double initialRate, long period)
    {
        if (period < epoch) throw new ArgumentOutOfRangeException(nameof(period), period, $"{this}: the checkpoint starts at epoch {epoch}.");
        return ScheduleRules.Usable(this, TutorialSchedule.From(rate, epoch, period, decay), period);
    }

    public override string ToString() => new TutorialSchedule(decay).ToString();
}

/// <summary>
/// PyTorch's <c>StepLR</c>: the initial rate times gamma^⌊period / stepSize⌋, so the rate drops by gamma every
/// <see cref="StepSize"/> periods.
/// </summary>
public sealed record StepSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="stepSize">Periods between drops (≥ 1).</param>
    /// <param name="gamma">The factor of each drop, positive and finite (default 0.1).</param>
    /// <param name="unit">Whether the periods are epochs (default) or steps.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public StepSchedule(long stepSize, double gamma = 0.1, ScheduleUnit unit = ScheduleUnit.Epoch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stepSize, 1);
        if (!(gamma > 0 && double.IsFinite(gamma))) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "StepSchedule: gamma must be positive and finite.");
        StepSize = stepSize;
        Gamma = gamma;
        Unit = ScheduleRules.RequireUnit(unit);
    }

    /// <summary>Periods between drops.</summary>
    public long StepSize { get; }

    /// <summary>The factor of each drop.</summary>
    public double Gamma { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit { get; }

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        return ScheduleRules.Usable(this, initialRate * Math.Pow(Gamma, period / StepSize), period);
    }

    /// <summary>E.g. "StepSchedule(step size 30, gamma 0.1, per epoch)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() => ScheduleRules.Format($"StepSchedule(step size {StepSize}, gamma {Gamma}, {ScheduleRules.Per(Unit)})");
}

/// <summary>PyTorch's <c>ExponentialLR</c>: the initial rate times gamma^period.</summary>
public sealed record ExponentialSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="gamma">The factor per period, positive and finite.</param>
    /// <param name="unit">Whether the periods are epochs (default) or steps.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public ExponentialSchedule(double gamma, ScheduleUnit unit = ScheduleUnit.Epoch)
    {
        if (!(gamma > 0 && double.IsFinite(gamma))) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "ExponentialSchedule: gamma must be positive and finite.");
        Gamma = gamma;
        Unit = ScheduleRules.RequireUnit(unit);
    }

    /// <summary>The factor per period.</summary>
    public double Gamma { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit { get; }

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        return ScheduleRules.Usable(this, initialRate * Math.Pow(Gamma, period), period);
    }

    /// <summary>E.g. "ExponentialSchedule(gamma 0.95, per epoch)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() => ScheduleRules.Format($"ExponentialSchedule(gamma {Gamma}, {ScheduleRules.Per(Unit)})");
}

/// <summary>
/// PyTorch's <c>CosineAnnealingLR</c> (its closed form): min + (initial − min)·(1 + cos(π·period / periods)) / 2,
/// falling from the initial rate to <see cref="MinimumRate"/> over <see cref="Periods"/> periods and, past them,
/// rising again as PyTorch's does. With a minimum of 0 the rate of period <see cref="Periods"/> is 0, which the
/// trainer refuses if a step would use it; a run of exactly <see cref="Periods"/> epochs never does.
/// </summary>
public sealed record CosineAnnealingSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="periods">T_max, the periods from the initial rate to the minimum (≥ 1).</param>
    /// <param name="minimumRate">η_min, ≥ 0 and finite (default 0).</param>
    /// <param name="unit">Whether the periods are epochs (default) or steps.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public CosineAnnealingSchedule(long periods, double minimumRate = 0, ScheduleUnit unit = ScheduleUnit.Epoch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(periods, 1);
        if (!(minimumRate >= 0 && double.IsFinite(minimumRate)))
        {
            throw new ArgumentOutOfRangeException(nameof(minimumRate), minimumRate, "CosineAnnealingSchedule: the minimum rate must be ≥ 0 and finite.");
        }

        Periods = periods;
        MinimumRate = minimumRate;
        Unit = ScheduleRules.RequireUnit(unit);
    }

    /// <summary>T_max, the periods from the initial rate to the minimum.</summary>
    public long Periods { get; }

    /// <summary>η_min, the rate reached after <see cref="Periods"/> periods.</summary>
    public double MinimumRate { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit { get; }

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        double rate = MinimumRate + (initialRate - MinimumRate) * (1 + Math.Cos(Math.PI * period / Periods)) / 2;
        return ScheduleRules.Usable(this, rate, period);
    }

    /// <summary>E.g. "CosineAnnealingSchedule(periods 30, minimum rate 0, per epoch)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() =>
        ScheduleRules.Format($"CosineAnnealingSchedule(periods {Periods}, minimum rate {MinimumRate}, {ScheduleRules.Per(Unit)})");
}

/// <summary>How <see cref="OneCycleSchedule"/> moves between its rates.</summary>
public enum OneCycleAnnealing
{
    /// <summary>Cosine annealing (PyTorch's <c>'cos'</c>, the default).</summary>
    Cosine,

    /// <summary>Linear annealing (PyTorch's <c>'linear'</c>).</summary>
    Linear,
}

/// <summary>
/// PyTorch's <c>OneCycleLR</c>, per step, for the learning rate only (its momentum cycling is left out: a schedule
/// sets the rate and nothing else). The initial rate is the peak (PyTorch's <c>max_lr</c>): the cycle starts at
/// peak / divFactor, rises to the peak over the first <see cref="PercentStart"/> of <see cref="TotalSteps"/> and
/// falls to start / finalDivFactor at the last step (with three phases: back to the start, then to the minimum).
/// A step past <see cref="TotalSteps"/> has no rate.
/// </summary>
public sealed record OneCycleSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="totalSteps">Steps in the cycle (≥ 1), e.g. epochs × batches per epoch.</param>
    /// <param name="percentStart">Fraction of the cycle spent rising, in [0, 1] (default 0.3).</param>
    /// <param name="annealing">Cosine (default) or linear.</param>
    /// <param name="divFactor">Peak / starting rate, positive and finite (default 25).</param>
    /// <param name="finalDivFactor">Starting rate / final rate, positive and finite (default 10⁴).</param>
    /// <param name="threePhase">PyTorch's three-phase cycle (default false).</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public OneCycleSchedule(long totalSteps, double percentStart = 0.3, OneCycleAnnealing annealing = OneCycleAnnealing.Cosine,
        double divFactor = 25, double finalDivFactor = 1e4, bool threePhase = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        if (!(percentStart >= 0 && percentStart <= 1)) throw new ArgumentOutOfRangeException(nameof(percentStart), percentStart, "OneCycleSchedule: percentStart must be in [0, 1].");
        if (!Enum.IsDefined(annealing)) throw new ArgumentOutOfRangeException(nameof(annealing), annealing, "OneCycleSchedule: annealing must be Cosine or Linear.");
        if (!(divFactor > 0 && double.IsFinite(divFactor))) throw new ArgumentOutOfRangeException(nameof(divFactor), divFactor, "OneCycleSchedule: divFactor must be positive and finite.");
        if (!(finalDivFactor > 0 && double.IsFinite(finalDivFactor)))
        {
            throw new ArgumentOutOfRangeException(nameof(finalDivFactor), finalDivFactor, "OneCycleSchedule: finalDivFactor must be positive and finite.");
        }

        TotalSteps = totalSteps;
        PercentStart = percentStart;
        Annealing = annealing;
        DivFactor = divFactor;
        FinalDivFactor = finalDivFactor;
        ThreePhase = threePhase;
    }

    /// <summary>Steps in the cycle.</summary>
    public long TotalSteps { get; }

    /// <summary>Fraction of the cycle spent rising.</summary>
    public double PercentStart { get; }

    /// <summary>Cosine or linear.</summary>
    public OneCycleAnnealing Annealing { get; }

    /// <summary>Peak / starting rate.</summary>
    public double DivFactor { get; }

    /// <summary>Starting rate / final rate.</summary>
    public double FinalDivFactor { get; }

    /// <summary>Whether the cycle has PyTorch's three phases.</summary>
    public bool ThreePhase { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit => ScheduleUnit.Step;

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        if (period >= TotalSteps)
        {
            throw new ArgumentOutOfRangeException(nameof(period), period,
                $"{this} has no rate for step {period} (0-based): the cycle has {TotalSteps} steps; give it more.");
        }

        double peak = initialRate, start = peak / DivFactor, end = start / FinalDivFactor;
        // PyTorch's phases: (end step, from, to); a step belongs to the first phase it does not pass, or to the last.
        ReadOnlySpan<(double End, double From, double To)> phases = ThreePhase
            ?
            [
                (PercentStart * TotalSteps - 1, start, peak),
                (2 * PercentStart * TotalSteps - 2, peak, start),
                (TotalSteps - 1, start, end),
            ]
            : [(PercentStart * TotalSteps - 1, start, peak), (TotalSteps - 1, peak, end)];
        double phaseStart = 0, rate = double.NaN;
        for (int i = 0; i < phases.Length; i++)
        {
            var (phaseEnd, from, to) = phases[i];
            if (period <= phaseEnd || i == phases.Length - 1)
            {
                double pct = (period - phaseStart) / (phaseEnd - phaseStart);
                rate = Annealing == OneCycleAnnealing.Cosine ? to + (from - to) / 2.0 * (Math.Cos(Math.PI * pct) + 1) : (to - from) * pct + from;
                break;
            }

            phaseStart = phaseEnd;
        }

        return ScheduleRules.Usable(this, rate, period);
    }

    /// <summary>E.g. "OneCycleSchedule(total steps 1000, percent start 0.3, cosine, div factor 25, final div factor 10000, two phases)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() => ScheduleRules.Format(
        $"OneCycleSchedule(total steps {TotalSteps}, percent start {PercentStart}, {(Annealing == OneCycleAnnealing.Cosine ? "cosine" : "linear")}, div factor {DivFactor}, final div factor {FinalDivFactor}, {(ThreePhase ? "three" : "two")} phases)");
}

/// <summary>
/// A linear warm-up in front of another schedule, as PyTorch's <c>SequentialLR</c> of <c>LinearLR(start_factor,
/// total_iters = periods)</c> and that schedule with the milestone at <see cref="Periods"/>: period t &lt; periods
/// trains at r₀·(startFactor + (1 − startFactor)·t / periods), where r₀ is the other schedule's first rate (the
/// initial rate for all but <see cref="OneCycleSchedule"/>, whose cycle starts lower); from then on the other
/// schedule runs from its period 0. Periods are counted in the other schedule's unit.
/// </summary>
public sealed record LinearWarmupSchedule : ILearningRateSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <param name="then">The schedule after the warm-up.</param>
    /// <param name="periods">Length of the warm-up in <paramref name="then"/>'s unit (≥ 1).</param>
    /// <param name="startFactor">The fraction of r₀ the warm-up starts at, in (0, 1] (default 1/3, PyTorch's).</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range.</exception>
    public LinearWarmupSchedule(ILearningRateSchedule then, long periods, double startFactor = 1.0 / 3)
    {
        ArgumentNullException.ThrowIfNull(then);
        ArgumentOutOfRangeException.ThrowIfLessThan(periods, 1);
        if (!(startFactor > 0 && startFactor <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(startFactor), startFactor, "LinearWarmupSchedule: the start factor must be in (0, 1].");
        }

        Then = then;
        Periods = periods;
        StartFactor = startFactor;
    }

    /// <summary>The schedule after the warm-up.</summary>
    public ILearningRateSchedule Then { get; }

    /// <summary>Length of the warm-up.</summary>
    public long Periods { get; }

    /// <summary>The fraction of the first rate the warm-up starts at.</summary>
    public double StartFactor { get; }

    /// <inheritdoc />
    public ScheduleUnit Unit => Then.Unit;

    /// <inheritdoc />
    public double RateAt(double initialRate, long period)
    {
        ScheduleRules.RequireArguments(this, initialRate, period);
        if (period >= Periods) return ScheduleRules.Checked(Then, initialRate, period - Periods);
        double first = ScheduleRules.Checked(Then, initialRate, 0);
        return ScheduleRules.Usable(this, first * (StartFactor + (1 - StartFactor) * period / Periods), period);
    }

    /// <summary>E.g. "LinearWarmupSchedule(5 epochs from 0.1, then CosineAnnealingSchedule(…))".</summary>
    /// <returns>The description.</returns>
    public override string ToString() =>
        ScheduleRules.Format($"LinearWarmupSchedule({Periods} {ScheduleRules.Unit(Then)}s from {StartFactor}, then {Then})");
}
