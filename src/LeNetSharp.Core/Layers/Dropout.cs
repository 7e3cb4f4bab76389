using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Data;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Inverted dropout, any shape (PyTorch's <c>nn.Dropout(p=0.5)</c>): in training each element is dropped with
/// probability p and the kept ones are scaled by 1/(1 − p), so evaluation needs no rescaling and is the identity.
/// <code>
/// input  x : any shape                    output y : the same shape
/// training   : m[i] = 1/(1 − p) when u[i] ≥ p, else 0, with u[i] uniform in [0, 1) from the layer's generator
///              forward y = x·m;  backward ∂x = ∂y·m   (the mask of the last training forward)
/// evaluation : forward y = x;  backward ∂x = ∂y        (<see cref="Layer{T}.Training"/> false: nothing is drawn)
/// </code>
/// The mask is drawn from the layer's own generator (SplitMix64, started from <see cref="Seed"/>), one number per element
/// in row-major order at each training forward: a layer built with a seed draws the same masks for the same sequence of
/// input shapes, whatever else runs in the process. Every forward in training mode draws a new mask (as PyTorch's);
/// <see cref="Sequential{T}"/> starts in training mode, and evaluation and prediction turn it off.
/// <para>
/// Under a <see cref="Training.Trainer{T}"/> the mask of each step is drawn instead from a stream that depends on
/// <see cref="Seed"/>, the optimizer's step count and each element's place in the whole batch: an image gets the same
/// mask whichever thread's replica runs it (replicas never share draws), and a run resumed from a checkpoint draws
/// exactly the masks the uninterrupted run would have.
/// </para>
/// </summary>
/// <remarks>
/// The generator's position is not part of <see cref="Describe"/>: a network loaded from a model file starts again from
/// <see cref="Seed"/>. <see cref="Clone"/> copies the position (see there).
/// </remarks>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Dropout<T> : Layer<T>, IStochasticLayer where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _scale;
    private readonly string _name;
    private ulong _state;            // the generator's state: SplitMix64 advances it by a constant per draw
    private Tensor<T>? _mask;        // m of the last training forward: 0 or 1/(1 − p)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _masked;            // whether the last forward was in training mode (it drew _mask)
    private long _streamStep = -1;   // the trainer's step for the next training forward (SetStream), or -1: use _state
    private int _streamFirstImage;   // that forward's first image in the whole batch

    /// <summary>Creates the layer.</summary>
    /// <param name="p">The probability of dropping an element in training, from 0 (keep all) to below 1 (default 0.5, PyTorch's).</param>
    /// <param name="seed">Where the layer's mask generator starts (default 0); any int.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="p"/> is not in [0, 1) (or is NaN).</exception>
    public Dropout(double p = 0.5, int seed = 0)
    {
        if (!(p >= 0 && p < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(p), p,
                $"Dropout: p must be at least 0 and below 1 (the probability of dropping an element), got {p.ToString(CultureInfo.InvariantCulture)}.");
        }

        P = p;
        Seed = seed;
        _scale = T.One / T.CreateChecked(1 - p);
        _name = string.Create(CultureInfo.InvariantCulture, $"Dropout p {p}");
        _state = (ulong)(long)seed;
    }

    /// <summary>The probability of dropping an element in training, in [0, 1).</summary>
    public double P { get; }

    /// <summary>Where the mask generator started.</summary>
    public int Seed { get; }

    /// <summary>
    /// Test hook: when set, training forwards keep exactly the elements marked true (scaled by 1/(1 − p)) instead of
    /// drawing; its length must be the input's. The generator does not advance.
    /// </summary>
    internal bool[]? FixedKeep { get; set; }

    /// <inheritdoc />
    public override string Name => _name;

    /// <summary>The input's shape: the layer is element-wise.</summary>
    /// <param name="inputShape">Any shape.</param>
    /// <returns>A copy of <paramref name="inputShape"/>.</returns>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    /// <summary>"Dropout" with its settings "p" and "seed".</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new("Dropout", ("p", P), ("seed", Seed));

    /// <summary>
    /// An independent copy with the same p, seed and <see cref="Layer{T}.Training"/>, whose generator starts where this
    /// layer's is now: the copy draws the masks this layer would draw next, and drawing on either leaves the other's
    /// unchanged. (A layer built from <see cref="Describe"/>, as a loaded model's, starts from <see cref="Seed"/> instead.)
    /// </summary>
    /// <returns>The copy.</returns>
    public override ILayer<T> Clone()
    {
        var copy = (Dropout<T>)base.Clone();
        copy._state = _state;
        copy._streamStep = -1;
        copy.Training = Training;
        return copy;
    }

    /// <summary>The layer a <see cref="Describe"/> result stands for.</summary>
    internal static Dropout<T> FromDescription(LayerDescription d) => new(d.Get("p"), d.GetInt("seed"));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> x = input.Span, y = output.Span;
        _masked = Training;
        if (!Training)
        {
            x.CopyTo(y);
            return output;
        }

        var mask = Tensor<T>.ReuseLike(ref _mask, input);
        Span<T> m = mask.Span;
        DrawMask(input, m);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] * m[i];
        return output;
    }

    /// <summary>
    /// A training forward's mask for <paramref name="input"/> into <paramref name="m"/> (the input's length): 1/(1 − p)
    /// where draw i + 1 of <see cref="TakeDraws"/>' state is at least p, else +0 (or from <see cref="FixedKeep"/> when
    /// set). The reference the SIMD backend's kernel matches.
    /// </summary>
    /// <exception cref="InvalidOperationException"><see cref="FixedKeep"/> is set and its length is not the input's.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal void DrawMask(Tensor<T> input, Span<T> m)
    {
        if (FixedKeep is { } keep)
        {
            if (keep.Length != m.Length)
            {
                throw new InvalidOperationException($"{Name}: the fixed mask has {keep.Length} elements, the input {input.ShapeString} {m.Length}.");
            }

            _streamStep = -1;
            for (int i = 0; i < m.Length; i++) m[i] = keep[i] ? _scale : T.Zero;
            return;
        }

        ulong state = TakeDraws(input);
        for (int i = 0; i < m.Length; i++) m[i] = Uniform(ref state) >= P ? _scale : T.Zero;
    }

    /// <summary>
    /// The generator state s of a training forward on <paramref name="input"/>: element i (row-major) is kept or dropped
    /// by SplitMix64's draw Mix(s + (i + 1)·<see cref="Gamma"/>). Under a trainer the step's stream (then used up):
    /// element e of the whole batch is draw e + 1 of a generator started at the step's own state, so a sub-batch starting
    /// at image f skips f·(values per image) draws, as SplitMix64 advances by a constant per draw. Otherwise the layer's
    /// own generator, advanced past the forward's draws.
    /// </summary>
    internal ulong TakeDraws(Tensor<T> input)
    {
        ulong state;
        if (_streamStep >= 0)
        {
            state = StepState(_streamStep) + (ulong)_streamFirstImage * (ulong)(input.Length / input.Shape[0]) * Gamma;
        }
        else
        {
            state = _state;
            _state += (ulong)input.Length * Gamma;
        }

        _streamStep = -1;
        return state;
    }

    /// <summary>1/(1 − p), a kept element's factor.</summary>
    internal T Scale => _scale;

    /// <summary>
    /// ⌈p·2⁵³⌉: draw z keeps its element exactly when (z &gt;&gt; 11) ≥ this. The layer keeps it when (z &gt;&gt; 11)·2⁻⁵³ ≥ p;
    /// that product is exact (an integer below 2⁵³ times a power of two), and so is p·2⁵³ (below 2⁵³ as p &lt; 1), so the
    /// comparison is between the integer z &gt;&gt; 11 and the real p·2⁵³, which an integer meets exactly when it meets the
    /// ceiling: 0 for p = 0 (every element kept), at most 2⁵³ − 1 for the largest p below 1.
    /// </summary>
    internal ulong KeepThreshold => (ulong)Math.Ceiling(P * 9007199254740992.0);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        Span<T> dy = outputGradient.Span, dx = inputGrad.Span;
        if (!_masked)
        {
            dy.CopyTo(dx);
            return inputGrad;
        }

        Span<T> m = _mask!.Span;
        for (int i = 0; i < dy.Length; i++) dx[i] = dy[i] * m[i];
        return inputGrad;
    }

    /// <inheritdoc />
    void IStochasticLayer.SetStream(long step, int firstImage)
    {
        _streamStep = step;
        _streamFirstImage = firstImage;
    }

    /// <summary>SplitMix64's increment per draw.</summary>
    internal const ulong Gamma = 0x9E3779B97F4A7C15UL;

    /// <summary>Where the draws of trainer step <paramref name="step"/> start: a hash of the seed and the step.</summary>
    private ulong StepState(long step) => SplitMix64.Mix((ulong)(long)Seed ^ SplitMix64.Mix((ulong)step + Gamma));

    /// <summary>The next number of a SplitMix64 generator at <paramref name="state"/>, uniform in [0, 1): its next 64 bits, their top 53 as a fraction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Uniform(ref ulong state)
    {
        ulong z = state += Gamma;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
