using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// Sizes of a fused single-channel convolution (stride 1, no padding) → ReLU → 2x2 max pool.
/// <code>
/// input x : (N, H, W, 1)   kernel K : (KH, KW, 1, OC)   conv y : (N, OH, OW, OC), OH = H − KH + 1, OW = W − KW + 1
/// output p : (N, PH, PW, OC), PH = OH / 2, PW = OW / 2   mask : (N, PH, PW, OC) of T, each one's first byte the window
/// position 0–3 of the first maximum in row-major order, 4 where the maximum is ≤ 0 (ReLU passes no gradient)
/// </code>
/// </summary>
internal readonly record struct ConvPoolGeometry(int N, int H, int W, int OC, int KH, int KW)
{
    public int OH => H - KH + 1;
    public int OW => W - KW + 1;
    public int PH => OH / 2;
    public int PW => OW / 2;
}

/// <summary>
/// Direct conv → ReLU → 2x2 max pool for one input channel, never writing the (N, OH, OW, OC) activation.
/// <para>
/// Forward splits each image into planes by row parity, column parity and column offset: plane (b, rp), row i, column
/// q holds x[2i + rp, 2q + b] for b = 0..KW. Vectors run over the flattened pooled positions L = i·PW + q of one image
/// (LeNet: 144 = 18 vectors of 8 or 9 of 16, no idle lane; rows shorter than a 512-bit vector are split with 256-bit
/// ones), and the input a conv output at window corner (dr, dc) needs for tap (kh, kw) is one contiguous load: plane
/// (kw + dc, (kh + dr) mod 2) at L + ((kh + dr) / 2)·PW. Register block: 3 output channels × the 4 window corners = 12
/// accumulators, 3 broadcast weights and 1 loaded vector (16 ymm registers); at 512 bits, with AVX-512's 32 registers,
/// 6 channels (24 accumulators). The weights are first copied so that a block's channels of each tap sit together, and
/// the tap loop is 3 (6) broadcasts, 4 loads and 12 (24) FMAs with 4 instructions of overhead (on a core that is at
/// times shared with another hardware thread, every instruction besides the FMAs costs time). Each conv output is the same chain as the GEMM path
/// computes: fused multiply-adds over the taps in (kh, kw) order from zero, then + bias, so results equal
/// Conv → Relu → MaxPool2x2 bit for bit, at every vector width, when x, K, b and ∂p are finite. With a NaN or ±∞
/// among them both give non-finite results, not always the same ones: the layers' GEMM turns ∞·0 and NaN·0 into NaN
/// where this pass leaves the zero-gradient term out, and a window whose maximum is NaN passes its gradient on to no
/// position here.
/// </para>
/// <para>
/// Backward: ∂K[kh, kw, oc] += Σ over conv outputs m in row-major order of x[m + (kh, kw)]·∂y[m, oc], where ∂y is ∂p at
/// the window's maximum and 0 elsewhere (the zeros change no value, only, at most, the sign of a zero sum: that the
/// GEMM's x·0 terms turn an underflowed −0 into +0 shows only when the gradient it is added to already held −0, which
/// the layers' zeroing never leaves there), accumulated from zero as the GEMM does. Per
/// channel, the windows that pass a gradient are listed in the order of their maxima (per pooled row, those in the
/// upper conv row, then the lower; branch-free), then summed with one vector per kernel row (up to 5 accumulators) and
/// ∂b's four partial sums (conv output mod 4, as <see cref="RowOps.AddColumnSums{T}"/>) in the lanes of a sixth, two
/// channels' lists side by side (two sets of dependent chains in flight); a kernel row that fits 256 bits is summed at
/// 256 bits in the 512-bit pass too (the lanes past KW only cost loads).
/// </para>
/// </summary>
internal static partial class ConvReluPool<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>True when the kernels handle this shape at this width: KH ≤ 5 rows, KW within two vectors, a pool window.</summary>
    public static bool Supports(int kh, int kw, int h, int w) => kh <= 5 && kw <= 2 * TOps.Count && h - kh + 1 >= 2 && w - kw + 1 >= 2;

    /// <summary>Rows of each plane: the pooled rows plus the KH / 2 more the taps reach.</summary>
    private static int PlaneRows(ConvPoolGeometry g) => g.PH + g.KH / 2;

    /// <summary>Elements per plane: its rows, then a vector of slack (the last vector of an image runs past PH·PW).</summary>
    private static int PlaneSize(ConvPoolGeometry g) => PlaneRows(g) * g.PW + TOps.Count;

    /// <summary>Length of the plane buffer: 2·(KW + 1) planes of one image.</summary>
    public static int SplitLength(ConvPoolGeometry g) => 2 * (g.KW + 1) * PlaneSize(g);

    /// <summary>
    /// Length of the tile buffer: the 4 corners' sums of one block of 3 channels for one vector of pooled positions, the
    /// weights as the blocks read them (see <see cref="PackWeights"/>), then the values and window positions of every
    /// channel for every vector of pooled positions of one image.
    /// </summary>
    public static int TileLength(ConvPoolGeometry g) => VectorsAt(g) + Vectors(g) * 2 * g.OC * TOps.Count;

    /// <summary>
    /// Output channels a register block computes: 6 at 512 bits (24 accumulators, 6 broadcasts, 1 loaded vector: AVX-512
    /// has 32 vector registers; each loaded input vector feeds twice the FMAs), 3 at the narrower widths, which run on
    /// CPUs with 16.
    /// </summary>
    private static int BlockChannels => TOps.Count * Unsafe.SizeOf<T>() == 64 ? 6 : 3;

    /// <summary>Where the packed weights start in the tile.</summary>
    private static int WeightsAt => 4 * BlockChannels * TOps.Count;

    /// <summary>Where vector v's (OC, W) values start in the tile; its positions follow them.</summary>
    private static int VectorsAt(ConvPoolGeometry g) => WeightsAt + (g.OC + BlockChannels - 1) / BlockChannels * BlockChannels * g.KH * g.KW;

    /// <summary>Vectors of pooled positions in one image (the last may be partly outside it).</summary>
    private static int Vectors(ConvPoolGeometry g) => (g.PH * g.PW + TOps.Count - 1) / TOps.Count;

    /// <summary>
    /// The weights (KH, KW, 1, OC) as blocks of <see cref="BlockChannels"/> channels, each (KH, KW, BlockChannels) with
    /// channels past OC repeating the last: a block's taps are consecutive, its weights at fixed offsets.
    /// </summary>
    private static void PackWeights(ConvPoolGeometry g, T[] weight, T[] tile)
    {
        int oc = g.OC, taps = g.KH * g.KW, at = WeightsAt, block = BlockChannels;
        for (int ob = 0; ob < oc; ob += block)
        {
            for (int tap = 0; tap < taps; tap++)
            {
                for (int j = 0; j < block; j++) tile[at++] = weight[tap * oc + Math.Min(ob + j, oc - 1)];
            }
        }
    }

    /// <summary>Length of the padded input copy backward reads (whole-vector loads past a row's end stay inside).</summary>
    public static int PaddedInputLength(ConvPoolGeometry g) => g.N * g.H * g.W + 2 * TOps.Count + g.KW;

    /// <summary>
    /// p and mask from x. <paramref name="xPadded"/> receives a copy of x for backward; <paramref name="planes"/> and
    /// <paramref name="tile"/> are scratch of the lengths above. For inference only, pass null for
    /// <paramref name="mask"/> and <paramref name="xPadded"/>: neither the window positions nor the copy are made.
    /// </summary>
    // The kernels it calls are never inlined into it: inlined (at tier 1, guided by profile data, or at once under
    // AggressiveOptimization), Block's 12 accumulators, 3 weights and the input vector do not have the 16 ymm registers
    // of an AVX2 CPU to themselves, spill to the stack on every tap, and the pass runs 40-80 % slower.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Forward(ConvPoolGeometry g, T[] x, T[] weight, T[] bias, T[] output, T[]? mask, T[]? xPadded, T[] planes, T[] tile)
    {
        int image = g.H * g.W, positions = g.PH * g.PW, planeSize = PlaneSize(g);
        if (xPadded is not null) x.AsSpan(0, g.N * image).CopyTo(xPadded);
        PackWeights(g, weight, tile);
        for (int n = 0; n < g.N; n++)
        {
            if (g.PW >= TOps.Count || TOps.Count <= Vector256<T>.Count) Split(g, x, n * image, planes, planeSize);
            else ConvReluPool<Simd256<T>, Vector256<T>, T>.Split(g, x, n * image, planes, planeSize); // rows shorter than a 512-bit vector: split with 256-bit ones (moving bits only)
            for (int ob = 0; ob < g.OC; ob += BlockChannels)
            {
                if (BlockChannels == 6) Block<Six>(g, ob, planeSize, planes, tile, bias, mask is not null);
                else Block<Three>(g, ob, planeSize, planes, tile, bias, mask is not null);
            }
            WriteOut(g, tile, n * positions, output, mask);
        }
    }


    /// <summary>Plane (b, rp) row i ← x[2i + rp, 2q + b] for q &lt; PW, of the image at <paramref name="offset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // a kernel: its registers to itself (see Forward)
    private static void Split(ConvPoolGeometry g, T[] x, int offset, T[] planes, int planeSize)
    {
        int rows = PlaneRows(g), pw = g.PW, w = TOps.Count;
        ref T p0 = ref planes[0];
        ref T x0 = ref x[offset];
        // Rows past the image are kept for the flat layout only (no tap reaches them); columns 2q + b stay inside.
        for (int h = 0; h < Math.Min(2 * rows, g.H); h++)
        {
            int rp = h & 1, i = h >> 1;
            ref T src = ref Unsafe.Add(ref x0, h * g.W);
            for (int b = 0; b <= g.KW; b += 2)
            {
                ref T even = ref Unsafe.Add(ref p0, (2 * b + rp) * planeSize + i * pw);
                ref T odd = ref Unsafe.Add(ref even, 2 * planeSize); // plane b + 1
                if (pw >= w && b < g.KW && b + 2 * (pw - w) + 2 * w <= g.W)
                {
                    // Columns b + 2q and b + 1 + 2q for q = q0..q0+W from two loads; the last block ends at PW.
                    ref T s = ref Unsafe.Add(ref src, b);
                    nint last = pw - w;
                    for (nint q = 0; q < last; q += w) SplitVector(ref s, ref even, ref odd, q);
                    SplitVector(ref s, ref even, ref odd, last);
                    continue;
                }

                for (int q = 0; q < pw; q++) Unsafe.Add(ref even, q) = Unsafe.Add(ref src, b + 2 * q);
                if (b < g.KW) for (int q = 0; q < pw; q++) Unsafe.Add(ref odd, q) = Unsafe.Add(ref src, b + 1 + 2 * q);
            }
        }
    }

    /// <summary>even[q..q+W] ← s[2q], s[2q + 2], …; odd[q..q+W] ← s[2q + 1], s[2q + 3], ….</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SplitVector(ref T s, ref T even, ref T odd, nint q)
    {
        ref T at = ref Unsafe.Add(ref s, 2 * q);
        TOps.Deinterleave(TOps.Load(ref at), TOps.Load(ref Unsafe.Add(ref at, TOps.Count)), out TV e, out TV o);
        TOps.Store(e, ref Unsafe.Add(ref even, q));
        TOps.Store(o, ref Unsafe.Add(ref odd, q));
    }

    /// <summary>
    /// Every vector of pooled positions of one image, channels ob .. ob + <typeparamref name="TChannels"/> − 1 (clamped),
    /// into the tile: 4 corners × 3 channels = 12 accumulators, 3 broadcast weights and the loaded vector in 16 ymm
    /// registers, or 6 channels (24 accumulators) with AVX-512's 32. The channel count is a constant in each
    /// instantiation, so the unused accumulators and their FMAs vanish.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // a kernel: its registers to itself (see Forward)
    private static void Block<TChannels>(ConvPoolGeometry g, int ob, int planeSize, T[] planes, T[] tile, T[] bias, bool positions)
        where TChannels : struct, IFixedCount
    {
        int n = TChannels.Count;
        int oc = g.OC, kw = g.KW, kh = g.KH, w = TOps.Count, pw = g.PW, count = g.PH * g.PW;
        // Per kernel row r: input row 2i + r (top corners) at column offset kw = 0, and how far row 2i + r + 1 (bottom
        // corners) lies after it. The same for every vector: worked out once.
        Span<nint> rows = stackalloc nint[10]; // KH ≤ 5
        for (int r = 0; r < kh; r++)
        {
            int topAt = (r & 1) * planeSize + (r >> 1) * pw;
            rows[2 * r] = topAt;
            rows[2 * r + 1] = ((r + 1) & 1) * planeSize + ((r + 1) >> 1) * pw - topAt;
        }

        ref T weights = ref tile[WeightsAt + ob * kh * kw]; // this block's n weights a tap, taps in (kh, kw) order
        ref T sums = ref tile[0];
        for (int l0 = 0, vector = 0; l0 < count; l0 += w, vector++)
        {
            // Window corners: te/to top conv row, even/odd column; be/bo bottom row.
            TV te0 = TOps.Zero, to0 = TOps.Zero, be0 = TOps.Zero, bo0 = TOps.Zero;
            TV te1 = TOps.Zero, to1 = TOps.Zero, be1 = TOps.Zero, bo1 = TOps.Zero;
            TV te2 = TOps.Zero, to2 = TOps.Zero, be2 = TOps.Zero, bo2 = TOps.Zero;
            TV te3 = TOps.Zero, to3 = TOps.Zero, be3 = TOps.Zero, bo3 = TOps.Zero;
            TV te4 = TOps.Zero, to4 = TOps.Zero, be4 = TOps.Zero, bo4 = TOps.Zero;
            TV te5 = TOps.Zero, to5 = TOps.Zero, be5 = TOps.Zero, bo5 = TOps.Zero;
            ref T p0 = ref Unsafe.Add(ref planes[0], l0);
            ref T k = ref weights;
            for (int r = 0; r < kh; r++)
            {
                ref T top = ref Unsafe.Add(ref p0, rows[2 * r]);
                nint next = 2 * planeSize, down = rows[2 * r + 1], downNext = down + next; // next: plane of column offset b + 1, same row parity
                ref T rowEnd = ref Unsafe.Add(ref k, n * kw);
                // One pointer compare a tap: the loop is n broadcasts, 4 loads, 4·n FMAs and 4 more instructions.
                for (; Unsafe.IsAddressLessThan(ref k, ref rowEnd); k = ref Unsafe.Add(ref k, n), top = ref Unsafe.Add(ref top, next))
                {
                    TV s0 = TOps.Broadcast(k), s1 = TOps.Broadcast(Unsafe.Add(ref k, 1)), s2 = TOps.Broadcast(Unsafe.Add(ref k, 2));
                    TV s3 = n > 3 ? TOps.Broadcast(Unsafe.Add(ref k, 3)) : s2, s4 = n > 3 ? TOps.Broadcast(Unsafe.Add(ref k, 4)) : s2;
                    TV s5 = n > 3 ? TOps.Broadcast(Unsafe.Add(ref k, 5)) : s2;
                    TV v = TOps.Load(ref top);
                    te0 = TOps.MultiplyAdd(s0, v, te0); te1 = TOps.MultiplyAdd(s1, v, te1); te2 = TOps.MultiplyAdd(s2, v, te2);
                    if (n > 3) { te3 = TOps.MultiplyAdd(s3, v, te3); te4 = TOps.MultiplyAdd(s4, v, te4); te5 = TOps.MultiplyAdd(s5, v, te5); }
                    v = TOps.Load(ref Unsafe.Add(ref top, next));
                    to0 = TOps.MultiplyAdd(s0, v, to0); to1 = TOps.MultiplyAdd(s1, v, to1); to2 = TOps.MultiplyAdd(s2, v, to2);
                    if (n > 3) { to3 = TOps.MultiplyAdd(s3, v, to3); to4 = TOps.MultiplyAdd(s4, v, to4); to5 = TOps.MultiplyAdd(s5, v, to5); }
                    v = TOps.Load(ref Unsafe.Add(ref top, down));
                    be0 = TOps.MultiplyAdd(s0, v, be0); be1 = TOps.MultiplyAdd(s1, v, be1); be2 = TOps.MultiplyAdd(s2, v, be2);
                    if (n > 3) { be3 = TOps.MultiplyAdd(s3, v, be3); be4 = TOps.MultiplyAdd(s4, v, be4); be5 = TOps.MultiplyAdd(s5, v, be5); }
                    v = TOps.Load(ref Unsafe.Add(ref top, downNext));
                    bo0 = TOps.MultiplyAdd(s0, v, bo0); bo1 = TOps.MultiplyAdd(s1, v, bo1); bo2 = TOps.MultiplyAdd(s2, v, bo2);
                    if (n > 3) { bo3 = TOps.MultiplyAdd(s3, v, bo3); bo4 = TOps.MultiplyAdd(s4, v, bo4); bo5 = TOps.MultiplyAdd(s5, v, bo5); }
                }
            }

            // The sums leave registers here, and are finished by another method: with the finishing code after the loop
            // in this one, the JIT keeps fewer accumulators in registers through the loop (spilling them on every tap).
            StoreCorners(te0, to0, be0, bo0, ref sums);
            StoreCorners(te1, to1, be1, bo1, ref Unsafe.Add(ref sums, 4 * w));
            StoreCorners(te2, to2, be2, bo2, ref Unsafe.Add(ref sums, 8 * w));
            if (n > 3)
            {
                StoreCorners(te3, to3, be3, bo3, ref Unsafe.Add(ref sums, 12 * w));
                StoreCorners(te4, to4, be4, bo4, ref Unsafe.Add(ref sums, 16 * w));
                StoreCorners(te5, to5, be5, bo5, ref Unsafe.Add(ref sums, 20 * w));
            }

            FinishBlock(oc, ob, bias, tile, VectorsAt(g) + vector * 2 * oc * w, positions);
        }
    }

    /// <summary>One channel's four corner sums to the tile, in the order <see cref="Corners"/> reads them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreCorners(TV te, TV to, TV be, TV bo, ref T sums)
    {
        int w = TOps.Count;
        TOps.Store(te, ref sums); TOps.Store(to, ref Unsafe.Add(ref sums, w)); TOps.Store(be, ref Unsafe.Add(ref sums, 2 * w)); TOps.Store(bo, ref Unsafe.Add(ref sums, 3 * w));
    }

    /// <summary>
    /// Finishes the sums <see cref="Block{TChannels}"/> left in the tile (4 corners a channel) for the block's channels from ob (those below
    /// OC): values to the vector's (OC, W) rows at <paramref name="vectorAt"/>, positions to the (OC, W) after them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // a kernel: its registers to itself (see Forward)
    private static void FinishBlock(int oc, int ob, T[] bias, T[] tile, int vectorAt, bool positions)
    {
        int w = TOps.Count, end = Math.Min(ob + BlockChannels, oc);
        ref T sums = ref tile[0];
        ref T values = ref tile[vectorAt];
        ref T at = ref Unsafe.Add(ref values, oc * w);
        // Two loops rather than one testing positions: the JIT keeps the values the positions need in registers only then.
        if (!positions)
        {
            for (int c = ob; c < end; c++, sums = ref Unsafe.Add(ref sums, 4 * w))
            {
                TOps.Store(Corners(ref sums, bias[c]).Value, ref Unsafe.Add(ref values, c * w));
            }

            return;
        }

        for (int c = ob; c < end; c++, sums = ref Unsafe.Add(ref sums, 4 * w))
        {
            var corners = Corners(ref sums, bias[c]);
            TOps.Store(corners.Value, ref Unsafe.Add(ref values, c * w));
            TOps.Store(Position(corners), ref Unsafe.Add(ref at, c * w));
        }
    }

    /// <summary>
    /// The tile's (OC, W) values and positions of every vector → the image's NHWC pooled positions from
    /// <paramref name="position"/> (positions only when <paramref name="mask"/> is not null): transposes, moving bits only.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)] // a kernel: its registers to itself (see Forward)
    private static void WriteOut(ConvPoolGeometry g, T[] tile, int position, T[] output, T[]? mask)
    {
        int oc = g.OC, w = TOps.Count, count = g.PH * g.PW;
        ref T vector = ref tile[VectorsAt(g)];
        for (int l0 = 0; l0 < count; l0 += w, position += w, vector = ref Unsafe.Add(ref vector, 2 * oc * w))
        {
            int lanes = Math.Min(w, count - l0);
            Transpose(ref vector, oc, w, lanes, ref output[position * oc]);
            if (mask is not null) Transpose(ref Unsafe.Add(ref vector, oc * w), oc, w, lanes, ref mask[position * oc]);
        }
    }

    /// <summary>
    /// rows (OC, W) → columns[l·OC + c] = rows[c·W + l] for l &lt; count. Whole vectors of 4-byte lanes when the CPU
    /// has AVX (W = 8 or 16 as two halves, 4 ≤ OC ≤ 8) or SSE (W = 4, OC ≤ 8), else element by element.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose(ref T rows, int oc, int w, int count, ref T columns)
    {
        if (Unsafe.SizeOf<T>() == 4 && count == w && oc <= 8)
        {
            if (w == 8 && oc >= 4 && Avx.IsSupported)
            {
                Transpose8(ref Unsafe.As<T, float>(ref rows), oc, 8, ref Unsafe.As<T, float>(ref columns));
                return;
            }

            if (w == 16 && oc >= 4 && Avx.IsSupported)
            {
                // Lanes 0–7, then 8–15: the first's last column stops at its OC lanes, where the second's first begins.
                Transpose8(ref Unsafe.As<T, float>(ref rows), oc, 16, ref Unsafe.As<T, float>(ref columns));
                Transpose8(ref Unsafe.As<T, float>(ref Unsafe.Add(ref rows, 8)), oc, 16, ref Unsafe.As<T, float>(ref Unsafe.Add(ref columns, 8 * oc)));
                return;
            }

            if (w == 4 && Sse.IsSupported)
            {
                Transpose4(ref Unsafe.As<T, float>(ref rows), oc, ref Unsafe.As<T, float>(ref columns));
                return;
            }
        }

        for (int l = 0; l < count; l++)
        {
            for (int c = 0; c < oc; c++) Unsafe.Add(ref columns, l * oc + c) = Unsafe.Add(ref rows, c * w + l);
        }
    }

    /// <summary>
    /// The 8 × 8 transpose of AVX (rows <paramref name="stride"/> apart, those past OC read as 0), then column l stored at l·OC: whole vectors, each one's lanes
    /// past OC (8 − OC ≤ OC of them) overwritten by the next; the last column's OC lanes alone, nothing past the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8(ref float rows, int oc, int stride, ref float columns)
    {
        Vector256<float> Row(ref float r, int c) => c < oc ? Vector256.LoadUnsafe(ref r, (nuint)(c * stride)) : Vector256<float>.Zero;
        Vector256<float> r0 = Row(ref rows, 0), r1 = Row(ref rows, 1), r2 = Row(ref rows, 2), r3 = Row(ref rows, 3);
        Vector256<float> r4 = Row(ref rows, 4), r5 = Row(ref rows, 5), r6 = Row(ref rows, 6), r7 = Row(ref rows, 7);
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> s0 = Avx.Shuffle(t0, t2, 0x44), s1 = Avx.Shuffle(t0, t2, 0xEE), s2 = Avx.Shuffle(t1, t3, 0x44), s3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> s4 = Avx.Shuffle(t4, t6, 0x44), s5 = Avx.Shuffle(t4, t6, 0xEE), s6 = Avx.Shuffle(t5, t7, 0x44), s7 = Avx.Shuffle(t5, t7, 0xEE);
        nuint step = (nuint)oc;
        Avx.Permute2x128(s0, s4, 0x20).StoreUnsafe(ref columns);
        Avx.Permute2x128(s1, s5, 0x20).StoreUnsafe(ref columns, step);
        Avx.Permute2x128(s2, s6, 0x20).StoreUnsafe(ref columns, 2 * step);
        Avx.Permute2x128(s3, s7, 0x20).StoreUnsafe(ref columns, 3 * step);
        Avx.Permute2x128(s0, s4, 0x31).StoreUnsafe(ref columns, 4 * step);
        Avx.Permute2x128(s1, s5, 0x31).StoreUnsafe(ref columns, 5 * step);
        Avx.Permute2x128(s2, s6, 0x31).StoreUnsafe(ref columns, 6 * step);
        StoreLanes(Avx.Permute2x128(s3, s7, 0x31), oc, ref Unsafe.Add(ref columns, 7 * step));
    }

    /// <summary>The 4 × 4 transposes of SSE for channels 0–3 and 4–7 (rows past OC read as 0); columns stored as in <see cref="Transpose8"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4(ref float rows, int oc, ref float columns)
    {
        Vector128<float> Row(ref float r, int c) => c < oc ? Vector128.LoadUnsafe(ref r, (nuint)(c * 4)) : Vector128<float>.Zero;
        nuint step = (nuint)oc;
        for (int c0 = 0; c0 < oc; c0 += 4)
        {
            Vector128<float> r0 = Row(ref rows, c0), r1 = Row(ref rows, c0 + 1), r2 = Row(ref rows, c0 + 2), r3 = Row(ref rows, c0 + 3);
            Vector128<float> t0 = Sse.UnpackLow(r0, r1), t1 = Sse.UnpackHigh(r0, r1), t2 = Sse.UnpackLow(r2, r3), t3 = Sse.UnpackHigh(r2, r3);
            ref float at = ref Unsafe.Add(ref columns, c0);
            int lanes = Math.Min(4, oc - c0);
            if (c0 + 4 < oc)
            {
                // Channels c0 + 4 … follow: whole vectors, the next pass writes over their lanes.
                Sse.MoveLowToHigh(t0, t2).StoreUnsafe(ref at);
                Sse.MoveHighToLow(t2, t0).StoreUnsafe(ref at, step);
                Sse.MoveLowToHigh(t1, t3).StoreUnsafe(ref at, 2 * step);
                Sse.MoveHighToLow(t3, t1).StoreUnsafe(ref at, 3 * step);
                continue;
            }

            StoreLanes(Sse.MoveLowToHigh(t0, t2), lanes, ref at);
            StoreLanes(Sse.MoveHighToLow(t2, t0), lanes, ref Unsafe.Add(ref at, step));
            StoreLanes(Sse.MoveLowToHigh(t1, t3), lanes, ref Unsafe.Add(ref at, 2 * step));
            StoreLanes(Sse.MoveHighToLow(t3, t1), lanes, ref Unsafe.Add(ref at, 3 * step));
        }
    }

    /// <summary>The first <paramref name="lanes"/> (≤ 8) lanes of v to destination, and nothing after them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreLanes(Vector256<float> v, int lanes, ref float destination)
    {
        if (lanes == 8)
        {
            v.StoreUnsafe(ref destination);
            return;
        }

        var low = v.GetLower();
        if (lanes >= 4)
        {
            low.StoreUnsafe(ref destination);
            StoreLanes(v.GetUpper(), lanes - 4, ref Unsafe.Add(ref destination, 4));
            return;
        }

        StoreLanes(low, lanes, ref destination);
    }

    /// <summary>The first <paramref name="lanes"/> (≤ 4) lanes of v to destination, and nothing after them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreLanes(Vector128<float> v, int lanes, ref float destination)
    {
        if (lanes == 4)
        {
            v.StoreUnsafe(ref destination);
            return;
        }

        if (lanes >= 2)
        {
            Unsafe.WriteUnaligned(ref Unsafe.As<float, byte>(ref destination), v.AsDouble().ToScalar()); // lanes 0 and 1 as one 8-byte store
            if (lanes == 3) Unsafe.Add(ref destination, 2) = v.GetElement(2);
            return;
        }

        if (lanes == 1) destination = v.ToScalar();
    }

    /// <summary>
    /// The four corners' sums at <paramref name="sums"/> + bias, the top and bottom rows' maxima, and the window's pooled
    /// value. The maxima are the CPU's own (one instruction; which zero or which NaN they return is left open), so the
    /// value is made exact separately: ReLU as a mask (x &gt; 0 keeps x, else +0: −0 and NaN give +0), then NaN where
    /// any corner is NaN — what IEEE maxima (Relu then MaxPool2x2) give, in a third of the instructions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Window Corners(ref T sums, T bias)
    {
        int w = TOps.Count;
        TV b = TOps.Broadcast(bias);
        TV te = TOps.Add(TOps.Load(ref sums), b), to = TOps.Add(TOps.Load(ref Unsafe.Add(ref sums, w)), b);
        TV be = TOps.Add(TOps.Load(ref Unsafe.Add(ref sums, 2 * w)), b), bo = TOps.Add(TOps.Load(ref Unsafe.Add(ref sums, 3 * w)), b);
        TV topMax = TOps.MaxNative(te, to), bottomMax = TOps.MaxNative(be, bo), max = TOps.MaxNative(topMax, bottomMax);
        TV value = TOps.Or(TOps.And(max, TOps.GreaterThan(max, TOps.Zero)), TOps.Or(TOps.AnyNaN(te, to), TOps.AnyNaN(be, bo)));
        return new Window(te, to, be, bo, topMax, bottomMax, value);
    }

    /// <summary>
    /// A vector of pooling windows: the corners (top even/odd, bottom even/odd), the rows' maxima, and the pooled value
    /// ReLU(max of the window), NaN when a corner is.
    /// </summary>
    private readonly record struct Window(TV Te, TV To, TV Be, TV Bo, TV TopMax, TV BottomMax, TV Value);

    /// <summary>
    /// The position of the window's first maximum (4 when it is ≤ 0 or NaN), as the bit pattern of <see cref="Position(int)"/>:
    /// only selected and copied, never computed with, so its first byte is the mask byte.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Position(Window c)
    {
        // Later positions win only when strictly greater: ties go to the first in row-major order, as MaxPool2x2.
        TV top = TOps.Select(TOps.GreaterThan(c.To, c.Te), TOps.Broadcast(Position1), TOps.Zero);
        TV bottom = TOps.Select(TOps.GreaterThan(c.Bo, c.Be), TOps.Broadcast(Position3), TOps.Broadcast(Position2));
        TV at = TOps.Select(TOps.GreaterThan(c.BottomMax, c.TopMax), bottom, top);
        return TOps.Select(TOps.GreaterThan(c.Value, TOps.Zero), at, TOps.Broadcast(Position4));
    }

    // Made once: building one writes a byte into a T in memory and reads the T back, a stall in a kernel.
    private static readonly T Position1 = Position(1), Position2 = Position(2), Position3 = Position(3), Position4 = Position(4);

    /// <summary>A T whose first byte in memory is <paramref name="k"/> and whose other bytes are 0 (0 is +0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Position(int k)
    {
        T v = T.Zero;
        Unsafe.As<T, byte>(ref v) = (byte)k;
        return v;
    }
}
