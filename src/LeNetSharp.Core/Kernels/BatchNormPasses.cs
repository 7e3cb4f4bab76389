using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNormStep{T}"/>'s sweeps over the (m, C) values of a batch, at one vector width: each lane does the
/// layer's scalar arithmetic for its channel (see <see cref="BatchNormPasses{TOps, TV, DOps, TD, T}"/>), or, where the
/// channels do not fill one 128-bit vector, the layer's scalar loops themselves.
/// </summary>
internal abstract class BatchNormPasses<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>"Vector512", "Vector256", "Vector128", or "scalar".</summary>
    public abstract string Width { get; }

    /// <summary>
    /// The passes at <paramref name="bits"/>-bit vectors, or at the widest narrower width whose vector of
    /// <typeparamref name="T"/> the <paramref name="channels"/> fill (a block of channels is one vector), or scalar
    /// when not even 128 bits' does.
    /// </summary>
    public static BatchNormPasses<T> For(int bits, int channels) => VectorBits(bits, channels) switch
    {
        512 => new BatchNormPasses<Simd512<T>, Vector512<T>, Simd512<double>, Vector512<double>, T>(),
        256 => new BatchNormPasses<Simd256<T>, Vector256<T>, Simd256<double>, Vector256<double>, T>(),
        128 => new BatchNormPasses<Simd128<T>, Vector128<T>, Simd128<double>, Vector128<double>, T>(),
        _ => new ScalarBatchNormPasses<T>(),
    };

    /// <summary>
    /// The vector width the passes for <paramref name="channels"/> run at with <paramref name="bits"/>-bit vectors: that
    /// width, or the widest narrower one whose vector of <typeparamref name="T"/> the channels fill; 0 (scalar) when not
    /// even 128 bits' does.
    /// </summary>
    public static int VectorBits(int bits, int channels)
    {
        for (int width = bits is 512 or 256 ? bits : 128; width >= 128; width /= 2)
        {
            if (width / (8 * Unsafe.SizeOf<T>()) <= channels) return width;
        }

        return 0;
    }

    /// <summary>sum[c] = Σ_r x[r, c], the rows in order.</summary>
    public abstract void Sums(ReadOnlySpan<T> x, int m, int channels, Span<double> sum);

    /// <summary>sum[c] = Σ_r (x[r, c] − μ[c])², the rows in order.</summary>
    public abstract void SquaredDeviations(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, Span<double> sum);

    /// <summary>
    /// x̂ = T((x − μ)·invStd) into <paramref name="xhat"/> (unless empty: nothing kept), and the tail of x̂ (γ·x̂ + β, the
    /// Relu's maximum) into <paramref name="y"/>, in one sweep.
    /// </summary>
    public abstract void Normalize(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in BatchNormTail<T> tail, Span<T> xhat, Span<T> y);

    /// <summary>
    /// sumDy[c] = Σ_r g, sumDyXhat[c] = Σ_r g·x̂, the rows in order, g being ∂y through the Relu's mask when fused; with
    /// <paramref name="scale"/> (evaluation), also ∂x = T(scale·g) into <paramref name="dx"/>.
    /// </summary>
    public abstract void GradientSums(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        Span<double> sumDy, Span<double> sumDyXhat, ReadOnlySpan<double> scale, Span<T> dx);

    /// <summary>Training's ∂x = T(scale·((g − mean g) − x̂·mean(g·x̂))), g being ∂y through the Relu's mask when fused.</summary>
    public abstract void InputGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale, Span<T> dx);
}

