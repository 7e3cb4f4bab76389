using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>
/// What Adam and AdamW share: β₁, β₂, ε, the weight decay, AMSGrad, the moment estimates and their update; the two
/// differ only in how the weight decay enters (<see cref="Adam{T}"/>: an L2 penalty added to the gradient;
/// <see cref="AdamW{T}"/>: decoupled from it).
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public abstract class AdamBase<T> : Optimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly AdamMoments<T> _moments;
    private readonly bool _decoupled;

    /// <summary>Checks the settings and creates zero moment estimates.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    /// <exception cref="ArgumentException">A parameter is null or listed twice.</exception>
    private protected AdamBase(IEnumerable<Parameter<T>> parameters, double learningRate, double beta1, double beta2, double epsilon,
        double weightDecay, bool amsGrad, bool decoupled)
        : base(parameters, learningRate)
    {
        _moments = new AdamMoments<T>(Name, ParameterArray, beta1, beta2, epsilon, weightDecay, amsGrad);
        _decoupled = decoupled;
    }

    /// <summary>β₁, the decay of the first-moment estimate.</summary>
    public double Beta1 => _moments.Beta1;

    /// <summary>β₂, the decay of the second-moment estimate.</summary>
    public double Beta2 => _moments.Beta2;

    /// <summary>ε, added to the denominator.</summary>
    public double Epsilon => _moments.Epsilon;

    /// <summary>
    /// The weight decay (0 for none): for Adam an L2 penalty added to the gradient; for AdamW decoupled, each step
    /// multiplying the weights by 1 − lr·WeightDecay.
    /// </summary>
    public double WeightDecay => _moments.WeightDecay;

    /// <summary>Whether the AMSGrad variant is used.</summary>
    public bool AmsGrad => _moments.AmsGrad;

    private protected override IReadOnlyList<(string Name, T[][] Arrays)> Buffers => _moments.Buffers;

    /// <inheritdoc />
    private protected override void Update(long step) => _moments.Update(ParameterArray, LearningRate, step, _decoupled);
}

/// <summary>
/// Adam (Kingma and Ba) with PyTorch 1.13's rules (<c>torch.optim.Adam</c>). At step t, for every parameter w with
/// gradient g:
/// <code>
/// g ← g + weightDecay·w                       (L2 penalty, only when weightDecay &gt; 0)
/// m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²
/// v̂ ← amsGrad ? (vmax ← max(vmax, v)) : v
/// w ← w + (−lr / (1 − β₁ᵗ))·m / (√v̂ / √(1 − β₂ᵗ) + ε);  g ← 0
/// </code>
/// ε is added after the bias correction of √v, as in PyTorch. For decay that is not an L2 penalty see <see cref="AdamW{T}"/>.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Adam<T> : AdamBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates an optimizer over the given parameters.</summary>
    /// <param name="parameters">The parameters it updates (e.g. <see cref="Sequential{T}.Parameters"/>).</param>
    /// <param name="learningRate">Learning rate (positive and finite; PyTorch's default is 0.001).</param>
    /// <param name="beta1">Decay of the first-moment estimate, in [0, 1) (default 0.9).</param>
    /// <param name="beta2">Decay of the second-moment estimate, in [0, 1) (default 0.999).</param>
    /// <param name="epsilon">Added to the denominator, positive and finite (default 10⁻⁸).</param>
    /// <param name="weightDecay">L2 penalty added to the gradient, ≥ 0 (default 0).</param>
    /// <param name="amsGrad">Normalise by the largest second-moment estimate so far (AMSGrad; default false).</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    /// <exception cref="ArgumentException">A parameter is null or listed twice.</exception>
    public Adam(IEnumerable<Parameter<T>> parameters, double learningRate = 0.001, double beta1 = 0.9, double beta2 = 0.999,
        double epsilon = 1e-8, double weightDecay = 0, bool amsGrad = false)
        : base(parameters, learningRate, beta1, beta2, epsilon, weightDecay, amsGrad, decoupled: false)
    {
    }

    /// <inheritdoc />
    public override string Name => "Adam";
}

/// <summary>
/// AdamW (Loshchilov and Hutter) with PyTorch 1.13's rules (<c>torch.optim.AdamW</c>): Adam whose weight decay is
/// decoupled from the gradient. At step t, first w ← w·(1 − lr·weightDecay), then Adam's update of
/// <see cref="Adam{T}"/> without the L2 term.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class AdamW<T> : AdamBase<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates an optimizer over the given parameters.</summary>
    /// <param name="parameters">The parameters it updates (e.g. <see cref="Sequential{T}.Parameters"/>).</param>
    /// <param name="learningRate">Learning rate (positive and finite; PyTorch's default is 0.001).</param>
    /// <param name="beta1">Decay of the first-moment estimate, in [0, 1) (default 0.9).</param>
    /// <param name="beta2">Decay of the second-moment estimate, in [0, 1) (default 0.999).</param>
    /// <param name="epsilon">Added to the denominator, positive and finite (default 10⁻⁸).</param>
    /// <param name="weightDecay">Decoupled weight decay, ≥ 0 (default 0.01, PyTorch's).</param>
    /// <param name="amsGrad">Normalise by the largest second-moment estimate so far (AMSGrad; default false).</param>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    /// <exception cref="ArgumentException">A parameter is null or listed twice.</exception>
    public AdamW(IEnumerable<Parameter<T>> parameters, double learningRate = 0.001, double beta1 = 0.9, double beta2 = 0.999,
        double epsilon = 1e-8, double weightDecay = 0.01, bool amsGrad = false)
        : base(parameters, learningRate, beta1, beta2, epsilon, weightDecay, amsGrad, decoupled: true)
    {
    }

    /// <inheritdoc />
    public override string Name => "AdamW";
}

