using System.Numerics;
using LeNetSharp.Layers;

namespace LeNetSharp.Training;

/// <summary>The optimizers a <see cref="Trainer{T}"/> can build from its <see cref="TrainingOptions"/>.</summary>
public enum OptimizerKind
{
    /// <summary><see cref="Sgd{T}"/> (the default, the tutorial's).</summary>
    Sgd,

    /// <summary><see cref="Adam{T}"/>: <see cref="TrainingOptions.WeightDecay"/> is an L2 penalty added to the gradient.</summary>
    Adam,

    /// <summary><see cref="AdamW{T}"/>: <see cref="TrainingOptions.WeightDecay"/> is decoupled (PyTorch's AdamW default is 0.01; here it is 0 unless set).</summary>
    AdamW,
}

// The optimizer and the learning-rate schedule of a run.
public sealed partial record TrainingOptions
{
    /// <summary>
    /// The optimizer (default <see cref="OptimizerKind.Sgd"/>). Its settings: <see cref="LearningRate"/> and
    /// <see cref="WeightDecay"/> for all; <see cref="Momentum"/>, <see cref="Nesterov"/> and <see cref="Dampening"/>
    /// for SGD; <see cref="Beta1"/>, <see cref="Beta2"/>, <see cref="Epsilon"/> and <see cref="AmsGrad"/> for Adam
    /// and AdamW. A setting of another optimizer changed from its default is refused by <see cref="Validate"/>.
    /// </summary>
    public OptimizerKind Optimizer { get; init; }

    /// <summary>SGD: Nesterov momentum (default false); needs a <see cref="Momentum"/> and no <see cref="Dampening"/>.</summary>
    public bool Nesterov { get; init; }

    /// <summary>SGD: dampening of the momentum, in [0, 1] (default 0).</summary>
    public double Dampening { get; init; }

    /// <summary>Adam, AdamW: β₁, the decay of the first-moment estimate, in [0, 1) (default 0.9).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Adam, AdamW: β₂, the decay of the second-moment estimate, in [0, 1) (default 0.999).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Adam, AdamW: ε, added to the denominator, positive (default 10⁻⁸).</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Adam, AdamW: the AMSGrad variant (default false).</summary>
    public bool AmsGrad { get; init; }

    /// <summary>
    /// Clip the gradients before every step so that their global L2 norm is at most this, as PyTorch's
    /// <c>clip_grad_norm_</c> (positive; default null: no clipping). Works with every optimizer.
    /// </summary>
    public double? MaxGradientNorm { get; init; }

    /// <summary>
    /// The learning-rate schedule (default null: the tutorial's, <see cref="TutorialSchedule"/> with <see cref="Decay"/>).
    /// The trainer sets the optimizer's rate from it before every step: per-epoch schedules see the epochs ended,
    /// per-step ones the steps since the run began (epochs ended × batches per epoch + batches of this epoch), so later
    /// Train calls and resumed runs go on with it. A rate
    /// that is not positive and finite stops training with an <see cref="ArgumentOutOfRangeException"/> naming the
    /// schedule, before the step that would use it. When set, <see cref="Decay"/> must keep its default.
    /// </summary>
    public ILearningRateSchedule? Schedule { get; init; }

    /// <summary>The schedule the trainer follows: <see cref="Schedule"/>, or the tutorial's with <see cref="Decay"/>.</summary>
    internal ILearningRateSchedule EffectiveSchedule => Schedule ?? new TutorialSchedule(Decay);

    /// <summary>Throws when an optimizer or schedule setting is out of range or belongs to another optimizer.</summary>
    private void ValidateOptimization()
    {
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, "Must be Sgd, Adam or AdamW.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Must be in [0, 1).");
        if (!(WeightDecay >= 0 && double.IsFinite(WeightDecay))) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "Must be ≥ 0 and finite.");
        if (!(Dampening >= 0 && Dampening <= 1)) throw new ArgumentOutOfRangeException(nameof(Dampening), Dampening, "Must be in [0, 1].");
        if (!(Beta1 >= 0 && Beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta1), Beta1, "Must be in [0, 1).");
        if (!(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(Beta2), Beta2, "Must be in [0, 1).");
        if (!(Epsilon > 0 && double.IsFinite(Epsilon))) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Must be positive and finite.");
        if (MaxGradientNorm is { } max && !(max > 0 && double.IsFinite(max)))
        {
            throw new ArgumentOutOfRangeException(nameof(MaxGradientNorm), max, "Must be positive and finite (or null for no clipping).");
        }

        var foreign = new List<string>();
        if (Optimizer == OptimizerKind.Sgd)
        {
            if (Beta1 != 0.9) foreign.Add(nameof(Beta1));
            if (Beta2 != 0.999) foreign.Add(nameof(Beta2));
            if (Epsilon != 1e-8) foreign.Add(nameof(Epsilon));
            if (AmsGrad) foreign.Add(nameof(AmsGrad));
        }
        else
        {
            if (Momentum != 0) foreign.Add(nameof(Momentum));
            if (Nesterov) foreign.Add(nameof(Nesterov));
            if (Dampening != 0) foreign.Add(nameof(Dampening));
        }

        if (foreign.Count > 0)
        {
            string owner = Optimizer == OptimizerKind.Sgd ? "Adam and AdamW" : "SGD";
            throw new ArgumentException($"{string.Join(", ", foreign)} {(foreign.Count == 1 ? "is a setting" : "are settings")} of {owner}, not of {Optimizer}.");
        }

        if (Nesterov && (Momentum == 0 || Dampening != 0))
        {
            throw new ArgumentException("Nesterov momentum requires a Momentum and zero Dampening.", nameof(Nesterov));
        }

        if (Schedule is not null && Decay != 0.95)
        {
            throw new ArgumentException($"Decay ({Decay}) belongs to the tutorial's schedule, which Schedule ({Schedule}) replaces; use new TutorialSchedule({Decay}) or leave Decay at 0.95.", nameof(Decay));
        }

        if (Schedule is not null) _ = ScheduleRules.Checked(Schedule, LearningRate, 0); // a schedule unusable from its start fails here
    }

    /// <summary>The optimizer these options describe, over <paramref name="parameters"/>.</summary>
    internal Optimizer<T> CreateOptimizer<T>(IEnumerable<Parameter<T>> parameters) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Optimizer<T> optimizer = Optimizer switch
        {
            OptimizerKind.Adam => new Adam<T>(parameters, LearningRate, Beta1, Beta2, Epsilon, WeightDecay, AmsGrad),
            OptimizerKind.AdamW => new AdamW<T>(parameters, LearningRate, Beta1, Beta2, Epsilon, WeightDecay, AmsGrad),
            _ => new Sgd<T>(parameters, LearningRate, Momentum, WeightDecay, Nesterov, Dampening),
        };
        optimizer.MaxGradientNorm = MaxGradientNorm;
        return optimizer;
    }
}