/// <summary>
/// What follows x̂ in T: y = γ·x̂ + β (rounded, then the sum: no fused multiply-add), or y = x̂ without affine; then,
/// with the Relu, its output max(y, 0) forward and its mask y &gt; 0 on ∂y backward. The scalar forms; the vector
/// passes apply the same operations lane by lane.
/// </summary>
internal readonly ref struct BatchNormTail<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>γ and β as the layer holds them (both empty without affine), and whether the Relu follows.</summary>
    public BatchNormTail(ReadOnlySpan<T> gamma, ReadOnlySpan<T> beta, bool relu)
    {
        Gamma = gamma;
        Beta = beta;
        Relu = relu;
    }

    /// <summary>γ, empty without affine.</summary>
    public ReadOnlySpan<T> Gamma { get; }

    /// <summary>β, empty without affine.</summary>
    public ReadOnlySpan<T> Beta { get; }

    public bool Affine => !Gamma.IsEmpty;

    public bool Relu { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private T Y(T xhat, int c) => Affine ? Gamma[c] * xhat + Beta[c] : xhat;

    /// <summary>The step's output for x̂ of channel <paramref name="c"/>: y, or Relu(y).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T Output(T xhat, int c) => Relu ? ScalarOps.Relu(Y(xhat, c)) : Y(xhat, c);

    /// <summary>BatchNorm's ∂y from the step's: as is, or through the Relu, ∂ where y &gt; 0 and +0 elsewhere (y = 0 or NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public T Gradient(T dy, T xhat, int c) => !Relu || Y(xhat, c) > T.Zero ? dy : T.Zero;
}

