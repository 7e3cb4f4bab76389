using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNormReluPoolStep{T}"/>'s sweeps over an (N, H, W, C) batch x, the input of BatchNorm2d → Relu →
/// MaxPool2x2, at one vector width: x̂, y = γ·x̂ + β, the Relu and the pool in one sweep forward, and backward the
/// gradient sums and ∂x from the pooled gradient ∂p and the window positions, each element through the layers'
/// operations. The record holds a byte per pooled element, as <see cref="ReluMaxPoolStep{T}"/>'s: the window position
/// (0–3, row-major) whose element ∂p reaches through the pool and the Relu, 4 for none.
/// </summary>
internal interface IBatchNormPoolPasses<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>
    /// p = MaxPool2x2(Relu(γ·x̂ + β)) with x̂ = T((x − μ)·invStd), and with a non-empty <paramref name="record"/> the
    /// window positions and, in <paramref name="chosen"/> (the shape of p), the x̂ at each window's position (at one of
    /// its four where none passes ∂p); only the elements the pool's windows cover are read.
    /// </summary>
    void Forward(ReadOnlySpan<T> x, int n, int h, int w, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in BatchNormTail<T> tail, Span<T> p, Span<byte> record, Span<T> chosen);

    /// <summary>
    /// sumDy[c] = Σ g, sumDyXhat[c] = Σ g·x̂ over the elements where g, BatchNorm's ∂y, is ∂p (one per window at most), in
    /// the layer's order (image rows, then columns): for each pair of image rows, the upper row's terms, then the lower
    /// row's. The layer also adds g = +0 everywhere else, and +0·x̂ = ±0, which leaves a sum that starts at +0 as it is
    /// when every x̂ is finite: the caller's condition. Reads only pooled-size data: ∂p, the record and the forward's x̂
    /// at the positions (<paramref name="chosen"/>). <paramref name="stash"/> holds at least <see cref="StashLength"/>(W/2) elements.
    /// </summary>
    void GradientSums(ReadOnlySpan<T> chosen, ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int channels,
        Span<double> sumDy, Span<double> sumDyXhat, Span<T> stash);

    /// <summary>The elements <see cref="GradientSums"/> keeps aside for a row of <paramref name="pooledWidth"/> windows.</summary>
    int StashLength(int pooledWidth);

    /// <summary>
    /// ∂x for every element of x (g = ∂p where the record points, +0 elsewhere, an odd last row and column included):
    /// <paramref name="trained"/>, T(scale·((g − mean g) − x̂·mean(g·x̂))), else T(scale·g).
    /// </summary>
    void InputGradient(ReadOnlySpan<T> x, ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int channels,
        ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd, bool trained, ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat,
        ReadOnlySpan<double> scale, Span<T> dx);
}

/// <summary>
/// The pooled sweeps: each block of channels (one vector, the last one shifted back to end at C as in the other passes)
/// goes along a row of windows with its per-channel constants in registers. The maximum, the Relu and the position are
/// <see cref="ReluMaxPoolStep{T}"/>'s, lane by lane at this width.
/// </summary>
internal sealed partial class BatchNormPasses<TOps, TV, DOps, TD, T> : IBatchNormPoolPasses<T>
{
    /// <summary>The record's value for a window that passes no gradient.</summary>
    private const int None = 4;

