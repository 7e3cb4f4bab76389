using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>
/// Stochastic gradient descent with PyTorch's rules (<c>torch.optim.SGD</c>). For every parameter w with gradient g:
/// <code>
/// g ← g + weightDecay·w                                   (only when weightDecay &gt; 0)
/// v ← g at the first step, then v ← momentum·v + (1 − dampening)·g   (only when momentum &gt; 0)
/// d ← nesterov ? g + momentum·v : v                       (d ← g without momentum)
/// w ← w − lr·d;  g ← 0
/// </code>
/// With the defaults (no momentum, no decay) this is the tutorial's plain SGD.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Sgd<T> : Optimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[][] _velocity;

    /// <summary>Creates an optimizer over the given parameters.</summary>
    /// <param name="parameters">The parameters it updates (e.g. <see cref="Sequential{T}.Parameters"/>).</param>
    /// <param name="learningRate">Initial learning rate (positive and finite).</param>
    /// <param name="momentum">Momentum in [0, 1) (default 0: none).</param>
    /// <param name="weightDecay">L2 penalty ≥ 0 (default 0: none).</param>
    /// <param name="nesterov">Nesterov momentum (default false); needs a momentum and no dampening, as in PyTorch.</param>
    /// <param name="dampening">Dampening of the momentum in [0, 1] (default 0), not applied at the first step, as in PyTorch.</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    /// <exception cref="ArgumentException">Nesterov momentum without a momentum or with dampening; a parameter is null or listed twice.</exception>
    public Sgd(IEnumerable<Parameter<T>> parameters, double learningRate, double momentum = 0, double weightDecay = 0, bool nesterov = false, double dampening = 0)
        : base(parameters, learningRate)
    {
        RequireFraction(momentum, nameof(momentum), "SGD: momentum");
        if (!(weightDecay >= 0 && double.IsFinite(weightDecay))) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "SGD: weight decay must be ≥ 0 and finite.");
        if (!(dampening >= 0 && dampening <= 1)) throw new ArgumentOutOfRangeException(nameof(dampening), dampening, "SGD: dampening must be in [0, 1].");
        if (nesterov && (momentum == 0 || dampening != 0))
        {
            throw new ArgumentException("SGD: Nesterov momentum requires a momentum and zero dampening.", nameof(nesterov));
        }

        Momentum = momentum;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        Dampening = dampening;
        _velocity = momentum > 0 ? ParameterArray.Select(p => new T[p.Value.Length]).ToArray() : [];
    }

    /// <inheritdoc />
    public override string Name => "SGD";

    /// <summary>Momentum coefficient (0 for plain SGD).</summary>
    public double Momentum { get; }

    /// <summary>L2 weight-decay coefficient (0 for none).</summary>
    public double WeightDecay { get; }

    /// <summary>Whether the momentum is Nesterov's.</summary>
    public bool Nesterov { get; }

    /// <summary>Dampening of the momentum (0 for none).</summary>
    public double Dampening { get; }

    private protected override IReadOnlyList<(string Name, T[][] Arrays)> Buffers =>
        Momentum > 0 ? [("momentum_buffer", _velocity)] : [];

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private protected override void Update(long step)
    {
        T lr = T.CreateChecked(LearningRate), mu = T.CreateChecked(Momentum), decay = T.CreateChecked(WeightDecay);
        T keep = T.CreateChecked(1 - Dampening);
        bool dampen = Dampening != 0 && step > 1; // PyTorch's first step copies g into the buffer undampened
        var parameters = ParameterArray;
        for (int p = 0; p < parameters.Length; p++)
        {
            Span<T> w = parameters[p].Value.Span, g = parameters[p].Gradient.Span;
            if (Momentum == 0)
            {
                if (WeightDecay > 0)
                {
                    for (int i = 0; i < w.Length; i++) g[i] += decay * w[i];
                }

                VectorOps.SubtractScaled(w, g, lr);
                continue;
            }

            MomentumStep(w, g, _velocity[p], lr, mu, keep, decay, WeightDecay > 0, step == 1, dampen, Nesterov);
        }
    }

    /// <summary>
    /// The momentum rule for one parameter in one sweep, element by element: g′ = g + decay·w (with decay), v = μ·v + g′
    /// (μ·v + (1 − dampening)·g′ when dampened), w = w − lr·v (w − lr·(g′ + μ·v) for Nesterov). Vectors and the scalar
    /// tail round every product and sum on its own, as the scalar rule does: the same bits. The first step's v is g′
    /// itself, PyTorch's copy (0·μ + g′ would turn a −0 into +0). g is left as it was (the optimizer clears it next).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void MomentumStep(Span<T> w, ReadOnlySpan<T> g, Span<T> v, T lr, T mu, T keep, T decay, bool withDecay, bool first, bool dampen, bool nesterov)
    {
        ref T ws = ref MemoryMarshal.GetReference(w);
        ref T gs = ref MemoryMarshal.GetReference(g[..w.Length]);
        ref T vs = ref MemoryMarshal.GetReference(v[..w.Length]);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> lrs = new(lr), mus = new(mu), keeps = new(keep), decays = new(decay);
            for (; i + Vector<T>.Count <= w.Length; i += Vector<T>.Count)
            {
                Vector<T> wi = Vector.LoadUnsafe(ref ws, (nuint)i), gi = Vector.LoadUnsafe(ref gs, (nuint)i);
                if (withDecay) gi += decays * wi;
                Vector<T> vi = first ? gi : mus * Vector.LoadUnsafe(ref vs, (nuint)i) + (dampen ? keeps * gi : gi);
                vi.StoreUnsafe(ref vs, (nuint)i);
                (wi - lrs * (nesterov ? gi + mus * vi : vi)).StoreUnsafe(ref ws, (nuint)i);
            }
        }

        for (; i < w.Length; i++)
        {
            T wi = Unsafe.Add(ref ws, i), gi = Unsafe.Add(ref gs, i);
            if (withDecay) gi += decay * wi;
            T vi = Unsafe.Add(ref vs, i) = first ? gi : mu * Unsafe.Add(ref vs, i) + (dampen ? keep * gi : gi);
            Unsafe.Add(ref ws, i) = wi - lr * (nesterov ? gi + mu * vi : vi);
        }
    }
}