/// <summary>
/// The passes with vectors of <typeparamref name="T"/> (<typeparamref name="TOps"/>) and of double of the same width
/// (<typeparamref name="DOps"/>): a block of channels is one vector of T, widened to one (double) or two (float) vectors
/// of double. Each channel's sums still run over the rows in the layer's order, and each value goes through the layer's
/// operations (widened to double, subtracted, multiplied, rounded back; γ·x̂ + β in T without a fused multiply-add), so
/// every lane computes exactly what the layer's scalar code does.
/// <para>
/// The channels are covered by blocks at 0, B, 2B, … and, when B does not divide C, a last block shifted back to end at
/// C (C ≥ B: <see cref="BatchNormPasses{T}.For"/> picks a width the channels fill). The shifted block recomputes the
/// lanes it shares with the block before it: an element-wise pass writes them again with the same bits, and a sum adds
/// +0 in them instead of the term, which leaves every sum as it was (sums start at +0, and a sum is −0 only when both
/// addends are, so s + (+0) = s; a NaN stays the same NaN).
/// </para>
/// <para>
/// The rows go in chunks of about 8 KB of each stream; within a chunk each block runs down the rows with its sums and
/// its per-channel constants (μ, 1/√(σ² + ε), γ, β, the gradient's means and scale) in registers, so memory is swept
/// once and a sum waits on its addition only, not on a store and reload per row.
/// </para>
/// </summary>
internal sealed partial class BatchNormPasses<TOps, TV, DOps, TD, T> : BatchNormPasses<T>
    where TOps : struct, ISimdWidening<TV, TD, T>
    where DOps : struct, ISimdWidening<TD, TD, double>
    where TV : struct
    where TD : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Whether a vector of T is two of double (float) rather than one (double).</summary>
    private static bool Halves
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] // a JIT-time constant, also where a kernel has used up the inlining budget
        get => typeof(T) == typeof(float);
    }

    public override string Width => TOps.Name;

    /// <summary>Rows per chunk: about 8 KB of one stream, at least one row.</summary>
    private static int ChunkRows(int channels) => Math.Max(1, 8192 / (channels * Unsafe.SizeOf<T>()));

    /// <summary>The block for channels from <paramref name="c"/> (a multiple of B): where it starts, at most C − B.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Start(int c, int channels) => Math.Min(c, channels - TOps.Count);

    /// <summary>All-ones in the lanes of the block at <paramref name="at"/> that the block before it did not cover.</summary>
    private static void Fresh(int c, int at, out TD lower, out TD upper)
    {
        lower = DOps.SelectLow(DOps.Zero, DOps.AllBitsSet, c - at);
        upper = DOps.SelectLow(DOps.Zero, DOps.AllBitsSet, c - at - DOps.Count);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TD LoadD(ReadOnlySpan<double> s, int i) => DOps.Load(ref Unsafe.Add(ref MemoryMarshal.GetReference(s), i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TD LoadUpper(ReadOnlySpan<double> s, int i) => Halves ? LoadD(s, i + DOps.Count) : DOps.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreD(TD lower, TD upper, Span<double> s, int i)
    {
        ref double d = ref MemoryMarshal.GetReference(s);
        DOps.Store(lower, ref Unsafe.Add(ref d, i));
        if (Halves) DOps.Store(upper, ref Unsafe.Add(ref d, i + DOps.Count));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV LoadT(ReadOnlySpan<T> s, int i) => TOps.Load(ref Unsafe.Add(ref MemoryMarshal.GetReference(s), i));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreT(TV v, Span<T> s, int i) => TOps.Store(v, ref Unsafe.Add(ref MemoryMarshal.GetReference(s), i));

    /// <summary>y = γ·x̂ + β lane by lane (γ and β of the block), or x̂ without affine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Y(TV xhat, bool affine, TV gamma, TV beta) => affine ? TOps.Add(TOps.Multiply(gamma, xhat), beta) : xhat;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Relu(TV y) => SimdOps.Relu<TOps, TV, T>(y);

    /// <summary>g: ∂y, or with the Relu ∂y where γ·x̂ + β &gt; 0 and +0 elsewhere.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Gradient(TV dy, TV xhat, bool relu, bool affine, TV gamma, TV beta) =>
        relu ? TOps.And(TOps.GreaterThan(Y(xhat, affine, gamma, beta), TOps.Zero), dy) : dy;

    /// <summary>γ and β of the block at <paramref name="at"/>, or zeros without affine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Affine(in BatchNormTail<T> tail, int at, out TV gamma, out TV beta)
    {
        gamma = tail.Affine ? LoadT(tail.Gamma, at) : TOps.Zero;
        beta = tail.Affine ? LoadT(tail.Beta, at) : TOps.Zero;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void Sums(ReadOnlySpan<T> x, int m, int channels, Span<double> sum) => Accumulate(x, m, channels, [], false, sum);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void SquaredDeviations(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, Span<double> sum) =>
        Accumulate(x, m, channels, mean, true, sum);

    /// <summary>sum[c] = Σ_r x or, with <paramref name="deviations"/>, Σ_r (x − μ)², in double, the rows in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void Accumulate(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, bool deviations, Span<double> sum)
    {
        int b = TOps.Count, chunk = ChunkRows(channels);
        sum[..channels].Clear();
        for (int r0 = 0; r0 < m; r0 += chunk)
        {
            int rows = Math.Min(chunk, m - r0);
            for (int c = 0; c < channels; c += b)
            {
                int at = Start(c, channels);
                bool shared = at != c;
                Fresh(c, at, out var freshLo, out var freshHi);
                TD muLo = deviations ? LoadD(mean, at) : DOps.Zero, muHi = deviations ? LoadUpper(mean, at) : DOps.Zero;
                TD accLo = LoadD(sum, at), accHi = LoadUpper(sum, at);
                for (int r = 0, o = r0 * channels + at; r < rows; r++, o += channels)
                {
                    TOps.Widen(LoadT(x, o), out var lo, out var hi);
                    if (deviations)
                    {
                        lo = DOps.Subtract(lo, muLo);
                        lo = DOps.Multiply(lo, lo);
                        if (Halves)
                        {
                            hi = DOps.Subtract(hi, muHi);
                            hi = DOps.Multiply(hi, hi);
                        }
                    }

                    if (shared)
                    {
                        lo = DOps.And(lo, freshLo);
                        hi = DOps.And(hi, freshHi);
                    }

                    accLo = DOps.Add(accLo, lo);
                    if (Halves) accHi = DOps.Add(accHi, hi);
                }

                StoreD(accLo, accHi, sum, at);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void Normalize(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in BatchNormTail<T> tail, Span<T> xhat, Span<T> y)
    {
        int b = TOps.Count, chunk = ChunkRows(channels);
        bool keep = !xhat.IsEmpty, affine = tail.Affine, relu = tail.Relu;
        for (int r0 = 0; r0 < m; r0 += chunk)
        {
            int rows = Math.Min(chunk, m - r0);
            for (int c = 0; c < channels; c += b)
            {
                int at = Start(c, channels);
                TD muLo = LoadD(mean, at), muHi = LoadUpper(mean, at), sLo = LoadD(invStd, at), sHi = LoadUpper(invStd, at);
                Affine(tail, at, out var gamma, out var beta);
                for (int r = 0, o = r0 * channels + at; r < rows; r++, o += channels)
                {
                    TOps.Widen(LoadT(x, o), out var lo, out var hi);
                    lo = DOps.Multiply(DOps.Subtract(lo, muLo), sLo);
                    if (Halves) hi = DOps.Multiply(DOps.Subtract(hi, muHi), sHi);
                    TV v = TOps.Narrow(lo, hi); // rounded to nearest, as T.CreateTruncating(double)
                    if (keep) StoreT(v, xhat, o);
                    TV out0 = Y(v, affine, gamma, beta);
                    StoreT(relu ? Relu(out0) : out0, y, o);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void GradientSums(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        Span<double> sumDy, Span<double> sumDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        int b = TOps.Count, chunk = ChunkRows(channels);
        bool scaled = !scale.IsEmpty, affine = tail.Affine, relu = tail.Relu;
        sumDy[..channels].Clear();
        sumDyXhat[..channels].Clear();
        for (int r0 = 0; r0 < m; r0 += chunk)
        {
            int rows = Math.Min(chunk, m - r0);
            for (int c = 0; c < channels; c += b)
            {
                int at = Start(c, channels);
                bool shared = at != c;
                Fresh(c, at, out var freshLo, out var freshHi);
                Affine(tail, at, out var gamma, out var beta);
                TD sLo = scaled ? LoadD(scale, at) : DOps.Zero, sHi = scaled ? LoadUpper(scale, at) : DOps.Zero;
                TD dyLo = LoadD(sumDy, at), dyHi = LoadUpper(sumDy, at), pLo = LoadD(sumDyXhat, at), pHi = LoadUpper(sumDyXhat, at);
                for (int r = 0, o = r0 * channels + at; r < rows; r++, o += channels)
                {
                    TV xv = LoadT(xhat, o);
                    TOps.Widen(Gradient(LoadT(dy, o), xv, relu, affine, gamma, beta), out var gLo, out var gHi);
                    TOps.Widen(xv, out var xLo, out var xHi);
                    if (scaled) StoreT(TOps.Narrow(DOps.Multiply(sLo, gLo), DOps.Multiply(sHi, gHi)), dx, o);
                    TD gxLo = DOps.Multiply(gLo, xLo), gxHi = DOps.Multiply(gHi, xHi);
                    if (shared)
                    {
                        gLo = DOps.And(gLo, freshLo);
                        gHi = DOps.And(gHi, freshHi);
                        gxLo = DOps.And(gxLo, freshLo);
                        gxHi = DOps.And(gxHi, freshHi);
                    }

                    dyLo = DOps.Add(dyLo, gLo);
                    pLo = DOps.Add(pLo, gxLo);
                    if (Halves)
                    {
                        dyHi = DOps.Add(dyHi, gHi);
                        pHi = DOps.Add(pHi, gxHi);
                    }
                }

                StoreD(dyLo, dyHi, sumDy, at);
                StoreD(pLo, pHi, sumDyXhat, at);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void InputGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        int b = TOps.Count, chunk = ChunkRows(channels);
        bool affine = tail.Affine, relu = tail.Relu;
        for (int r0 = 0; r0 < m; r0 += chunk)
        {
            int rows = Math.Min(chunk, m - r0);
            for (int c = 0; c < channels; c += b)
            {
                int at = Start(c, channels);
                Affine(tail, at, out var gamma, out var beta);
                TD aLo = LoadD(meanDy, at), aHi = LoadUpper(meanDy, at), pLo = LoadD(meanDyXhat, at), pHi = LoadUpper(meanDyXhat, at);
                TD sLo = LoadD(scale, at), sHi = LoadUpper(scale, at);
                for (int r = 0, o = r0 * channels + at; r < rows; r++, o += channels)
                {
                    TV xv = LoadT(xhat, o);
                    TOps.Widen(Gradient(LoadT(dy, o), xv, relu, affine, gamma, beta), out var gLo, out var gHi);
                    TOps.Widen(xv, out var xLo, out var xHi);
                    TD lo = DOps.Subtract(DOps.Subtract(gLo, aLo), DOps.Multiply(xLo, pLo));
                    TD hi = Halves ? DOps.Subtract(DOps.Subtract(gHi, aHi), DOps.Multiply(xHi, pHi)) : DOps.Zero;
                    StoreT(TOps.Narrow(DOps.Multiply(sLo, lo), DOps.Multiply(sHi, hi)), dx, o);
                }
            }
        }
    }
}

/// <summary>The passes as the layer's scalar loops, for fewer channels than one 128-bit vector holds.</summary>
internal sealed class ScalarBatchNormPasses<T> : BatchNormPasses<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public override string Width => "scalar";

    public override void Sums(ReadOnlySpan<T> x, int m, int channels, Span<double> sum)
    {
        sum[..channels].Clear();
        for (int r = 0, o = 0; r < m; r++)
        {
            for (int c = 0; c < channels; c++, o++) sum[c] += double.CreateTruncating(x[o]);
        }
    }

    public override void SquaredDeviations(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, Span<double> sum)
    {
        sum[..channels].Clear();
        for (int r = 0, o = 0; r < m; r++)
        {
            for (int c = 0; c < channels; c++, o++)
            {
                double dev = double.CreateTruncating(x[o]) - mean[c];
                sum[c] += dev * dev;
            }
        }
    }

    public override void Normalize(ReadOnlySpan<T> x, int m, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in BatchNormTail<T> tail, Span<T> xhat, Span<T> y)
    {
        for (int r = 0, o = 0; r < m; r++)
        {
            for (int c = 0; c < channels; c++, o++)
            {
                T v = T.CreateTruncating((double.CreateTruncating(x[o]) - mean[c]) * invStd[c]);
                if (!xhat.IsEmpty) xhat[o] = v;
                y[o] = tail.Output(v, c);
            }
        }
    }

    public override void GradientSums(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        Span<double> sumDy, Span<double> sumDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        sumDy[..channels].Clear();
        sumDyXhat[..channels].Clear();
        for (int r = 0, o = 0; r < m; r++)
        {
            for (int c = 0; c < channels; c++, o++)
            {
                double g = double.CreateTruncating(tail.Gradient(dy[o], xhat[o], c));
                sumDy[c] += g;
                sumDyXhat[c] += g * double.CreateTruncating(xhat[o]);
                if (!scale.IsEmpty) dx[o] = T.CreateTruncating(scale[c] * g);
            }
        }
    }

    public override void InputGradient(ReadOnlySpan<T> dy, ReadOnlySpan<T> xhat, int m, int channels, in BatchNormTail<T> tail,
        ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale, Span<T> dx)
    {
        for (int r = 0, o = 0; r < m; r++)
        {
            for (int c = 0; c < channels; c++, o++)
            {
                T x = xhat[o];
                double g = double.CreateTruncating(tail.Gradient(dy[o], x, c)) - meanDy[c] - double.CreateTruncating(x) * meanDyXhat[c];
                dx[o] = T.CreateTruncating(scale[c] * g);
            }
        }
    }
}
