using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>
/// Stochastic gradient descent. For every parameter w with gradient g:
/// <code>
/// g ← g + weightDecay·w            (only when weightDecay &gt; 0)
/// v ← momentum·v + g;  w ← w − lr·v  (with momentum &gt; 0; else w ← w − lr·g)
/// g ← 0
/// </code>
/// With the defaults (no momentum, no decay) this is the tutorial's plain SGD.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Sgd<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Parameter<T>[] _parameters;
    private readonly T[][] _velocity;

    /// <summary>Creates an optimizer over the given parameters.</summary>
    /// <param name="parameters">The parameters it updates (e.g. <see cref="Sequential{T}.Parameters"/>).</param>
    /// <param name="learningRate">Initial learning rate (&gt; 0).</param>
    /// <param name="momentum">Momentum in [0, 1) (default 0: none).</param>
    /// <param name="weightDecay">L2 penalty ≥ 0 (default 0: none).</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    public Sgd(IEnumerable<Parameter<T>> parameters, double learningRate, double momentum = 0, double weightDecay = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "Momentum must be in [0, 1).");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Weight decay must be ≥ 0.");
        _parameters = parameters.ToArray();
        LearningRate = learningRate;
        Momentum = momentum;
        WeightDecay = weightDecay;
        _velocity = momentum > 0 ? _parameters.Select(p => new T[p.Value.Length]).ToArray() : [];
    }

    /// <summary>The current learning rate (&gt; 0); a schedule changes it between epochs.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not positive and finite.</exception>
    public double LearningRate
    {
        get;
        set => field = value > 0 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "The learning rate must be positive and finite.");
    }

    /// <summary>Momentum coefficient (0 for plain SGD).</summary>
    public double Momentum { get; }

    /// <summary>L2 weight-decay coefficient (0 for none).</summary>
    public double WeightDecay { get; }

    /// <summary>Momentum buffers, one per parameter (empty without momentum); checkpoints save and restore them.</summary>
    internal T[][] Velocity => _velocity;

    /// <summary>The parameters this optimizer updates.</summary>
    public IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>Applies one update to every parameter from its gradient, then clears the gradients.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Step()
    {
        T lr = T.CreateChecked(LearningRate), mu = T.CreateChecked(Momentum), decay = T.CreateChecked(WeightDecay);
        for (int p = 0; p < _parameters.Length; p++)
        {
            Span<T> w = _parameters[p].Value.Span, g = _parameters[p].Gradient.Span;
            if (WeightDecay > 0)
            {
                for (int i = 0; i < w.Length; i++) g[i] += decay * w[i];
            }

            if (Momentum > 0)
            {
                Span<T> v = _velocity[p];
                for (int i = 0; i < w.Length; i++)
                {
                    v[i] = mu * v[i] + g[i];
                    w[i] -= lr * v[i];
                }
            }
            else
            {
                VectorOps.SubtractScaled(w, g, lr);
            }

            g.Clear();
        }
    }
}

/// <summary>
/// The tutorial's learning-rate schedule: after epoch e (0-based) the rate is multiplied by decay^(e+1),
/// so with 0.01 and 0.95 epoch 0 trains at 0.01, epoch 1 at 0.0095, epoch 2 at 0.0095·0.9025, …
/// </summary>
internal static class TutorialSchedule
{
    /// <summary>The learning rate to use after <paramref name="completedEpoch"/> ends.</summary>
    /// <param name="learningRate">The rate used during that epoch.</param>
    /// <param name="completedEpoch">The 0-based index of the epoch that just ended.</param>
    /// <param name="decay">The base of the decay (the tutorial's is 0.95).</param>
    /// <returns>learningRate · decay^(completedEpoch + 1).</returns>
    public static double Next(double learningRate, int completedEpoch, double decay) =>
        learningRate * Math.Pow(decay, completedEpoch + 1);
}
