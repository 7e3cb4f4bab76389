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
/// Register blocks hold broadcast rows × vectors. For ∂K, up to 6 taps × 4 vectors or 9 taps × 2 (32 vector
/// registers), 6 × 2 (16), over a range of output pixels (the chains carried from range to range in an accumulator
/// buffer, so a range's pixels stay in cache); the taps are shared out evenly over the fewest blocks, so no row is
/// computed twice (9 taps: one block of 9 or 5 + 4). ∂b's column sums run in the same range loop. For ∂x, 6 input
/// pixels × 2 vectors of input channels over the output channels, one tap at a time, the pixels of a block chosen by
/// <see cref="InputSchedule"/>. Vectors run over channels at 0, W, 2W, … with the last one shifted back to end at the
/// channel count (channel counts of at least a vector); lanes computed twice hold the same values.
/// </para>
/// </summary>
internal static class DirectConvBackward<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int Rows = 6;

    /// <summary>Taps in one block of the weight gradient with 2 vectors and 32 registers (18 accumulators).</summary>
    private const int MaxTaps = 9;

    /// <summary>Output pixels in one range of the weight gradient's sums: its ∂y and x̃ rows stay in cache across the tap blocks.</summary>
    private const int RangePixels = 128;

    /// <summary>512-bit vectors come with 32 registers (AVX-512): 6 × 4 blocks fit; 16 registers take 6 × 2.</summary>
    private static int MostVectors => TOps.Count * Unsafe.SizeOf<T>() >= 64 ? 4 : 2;

    /// <summary>Whether both kernels take <paramref name="g"/> with <paramref name="outChannels"/> outputs: stride 1, at least a vector of input and of output channels.</summary>
    public static bool Supports(in ConvGeometry g, int outChannels) =>
        g.Stride == 1 && outChannels >= TOps.Count && g.C >= TOps.Count;

    /// <summary>Whether <see cref="WeightGradient"/> takes <paramref name="g"/> (any channel count in, a vector of outputs).</summary>
    public static bool SupportsWeightGradient(in ConvGeometry g, int outChannels) => g.Stride == 1 && outChannels >= TOps.Count;

    /// <summary>
    /// Elements <see cref="WeightGradient"/> needs in its accumulator buffer: KH·KW·C rows of OC rounded up to whole
    /// vectors for ∂K's chains, then 4 such rows for ∂b's partial sums.
    /// </summary>
    public static int AccumulatorLength(in ConvGeometry g, int outChannels) => (g.PatchColumns + 4) * Vectors(outChannels) * TOps.Count;

    /// <summary>
    /// ∂K += Σ_m x̃·∂y as described above and ∂b += ∂y's column sums. <paramref name="framed"/> is the geometry of x̃
    /// with no padding (so its output is ∂y's), <paramref name="acc"/> a buffer of at least <see cref="AccumulatorLength"/>
    /// elements (overwritten): each tap's chains in whole vectors, the last one holding the shifted last vector's lanes,
    /// so that no lane is carried by two vectors from one range to the next; then ∂b's partial sums, laid out alike.
    /// ∂b is summed range by range while the range's ∂y is in cache, in <see cref="RowOps.AddColumnSums{T}"/>'s order:
    /// output pixel m to partial m mod 4, each partial from zero in the order of m, then
    /// ∂b = (((∂b + p0) + p1) + p2) + p3.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void WeightGradient(in ConvGeometry framed, int oc, T[] xFramed, T[] dy, T[] acc, T[] dw, Span<T> db)
    {
        int w = TOps.Count, k = framed.PatchColumns, oh = framed.OH, ow = framed.OW, c = framed.C, rowStep = framed.W * c;
        int count = Vectors(oc), stride = count * w;
        Array.Clear(acc, 0, (k + 4) * stride);
        Span<nint> vectors = stackalloc nint[count], columns = stackalloc nint[count];
        VectorStarts(oc, vectors);
        for (int i = 0; i < count; i++) columns[i] = (nint)i * w;
        Span<nint> taps = stackalloc nint[MaxTaps], tile = stackalloc nint[MaxTaps];

        // Tap blocks as even as the register block allows (9 taps: 5 + 4 or one block of 9, 25: 5 × 5 or 9 + 8 + 8):
        // every row of every block a tap of its own.
        int most = MostVectors >= 4 && count < 4 ? MaxTaps : Rows, blocks = (k + most - 1) / most;
        int rowsPerRange = Math.Max(1, RangePixels / ow), allRows = framed.N * oh;
        for (int r0 = 0; r0 < allRows; r0 += rowsPerRange)
        {
            int r1 = Math.Min(allRows, r0 + rowsPerRange);
            for (int b = 0, t = 0; b < blocks; b++)
            {
                int size = (k - t + blocks - b - 1) / (blocks - b); // the remaining taps shared out, larger blocks first
                for (int j = 0; j < size; j++)
                {
                    int tap = t + j, kh = tap / (framed.KW * c), rest = tap - kh * framed.KW * c;
                    taps[j] = kh * rowStep + rest; // (kh, kw, c) → kh·rowStep + kw·C + c
                    tile[j] = (nint)tap * stride;
                }

                for (int j = size; j < MaxTaps; j++)
                {
                    // Rows past the block's are not computed; their offsets stay valid.
                    taps[j] = taps[size - 1];
                    tile[j] = tile[size - 1];
                }

                // The range's rows, one image at a time (x̃'s rows jump at an image's end).
                for (int r = r0; r < r1;)
                {
                    int n = r / oh, oy = r - n * oh, rows = Math.Min(r1 - r, oh - oy);
                    nint xAt = ((nint)(n * framed.H + oy) * framed.W) * c, dyAt = (nint)r * ow * oc;
                    Sweep(size, ref xFramed[xAt], taps, c, rowStep - ow * c, ref dy[dyAt], vectors, oc, ow, rows, ref acc[0], tile, columns);
                    r += rows;
                }

                t += size;
            }

            PartialSums(dy, r0 * ow, r1 * ow, oc, vectors, columns, ref acc[k * stride], stride);
        }

        // ∂K[t, o] = ∂K[t, o] + chain: whole vectors up to the last one, then the last one's lanes not yet added.
        int whole = (count - 1) * w, last = (int)vectors[count - 1];
        for (int t = 0; t < k; t++)
        {
            AddRow(acc.AsSpan(t * stride, whole), dw.AsSpan(t * oc, whole));
            AddRow(acc.AsSpan(t * stride + whole + (whole - last), oc - whole), dw.AsSpan(t * oc + whole, oc - whole));
        }

        for (int o = 0; o < oc; o++)
        {
            int at = k * stride + (o < whole ? o : whole + (o - last));
            db[o] = (((db[o] + acc[at]) + acc[at + stride]) + acc[at + 2 * stride]) + acc[at + 3 * stride];
        }
    }

    /// <summary>
    /// ∂b's partial sums over output pixels <paramref name="first"/> to <paramref name="end"/> of ∂y: pixel m's row added
    /// to partial m mod 4 (row m mod 4 of <paramref name="part"/>, <paramref name="stride"/> apart), each vector of
    /// channels at its column.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PartialSums(T[] dy, int first, int end, int oc, ReadOnlySpan<nint> vectors, ReadOnlySpan<nint> columns, ref T part, nint stride)
    {
        for (int v = 0; v < vectors.Length; v++)
        {
            ref T p = ref Unsafe.Add(ref part, columns[v]);
            TV q0 = TOps.Load(ref p), q1 = TOps.Load(ref Unsafe.Add(ref p, stride));
            TV q2 = TOps.Load(ref Unsafe.Add(ref p, 2 * stride)), q3 = TOps.Load(ref Unsafe.Add(ref p, 3 * stride));
            ref T d = ref Unsafe.Add(ref dy[0], vectors[v]);
            nint m = first;
            for (; m < end && (m & 3) != 0; m++)
            {
                TV row = TOps.Load(ref Unsafe.Add(ref d, m * oc));
                if ((m & 3) == 1) q1 = TOps.Add(q1, row);
                else if ((m & 3) == 2) q2 = TOps.Add(q2, row);
                else q3 = TOps.Add(q3, row);
            }

            for (; m + 4 <= end; m += 4)
            {
                ref T at = ref Unsafe.Add(ref d, m * oc);
                q0 = TOps.Add(q0, TOps.Load(ref at));
                q1 = TOps.Add(q1, TOps.Load(ref Unsafe.Add(ref at, oc)));
                q2 = TOps.Add(q2, TOps.Load(ref Unsafe.Add(ref at, 2 * (nint)oc)));
                q3 = TOps.Add(q3, TOps.Load(ref Unsafe.Add(ref at, 3 * (nint)oc)));
            }

            if (m < end) q0 = TOps.Add(q0, TOps.Load(ref Unsafe.Add(ref d, m * oc)));
            if (m + 1 < end) q1 = TOps.Add(q1, TOps.Load(ref Unsafe.Add(ref d, (m + 1) * oc)));
            if (m + 2 < end) q2 = TOps.Add(q2, TOps.Load(ref Unsafe.Add(ref d, (m + 2) * oc)));
            TOps.Store(q0, ref p);
            TOps.Store(q1, ref Unsafe.Add(ref p, stride));
            TOps.Store(q2, ref Unsafe.Add(ref p, 2 * stride));
            TOps.Store(q3, ref Unsafe.Add(ref p, 3 * stride));
        }
    }

    /// <summary>Vectors over <paramref name="length"/> lanes (the last one shifted back when it does not fill).</summary>
    private static int Vectors(int length) => (length + TOps.Count - 1) / TOps.Count;

    /// <summary>
    /// ∂x as described above for geometry <paramref name="g"/> (stride 1, padding p ≥ 0), block by block of
    /// <paramref name="schedule"/> (<see cref="InputSchedule.Build"/>'s for <paramref name="g"/>, <paramref name="blocks"/>
    /// blocks). <paramref name="packed"/> is a buffer of at least KH·KW·OC·C elements (overwritten with K's taps as
    /// (OC, C) rows).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void InputGradient(in ConvGeometry g, int oc, T[] dy, T[] weight, T[] packed, int[] schedule, int blocks, T[] dx)
    {
        int c = g.C, taps = g.KH * g.KW, hw = g.H * g.W;
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
        const int rows = InputSchedule.Rows;
        Span<int> pixel = stackalloc int[4 * rows];
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<int> block = schedule.AsSpan(b * rows, rows);
            int count = rows;
            while (block[count - 1] < 0) count--;
            for (int r = 0; r < rows; r++)
            {
                // Missing pixels repeat the last one and are not written.
                int at = block[Math.Min(r, count - 1)], n = at / hw, rest = at - n * hw, i = rest / g.W;
                pixel[4 * r] = n;
                pixel[4 * r + 1] = i;
                pixel[4 * r + 2] = rest - i * g.W;
                pixel[4 * r + 3] = at;
            }

            for (int v = 0; v < vectors.Length; v += 2)
            {
                // A last single vector is computed twice, the same sums stored to the same place.
                nint u0 = vectors[v], u1 = vectors[Math.Min(v + 1, vectors.Length - 1)];
                InputBlock6x2(g, oc, dy, packed, u0, u1, pixel, count, dx);
            }
        }
    }

    /// <summary>
    /// Where each of <paramref name="rows"/> pixels (n, i, j and its index in <paramref name="pixel"/>, 4 entries a
    /// pixel) takes tap (kh, kw) from: the offset of its ∂y row, or of the first valid row when its window falls outside
    /// the output (computed, not added). Returns the rows whose window is inside as a bit mask (0: none).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Sources(in ConvGeometry g, int oc, int kh, int kw, ReadOnlySpan<int> pixel, int rows, int count, Span<nint> sources)
    {
        int oh = g.OH, ow = g.OW, mask = 0;
        nint any = 0;
        for (int r = rows - 1; r >= 0; r--)
        {
            int oy = pixel[4 * r + 1] + g.Padding - kh, ox = pixel[4 * r + 2] + g.Padding - kw;
            bool inside = r < count && (uint)oy < (uint)oh && (uint)ox < (uint)ow;
            sources[r] = inside ? ((nint)(pixel[4 * r] * oh + oy) * ow + ox) * oc : -1;
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
    private static void InputBlock6x2(in ConvGeometry g, int oc, T[] dy, T[] packed, nint u0, nint u1, ReadOnlySpan<int> pixel, int count, T[] dx)
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

        ref T x0 = ref dx[0];
        if (!inRegisters)
        {
            for (int r = 0; r < count; r++)
            {
                Store(TOps.Load(ref Unsafe.Add(ref sum, 2 * r * w)), TOps.Load(ref Unsafe.Add(ref sum, (2 * r + 1) * w)), ref Unsafe.Add(ref x0, pixel[4 * r + 3] * c), u0, u1);
            }

            return;
        }

        Store(d0, e0, ref Unsafe.Add(ref x0, pixel[3] * c), u0, u1);
        if (count > 1) Store(d1, e1, ref Unsafe.Add(ref x0, pixel[7] * c), u0, u1);
        if (count > 2) Store(d2, e2, ref Unsafe.Add(ref x0, pixel[11] * c), u0, u1);
        if (count > 3) Store(d3, e3, ref Unsafe.Add(ref x0, pixel[15] * c), u0, u1);
        if (count > 4) Store(d4, e4, ref Unsafe.Add(ref x0, pixel[19] * c), u0, u1);
        if (count > 5) Store(d5, e5, ref Unsafe.Add(ref x0, pixel[23] * c), u0, u1);
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
    /// Every vector of <paramref name="vectors"/> in blocks of up to <see cref="MostVectors"/> (2 when there are more
    /// than <see cref="Rows"/> rows): for broadcast row r &lt; <paramref name="count"/> (at s + sources[r]) and vector
    /// column v (at u + v), X[r, v] = tile[rows[r] + v], then for each of <paramref name="outer"/> ×
    /// <paramref name="inner"/> steps X[r, v] = fma(s[r], u[v], X[r, v]) with s advancing by <paramref name="sStep"/> (and
    /// <paramref name="sJump"/> more after each inner run) and u by <paramref name="uStep"/>; X is stored back to the tile.
    /// <paramref name="sources"/> and <paramref name="rows"/> hold <see cref="MaxTaps"/> valid offsets.
    /// </summary>
    private static void Sweep(int count, ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns)
    {
        switch (count)
        {
            case 1: Sweep<One>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 2: Sweep<Two>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 3: Sweep<Three>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 4: Sweep<Four>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 5: Sweep<Five>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 6: Sweep<Six>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 7: Sweep<Seven>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            case 8: Sweep<Eight>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
            default: Sweep<Nine>(ref s, sources, sStep, sJump, ref u, vectors, uStep, inner, outer, ref tile, rows, columns); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sweep<TR>(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns) where TR : struct, IFixedCount
    {
        int v = 0, most = TR.Count <= Rows ? MostVectors : 2;
        for (; vectors.Length - v >= 4 && most >= 4; v += 4)
        {
            Block4<TR>(ref s, sources, sStep, sJump, ref u, vectors.Slice(v, 4), uStep, inner, outer, ref tile, rows, columns.Slice(v, 4));
        }

        for (; vectors.Length - v >= 2; v += 2)
        {
            Block2<TR>(ref s, sources, sStep, sJump, ref u, vectors.Slice(v, 2), uStep, inner, outer, ref tile, rows, columns.Slice(v, 2));
        }

        if (v < vectors.Length)
        {
            // One vector left: computed twice in a 2-vector block, the same chain stored to the same place.
            Span<nint> one = [vectors[v], vectors[v]], at = [columns[v], columns[v]];
            Block2<TR>(ref s, sources, sStep, sJump, ref u, one, uStep, inner, outer, ref tile, rows, at);
        }
    }

    /// <summary>
    /// Up to 6 rows × 4 vectors: 24 accumulators, 4 loaded vectors and a broadcast (29 of 32 registers) at the most; the
    /// rows past <typeparamref name="TR"/>'s count are not computed (the JIT drops their code).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4<TR>(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns) where TR : struct, IFixedCount
    {
        int n = TR.Count;
        nint u0 = vectors[0], u1 = vectors[1], u2 = vectors[2], u3 = vectors[3];
        nint c0 = columns[0], c1 = columns[1], c2 = columns[2], c3 = columns[3];
        ref T t0 = ref Unsafe.Add(ref tile, rows[0]), s0 = ref Unsafe.Add(ref s, sources[0]);
        ref T t1 = ref Unsafe.Add(ref tile, rows[1]), s1 = ref Unsafe.Add(ref s, sources[1]);
        ref T t2 = ref Unsafe.Add(ref tile, rows[2]), s2 = ref Unsafe.Add(ref s, sources[2]);
        ref T t3 = ref Unsafe.Add(ref tile, rows[3]), s3 = ref Unsafe.Add(ref s, sources[3]);
        ref T t4 = ref Unsafe.Add(ref tile, rows[4]), s4 = ref Unsafe.Add(ref s, sources[4]);
        ref T t5 = ref Unsafe.Add(ref tile, rows[5]), s5 = ref Unsafe.Add(ref s, sources[5]);
        TV a0 = Start(ref t0, c0, true), b0 = Start(ref t0, c1, true), d0 = Start(ref t0, c2, true), e0 = Start(ref t0, c3, true);
        TV a1 = Start(ref t1, c0, n > 1), b1 = Start(ref t1, c1, n > 1), d1 = Start(ref t1, c2, n > 1), e1 = Start(ref t1, c3, n > 1);
        TV a2 = Start(ref t2, c0, n > 2), b2 = Start(ref t2, c1, n > 2), d2 = Start(ref t2, c2, n > 2), e2 = Start(ref t2, c3, n > 2);
        TV a3 = Start(ref t3, c0, n > 3), b3 = Start(ref t3, c1, n > 3), d3 = Start(ref t3, c2, n > 3), e3 = Start(ref t3, c3, n > 3);
        TV a4 = Start(ref t4, c0, n > 4), b4 = Start(ref t4, c1, n > 4), d4 = Start(ref t4, c2, n > 4), e4 = Start(ref t4, c3, n > 4);
        TV a5 = Start(ref t5, c0, n > 5), b5 = Start(ref t5, c1, n > 5), d5 = Start(ref t5, c2, n > 5), e5 = Start(ref t5, c3, n > 5);
        ref T uu = ref u;
        nint at = 0;
        for (int o = 0; o < outer; o++, at += sJump)
        {
            for (int i = 0; i < inner; i++, at += sStep)
            {
                TV v0 = TOps.Load(ref Unsafe.Add(ref uu, u0)), v1 = TOps.Load(ref Unsafe.Add(ref uu, u1));
                TV v2 = TOps.Load(ref Unsafe.Add(ref uu, u2)), v3 = TOps.Load(ref Unsafe.Add(ref uu, u3));
                TV x = TOps.Broadcast(Unsafe.Add(ref s0, at));
                a0 = TOps.MultiplyAdd(x, v0, a0); b0 = TOps.MultiplyAdd(x, v1, b0); d0 = TOps.MultiplyAdd(x, v2, d0); e0 = TOps.MultiplyAdd(x, v3, e0);
                if (n > 1)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s1, at));
                    a1 = TOps.MultiplyAdd(x, v0, a1); b1 = TOps.MultiplyAdd(x, v1, b1); d1 = TOps.MultiplyAdd(x, v2, d1); e1 = TOps.MultiplyAdd(x, v3, e1);
                }

                if (n > 2)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s2, at));
                    a2 = TOps.MultiplyAdd(x, v0, a2); b2 = TOps.MultiplyAdd(x, v1, b2); d2 = TOps.MultiplyAdd(x, v2, d2); e2 = TOps.MultiplyAdd(x, v3, e2);
                }

                if (n > 3)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s3, at));
                    a3 = TOps.MultiplyAdd(x, v0, a3); b3 = TOps.MultiplyAdd(x, v1, b3); d3 = TOps.MultiplyAdd(x, v2, d3); e3 = TOps.MultiplyAdd(x, v3, e3);
                }

                if (n > 4)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s4, at));
                    a4 = TOps.MultiplyAdd(x, v0, a4); b4 = TOps.MultiplyAdd(x, v1, b4); d4 = TOps.MultiplyAdd(x, v2, d4); e4 = TOps.MultiplyAdd(x, v3, e4);
                }

                if (n > 5)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s5, at));
                    a5 = TOps.MultiplyAdd(x, v0, a5); b5 = TOps.MultiplyAdd(x, v1, b5); d5 = TOps.MultiplyAdd(x, v2, d5); e5 = TOps.MultiplyAdd(x, v3, e5);
                }

                uu = ref Unsafe.Add(ref uu, uStep);
            }
        }

        Store(a0, b0, d0, e0, ref t0, c0, c1, c2, c3);
        if (n > 1) Store(a1, b1, d1, e1, ref t1, c0, c1, c2, c3);
        if (n > 2) Store(a2, b2, d2, e2, ref t2, c0, c1, c2, c3);
        if (n > 3) Store(a3, b3, d3, e3, ref t3, c0, c1, c2, c3);
        if (n > 4) Store(a4, b4, d4, e4, ref t4, c0, c1, c2, c3);
        if (n > 5) Store(a5, b5, d5, e5, ref t5, c0, c1, c2, c3);
    }

    /// <summary>
    /// Up to 9 rows × 2 vectors: 18 accumulators, 2 loaded vectors and a broadcast (21 of 32 registers) at the most; the
    /// rows past <typeparamref name="TR"/>'s count are not computed (the JIT drops their code).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block2<TR>(ref T s, ReadOnlySpan<nint> sources, nint sStep, nint sJump, ref T u, ReadOnlySpan<nint> vectors, nint uStep,
        int inner, int outer, ref T tile, ReadOnlySpan<nint> rows, ReadOnlySpan<nint> columns) where TR : struct, IFixedCount
    {
        int n = TR.Count;
        nint u0 = vectors[0], u1 = vectors[1], c0 = columns[0], c1 = columns[1];
        ref T t0 = ref Unsafe.Add(ref tile, rows[0]), s0 = ref Unsafe.Add(ref s, sources[0]);
        ref T t1 = ref Unsafe.Add(ref tile, rows[1]), s1 = ref Unsafe.Add(ref s, sources[1]);
        ref T t2 = ref Unsafe.Add(ref tile, rows[2]), s2 = ref Unsafe.Add(ref s, sources[2]);
        ref T t3 = ref Unsafe.Add(ref tile, rows[3]), s3 = ref Unsafe.Add(ref s, sources[3]);
        ref T t4 = ref Unsafe.Add(ref tile, rows[4]), s4 = ref Unsafe.Add(ref s, sources[4]);
        ref T t5 = ref Unsafe.Add(ref tile, rows[5]), s5 = ref Unsafe.Add(ref s, sources[5]);
        ref T t6 = ref Unsafe.Add(ref tile, rows[6]), s6 = ref Unsafe.Add(ref s, sources[6]);
        ref T t7 = ref Unsafe.Add(ref tile, rows[7]), s7 = ref Unsafe.Add(ref s, sources[7]);
        ref T t8 = ref Unsafe.Add(ref tile, rows[8]), s8 = ref Unsafe.Add(ref s, sources[8]);
        TV a0 = Start(ref t0, c0, true), b0 = Start(ref t0, c1, true);
        TV a1 = Start(ref t1, c0, n > 1), b1 = Start(ref t1, c1, n > 1);
        TV a2 = Start(ref t2, c0, n > 2), b2 = Start(ref t2, c1, n > 2);
        TV a3 = Start(ref t3, c0, n > 3), b3 = Start(ref t3, c1, n > 3);
        TV a4 = Start(ref t4, c0, n > 4), b4 = Start(ref t4, c1, n > 4);
        TV a5 = Start(ref t5, c0, n > 5), b5 = Start(ref t5, c1, n > 5);
        TV a6 = Start(ref t6, c0, n > 6), b6 = Start(ref t6, c1, n > 6);
        TV a7 = Start(ref t7, c0, n > 7), b7 = Start(ref t7, c1, n > 7);
        TV a8 = Start(ref t8, c0, n > 8), b8 = Start(ref t8, c1, n > 8);
        ref T uu = ref u;
        nint at = 0;
        for (int o = 0; o < outer; o++, at += sJump)
        {
            for (int i = 0; i < inner; i++, at += sStep)
            {
                TV v0 = TOps.Load(ref Unsafe.Add(ref uu, u0)), v1 = TOps.Load(ref Unsafe.Add(ref uu, u1));
                TV x = TOps.Broadcast(Unsafe.Add(ref s0, at));
                a0 = TOps.MultiplyAdd(x, v0, a0); b0 = TOps.MultiplyAdd(x, v1, b0);
                if (n > 1)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s1, at));
                    a1 = TOps.MultiplyAdd(x, v0, a1); b1 = TOps.MultiplyAdd(x, v1, b1);
                }

                if (n > 2)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s2, at));
                    a2 = TOps.MultiplyAdd(x, v0, a2); b2 = TOps.MultiplyAdd(x, v1, b2);
                }

                if (n > 3)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s3, at));
                    a3 = TOps.MultiplyAdd(x, v0, a3); b3 = TOps.MultiplyAdd(x, v1, b3);
                }

                if (n > 4)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s4, at));
                    a4 = TOps.MultiplyAdd(x, v0, a4); b4 = TOps.MultiplyAdd(x, v1, b4);
                }

                if (n > 5)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s5, at));
                    a5 = TOps.MultiplyAdd(x, v0, a5); b5 = TOps.MultiplyAdd(x, v1, b5);
                }

                if (n > 6)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s6, at));
                    a6 = TOps.MultiplyAdd(x, v0, a6); b6 = TOps.MultiplyAdd(x, v1, b6);
                }

                if (n > 7)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s7, at));
                    a7 = TOps.MultiplyAdd(x, v0, a7); b7 = TOps.MultiplyAdd(x, v1, b7);
                }

                if (n > 8)
                {
                    x = TOps.Broadcast(Unsafe.Add(ref s8, at));
                    a8 = TOps.MultiplyAdd(x, v0, a8); b8 = TOps.MultiplyAdd(x, v1, b8);
                }

                uu = ref Unsafe.Add(ref uu, uStep);
            }
        }

        Store(a0, b0, ref t0, c0, c1);
        if (n > 1) Store(a1, b1, ref t1, c0, c1);
        if (n > 2) Store(a2, b2, ref t2, c0, c1);
        if (n > 3) Store(a3, b3, ref t3, c0, c1);
        if (n > 4) Store(a4, b4, ref t4, c0, c1);
        if (n > 5) Store(a5, b5, ref t5, c0, c1);
        if (n > 6) Store(a6, b6, ref t6, c0, c1);
        if (n > 7) Store(a7, b7, ref t7, c0, c1);
        if (n > 8) Store(a8, b8, ref t8, c0, c1);
    }

    /// <summary>
    /// The accumulator at <paramref name="column"/> of a tile row: the chain so far, carried from the previous range
    /// (zero for a row the block does not compute: <paramref name="used"/> is a constant for the JIT).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Start(ref T row, nint column, bool used) => used ? TOps.Load(ref Unsafe.Add(ref row, column)) : TOps.Zero;

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

