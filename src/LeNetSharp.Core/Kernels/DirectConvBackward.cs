using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// A stride-1 convolution's backward straight from the NHWC tensors, without the patch matrix P or ∂P (each N·OH·OW ×
/// KH·KW·C, 29 MB for a batch of 32 through a 3×3 32→64 layer on 14×14 images):
/// <code>
/// x̃ : (N, H + 2p, W + 2p, C) the input framed by p zeros     ∂y : (N, OH, OW, OC)     K : (KH, KW, C, OC)
/// ∂K[t, oc] += Σ over m in order of x̃[m + (kh, kw), c]·∂y[m, oc]           t = (kh, kw, c)
/// ∂x[n, i, j, c] = Σ over the windows (oy, ox) = (i + p − kh, j + p − kw) inside the output, in the order of m,
///                  of (Σ over oc in order of ∂y[m, oc]·K[t, oc])
/// </code>
/// Both are the chains the im2col path computes: ∂K = Pᵀ·∂y is one chain of fused multiply-adds over m from zero per
/// element (P's padding zeros are x̃'s frame, multiplied in the same place), then added to ∂K; ∂P = ∂y·Kᵀ is one chain
/// over oc from zero per element, and col2im adds a pixel's entries of ∂P to zero in the order of the output pixels
/// (kernel rows, then columns, descending). So the results are the same bits as <see cref="SimdGemm{TOps, TV, T}"/> at
/// the same width followed by col2im.
/// <para>
/// Register blocks hold 6 broadcast rows × up to 4 vectors (32 vector registers) or × 2 (16): for ∂K, 6 taps × output
/// channels over a range of output pixels (the chains carried from range to range in an accumulator buffer, so a
/// range's pixels stay in cache); for ∂x, 6 input pixels × input channels over the output channels, for one tap at a
/// time. Vectors run over channels at 0, W, 2W, … with the last one shifted back to end at the channel count (channel
/// counts of at least a vector); lanes computed twice hold the same values. An odd last vector (a channel count of
/// one vector, or three) runs in a 6 × 1 block rather than in a 2-vector block that would compute it twice.
/// </para>
/// </summary>
internal static class DirectConvBackward<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int Rows = 6;

    /// <summary>Output pixels in one range of the weight gradient's sums: its ∂y and x̃ rows stay in cache across the tap blocks.</summary>
    private const int RangePixels = 128;

    /// <summary>512-bit vectors come with 32 registers (AVX-512): 6 × 4 blocks fit; 16 registers take 6 × 2.</summary>
    private static int MostVectors => TOps.Count * Unsafe.SizeOf<T>() >= 64 ? 4 : 2;

    /// <summary>Whether both kernels take <paramref name="g"/> with <paramref name="outChannels"/> outputs: stride 1, at least a vector of input and of output channels.</summary>
    public static bool Supports(in ConvGeometry g, int outChannels) =>
        g.Stride == 1 && outChannels >= TOps.Count && g.C >= TOps.Count;

    /// <summary>Whether <see cref="WeightGradient"/> takes <paramref name="g"/> (any channel count in, a vector of outputs).</summary>
    public static bool SupportsWeightGradient(in ConvGeometry g, int outChannels) => g.Stride == 1 && outChannels >= TOps.Count;

    /// <summary>Elements <see cref="WeightGradient"/> needs in its accumulator buffer: KH·KW·C rows of OC rounded up to whole vectors.</summary>
    public static int AccumulatorLength(in ConvGeometry g, int outChannels) => g.PatchColumns * Vectors(outChannels) * TOps.Count;

    /// <summary>
    /// ∂K += Σ_m x̃·∂y as described above. <paramref name="framed"/> is the geometry of x̃ with no padding (so its output
    /// is ∂y's), <paramref name="acc"/> a buffer of at least <see cref="AccumulatorLength"/> elements (overwritten): each
    /// tap's chains in whole vectors, the last one holding the shifted last vector's lanes, so that no lane is carried
    /// by two vectors from one range to the next.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void WeightGradient(in ConvGeometry framed, int oc, T[] xFramed, T[] dy, T[] acc, T[] dw)
    {
        int w = TOps.Count, k = framed.PatchColumns, oh = framed.OH, ow = framed.OW, c = framed.C, rowStep = framed.W * c;
        int count = Vectors(oc), stride = count * w;
        Array.Clear(acc, 0, k * stride);
        Span<nint> vectors = stackalloc nint[count], columns = stackalloc nint[count];
        VectorStarts(oc, vectors);
        for (int i = 0; i < count; i++) columns[i] = (nint)i * w;
        Span<nint> taps = stackalloc nint[Rows], tile = stackalloc nint[Rows];
        int rowsPerRange = Math.Max(1, RangePixels / ow), allRows = framed.N * oh;
        for (int r0 = 0; r0 < allRows; r0 += rowsPerRange)
        {
            int r1 = Math.Min(allRows, r0 + rowsPerRange);
            for (int t = 0; t < k; t += Rows)
            {
                int left = Math.Min(Rows, k - t);
                for (int j = 0; j < Rows; j++)
                {
                    // Missing taps repeat the last one: the same chain, stored to the same place.
                    int tap = t + Math.Min(j, left - 1), kh = tap / (framed.KW * c), rest = tap - kh * framed.KW * c;
                    taps[j] = kh * rowStep + rest; // (kh, kw, c) → kh·rowStep + kw·C + c
                    tile[j] = (nint)tap * stride;
                }

                // The range's rows, one image at a time (x̃'s rows jump at an image's end).
                for (int r = r0; r < r1;)
                {
                    int n = r / oh, oy = r - n * oh, rows = Math.Min(r1 - r, oh - oy);
                    nint xAt = ((nint)(n * framed.H + oy) * framed.W) * c, dyAt = (nint)r * ow * oc;
                    Sweep(ref xFramed[xAt], taps, c, rowStep - ow * c, ref dy[dyAt], vectors, oc, ow, rows, ref acc[0], tile, columns);
                    r += rows;
                }
            }
        }

        // ∂K[t, o] = ∂K[t, o] + chain: whole vectors up to the last one, then the last one's lanes not yet added.
        int whole = (count - 1) * w, last = (int)vectors[count - 1];
        for (int t = 0; t < k; t++)
        {
            AddRow(acc.AsSpan(t * stride, whole), dw.AsSpan(t * oc, whole));
            AddRow(acc.AsSpan(t * stride + whole + (whole - last), oc - whole), dw.AsSpan(t * oc + whole, oc - whole));
        }
    }

    /// <summary>Vectors over <paramref name="length"/> lanes (the last one shifted back when it does not fill).</summary>
    private static int Vectors(int length) => (length + TOps.Count - 1) / TOps.Count;

    /// <summary>
    /// ∂x as described above for geometry <paramref name="g"/> (stride 1, padding p ≥ 0). <paramref name="packed"/> is
    /// a buffer of at least KH·KW·OC·C elements (overwritten with K's taps as (OC, C) rows).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void InputGradient(in ConvGeometry g, int oc, T[] dy, T[] weight, T[] packed, T[] dx)
    {
        int c = g.C, taps = g.KH * g.KW, pixels = g.N * g.H * g.W;
        for (int tap = 0; tap < taps; tap++)
        {
            // K[(tap, ch), o] → packed[(tap, o), ch]
            for (int ch = 0; ch < c; ch++)
            {
                for (int o = 0; o < oc; o++) packed[((nint)tap * oc + o) * c + ch] = weight[((nint)tap * c + ch) * oc + o];
            }
        }

        Span<nint> vectors = stackalloc nint[Vectors(c)];
        VectorStarts(c, vectors);
        const int rows = 6;
        Span<int> pixel = stackalloc int[3 * 6];
        for (int q = 0; q < pixels; q += rows)
        {
            int count = Math.Min(rows, pixels - q);
            for (int r = 0; r < rows; r++)
            {
                // Missing pixels repeat the last one and are not written.
                int at = q + Math.Min(r, count - 1), n = at / (g.H * g.W), rest = at - n * g.H * g.W, i = rest / g.W;
                pixel[3 * r] = n;
                pixel[3 * r + 1] = i;
                pixel[3 * r + 2] = rest - i * g.W;
            }

            ref T dxRow = ref dx[(nint)q * c];
            int v = 0;
            for (; v + 1 < vectors.Length; v += 2) InputBlock6x2(g, oc, dy, packed, vectors[v], vectors[v + 1], pixel, count, ref dxRow);
            if (v < vectors.Length) InputBlock6x1(g, oc, dy, packed, vectors[v], pixel, count, ref dxRow);
        }
    }

    /// <summary>
    /// Where each of <paramref name="rows"/> pixels (n, i, j in <paramref name="pixel"/>) takes tap (kh, kw) from: the
    /// offset of its ∂y row, or of the first valid row when its window falls outside the output (computed, not added).
    /// Returns the rows whose window is inside as a bit mask (0: none).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Sources(in ConvGeometry g, int oc, int kh, int kw, ReadOnlySpan<int> pixel, int rows, int count, Span<nint> sources)
    {
        int oh = g.OH, ow = g.OW, mask = 0;
        nint any = 0;
        for (int r = rows - 1; r >= 0; r--)
        {
            int oy = pixel[3 * r + 1] + g.Padding - kh, ox = pixel[3 * r + 2] + g.Padding - kw;
            bool inside = r < count && (uint)oy < (uint)oh && (uint)ox < (uint)ow;
            sources[r] = inside ? ((nint)(pixel[3 * r] * oh + oy) * ow + ox) * oc : -1;
            if (inside)
            {
                mask |= 1 << r;
                any = sources[r];
            }
        }

        for (int r = 0; r < rows; r++)
        {
            if (sources[r] < 0) sources[r] = any;
        }

        return mask;
    }

    /// <summary>
    /// ∂x of 6 pixels × 2 channel vectors: for each tap in the order of m, 12 chains over the output channels from zero,
    /// each added to its pixel's sum when the window is inside; the sums are stored once, complete. With 32 registers
    /// the 12 sums stay in registers beside the 12 chains, 2 loaded vectors and a broadcast (27); with 16 the sums are
    /// on the stack (the chains, loads and broadcast take 15).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputBlock6x2(in ConvGeometry g, int oc, T[] dy, T[] packed, nint u0, nint u1, ReadOnlySpan<int> pixel, int count, ref T dx)
    {
        bool inRegisters = MostVectors >= 4; // a constant for the JIT
        int w = TOps.Count;
        TV d0 = TOps.Zero, e0 = TOps.Zero, d1 = TOps.Zero, e1 = TOps.Zero, d2 = TOps.Zero, e2 = TOps.Zero;
        TV d3 = TOps.Zero, e3 = TOps.Zero, d4 = TOps.Zero, e4 = TOps.Zero, d5 = TOps.Zero, e5 = TOps.Zero;
        Span<T> sums = stackalloc T[inRegisters ? 0 : 12 * w]; // sum (r, j) at (2r + j)·W
        sums.Clear();
        ref T sum = ref MemoryMarshal.GetReference(sums);
        Span<nint> sources = stackalloc nint[6];
        nint c = g.C;
        for (int kh = g.KH - 1; kh >= 0; kh--)
        {
            for (int kw = g.KW - 1; kw >= 0; kw--)
            {
                int mask = Sources(g, oc, kh, kw, pixel, 6, count, sources);
                if (mask == 0) continue;
                ref T s0 = ref dy[sources[0]], s1 = ref dy[sources[1]], s2 = ref dy[sources[2]];
                ref T s3 = ref dy[sources[3]], s4 = ref dy[sources[4]], s5 = ref dy[sources[5]];
                ref T u = ref packed[(nint)(kh * g.KW + kw) * oc * c];
                TV a0 = TOps.Zero, b0 = TOps.Zero, a1 = TOps.Zero, b1 = TOps.Zero, a2 = TOps.Zero, b2 = TOps.Zero;
                TV a3 = TOps.Zero, b3 = TOps.Zero, a4 = TOps.Zero, b4 = TOps.Zero, a5 = TOps.Zero, b5 = TOps.Zero;
                for (nint o = 0; o < oc; o++)
                {
                    TV v0 = TOps.Load(ref Unsafe.Add(ref u, u0)), v1 = TOps.Load(ref Unsafe.Add(ref u, u1));
                    TV x = TOps.Broadcast(Unsafe.Add(ref s0, o));
                    a0 = TOps.MultiplyAdd(x, v0, a0); b0 = TOps.MultiplyAdd(x, v1, b0);
                    x = TOps.Broadcast(Unsafe.Add(ref s1, o));
                    a1 = TOps.MultiplyAdd(x, v0, a1); b1 = TOps.MultiplyAdd(x, v1, b1);
                    x = TOps.Broadcast(Unsafe.Add(ref s2, o));
                    a2 = TOps.MultiplyAdd(x, v0, a2); b2 = TOps.MultiplyAdd(x, v1, b2);
                    x = TOps.Broadcast(Unsafe.Add(ref s3, o));
                    a3 = TOps.MultiplyAdd(x, v0, a3); b3 = TOps.MultiplyAdd(x, v1, b3);
                    x = TOps.Broadcast(Unsafe.Add(ref s4, o));
                    a4 = TOps.MultiplyAdd(x, v0, a4); b4 = TOps.MultiplyAdd(x, v1, b4);
                    x = TOps.Broadcast(Unsafe.Add(ref s5, o));
                    a5 = TOps.MultiplyAdd(x, v0, a5); b5 = TOps.MultiplyAdd(x, v1, b5);
                    u = ref Unsafe.Add(ref u, c);
                }

                // col2im's dx = dx + ∂P entry, for the windows inside.
                if (!inRegisters)
                {
                    if ((mask & 1) != 0) AddTo(ref sum, 0, w, a0, b0);
                    if ((mask & 2) != 0) AddTo(ref sum, 2 * w, w, a1, b1);
                    if ((mask & 4) != 0) AddTo(ref sum, 4 * w, w, a2, b2);
                    if ((mask & 8) != 0) AddTo(ref sum, 6 * w, w, a3, b3);
                    if ((mask & 16) != 0) AddTo(ref sum, 8 * w, w, a4, b4);
                    if ((mask & 32) != 0) AddTo(ref sum, 10 * w, w, a5, b5);
                    continue;
                }

                if ((mask & 1) != 0) { d0 = TOps.Add(d0, a0); e0 = TOps.Add(e0, b0); }
                if ((mask & 2) != 0) { d1 = TOps.Add(d1, a1); e1 = TOps.Add(e1, b1); }
                if ((mask & 4) != 0) { d2 = TOps.Add(d2, a2); e2 = TOps.Add(e2, b2); }
                if ((mask & 8) != 0) { d3 = TOps.Add(d3, a3); e3 = TOps.Add(e3, b3); }
                if ((mask & 16) != 0) { d4 = TOps.Add(d4, a4); e4 = TOps.Add(e4, b4); }
                if ((mask & 32) != 0) { d5 = TOps.Add(d5, a5); e5 = TOps.Add(e5, b5); }
            }
        }

        if (!inRegisters)
        {
            for (int r = 0; r < count; r++)
            {
                Store(TOps.Load(ref Unsafe.Add(ref sum, 2 * r * w)), TOps.Load(ref Unsafe.Add(ref sum, (2 * r + 1) * w)), ref Unsafe.Add(ref dx, r * c), u0, u1);
            }

            return;
        }

        Store(d0, e0, ref dx, u0, u1);
        if (count > 1) Store(d1, e1, ref Unsafe.Add(ref dx, c), u0, u1);
        if (count > 2) Store(d2, e2, ref Unsafe.Add(ref dx, 2 * c), u0, u1);
        if (count > 3) Store(d3, e3, ref Unsafe.Add(ref dx, 3 * c), u0, u1);
        if (count > 4) Store(d4, e4, ref Unsafe.Add(ref dx, 4 * c), u0, u1);
        if (count > 5) Store(d5, e5, ref Unsafe.Add(ref dx, 5 * c), u0, u1);
    }

    /// <summary>
    /// ∂x of 6 pixels × 1 channel vector, for a last odd vector (C = W, say), as <see cref="InputBlock6x2"/>: 6 chains,
    /// 6 sums, the loaded vector and a broadcast fit 16 registers, so the sums stay in registers at every width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void InputBlock6x1(in ConvGeometry g, int oc, T[] dy, T[] packed, nint u0, ReadOnlySpan<int> pixel, int count, ref T dx)
    {
        TV d0 = TOps.Zero, d1 = TOps.Zero, d2 = TOps.Zero, d3 = TOps.Zero, d4 = TOps.Zero, d5 = TOps.Zero;
        Span<nint> sources = stackalloc nint[6];
        nint c = g.C;
        for (int kh = g.KH - 1; kh >= 0; kh--)
        {
            for (int kw = g.KW - 1; kw >= 0; kw--)
            {
                int mask = Sources(g, oc, kh, kw, pixel, 6, count, sources);
                if (mask == 0) continue;
                ref T s0 = ref dy[sources[0]], s1 = ref dy[sources[1]], s2 = ref dy[sources[2]];
                ref T s3 = ref dy[sources[3]], s4 = ref dy[sources[4]], s5 = ref dy[sources[5]];
                ref T u = ref packed[(nint)(kh * g.KW + kw) * oc * c + u0];
                TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero;
                for (nint o = 0; o < oc; o++)
                {
                    TV v0 = TOps.Load(ref u);
                    a0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s0, o)), v0, a0);
                    a1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s1, o)), v0, a1);
                    a2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s2, o)), v0, a2);
                    a3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s3, o)), v0, a3);
                    a4 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s4, o)), v0, a4);
                    a5 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s5, o)), v0, a5);
                    u = ref Unsafe.Add(ref u, c);
                }

                // col2im's dx = dx + ∂P entry, for the windows inside.
                if ((mask & 1) != 0) d0 = TOps.Add(d0, a0);
                if ((mask & 2) != 0) d1 = TOps.Add(d1, a1);
                if ((mask & 4) != 0) d2 = TOps.Add(d2, a2);
                if ((mask & 8) != 0) d3 = TOps.Add(d3, a3);
                if ((mask & 16) != 0) d4 = TOps.Add(d4, a4);
                if ((mask & 32) != 0) d5 = TOps.Add(d5, a5);
            }
        }

        TOps.Store(d0, ref Unsafe.Add(ref dx, u0));
        if (count > 1) TOps.Store(d1, ref Unsafe.Add(ref dx, c + u0));
        if (count > 2) TOps.Store(d2, ref Unsafe.Add(ref dx, 2 * c + u0));
        if (count > 3) TOps.Store(d3, ref Unsafe.Add(ref dx, 3 * c + u0));
        if (count > 4) TOps.Store(d4, ref Unsafe.Add(ref dx, 4 * c + u0));
        if (count > 5) TOps.Store(d5, ref Unsafe.Add(ref dx, 5 * c + u0));
    }

    /// <summary>A pixel's two sums at <paramref name="at"/> and at + W of <paramref name="sums"/> += the tap's chains (col2im's dx + ∂P entry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddTo(ref T sums, nint at, nint w, TV a, TV b)
    {
        ref T s = ref Unsafe.Add(ref sums, at);
        TOps.Store(TOps.Add(TOps.Load(ref s), a), ref s);
        TOps.Store(TOps.Add(TOps.Load(ref Unsafe.Add(ref s, w)), b), ref Unsafe.Add(ref s, w));
    }

    /// <summary>dst[i] = dst[i] + src[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow(Span<T> src, Span<T> dst)
    {
        int w = TOps.Count, i = 0;
        for (; i + w <= dst.Length; i += w) TOps.Store(TOps.Add(TOps.Load(ref dst[i]), TOps.Load(ref src[i])), ref dst[i]);
        for (; i < dst.Length; i++) dst[i] += src[i];
    }

    /// <summary>Vector starts over <paramref name="length"/> lanes: 0, W, 2W, …, the last shifted back to end at <paramref name="length"/> (≥ W).</summary>
    private static void VectorStarts(int length, Span<nint> starts)
    {
        for (int i = 0; i < starts.Length; i++) starts[i] = Math.Min(i * TOps.Count, length - TOps.Count);
    }

    /// <summary>
    /// Every vector of <paramref name="vectors"/> in blocks of up to <see cref="MostVectors"/>: for broadcast row r
    /// (at s + sources[r]) and vector column v (at u + v), X[r, v] = tile[rows[r] + v], then for each of
    /// <paramref name="outer"/> × <paramref name="inner"/> steps X[r, v] = fma(s[r], u[v], X[r, v]) with s advancing by
    /// <paramref name="sStep"/> (and <paramref name="sJump"/> more after each inner run) and u by <paramref name="uStep"/>;
    /// X is stored back to the tile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sweep(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns)
    {
        int v = 0, most = MostVectors;
        for (; vectors.Length - v >= 4 && most >= 4; v += 4)
        {
            Block4(ref s, sources, sStep, sJump, ref u, vectors.Slice(v, 4), uStep, inner, outer, ref tile, rows, columns.Slice(v, 4));
        }

        for (; vectors.Length - v >= 2; v += 2)
        {
            Block2(ref s, sources, sStep, sJump, ref u, vectors.Slice(v, 2), uStep, inner, outer, ref tile, rows, columns.Slice(v, 2));
        }

        if (v < vectors.Length) Block1(ref s, sources, sStep, sJump, ref u, vectors[v], uStep, inner, outer, ref tile, rows, columns[v]);
    }

    /// <summary>6 rows × 4 vectors (24 accumulators, 4 loaded vectors, a broadcast: 29 of 32 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns)
    {
        nint u0 = vectors[0], u1 = vectors[1], u2 = vectors[2], u3 = vectors[3];
        nint c0 = columns[0], c1 = columns[1], c2 = columns[2], c3 = columns[3];
        ref T t0 = ref Unsafe.Add(ref tile, rows[0]), t1 = ref Unsafe.Add(ref tile, rows[1]), t2 = ref Unsafe.Add(ref tile, rows[2]);
        ref T t3 = ref Unsafe.Add(ref tile, rows[3]), t4 = ref Unsafe.Add(ref tile, rows[4]), t5 = ref Unsafe.Add(ref tile, rows[5]);
        TV a0 = Start(ref t0, c0), a1 = Start(ref t0, c1), a2 = Start(ref t0, c2), a3 = Start(ref t0, c3);
        TV b0 = Start(ref t1, c0), b1 = Start(ref t1, c1), b2 = Start(ref t1, c2), b3 = Start(ref t1, c3);
        TV d0 = Start(ref t2, c0), d1 = Start(ref t2, c1), d2 = Start(ref t2, c2), d3 = Start(ref t2, c3);
        TV e0 = Start(ref t3, c0), e1 = Start(ref t3, c1), e2 = Start(ref t3, c2), e3 = Start(ref t3, c3);
        TV f0 = Start(ref t4, c0), f1 = Start(ref t4, c1), f2 = Start(ref t4, c2), f3 = Start(ref t4, c3);
        TV g0 = Start(ref t5, c0), g1 = Start(ref t5, c1), g2 = Start(ref t5, c2), g3 = Start(ref t5, c3);
        ref T s0 = ref Unsafe.Add(ref s, sources[0]), s1 = ref Unsafe.Add(ref s, sources[1]), s2 = ref Unsafe.Add(ref s, sources[2]);
        ref T s3 = ref Unsafe.Add(ref s, sources[3]), s4 = ref Unsafe.Add(ref s, sources[4]), s5 = ref Unsafe.Add(ref s, sources[5]);
        ref T uu = ref u;
        nint at = 0;
        for (int o = 0; o < outer; o++, at += sJump)
        {
            for (int i = 0; i < inner; i++, at += sStep)
            {
                TV v0 = TOps.Load(ref Unsafe.Add(ref uu, u0)), v1 = TOps.Load(ref Unsafe.Add(ref uu, u1));
                TV v2 = TOps.Load(ref Unsafe.Add(ref uu, u2)), v3 = TOps.Load(ref Unsafe.Add(ref uu, u3));
                TV x = TOps.Broadcast(Unsafe.Add(ref s0, at));
                a0 = TOps.MultiplyAdd(x, v0, a0); a1 = TOps.MultiplyAdd(x, v1, a1); a2 = TOps.MultiplyAdd(x, v2, a2); a3 = TOps.MultiplyAdd(x, v3, a3);
                x = TOps.Broadcast(Unsafe.Add(ref s1, at));
                b0 = TOps.MultiplyAdd(x, v0, b0); b1 = TOps.MultiplyAdd(x, v1, b1); b2 = TOps.MultiplyAdd(x, v2, b2); b3 = TOps.MultiplyAdd(x, v3, b3);
                x = TOps.Broadcast(Unsafe.Add(ref s2, at));
                d0 = TOps.MultiplyAdd(x, v0, d0); d1 = TOps.MultiplyAdd(x, v1, d1); d2 = TOps.MultiplyAdd(x, v2, d2); d3 = TOps.MultiplyAdd(x, v3, d3);
                x = TOps.Broadcast(Unsafe.Add(ref s3, at));
                e0 = TOps.MultiplyAdd(x, v0, e0); e1 = TOps.MultiplyAdd(x, v1, e1); e2 = TOps.MultiplyAdd(x, v2, e2); e3 = TOps.MultiplyAdd(x, v3, e3);
                x = TOps.Broadcast(Unsafe.Add(ref s4, at));
                f0 = TOps.MultiplyAdd(x, v0, f0); f1 = TOps.MultiplyAdd(x, v1, f1); f2 = TOps.MultiplyAdd(x, v2, f2); f3 = TOps.MultiplyAdd(x, v3, f3);
                x = TOps.Broadcast(Unsafe.Add(ref s5, at));
                g0 = TOps.MultiplyAdd(x, v0, g0); g1 = TOps.MultiplyAdd(x, v1, g1); g2 = TOps.MultiplyAdd(x, v2, g2); g3 = TOps.MultiplyAdd(x, v3, g3);
                uu = ref Unsafe.Add(ref uu, uStep);
            }
        }

        // Rows stored last to first: a repeated row (the same chain) lands where its original does, with the same value.
        Store(g0, g1, g2, g3, ref t5, c0, c1, c2, c3); Store(f0, f1, f2, f3, ref t4, c0, c1, c2, c3);
        Store(e0, e1, e2, e3, ref t3, c0, c1, c2, c3); Store(d0, d1, d2, d3, ref t2, c0, c1, c2, c3);
        Store(b0, b1, b2, b3, ref t1, c0, c1, c2, c3); Store(a0, a1, a2, a3, ref t0, c0, c1, c2, c3);
    }

    /// <summary>6 rows × 2 vectors (12 accumulators, 2 loaded vectors, a broadcast: 15 of 16 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block2(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns)
    {
        nint u0 = vectors[0], u1 = vectors[1], c0 = columns[0], c1 = columns[1];
        ref T t0 = ref Unsafe.Add(ref tile, rows[0]), t1 = ref Unsafe.Add(ref tile, rows[1]), t2 = ref Unsafe.Add(ref tile, rows[2]);
        ref T t3 = ref Unsafe.Add(ref tile, rows[3]), t4 = ref Unsafe.Add(ref tile, rows[4]), t5 = ref Unsafe.Add(ref tile, rows[5]);
        TV a0 = Start(ref t0, c0), a1 = Start(ref t0, c1), b0 = Start(ref t1, c0), b1 = Start(ref t1, c1);
        TV d0 = Start(ref t2, c0), d1 = Start(ref t2, c1), e0 = Start(ref t3, c0), e1 = Start(ref t3, c1);
        TV f0 = Start(ref t4, c0), f1 = Start(ref t4, c1), g0 = Start(ref t5, c0), g1 = Start(ref t5, c1);
        ref T s0 = ref Unsafe.Add(ref s, sources[0]), s1 = ref Unsafe.Add(ref s, sources[1]), s2 = ref Unsafe.Add(ref s, sources[2]);
        ref T s3 = ref Unsafe.Add(ref s, sources[3]), s4 = ref Unsafe.Add(ref s, sources[4]), s5 = ref Unsafe.Add(ref s, sources[5]);
        ref T uu = ref u;
        nint at = 0;
        for (int o = 0; o < outer; o++, at += sJump)
        {
            for (int i = 0; i < inner; i++, at += sStep)
            {
                TV v0 = TOps.Load(ref Unsafe.Add(ref uu, u0)), v1 = TOps.Load(ref Unsafe.Add(ref uu, u1));
                TV x = TOps.Broadcast(Unsafe.Add(ref s0, at));
                a0 = TOps.MultiplyAdd(x, v0, a0); a1 = TOps.MultiplyAdd(x, v1, a1);
                x = TOps.Broadcast(Unsafe.Add(ref s1, at));
                b0 = TOps.MultiplyAdd(x, v0, b0); b1 = TOps.MultiplyAdd(x, v1, b1);
                x = TOps.Broadcast(Unsafe.Add(ref s2, at));
                d0 = TOps.MultiplyAdd(x, v0, d0); d1 = TOps.MultiplyAdd(x, v1, d1);
                x = TOps.Broadcast(Unsafe.Add(ref s3, at));
                e0 = TOps.MultiplyAdd(x, v0, e0); e1 = TOps.MultiplyAdd(x, v1, e1);
                x = TOps.Broadcast(Unsafe.Add(ref s4, at));
                f0 = TOps.MultiplyAdd(x, v0, f0); f1 = TOps.MultiplyAdd(x, v1, f1);
                x = TOps.Broadcast(Unsafe.Add(ref s5, at));
                g0 = TOps.MultiplyAdd(x, v0, g0); g1 = TOps.MultiplyAdd(x, v1, g1);
                uu = ref Unsafe.Add(ref uu, uStep);
            }
        }

        Store(g0, g1, ref t5, c0, c1); Store(f0, f1, ref t4, c0, c1); Store(e0, e1, ref t3, c0, c1);
        Store(d0, d1, ref t2, c0, c1); Store(b0, b1, ref t1, c0, c1); Store(a0, a1, ref t0, c0, c1);
    }

    /// <summary>6 rows × 1 vector, for a last odd vector (OC = W, say): 6 accumulators, the loaded vector, a broadcast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, nint u0, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, nint c0)
    {
        ref T t0 = ref Unsafe.Add(ref tile, rows[0]), t1 = ref Unsafe.Add(ref tile, rows[1]), t2 = ref Unsafe.Add(ref tile, rows[2]);
        ref T t3 = ref Unsafe.Add(ref tile, rows[3]), t4 = ref Unsafe.Add(ref tile, rows[4]), t5 = ref Unsafe.Add(ref tile, rows[5]);
        TV a0 = Start(ref t0, c0), b0 = Start(ref t1, c0), d0 = Start(ref t2, c0), e0 = Start(ref t3, c0), f0 = Start(ref t4, c0), g0 = Start(ref t5, c0);
        ref T s0 = ref Unsafe.Add(ref s, sources[0]), s1 = ref Unsafe.Add(ref s, sources[1]), s2 = ref Unsafe.Add(ref s, sources[2]);
        ref T s3 = ref Unsafe.Add(ref s, sources[3]), s4 = ref Unsafe.Add(ref s, sources[4]), s5 = ref Unsafe.Add(ref s, sources[5]);
        ref T uu = ref Unsafe.Add(ref u, u0);
        nint at = 0;
        for (int o = 0; o < outer; o++, at += sJump)
        {
            for (int i = 0; i < inner; i++, at += sStep)
            {
                TV v0 = TOps.Load(ref uu);
                a0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s0, at)), v0, a0);
                b0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s1, at)), v0, b0);
                d0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s2, at)), v0, d0);
                e0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s3, at)), v0, e0);
                f0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s4, at)), v0, f0);
                g0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref s5, at)), v0, g0);
                uu = ref Unsafe.Add(ref uu, uStep);
            }
        }

        // Rows stored last to first: a repeated row (the same chain) lands where its original does, with the same value.
        TOps.Store(g0, ref Unsafe.Add(ref t5, c0)); TOps.Store(f0, ref Unsafe.Add(ref t4, c0)); TOps.Store(e0, ref Unsafe.Add(ref t3, c0));
        TOps.Store(d0, ref Unsafe.Add(ref t2, c0)); TOps.Store(b0, ref Unsafe.Add(ref t1, c0)); TOps.Store(a0, ref Unsafe.Add(ref t0, c0));
    }

    /// <summary>The accumulator at <paramref name="column"/> of a tile row: the chain so far, carried from the previous range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Start(ref T row, nint column) => TOps.Load(ref Unsafe.Add(ref row, column));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(TV x0, TV x1, ref T row, nint c0, nint c1)
    {
        TOps.Store(x1, ref Unsafe.Add(ref row, c1));
        TOps.Store(x0, ref Unsafe.Add(ref row, c0));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(TV x0, TV x1, TV x2, TV x3, ref T row, nint c0, nint c1, nint c2, nint c3)
    {
        TOps.Store(x3, ref Unsafe.Add(ref row, c3));
        TOps.Store(x2, ref Unsafe.Add(ref row, c2));
        TOps.Store(x1, ref Unsafe.Add(ref row, c1));
        TOps.Store(x0, ref Unsafe.Add(ref row, c0));
    }
}