/// <summary>
/// The moment estimates and update loop of Adam and AdamW. Each element's arithmetic is the same in the vector and the
/// scalar loop (no fused multiply-adds), so the result does not depend on the vector width.
/// </summary>
internal sealed class AdamMoments<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T[][] _m, _v, _vMax;

    public AdamMoments(string optimizer, Parameter<T>[] parameters, double beta1, double beta2, double epsilon, double weightDecay, bool amsGrad)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, $"{optimizer}: beta1 must be in [0, 1).");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, $"{optimizer}: beta2 must be in [0, 1).");
        if (!(epsilon > 0 && double.IsFinite(epsilon))) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"{optimizer}: epsilon must be positive and finite.");
        if (!(weightDecay >= 0 && double.IsFinite(weightDecay))) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, $"{optimizer}: weight decay must be ≥ 0 and finite.");
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        AmsGrad = amsGrad;
        _m = parameters.Select(p => new T[p.Value.Length]).ToArray();
        _v = parameters.Select(p => new T[p.Value.Length]).ToArray();
        _vMax = amsGrad ? parameters.Select(p => new T[p.Value.Length]).ToArray() : [];
        Buffers = amsGrad ? [("exp_avg", _m), ("exp_avg_sq", _v), ("max_exp_avg_sq", _vMax)] : [("exp_avg", _m), ("exp_avg_sq", _v)];
    }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Epsilon { get; }

    public double WeightDecay { get; }

    public bool AmsGrad { get; }

    public IReadOnlyList<(string Name, T[][] Arrays)> Buffers { get; }

    /// <summary>One step (1-based <paramref name="step"/>) of Adam, or of AdamW when <paramref name="decoupled"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Update(Parameter<T>[] parameters, double learningRate, long step, bool decoupled)
    {
        // The scalars as PyTorch computes them, in double: bias corrections, the step size, √(1 − β₂ᵗ).
        double t = step;
        double stepSize = learningRate / (1 - Math.Pow(Beta1, t));
        var c = new Coefficients(
            T.CreateChecked(Beta1), T.CreateChecked(1 - Beta1), T.CreateChecked(Beta2), T.CreateChecked(1 - Beta2),
            T.CreateChecked(Math.Sqrt(1 - Math.Pow(Beta2, t))), T.CreateChecked(Epsilon), T.CreateChecked(-stepSize));
        T decay = T.CreateChecked(WeightDecay), shrink = T.CreateChecked(1 - learningRate * WeightDecay);
        for (int p = 0; p < parameters.Length; p++)
        {
            Span<T> w = parameters[p].Value.Span, g = parameters[p].Gradient.Span;
            if (WeightDecay != 0)
            {
                if (decoupled) VectorOps.Scale(w, shrink);
                else for (int i = 0; i < w.Length; i++) g[i] += decay * w[i];
            }

            Apply(w, g, _m[p], _v[p], AmsGrad ? _vMax[p] : default, c);
        }
    }

    /// <summary>β₁, 1 − β₁, β₂, 1 − β₂, √(1 − β₂ᵗ), ε and −lr/(1 − β₁ᵗ) in the element type.</summary>
    private readonly record struct Coefficients(T Beta1, T OneMinusBeta1, T Beta2, T OneMinusBeta2, T Correction2, T Epsilon, T MinusStep);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Apply(Span<T> w, ReadOnlySpan<T> g, Span<T> m, Span<T> v, Span<T> vMax, in Coefficients c)
    {
        bool ams = !vMax.IsEmpty;
        int i = 0;
        if (Vector.IsHardwareAccelerated && Vector<T>.IsSupported)
        {
            ref T ws = ref MemoryMarshal.GetReference(w), gs = ref MemoryMarshal.GetReference(g);
            ref T ms = ref MemoryMarshal.GetReference(m), vs = ref MemoryMarshal.GetReference(v), xs = ref MemoryMarshal.GetReference(vMax);
            Vector<T> b1 = new(c.Beta1), k1 = new(c.OneMinusBeta1), b2 = new(c.Beta2), k2 = new(c.OneMinusBeta2);
            Vector<T> c2 = new(c.Correction2), eps = new(c.Epsilon), step = new(c.MinusStep);
            for (; i + Vector<T>.Count <= w.Length; i += Vector<T>.Count)
            {
                var gi = Vector.LoadUnsafe(ref gs, (nuint)i);
                var mi = Vector.LoadUnsafe(ref ms, (nuint)i) * b1 + gi * k1;
                var vi = Vector.LoadUnsafe(ref vs, (nuint)i) * b2 + k2 * gi * gi;
                mi.StoreUnsafe(ref ms, (nuint)i);
                vi.StoreUnsafe(ref vs, (nuint)i);
                if (ams)
                {
                    vi = VectorOps.MaxKeepingNaN(Vector.LoadUnsafe(ref xs, (nuint)i), vi);
                    vi.StoreUnsafe(ref xs, (nuint)i);
                }

                var denominator = Vector.SquareRoot(vi) / c2 + eps;
                (Vector.LoadUnsafe(ref ws, (nuint)i) + step * mi / denominator).StoreUnsafe(ref ws, (nuint)i);
            }
        }

        for (; i < w.Length; i++)
        {
            T gi = g[i];
            T mi = m[i] = m[i] * c.Beta1 + gi * c.OneMinusBeta1;
            T vi = v[i] = v[i] * c.Beta2 + c.OneMinusBeta2 * gi * gi;
            if (ams) vi = vMax[i] = ScalarOps.MaxKeepingNaN(vMax[i], vi);
            w[i] += c.MinusStep * mi / (T.Sqrt(vi) / c.Correction2 + c.Epsilon); // addcdiv's order: (value·m) / denominator
        }
    }
}