    /// <summary>x̂ = T((x − μ)·invStd) lane by lane, in double as the layer computes it, rounded to nearest.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV XHat(TV x, TD muLo, TD muHi, TD sLo, TD sHi)
    {
        TOps.Widen(x, out var lo, out var hi);
        lo = DOps.Multiply(DOps.Subtract(lo, muLo), sLo);
        if (Halves) hi = DOps.Multiply(DOps.Subtract(hi, muHi), sHi);
        return TOps.Narrow(lo, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV MaxKeepingNaN(TV a, TV b) => SimdOps.MaxKeepingNaN<TOps, TV, T>(a, b);

    /// <summary>The element at o of x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV At(ref T x, int o) => TOps.Load(ref Unsafe.Add(ref x, o));

    public int StashLength(int pooledWidth) => pooledWidth * 2 * TOps.Count;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Forward(ReadOnlySpan<T> x, int n, int h, int w, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        in BatchNormTail<T> tail, Span<T> p, Span<byte> record, Span<T> chosen)
    {
        int b = TOps.Count, ph = h / 2, pw = w / 2, row = w * channels;
        bool keep = !record.IsEmpty, affine = tail.Affine;
        ref T x0 = ref MemoryMarshal.GetReference(x);
        ref T p0 = ref MemoryMarshal.GetReference(p);
        ref byte r0 = ref MemoryMarshal.GetReference(record);
        ref T c0 = ref MemoryMarshal.GetReference(chosen);
        TV one = TOps.Lanes(1), two = TOps.Lanes(2), none = TOps.Lanes(None);
        for (int image = 0; image < n; image++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (image * h + 2 * i) * row, pooled = (image * ph + i) * pw * channels;
                for (int c = 0; c < channels; c += b)
                {
                    int at = Start(c, channels);
                    TD muLo = LoadD(mean, at), muHi = LoadUpper(mean, at), sLo = LoadD(invStd, at), sHi = LoadUpper(invStd, at);
                    Affine(tail, at, out var gamma, out var beta);
                    for (int j = 0, xo = top + at, o = pooled + at; j < pw; j++, xo += 2 * channels, o += channels)
                    {
                        TV xh00 = XHat(At(ref x0, xo), muLo, muHi, sLo, sHi), xh01 = XHat(At(ref x0, xo + channels), muLo, muHi, sLo, sHi);
                        TV xh10 = XHat(At(ref x0, xo + row), muLo, muHi, sLo, sHi), xh11 = XHat(At(ref x0, xo + row + channels), muLo, muHi, sLo, sHi);
                        TV y00 = Y(xh00, affine, gamma, beta), y01 = Y(xh01, affine, gamma, beta);
                        TV y10 = Y(xh10, affine, gamma, beta), y11 = Y(xh11, affine, gamma, beta);
                        TV upper, lower;
                        if (TOps.AnySet(TOps.Or(TOps.AnyNaN(y00, y01), TOps.AnyNaN(y10, y11))))
                        {
                            upper = MaxKeepingNaN(y00, y01);
                            lower = MaxKeepingNaN(y10, y11);
                            TOps.Store(Relu(MaxKeepingNaN(upper, lower)), ref Unsafe.Add(ref p0, o));
                        }
                        else
                        {
                            // No NaN in the window: the CPU's maximum gives the larger number, and of +0 and −0 either
                            // one, a sign the Relu erases (it gives +0 for ±0) and no comparison below sees.
                            upper = TOps.MaxNative(y00, y01);
                            lower = TOps.MaxNative(y10, y11);
                            TOps.Store(Relu(TOps.MaxNative(upper, lower)), ref Unsafe.Add(ref p0, o));
                        }

                        if (!keep) continue;

                        // ReluMaxPoolStep's choice: the lower row when its maximum beats the upper row's, then the right
                        // element when it beats the left one and 0; the chosen element passes ∂p when it is above 0.
                        TV down = TOps.GreaterThan(lower, upper);
                        TV left = TOps.Select(down, y10, y00), right = TOps.Select(down, y11, y01);
                        TV toRight = TOps.And(TOps.GreaterThan(right, left), TOps.GreaterThan(right, TOps.Zero));
                        TV flows = TOps.Or(toRight, TOps.GreaterThan(left, TOps.Zero));
                        TV position = TOps.Select(flows, TOps.Or(TOps.And(down, two), TOps.And(toRight, one)), none);
                        TOps.StoreLowBytes(position, ref Unsafe.Add(ref r0, o));
                        TOps.Store(TOps.Select(down, TOps.Select(toRight, xh11, xh10), TOps.Select(toRight, xh01, xh00)), ref Unsafe.Add(ref c0, o));
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void GradientSums(ReadOnlySpan<T> chosen, ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int channels,
        Span<double> sumDy, Span<double> sumDyXhat, Span<T> stash)
    {
        int b = TOps.Count, ph = h / 2, pw = w / 2;
        ref T c0 = ref MemoryMarshal.GetReference(chosen);
        ref T g0 = ref MemoryMarshal.GetReference(dp);
        ref byte r0 = ref MemoryMarshal.GetReference(record);
        ref T s0 = ref MemoryMarshal.GetReference(stash[..StashLength(pw)]);
        TV one = TOps.Lanes(1), three = TOps.Lanes(3);
        sumDy[..channels].Clear();
        sumDyXhat[..channels].Clear();
        for (int image = 0; image < n; image++)
        {
            for (int i = 0; i < ph; i++)
            {
                int pooled = (image * ph + i) * pw * channels;
                for (int c = 0; c < channels; c += 2 * b)
                {
                    // Two blocks side by side, their sums independent chains: the second one's lanes that the first
                    // covers (or, with no second block left, all of them) add nothing, and it is stored first.
                    int at = Start(c, channels), next = c + b < channels ? Start(c + b, channels) : at;
                    TV fresh = FreshLanes(c, at), freshNext = c + b < channels ? FreshLanes(c + b, next) : TOps.Zero;
                    TD dyLo = LoadD(sumDy, at), dyHi = LoadUpper(sumDy, at), pLo = LoadD(sumDyXhat, at), pHi = LoadUpper(sumDyXhat, at);
                    TD dyLo2 = LoadD(sumDy, next), dyHi2 = LoadUpper(sumDy, next), pLo2 = LoadD(sumDyXhat, next), pHi2 = LoadUpper(sumDyXhat, next);
                    ref T stashed = ref s0;
                    for (int j = 0, o = pooled; j < pw; j++, o += channels, stashed = ref Unsafe.Add(ref stashed, 2 * b))
                    {
                        UpperTerm(ref c0, ref g0, ref r0, o + at, fresh, one, three, ref stashed, ref dyLo, ref dyHi, ref pLo, ref pHi);
                        UpperTerm(ref c0, ref g0, ref r0, o + next, freshNext, one, three, ref Unsafe.Add(ref stashed, b), ref dyLo2, ref dyHi2, ref pLo2, ref pHi2);
                    }

                    stashed = ref s0;
                    for (int j = 0, o = pooled; j < pw; j++, o += channels, stashed = ref Unsafe.Add(ref stashed, 2 * b))
                    {
                        TOps.LoadWidened(ref stashed, out var gLo, out var gHi);
                        TOps.LoadWidened(ref Unsafe.Add(ref c0, o + at), out var xLo, out var xHi);
                        AddTerm(gLo, gHi, xLo, xHi, ref dyLo, ref dyHi, ref pLo, ref pHi);
                        TOps.LoadWidened(ref Unsafe.Add(ref stashed, b), out gLo, out gHi);
                        TOps.LoadWidened(ref Unsafe.Add(ref c0, o + next), out xLo, out xHi);
                        AddTerm(gLo, gHi, xLo, xHi, ref dyLo2, ref dyHi2, ref pLo2, ref pHi2);
                    }

                    StoreD(dyLo2, dyHi2, sumDy, next);
                    StoreD(pLo2, pHi2, sumDyXhat, next);
                    StoreD(dyLo, dyHi, sumDy, at);
                    StoreD(pLo, pHi, sumDyXhat, at);
                }
            }
        }
    }

    /// <summary>All-ones in the lanes of the block at <paramref name="at"/> that no block before it covered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV FreshLanes(int c, int at) => at == c ? TOps.AllBitsSet : TOps.SelectLow(TOps.Zero, TOps.AllBitsSet, c - at);

    /// <summary>
    /// One window of one block: its upper row's term g·[position 0 or 1] added to the sums now, its lower row's
    /// g·[position 2 or 3] kept at <paramref name="stashed"/> for after the row; g is ∂p in the <paramref name="fresh"/> lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UpperTerm(ref T c0, ref T g0, ref byte r0, int o, TV fresh, TV one, TV three, ref T stashed,
        ref TD dyLo, ref TD dyHi, ref TD pLo, ref TD pHi)
    {
        TV row = TOps.Or(TOps.LoadLowBytes(ref Unsafe.Add(ref r0, o)), one); // 1 for the upper row, 3 for the lower, 5 for none
        TV g = TOps.And(At(ref g0, o), fresh);
        TOps.Store(TOps.And(TOps.EqualLanes(row, three), g), ref stashed);
        TOps.Widen(TOps.And(TOps.EqualLanes(row, one), g), out var gLo, out var gHi);
        TOps.LoadWidened(ref Unsafe.Add(ref c0, o), out var xLo, out var xHi);
        AddTerm(gLo, gHi, xLo, xHi, ref dyLo, ref dyHi, ref pLo, ref pHi);
    }

    /// <summary>
    /// sumDy += g, sumDyXhat += g·x̂ in double, half by half. For float the product of two floats is exact in double, so one
    /// fused multiply-add rounds as the product then the sum do; for double they stay two roundings.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddTerm(TD gLo, TD gHi, TD xLo, TD xHi, ref TD dyLo, ref TD dyHi, ref TD pLo, ref TD pHi)
    {
        dyLo = DOps.Add(dyLo, gLo);
        if (!Halves)
        {
            pLo = DOps.Add(pLo, DOps.Multiply(gLo, xLo));
            return;
        }

        pLo = DOps.MultiplyAdd(gLo, xLo, pLo);
        dyHi = DOps.Add(dyHi, gHi);
        pHi = DOps.MultiplyAdd(gHi, xHi, pHi);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void InputGradient(ReadOnlySpan<T> x, ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int channels,
        ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd, bool trained, ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat,
        ReadOnlySpan<double> scale, Span<T> dx)
    {
        int b = TOps.Count, ph = h / 2, pw = w / 2, row = w * channels;
        ref T x0 = ref MemoryMarshal.GetReference(x);
        ref T g0 = ref MemoryMarshal.GetReference(dp);
        ref T dx0 = ref MemoryMarshal.GetReference(dx);
        ref byte r0 = ref MemoryMarshal.GetReference(record);
        TD one = DOps.Lanes(1), two = DOps.Lanes(2), three = DOps.Lanes(3);
        var k = new GradientConstants();
        for (int image = 0; image < n; image++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (image * h + 2 * i) * row, pooled = (image * ph + i) * pw * channels;
                for (int c = 0; c < channels; c += b)
                {
                    int at = Start(c, channels);
                    k.Load(at, trained, mean, invStd, meanDy, meanDyXhat, scale);
                    for (int j = 0, xo = top + at, o = pooled + at; j < pw; j++, xo += 2 * channels, o += channels)
                    {
                        // The window's g − mean g once, and per element that or the constant +0 − mean g, lane by lane
                        // in double: the bits of (g − mean g) with g = ∂p or +0.
                        TOps.LoadWidened(ref Unsafe.Add(ref g0, o), out var reachLo, out var reachHi);
                        if (trained)
                        {
                            reachLo = DOps.Subtract(reachLo, k.MeanDyLo);
                            reachHi = DOps.Subtract(reachHi, k.MeanDyHi);
                        }

                        TD atLo = DOps.LoadLowBytes(ref Unsafe.Add(ref r0, o));
                        TD atHi = Halves ? DOps.LoadLowBytes(ref Unsafe.Add(ref r0, o + DOps.Count)) : DOps.Zero;
                        Element(ref x0, ref dx0, xo, Term(atLo, atHi, DOps.Zero, reachLo, reachHi, k), trained, k);
                        Element(ref x0, ref dx0, xo + channels, Term(atLo, atHi, one, reachLo, reachHi, k), trained, k);
                        Element(ref x0, ref dx0, xo + row, Term(atLo, atHi, two, reachLo, reachHi, k), trained, k);
                        Element(ref x0, ref dx0, xo + row + channels, Term(atLo, atHi, three, reachLo, reachHi, k), trained, k);
                    }
                }
            }
        }

        // The odd last column and row no window covers: g = +0 there.
        for (int image = 0; image < n; image++)
        {
            if (w % 2 != 0)
            {
                for (int r = 0; r < 2 * ph; r++)
                {
                    UncoveredPixels(ref x0, ref dx0, ((image * h + r) * w + w - 1) * channels, 1, channels, mean, invStd, trained, meanDy, meanDyXhat, scale);
                }
            }

            if (h % 2 != 0) UncoveredPixels(ref x0, ref dx0, (image * h + h - 1) * row, w, channels, mean, invStd, trained, meanDy, meanDyXhat, scale);
        }
    }

    /// <summary>∂x of <paramref name="count"/> pixels from <paramref name="start"/> that no window covers (g = +0).</summary>
    private static void UncoveredPixels(ref T x0, ref T dx0, int start, int count, int channels, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd,
        bool trained, ReadOnlySpan<double> meanDy, ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale)
    {
        var k = new GradientConstants();
        for (int c = 0; c < channels; c += TOps.Count)
        {
            int at = Start(c, channels);
            k.Load(at, trained, mean, invStd, meanDy, meanDyXhat, scale);
            for (int q = 0, o = start + at; q < count; q++, o += channels) Element(ref x0, ref dx0, o, (k.RestLo, k.RestHi), trained, k);
        }
    }

    /// <summary>
    /// The lanes of the window's term (g − mean g, or g in evaluation) where the record holds <paramref name="position"/>,
    /// the block's term for g = +0 elsewhere.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (TD Lo, TD Hi) Term(TD atLo, TD atHi, TD position, TD reachLo, TD reachHi, in GradientConstants k) =>
        (DOps.Select(DOps.EqualLanes(atLo, position), reachLo, k.RestLo), Halves ? DOps.Select(DOps.EqualLanes(atHi, position), reachHi, k.RestHi) : DOps.Zero);

    /// <summary>
    /// ∂x at o from <paramref name="term"/>, g − mean g there (g in evaluation), with the block's constants: x̂ recomputed
    /// as the forward rounded it, each half rounded to T and back.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Element(ref T x0, ref T dx0, int o, (TD Lo, TD Hi) term, bool trained, in GradientConstants k)
    {
        var (lo, hi) = term;
        if (trained)
        {
            TOps.LoadWidened(ref Unsafe.Add(ref x0, o), out var xLo, out var xHi);
            xLo = TOps.RoundThrough(DOps.Multiply(DOps.Subtract(xLo, k.MuLo), k.InvStdLo));
            lo = DOps.Subtract(lo, DOps.Multiply(xLo, k.MeanDyXhatLo));
            if (Halves)
            {
                xHi = TOps.RoundThrough(DOps.Multiply(DOps.Subtract(xHi, k.MuHi), k.InvStdHi));
                hi = DOps.Subtract(hi, DOps.Multiply(xHi, k.MeanDyXhatHi));
            }
        }

        TOps.Store(TOps.Narrow(DOps.Multiply(k.ScaleLo, lo), DOps.Multiply(k.ScaleHi, hi)), ref Unsafe.Add(ref dx0, o));
    }

    /// <summary>A block's per-channel constants for ∂x, as vectors of double (the lower and, for float, upper half).</summary>
    private struct GradientConstants
    {
        public TD MuLo, MuHi, InvStdLo, InvStdHi, MeanDyLo, MeanDyHi, MeanDyXhatLo, MeanDyXhatHi, ScaleLo, ScaleHi;

        /// <summary>The term of an element ∂p does not reach (g = +0): +0 − mean g in training, +0 in evaluation.</summary>
        public TD RestLo, RestHi;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load(int at, bool trained, ReadOnlySpan<double> mean, ReadOnlySpan<double> invStd, ReadOnlySpan<double> meanDy,
            ReadOnlySpan<double> meanDyXhat, ReadOnlySpan<double> scale)
        {
            (ScaleLo, ScaleHi) = (LoadD(scale, at), LoadUpper(scale, at));
            (RestLo, RestHi) = (DOps.Zero, DOps.Zero);
            if (!trained) return;
            (MuLo, MuHi, InvStdLo, InvStdHi) = (LoadD(mean, at), LoadUpper(mean, at), LoadD(invStd, at), LoadUpper(invStd, at));
            (MeanDyLo, MeanDyHi) = (LoadD(meanDy, at), LoadUpper(meanDy, at));
            (MeanDyXhatLo, MeanDyXhatHi) = (LoadD(meanDyXhat, at), LoadUpper(meanDyXhat, at));
            (RestLo, RestHi) = (DOps.Subtract(DOps.Zero, MeanDyLo), DOps.Subtract(DOps.Zero, MeanDyHi));
        }
    }
}
