using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNorm1d{T}"/> and <see cref="BatchNorm2d{T}"/> with <see cref="Vector{T}"/>, the same bits as the
/// layer: the layer's passes over the (m, C) values, with a block of channels per vector instead of one channel at a
/// time. Each channel's sums still run over the rows in the layer's order, and each value goes through the layer's
/// operations (widened to double, subtracted, multiplied, rounded back; γ·x̂ + β in T without a fused multiply-add),
/// so every lane computes exactly what the layer's scalar code does; channels past the last full block take the
/// layer's scalar formulas. The per-channel ends (1/√(σ² + ε), the running statistics, ∂γ, ∂β) are the layer's own
/// methods. Float and double. (Where several NaNs meet in a sum, which payload the result carries follows the order
/// the JIT gives an addition's operands, in the layer's scalar code as here: a NaN matches a NaN, every other value
/// matches bit for bit.)
/// </summary>
internal sealed class BatchNormStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly BatchNorm<T> _layer;
    private readonly double[] _mean;    // per channel: μ of the batch (training) or running_mean (evaluation)
    private readonly double[] _invStd;  // per channel: 1/√(σ² + ε) or 1/√(running_var + ε)
    private readonly double[] _sumA;    // Σx then Σ(x − μ)² forward, Σ∂y backward
    private readonly double[] _sumB;    // Σ∂y·x̂ backward
    private readonly double[] _scale;   // γ/√(var + ε) backward
    private Tensor<T>? _normalized;     // x̂ of the last forward
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _lastForwardTrained;

    public BatchNormStep(BatchNorm<T> layer)
    {
        _layer = layer;
        int c = layer.Channels;
        _mean = new double[c];
        _invStd = new double[c];
        _sumA = new double[c];
        _sumB = new double[c];
        _scale = new double[c];
    }

    /// <summary>Whether the step runs <typeparamref name="T"/> (float and double: the element types it widens to double).</summary>
    public static bool Applies => typeof(T) == typeof(float) || typeof(T) == typeof(double);

    public override string Name => $"{_layer.Name} ({VectorOps.WidthName<T>()})";

    public override int LayerCount => 1;

    /// <summary>Channels in one block: two vectors of double, one vector of float.</summary>
    private static int Block => 2 * Vector<double>.Count;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        int m = _layer.RowsOf(input), channels = _layer.Channels;
        var output = Tensor<T>.ReuseLike(ref _output, input);
        var normalized = Tensor<T>.ReuseLike(ref _normalized, input);
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

        Normalize(x, m, channels, normalized.Span, output.Span);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int channels = _layer.Channels, m = outputGradient.Length / channels;
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        ReadOnlySpan<T> dy = outputGradient.Span, xhat = _normalized!.Span;
        GradientSums(dy, xhat, m, channels, _sumA, _sumB); // Σ∂y, Σ∂y·x̂
        _layer.AddParameterGradients(_sumA, _sumB, _invStd, _scale);
        if (!_lastForwardTrained)
        {
            Scaled(dy, m, channels, _scale, inputGrad.Span); // evaluation: x̂ is affine in x
            return inputGrad;
        }

        for (int c = 0; c < channels; c++)
        {
            _sumA[c] /= m;
            _sumB[c] /= m;
        }

        InputGradient(dy, xhat, m, channels, inputGrad.Span);
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

    /// <summary>x̂ = T((x − μ)·invStd), then y = γ·x̂ + β in T (or y = x̂ without affine).</summary>
    private void Normalize(ReadOnlySpan<T> x, int m, int channels, Span<T> xhat, Span<T> y)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        ReadOnlySpan<double> mean = _mean, invStd = _invStd;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(x, o + c, out var lo, out var hi);
                Store(xhat, o + c, (lo - Get(mean, c)) * Get(invStd, c), (hi - Get(mean, c + d)) * Get(invStd, c + d));
            }

            for (int c = full; c < channels; c++) xhat[o + c] = T.CreateTruncating((double.CreateTruncating(x[o + c]) - mean[c]) * invStd[c]);
        }

        if (!_layer.Affine)
        {
            xhat.CopyTo(y);
            return;
        }

        ReadOnlySpan<T> gamma = _layer.Weight!.Value.Span, beta = _layer.Bias!.Value.Span;
        int width = Vector<T>.Count, vectors = channels - channels % width;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < vectors; c += width)
            {
                var v = new Vector<T>(gamma.Slice(c)) * new Vector<T>(xhat.Slice(o + c)); // rounded, then the sum: no fused multiply-add
                (v + new Vector<T>(beta.Slice(c))).CopyTo(y.Slice(o + c));
            }

            for (int c = vectors; c < channels; c++) y[o + c] = gamma[c] * xhat[o + c] + beta[c];
        }
    }

    /// <summary>sumDy[c] = Σ_r ∂y, sumDyXhat[c] = Σ_r ∂y·x̂, the rows in order.</summary>
    private static void GradientSums(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, Span<double> sumDy, Span<double> sumDyXhat)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        sumDy.Clear();
        sumDyXhat.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(dy, o + c, out var gl, out var gh);
                Load(xhat, o + c, out var xl, out var xh);
                Add(sumDy, c, gl);
                Add(sumDy, c + d, gh);
                Add(sumDyXhat, c, gl * xl);
                Add(sumDyXhat, c + d, gh * xh);
            }

            for (int c = full; c < channels; c++)
            {
                double g = double.CreateTruncating(dy[o + c]);
                sumDy[c] += g;
                sumDyXhat[c] += g * double.CreateTruncating(xhat[o + c]);
            }
        }
    }

    /// <summary>Evaluation's ∂x = T(scale·∂y).</summary>
    private static void Scaled(ReadOnlySpan<T> dy, int m, int channels, ReadOnlySpan<double> scale, Span<T> dx)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(dy, o + c, out var gl, out var gh);
                Store(dx, o + c, Get(scale, c) * gl, Get(scale, c + d) * gh);
            }

            for (int c = full; c < channels; c++) dx[o + c] = T.CreateTruncating(scale[c] * double.CreateTruncating(dy[o + c]));
        }
    }

    /// <summary>Training's ∂x = T(scale·((∂y − mean ∂y) − x̂·mean(∂y·x̂))), the means in _sumA and _sumB.</summary>
    private void InputGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, Span<T> dx)
    {
        int full = channels - channels % Block, d = Vector<double>.Count;
        ReadOnlySpan<double> meanDy = _sumA, meanDyXhat = _sumB, scale = _scale;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < full; c += Block)
            {
                Load(dy, o + c, out var gl, out var gh);
                Load(xhat, o + c, out var xl, out var xh);
                var lo = gl - Get(meanDy, c) - xl * Get(meanDyXhat, c);
                var hi = gh - Get(meanDy, c + d) - xh * Get(meanDyXhat, c + d);
                Store(dx, o + c, Get(scale, c) * lo, Get(scale, c + d) * hi);
            }

            for (int c = full; c < channels; c++)
            {
                double g = double.CreateTruncating(dy[o + c]) - meanDy[c] - double.CreateTruncating(xhat[o + c]) * meanDyXhat[c];
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<double> Get(ReadOnlySpan<double> s, int i) => new(s.Slice(i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Span<double> sum, int i, Vector<double> v) => (new Vector<double>(sum.Slice(i)) + v).CopyTo(sum.Slice(i));
}
