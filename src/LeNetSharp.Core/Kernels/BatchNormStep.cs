using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNorm1d{T}"/> and <see cref="BatchNorm2d{T}"/> with <see cref="Vector{T}"/>, alone or with the
/// <see cref="Relu{T}"/> that follows it as one step; the same bits as the layers. The layer's passes over the (m, C)
/// values, with a block of channels per vector instead of one channel at a time. Each channel's sums still run over
/// the rows in the layer's order, and each value goes through the layer's operations (widened to double, subtracted,
/// multiplied, rounded back; γ·x̂ + β in T without a fused multiply-add), so every lane computes exactly what the
/// layer's scalar code does; channels past the last full block take the layer's scalar formulas. The per-channel ends
/// (1/√(σ² + ε), the running statistics, ∂γ, ∂β, the scale of ∂x) are the layer's own methods. Float and double.
/// (Where several NaNs meet in a sum, which payload the result carries follows the order the JIT gives an addition's
/// operands, in the layer's scalar code as here: a NaN matches a NaN, every other value matches bit for bit.)
/// <para>
/// With the Relu: forward writes max(γ·x̂ + β, 0) (Relu's own maximum: −0 to +0, a NaN kept with its bits) where the
/// layer writes y, so BatchNorm's output never goes to memory. Backward lets ∂y through where y &gt; 0 (+0 elsewhere,
/// at 0 and NaN as Relu's derivative) as BatchNorm's two backward sweeps read it, so no masked ∂y is written either.
/// The mask is not read from the output: y is recomputed from the kept x̂ with γ and β, which the layer's backward
/// already takes as the forward left them (its ∂x is scaled by γ), and recomputing rounds as the forward did.
/// </para>
/// <para>
/// Memory traffic, in sweeps (streams) over m·C values. Training forward: Σx (read x), Σ(x − μ)² (read x; the
/// layer's two-pass variance, which no one-pass formula rounds alike), then one output sweep that reads x and writes
/// x̂ and y (or the Relu's output): 5 streams, against the layer's 6 (x̂ written, then read back for γ·x̂ + β) plus
/// Relu's 2. Evaluation forward: the output sweep alone, x̂ written only when kept for backward: 2 or 3 streams against
/// 4 (+2). Training backward: Σ∂y and Σ∂y·x̂ (read ∂y, x̂), then ∂x (read ∂y, x̂, write ∂x): 5 streams, with or
/// without the Relu (whose own backward adds 3). Evaluation backward: the sums and ∂x = scale·∂y in one sweep (the
/// scale needs no sum): 3 streams against the layer's 4. A training step of BatchNorm → Relu: 10 streams against 16.
/// </para>
/// </summary>
internal sealed class BatchNormStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly BatchNorm<T> _layer;
    private readonly bool _relu;        // whether the following Relu is part of the step
    private readonly double[] _mean;    // per channel: μ of the batch (training) or running_mean (evaluation)
    private readonly double[] _invStd;  // per channel: 1/√(σ² + ε) or 1/√(running_var + ε)
    private readonly double[] _sumA;    // Σx then Σ(x − μ)² forward, Σ∂y backward
    private readonly double[] _sumB;    // Σ∂y·x̂ backward
    private readonly double[] _scale;   // γ/√(var + ε) backward
    private Tensor<T>? _normalized;     // x̂ of the last forward that kept it
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _lastForwardTrained;

    /// <summary>A step for <paramref name="layer"/>, and with <paramref name="relu"/> for the <see cref="Relu{T}"/> after it.</summary>
    public BatchNormStep(BatchNorm<T> layer, bool relu = false)
    {
        _layer = layer;
        _relu = relu;
        int c = layer.Channels;
        _mean = new double[c];
        _invStd = new double[c];
        _sumA = new double[c];
        _sumB = new double[c];
        _scale = new double[c];
    }

    /// <summary>Whether the step runs <typeparamref name="T"/> (float and double: the element types it widens to double).</summary>
    public static bool Applies => typeof(T) == typeof(float) || typeof(T) == typeof(double);

    /// <summary>Whether a <see cref="Relu{T}"/> follows the BatchNorm at position i of a layer list (the step then runs both).</summary>
    public static bool FollowedByRelu(IReadOnlyList<ILayer<T>> layers, int i) => i + 1 < layers.Count && layers[i + 1] is Relu<T>;

    public override string Name => _relu
        ? $"{_layer.Name} → Relu (fused, {VectorOps.WidthName<T>()})"
        : $"{_layer.Name} ({VectorOps.WidthName<T>()})";

    public override int LayerCount => _relu ? 2 : 1;

    /// <summary>Channels in one block: two vectors of double, one vector of float.</summary>
    private static int Block => 2 * Vector<double>.Count;

    /// <summary>What follows x̂ forward, and what precedes BatchNorm's backward, as the layer's γ and β stand now.</summary>
    private Epilogue Tail => _layer.Affine
        ? new Epilogue(_layer.Weight!.Value.Span, _layer.Bias!.Value.Span, _relu)
        : new Epilogue([], [], _relu);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        int m = _layer.RowsOf(input), channels = _layer.Channels;
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> xhat = keepForBackward ? Tensor<T>.ReuseLike(ref _normalized, input).Span : [];
        ReadOnlySpan<T> x = input.Span;
        _lastForwardTrained = _layer.Training;
        if (_layer.Training)
        {
            Sums(x, m, channels, _sumA);                         // Σx
            for (int c = 0; c < channels; c++) _mean[c] = _sumA[c] / m;
            SquaredDeviations(x, m, channels, _mean, _sumA);     // Σ(x − μ)²
            _layer.FinishBatchStatistics(_mean, _sumA, m, _invStd);
        }
        else
        {
            _layer.LoadRunningStatistics(_mean, _invStd);
        }

        Normalize(x, m, channels, _mean, _invStd, Tail, xhat, output.Span);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int channels = _layer.Channels, m = outputGradient.Length / channels;
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        ReadOnlySpan<T> dy = outputGradient.Span, xhat = _normalized!.Span;
        var tail = Tail;
        if (!_lastForwardTrained)
        {
            // Evaluation: x̂ is affine in x, ∂x = scale·∂y, and the scale needs no sum: one sweep.
            _layer.GradientScale(_invStd, _scale);
            GradientSums(dy, xhat, m, channels, tail, _sumA, _sumB, _scale, inputGrad.Span);
            _layer.AddParameterGradients(_sumA, _sumB, _invStd, _scale);
            return inputGrad;
        }

        GradientSums(dy, xhat, m, channels, tail, _sumA, _sumB, [], []); // Σ∂y, Σ∂y·x̂
        _layer.AddParameterGradients(_sumA, _sumB, _invStd, _scale);
        for (int c = 0; c < channels; c++)
        {
            _sumA[c] /= m;
            _sumB[c] /= m;
        }

        InputGradient(dy, xhat, m, channels, tail, _sumA, _sumB, _scale, inputGrad.Span);
        return inputGrad;
    }

    // ----- the passes; each lane does the layer's scalar arithmetic for its channel -----

    /// <summary>sum[c] = Σ_r x[r, c], the rows in order.</summary>
    private static void Sums(ReadOnlySpan<T> x, int m, int channels, Span<double> sum)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        sum.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(x, o + c, out var lo, out var hi);
                Add(sum, c, lo);
                Add(sum, c + d, hi);
            }

            for (int c = full; c < channels; c++) sum[c] += double.CreateTruncating(x[o + c]);
        }
    }

    /// <summary>sum[c] = Σ_r (x[r, c] − μ[c])², the rows in order.</summary>
    private static void SquaredDeviations(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, Span<double> sum)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        sum.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(x, o + c, out var lo, out var hi);
                var dl = lo - Get(mean, c);
                var dh = hi - Get(mean, c + d);
                Add(sum, c, dl * dl);
                Add(sum, c + d, dh * dh);
            }

            for (int c = full; c < channels; c++)
            {
                double dev = double.CreateTruncating(x[o + c]) - mean[c];
                sum[c] += dev * dev;
            }
        }
    }

    /// <summary>
    /// x̂ = T((x − μ)·invStd) into <paramref name="xhat"/> (unless empty: nothing kept), and the tail of x̂ (γ·x̂ + β, the
    /// Relu's maximum) into <paramref name="y"/>, in one sweep.
    /// </summary>
    private static void Normalize(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in Epilogue tail, Span<T> xhat, Span<T> y)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(x, o + c, out var lo, out var hi);
                lo = (lo - Get(mean, c)) * Get(invStd, c);
                hi = (hi - Get(mean, c + d)) * Get(invStd, c + d);
                if (typeof(T) == typeof(float))
                {
                    Write(Vector.Narrow(lo, hi).As<float, T>(), o + c, c, tail, xhat, y); // rounded to nearest, as T.CreateTruncating(double)
                }
                else
                {
                    Write(lo.As<double, T>(), o + c, c, tail, xhat, y);
                    Write(hi.As<double, T>(), o + c + d, c + d, tail, xhat, y);
                }
            }

            for (int c = full; c < channels; c++)
            {
                T v = T.CreateTruncating((double.CreateTruncating(x[o + c]) - mean[c]) * invStd[c]);
                if (!xhat.IsEmpty) xhat[o + c] = v;
                y[o + c] = tail.Output(v, c);
            }
        }
    }

    /// <summary>
    /// sumDy[c] = Σ_r g, sumDyXhat[c] = Σ_r g·x̂, the rows in order, g being ∂y through the Relu's mask when fused; with
    /// <paramref name="scale"/> (evaluation), also ∂x = T(scale·g) into <paramref name="dx"/>.
    /// </summary>
    private static void GradientSums(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in Epilogue tail,
        Span<double> sumDy, Span<double> sumDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        bool scaled = !scale.IsEmpty;
        sumDy.Clear();
        sumDyXhat.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                LoadGradient(dy, xhat, o + c, c, tail, out var gl, out var gh, out var xl, out var xh);
                Add(sumDy, c, gl);
                Add(sumDy, c + d, gh);
                Add(sumDyXhat, c, gl * xl);
                Add(sumDyXhat, c + d, gh * xh);
                if (scaled) Store(dx, o + c, Get(scale, c) * gl, Get(scale, c + d) * gh);
            }

            for (int c = full; c < channels; c++)
            {
                double g = double.CreateTruncating(tail.Gradient(dy[o + c], xhat[o + c], c));
                sumDy[c] += g;
                sumDyXhat[c] += g * double.CreateTruncating(xhat[o + c]);
                if (scaled) dx[o + c] = T.CreateTruncating(scale[c] * g);
            }
        }
    }

    /// <summary>Training's ∂x = T(scale·((g − mean g) − x̂·mean(g·x̂))), g being ∂y through the Relu's mask when fused.</summary>
    private static void InputGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in Epilogue tail,
        ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                LoadGradient(dy, xhat, o + c, c, tail, out var gl, out var gh, out var xl, out var xh);
                var lo = gl - Get(meanDy, c) - xl * Get(meanDyXhat, c);
                var hi = gh - Get(meanDy, c + d) - xh * Get(meanDyXhat, c + d);
                Store(dx, o + c, Get(scale, c) * lo, Get(scale, c + d) * hi);
            }

            for (int c = full; c < channels; c++)
            {
                T x = xhat[o + c];
                double g = double.CreateTruncating(tail.Gradient(dy[o + c], x, c)) - meanDy[c] - double.CreateTruncating(x) * meanDyXhat[c];
                dx[o + c] = T.CreateTruncating(scale[c] * g);
            }
        }
    }

    // ----- a block of channels as two vectors of double -----

    /// <summary>The block of channels at <paramref name="i"/>, widened to double: exact, as the layer's conversion.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load(ReadOnlySpan<T> s, int i, out Vector<double> lo, out Vector<double> hi)
    {
        if (typeof(T) == typeof(float))
        {
            Vector.Widen(new Vector<float>(MemoryMarshal.Cast<T, float>(s).Slice(i)), out lo, out hi);
        }
        else
        {
            var d = MemoryMarshal.Cast<T, double>(s);
            lo = new Vector<double>(d.Slice(i));
            hi = new Vector<double>(d.Slice(i + Vector<double>.Count));
        }
    }

    /// <summary>
    /// The block of ∂y at <paramref name="i"/> (channel <paramref name="c"/>) through the tail's Relu mask, g, and the
    /// block of x̂, both widened to double.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void LoadGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int i, int c, in Epilogue tail,
        out Vector<double> gl, out Vector<double> gh, out Vector<double> xl, out Vector<double> xh)
    {
        var x0 = new Vector<T>(xhat.Slice(i));
        var g0 = tail.Gradient(new Vector<T>(dy.Slice(i)), x0, c);
        if (typeof(T) == typeof(float))
        {
            Vector.Widen(g0.As<T, float>(), out gl, out gh);
            Vector.Widen(x0.As<T, float>(), out xl, out xh);
        }
        else
        {
            int d = Vector<double>.Count;
            var x1 = new Vector<T>(xhat.Slice(i + d));
            gl = g0.As<T, double>();
            gh = tail.Gradient(new Vector<T>(dy.Slice(i + d)), x1, c + d).As<T, double>();
            xl = x0.As<T, double>();
            xh = x1.As<T, double>();
        }
    }

    /// <summary>Writes a block, rounded to T to nearest as the layer's T.CreateTruncating(double) rounds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Span<T> s, int i, Vector<double> lo, Vector<double> hi)
    {
        if (typeof(T) == typeof(float))
        {
            Vector.Narrow(lo, hi).CopyTo(MemoryMarshal.Cast<T, float>(s).Slice(i));
        }
        else
        {
            var d = MemoryMarshal.Cast<T, double>(s);
            lo.CopyTo(d.Slice(i));
            hi.CopyTo(d.Slice(i + Vector<double>.Count));
        }
    }

    /// <summary>One vector of x̂ at <paramref name="i"/> (channel <paramref name="c"/>) into x̂ (unless empty) and its tail into y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Write(Vector<T> v, int i, int c, in Epilogue tail, Span<T> xhat, Span<T> y)
    {
        if (!xhat.IsEmpty) v.CopyTo(xhat.Slice(i));
        tail.Output(v, c).CopyTo(y.Slice(i));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<double> Get(ReadOnlySpan<double> s, int i) => new(s.Slice(i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Span<double> sum, int i, Vector<double> v) => (new Vector<double>(sum.Slice(i)) + v).CopyTo(sum.Slice(i));

    /// <summary>
    /// What follows x̂ in T: y = γ·x̂ + β (rounded, then the sum: no fused multiply-add), or y = x̂ without affine; then,
    /// with the Relu, its output max(y, 0) forward and its mask y &gt; 0 on ∂y backward. Lane by lane as in scalar.
    /// </summary>
    private readonly ref struct Epilogue
    {
        private readonly ReadOnlySpan<T> _gamma; // empty without affine
        private readonly ReadOnlySpan<T> _beta;
        private readonly bool _relu;

        public Epilogue(ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, bool relu)
        {
            _gamma = gamma;
            _beta = beta;
            _relu = relu;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private Vector<T> Y(Vector<T> xhat, int c) => _gamma.IsEmpty ? xhat : new Vector<T>(_gamma.Slice(c)) * xhat + new Vector<T>(_beta.Slice(c));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private T Y(T xhat, int c) => _gamma.IsEmpty ? xhat : _gamma[c] * xhat + _beta[c];

        /// <summary>The step's output for x̂: y, or Relu(y).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector<T> Output(Vector<T> xhat, int c) => _relu ? VectorOps.Relu(Y(xhat, c)) : Y(xhat, c);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public T Output(T xhat, int c) => _relu ? ScalarOps.Relu(Y(xhat, c)) : Y(xhat, c);

        /// <summary>BatchNorm's ∂y from the step's: as is, or through the Relu, ∂ where y &gt; 0 and +0 elsewhere (y = 0 or NaN).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Vector<T> Gradient(Vector<T> dy, Vector<T> xhat, int c) =>
            _relu ? Vector.ConditionalSelect(Vector.GreaterThan(Y(xhat, c), Vector<T>.Zero), dy, Vector<T>.Zero) : dy;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public T Gradient(T dy, T xhat, int c) => !_relu || Y(xhat, c) > T.Zero ? dy : T.Zero;
    }
}