/// <summary>
/// The order in which <see cref="DirectConvBackward{TOps, TV, T}.InputGradient"/> visits the input pixels: blocks of
/// <see cref="Rows"/> pixels whose windows lie inside the output for the same taps, so that a block computes a tap's
/// chains only where they are added. Pixels fall into classes by the taps (kh, kw) valid for them, which depend on the
/// row i and the column j only near the border (3×3, padding 1, 14×14: 144 interior pixels with all 9 taps, 4 edges
/// of 12 with 6, 4 corners with 4). The batch is taken 6 images at a time, so a class's pixels over a group come in
/// whole blocks; what is left over (the last group's) fills blocks in class order. Each pixel's sum is the same chain
/// in any block: the order changes nothing but the work.
/// </summary>
internal static class InputSchedule
{
    /// <summary>Pixels in a block.</summary>
    public const int Rows = 6;

    /// <summary>Entries <see cref="Build"/> writes for <paramref name="g"/>: Rows per block.</summary>
    public static int Length(in ConvGeometry g)
    {
        int hw = g.H * g.W, groups = g.N / Rows, left = g.N - groups * Rows;
        return Rows * (groups * hw + (left * hw + Rows - 1) / Rows);
    }

    /// <summary>
    /// Writes the blocks for <paramref name="g"/> into <paramref name="schedule"/> (at least <see cref="Length"/>
    /// entries): Rows pixel indices n·H·W + i·W + j a block, a block's missing pixels (at its end) −1. Returns the block count.
    /// </summary>
    public static int Build(in ConvGeometry g, int[] schedule)
    {
        int[] rowClass = Classes(g.H, g.KH, g.OH, g.Padding), columnClass = Classes(g.W, g.KW, g.OW, g.Padding);
        int rowClasses = rowClass.Max() + 1, columnClasses = columnClass.Max() + 1, hw = g.H * g.W, at = 0;
        var left = new List<int>();
        for (int n0 = 0; n0 < g.N; n0 += Rows)
        {
            int n1 = Math.Min(g.N, n0 + Rows);
            left.Clear();
            for (int rc = 0; rc < rowClasses; rc++)
            {
                for (int cc = 0; cc < columnClasses; cc++)
                {
                    int start = at;
                    for (int n = n0; n < n1; n++)
                    {
                        for (int i = 0; i < g.H; i++)
                        {
                            if (rowClass[i] != rc) continue;
                            for (int j = 0; j < g.W; j++)
                            {
                                if (columnClass[j] == cc) schedule[at++] = n * hw + i * g.W + j;
                            }
                        }
                    }

                    // The class's last partial block goes to the group's leftovers.
                    int whole = start + (at - start) / Rows * Rows;
                    for (int q = whole; q < at; q++) left.Add(schedule[q]);
                    at = whole;
                }
            }

            foreach (int pixel in left) schedule[at++] = pixel;
            while (at % Rows != 0) schedule[at++] = -1;
        }

        return at / Rows;
    }

    /// <summary>
    /// Class of each of <paramref name="size"/> positions along one axis: positions with the same range of valid kernel
    /// offsets (k with 0 ≤ position + padding − k &lt; output) share one; classes numbered in order of first appearance.
    /// </summary>
    private static int[] Classes(int size, int kernel, int output, int padding)
    {
        var classes = new int[size];
        var seen = new List<(int, int)>();
        for (int i = 0; i < size; i++)
        {
            var range = (Math.Max(0, i + padding - output + 1), Math.Min(kernel - 1, i + padding));
            int index = seen.IndexOf(range);
            if (index < 0)
            {
                index = seen.Count;
                seen.Add(range);
            }

            classes[i] = index;
        }

        return classes;
    }
}
