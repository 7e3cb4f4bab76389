using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// Reusable buffers of <see cref="SparseConvBackward{TOps, TV, T}"/> for one convolution (allocated when the shape
/// grows, then reused: a training step allocates nothing).
/// </summary>
internal sealed class SparseConvScratch<T>
{
    public T[] KernelT = [];    // Kᵀ: row oc = the kernel's column oc, each kernel row's run padded with zeros to whole vectors
    public T[] Values = [];     // per output row m: its nonzero ∂y values, in channel order
    public int[] Channels = []; // … and their channels
    public int[] Counts = [];   // per row m: how many nonzeros
    public int[] Reach = [];    // per vector of an ∂x image row: the first pixel whose run reaches it, and how many do
    public T[] Ring = [];       // ∂P of the last KH output rows, each pixel's runs followed by zeros
    public (int Line, int Pixel, int Run, int Rows) RingLayout; // line length, pixel stride, run stride and kernel rows of the ring
    public T[] Input = [];      // x, with room after it (whole-vector loads past a run's end)
    public T[] KernelGradientT = []; // ∂Kᵀ of this step, laid out as Kᵀ
    public int[] RowPatches = [];    // per row m: where its patch starts in x
    public T[] Tile = [];            // a transposed block of ∂y: per channel, a vector of rows
    public int[] ChannelPatches = []; // per channel: where the patch of each of its nonzero rows starts in x, rows in order
    public T[] ChannelValues = [];    // … and the ∂y values
    public int[] ChannelCounts = [];  // per channel: how many
}

/// <summary>
/// A convolution's weight and input gradients from the nonzeros of ∂y (M, OC) only — below a 2x2 max pool and a ReLU
/// three of every four are exactly 0 — without the patch matrix P or the whole of ∂P (M, KH·KW·C).
/// <code>
/// ∂K[k, oc] += Σ_m P[m, k]·∂y[m, oc]   over the rows m in order where ∂y[m, oc] ≠ 0 (P[m, k]: a pixel of x)
/// ∂P[m, k]   = Σ_oc ∂y[m, oc]·K[k, oc] over the channels where ∂y[m, oc] ≠ 0, in order
/// ∂x[pixel]  = Σ_m ∂P[m, tap of pixel] over the rows m in order (col2im)
/// </code>
/// Each sum is the GEMM path's chain of fused multiply-adds (from zero, in the GEMM's order; ∂K's then added to the old
/// ∂K) with its exact-zero terms left out, and each ∂x element adds the same values in the same order as col2im: the
/// results are the im2col + GEMM path's bit for bit when x and K are finite (the GEMM path turns ∞·0 into NaN where a
/// skipped term would have been; this path leaves it out), with one exception in a zero's sign: a product that underflows
/// to −0 can leave a ∂Kᵀ sum of −0 where the GEMM's skipped +0 terms make it +0, and an old ∂K of −0 keeps that sign
/// (added to +0 both give +0; gradients start at +0 and never become −0 by adding). ∂x is unaffected: col2im's sums
/// start at +0. Call <see cref="Gather"/> first, then either or both gradients.
/// At 512 bits (AVX-512) the transposes of K and ∂K are whole-vector blocks and the nonzeros are gathered by
/// compression, with no branch on ∂y's values (<see cref="Avx512Blocks"/>).
/// </summary>
internal static class SparseConvBackward<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Room after a list of nonzeros for whole-vector stores of up to 16 lanes.</summary>
    private const int Room = 16;

    /// <summary>True for stride 1, no padding and at most 255 output channels.</summary>
    public static bool Supports(in ConvGeometry g, int outChannels) => g.Padding == 0 && g.Stride == 1 && outChannels <= 255;

    /// <summary>
    /// Whether these values get the GEMM path's bits: x finite for ∂K (null: ∂K not asked for), and K and ∂y finite for
    /// ∂x (<paramref name="inputGradient"/>). Skipped zero terms are where the GEMM turns ∞·0 into NaN, and the ∂x blocks
    /// carry a pixel's ∂P in whole vectors whose lanes past the kernel's run multiply ∂y by zeros. Reads all of x, K and
    /// ∂y: ask after <see cref="Supports"/>.
    /// </summary>
    public static bool Exact(T[]? x, T[] kernel, T[] dy, bool inputGradient) =>
        (x is null || VectorOps.AllFinite<T>(x)) && (!inputGradient || (VectorOps.AllFinite<T>(kernel) && VectorOps.AllFinite<T>(dy)));

    /// <summary>The AVX-512 blocks run: 512-bit vectors of float or double.</summary>
    private static bool Wide => TOps.Count * Unsafe.SizeOf<T>() == 64 && Avx512Blocks.Supports<T>();

    /// <summary>
    /// Keeps the nonzero entries of each row of ∂y (M, OC), channels in order, for the gradients below.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gather(in ConvGeometry g, int oc, T[] dy, SparseConvScratch<T> s)
    {
        int m = g.PatchRows;
        Scratch.Ensure(ref s.Values, m * oc + Room);
        Scratch.Ensure(ref s.Channels, m * oc + Room);
        Scratch.Ensure(ref s.Counts, m);
        ref T y = ref dy[0];
        ref T values = ref s.Values[0];
        ref int channels = ref s.Channels[0];
        int[] counts = s.Counts;
        bool wide = Wide;
        for (int r = 0; r < m; r++)
        {
            int at = r * oc;
            counts[r] = wide
                ? Avx512Blocks.Compress(ref Unsafe.Add(ref y, at), oc, dy.Length - at, ref Unsafe.Add(ref values, at), ref Unsafe.Add(ref channels, at), 0)
                : GatherRow(ref Unsafe.Add(ref y, at), oc, ref Unsafe.Add(ref values, at), ref Unsafe.Add(ref channels, at));
        }
    }

    /// <summary>The nonzeros of one row of ∂y and their channels, in order; returns how many.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int GatherRow(ref T y, int oc, ref T values, ref int channels)
    {
        int count = 0, w = Vector128<T>.Count;
        for (int c0 = 0; c0 < oc; c0 += 64)
        {
            // Bits of the nonzero channels c0 … c0 + 63 (branch-free: one bit per lane), then one step per set bit.
            int end = Math.Min(oc, c0 + 64), c = c0;
            ulong bits = 0;
            for (; c + w <= end; c += w)
            {
                var v = Vector128.LoadUnsafe(ref y, (nuint)c);
                bits |= (ulong)(~Vector128.Equals(v, Vector128<T>.Zero)).ExtractMostSignificantBits() << (c - c0);
            }

            for (; c < end; c++) bits |= (Unsafe.Add(ref y, c) != T.Zero ? 1UL : 0UL) << (c - c0);
            while (bits != 0)
            {
                int channel = c0 + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                Unsafe.Add(ref values, count) = Unsafe.Add(ref y, channel);
                Unsafe.Add(ref channels, count) = channel;
                count++;
            }
        }

        return count;
    }

    /// <summary>
    /// ∂x = col2im(∂P) in two passes per output row. First ∂P of the row's pixels, each kernel row's run of KW·C values
    /// as whole vectors (Kᵀ's runs are padded with zeros to whole vectors, so the lanes past a run are +0), summed in
    /// register blocks over the pixel's terms (<see cref="Sweep"/>; 2 kernel rows × 4 vectors, 3 × 3, 5 × 2 — the
    /// tutorial's 30-tap runs at 512-bit float —, 5 × 1) and stored into a ring of KH output rows, each pixel's runs
    /// followed by a vector of zeros. Then each ∂x image row that no later output row reaches is summed in registers,
    /// up to 5 vectors at a time (<see cref="SumColumns"/>): each vector of the row, from +0, adds the ring's vector at
    /// its columns of every pixel whose run reaches it, in col2im's order (output rows, then pixels), and is stored
    /// once into ∂x. Lanes outside a pixel's run read its zeros: +0 added to a sum that starts at +0 and so never holds
    /// −0 changes no bit, and neither do the +0 runs of pixels whose ∂y row is all zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void InputGradient(in ConvGeometry g, int oc, T[] kernel, T[] dx, SparseConvScratch<T> s)
    {
        int w = TOps.Count, run = g.KW * g.C, vectors = (run + w - 1) / w, rs = vectors * w, cs = g.KH * rs;
        int ps = rs + w, line = w + g.OW * ps, c1 = g.C, kh1 = g.KH, oh = g.OH, ow = g.OW;
        Scratch.Ensure(ref s.KernelT, oc * cs);
        Transpose(ref kernel[0], oc, run, kh1, rs, ref s.KernelT[0], false);

        // The ring: line (y mod KH)·KH + kh holds kernel row kh of output row y's pixels, pixel xo's runs at w + xo·ps.
        // Only the runs are written: the zeros around them stay (cleared when the layout changes).
        int ringLength = kh1 * kh1 * line;
        if (s.Ring.Length < ringLength || s.RingLayout != (line, ps, rs, kh1))
        {
            Scratch.Ensure(ref s.Ring, ringLength);
            Array.Clear(s.Ring);
            s.RingLayout = (line, ps, rs, kh1);
        }

        // Per vector j of an image row: the first pixel xo whose run [xo·C, xo·C + run) meets its columns [j·w, j·w + w), and how many do.
        int rowLength = g.W * c1, grid = (rowLength + w - 1) / w, length = g.N * g.H * rowLength;
        Scratch.Ensure(ref s.Reach, 2 * grid);
        int[] reach = s.Reach;
        for (int j = 0; j < grid; j++)
        {
            int low = Math.Max(0, (j * w - run + c1) / c1), high = Math.Min(ow - 1, (j * w + w - 1) / c1);
            reach[2 * j] = low;
            reach[2 * j + 1] = Math.Max(0, high - low + 1);
        }

        ref T ring = ref s.Ring[w];
        ref T kt0 = ref s.KernelT[0];
        ref T values = ref s.Values[0];
        ref int channels = ref s.Channels[0];
        ref int counts = ref s.Counts[0];
        ref T dx0 = ref dx[0];
        nint shift = ps - c1; // from one pixel's vector at a column of the ring to the next pixel's
        for (int r = 0, n = 0; n < g.N; n++)
        {
            for (int y = 0; y < oh; y++, r += ow)
            {
                ref T lines = ref Unsafe.Add(ref ring, y % kh1 * kh1 * line);
                for (int j = 0; j < vectors;)
                {
                    int columns = Math.Min(4, vectors - j), blockRows = RowsFor(columns);
                    for (int kh = 0; kh < kh1; kh += blockRows)
                    {
                        ref T kr = ref Unsafe.Add(ref kt0, kh * rs + j * w);
                        ref T destination = ref Unsafe.Add(ref lines, kh * line + j * w);
                        int rows = Math.Min(blockRows, kh1 - kh);
                        switch (columns)
                        {
                            case 4: Sweep<Four>(ref kr, rs, cs, ref Unsafe.Add(ref channels, r * oc), ref Unsafe.Add(ref values, r * oc), oc, ref Unsafe.Add(ref counts, r), ow, rows, ref destination, ps, line); break;
                            case 3: Sweep<Three>(ref kr, rs, cs, ref Unsafe.Add(ref channels, r * oc), ref Unsafe.Add(ref values, r * oc), oc, ref Unsafe.Add(ref counts, r), ow, rows, ref destination, ps, line); break;
                            case 2: Sweep<Two>(ref kr, rs, cs, ref Unsafe.Add(ref channels, r * oc), ref Unsafe.Add(ref values, r * oc), oc, ref Unsafe.Add(ref counts, r), ow, rows, ref destination, ps, line); break;
                            default: Sweep<One>(ref kr, rs, cs, ref Unsafe.Add(ref channels, r * oc), ref Unsafe.Add(ref values, r * oc), oc, ref Unsafe.Add(ref counts, r), ow, rows, ref destination, ps, line); break;
                        }
                    }

                    j += columns;
                }

                // Image rows y (and, after the last output row, the rows below it) get no more terms: sum them.
                for (int yi = y, last = y == oh - 1 ? g.H - 1 : y; yi <= last; yi++)
                {
                    int top = Math.Max(0, yi - kh1 + 1), bottom = Math.Min(oh - 1, yi), at = (n * g.H + yi) * rowLength, slotTop = top % kh1;
                    for (int j = 0; j < grid; j += 5)
                    {
                        ref T source = ref Unsafe.Add(ref ring, j * w);
                        ref int pixels = ref reach[2 * j];
                        ref T destination = ref Unsafe.Add(ref dx0, at + j * w);
                        int room = length - at - j * w;
                        switch (Math.Min(5, grid - j))
                        {
                            case 5: SumColumns<Five>(ref source, kh1, line, top, bottom, slotTop, yi, shift, ref pixels, ref destination, room); break;
                            case 4: SumColumns<Four>(ref source, kh1, line, top, bottom, slotTop, yi, shift, ref pixels, ref destination, room); break;
                            case 3: SumColumns<Three>(ref source, kh1, line, top, bottom, slotTop, yi, shift, ref pixels, ref destination, room); break;
                            case 2: SumColumns<Two>(ref source, kh1, line, top, bottom, slotTop, yi, shift, ref pixels, ref destination, room); break;
                            default: SumColumns<One>(ref source, kh1, line, top, bottom, slotTop, yi, shift, ref pixels, ref destination, room); break;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// <typeparamref name="TColumns"/> vectors of one ∂x image row (<paramref name="yi"/>), each from +0 plus, for the
    /// output rows <paramref name="top"/> … <paramref name="bottom"/> in order (ring slot <paramref name="slotTop"/> for
    /// the first, then the next ones round the ring), its vector of the pixels in <paramref name="reach"/> in order,
    /// <paramref name="shift"/> apart; stored at <paramref name="destination"/> (<paramref name="room"/> elements there).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumColumns<TColumns>(ref T ring, int kh1, nint line, int top, int bottom, int slotTop, int yi, nint shift, ref int reach, ref T destination, int room)
        where TColumns : struct, IFixedCount
    {
        int v = TColumns.Count; // a constant for the JIT: the unused sums and branches disappear
        nint w = TOps.Count;
        TV s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero, s4 = TOps.Zero;
        for (int yo = top, slot = slotTop; yo <= bottom; yo++)
        {
            ref T source = ref Unsafe.Add(ref ring, (slot * kh1 + yi - yo) * line);
            s0 = Sum(s0, ref source, reach, Unsafe.Add(ref reach, 1), shift);
            if (v > 1) s1 = Sum(s1, ref Unsafe.Add(ref source, w), Unsafe.Add(ref reach, 2), Unsafe.Add(ref reach, 3), shift);
            if (v > 2) s2 = Sum(s2, ref Unsafe.Add(ref source, 2 * w), Unsafe.Add(ref reach, 4), Unsafe.Add(ref reach, 5), shift);
            if (v > 3) s3 = Sum(s3, ref Unsafe.Add(ref source, 3 * w), Unsafe.Add(ref reach, 6), Unsafe.Add(ref reach, 7), shift);
            if (v > 4) s4 = Sum(s4, ref Unsafe.Add(ref source, 4 * w), Unsafe.Add(ref reach, 8), Unsafe.Add(ref reach, 9), shift);
            slot = slot + 1 == kh1 ? 0 : slot + 1;
        }

        if (room >= v * w)
        {
            StoreColumns(ref destination, v, s0, s1, s2, s3);
            if (v > 4) TOps.Store(s4, ref Unsafe.Add(ref destination, 4 * w));
            return;
        }

        // The end of ∂x: whole vectors while they fit, then the lanes that do.
        StorePart(s0, ref destination, room);
        if (v > 1) StorePart(s1, ref Unsafe.Add(ref destination, w), room - (int)w);
        if (v > 2) StorePart(s2, ref Unsafe.Add(ref destination, 2 * w), room - 2 * (int)w);
        if (v > 3) StorePart(s3, ref Unsafe.Add(ref destination, 3 * w), room - 3 * (int)w);
        if (v > 4) StorePart(s4, ref Unsafe.Add(ref destination, 4 * w), room - 4 * (int)w);
    }

    /// <summary><paramref name="sum"/> plus the vectors at <paramref name="source"/> + (<paramref name="first"/> + t)·<paramref name="shift"/>, t = 0 … <paramref name="count"/> − 1, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Sum(TV sum, ref T source, int first, int count, nint shift)
    {
        ref T p = ref Unsafe.Add(ref source, first * shift);
        int t = 0;
        for (; t + 1 < count; t += 2, p = ref Unsafe.Add(ref p, 2 * shift))
        {
            sum = TOps.Add(sum, TOps.Load(ref p));
            sum = TOps.Add(sum, TOps.Load(ref Unsafe.Add(ref p, shift)));
        }

        if (t < count) sum = TOps.Add(sum, TOps.Load(ref p));
        return sum;
    }

    /// <summary>The lanes of <paramref name="value"/> below <paramref name="count"/> (all when it is a vector or more) at <paramref name="destination"/>.</summary>
    private static void StorePart(TV value, ref T destination, int count)
    {
        if (count >= TOps.Count)
        {
            TOps.Store(value, ref destination);
            return;
        }

        Span<T> lanes = stackalloc T[TOps.Count];
        TOps.Store(value, ref lanes[0]);
        for (int i = 0; i < count; i++) Unsafe.Add(ref destination, i) = lanes[i];
    }

    /// <summary>
    /// ∂K (KH·KW·C, OC) += Pᵀ·∂y over the nonzeros of ∂y, x (N, H, W, C) being the forward's input. The nonzeros are
    /// listed by channel (rows in order: at 512 bits from transposed blocks of ∂y, compressed); for each channel,
    /// blocks of kernel rows × up to four vectors of their runs of KW·C input pixels (exactly the vectors a run needs:
    /// 2 rows × 4, 3 × 3, 5 × 2, 5 × 1) are summed in registers over that channel's nonzeros (<see cref="Sweep"/>),
    /// stored to ∂Kᵀ, and ∂Kᵀ is added to ∂K.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightGradient(in ConvGeometry g, int oc, T[] x, T[] dy, T[] dk, SparseConvScratch<T> s)
    {
        int w = TOps.Count, run = g.KW * g.C, vectors = (run + w - 1) / w, runStride = vectors * w, rowStride = g.KH * runStride;
        int rows = g.PatchRows, rowLength = g.W * g.C, length = g.N * g.H * g.W * g.C;
        // x with room after it: a block's loads run up to four vectors along a run and one image row below the kernel.
        Scratch.Ensure(ref s.Input, length + rowLength + 4 * w);
        x.AsSpan(0, length).CopyTo(s.Input);
        Scratch.Ensure(ref s.KernelGradientT, oc * rowStride);
        int listStride = ListChannels(g, oc, dy, s);

        ref T accT = ref s.KernelGradientT[0];
        for (int j = 0; j < vectors;)
        {
            // Columns of up to 4 vectors, exactly the run's: a block of kernel rows × those columns (at most 10 sums).
            int columns = Math.Min(4, vectors - j), blockRows = RowsFor(columns);
            for (int kh = 0; kh < g.KH; kh += blockRows)
            {
                ref T x0 = ref s.Input[kh * rowLength + j * w];
                ref T destination = ref Unsafe.Add(ref accT, kh * runStride + j * w);
                int blockCount = Math.Min(blockRows, g.KH - kh);
                switch (columns)
                {
                    case 4: Sweep<Four>(ref x0, rowLength, 1, ref s.ChannelPatches[0], ref s.ChannelValues[0], listStride, ref s.ChannelCounts[0], oc, blockCount, ref destination, rowStride, runStride); break;
                    case 3: Sweep<Three>(ref x0, rowLength, 1, ref s.ChannelPatches[0], ref s.ChannelValues[0], listStride, ref s.ChannelCounts[0], oc, blockCount, ref destination, rowStride, runStride); break;
                    case 2: Sweep<Two>(ref x0, rowLength, 1, ref s.ChannelPatches[0], ref s.ChannelValues[0], listStride, ref s.ChannelCounts[0], oc, blockCount, ref destination, rowStride, runStride); break;
                    default: Sweep<One>(ref x0, rowLength, 1, ref s.ChannelPatches[0], ref s.ChannelValues[0], listStride, ref s.ChannelCounts[0], oc, blockCount, ref destination, rowStride, runStride); break;
                }
            }

            j += columns;
        }

        // ∂K[kh·run + j, c] += ∂Kᵀ[c, kh·runStride + j]: one rounding, as the GEMM's beta = 1.
        Transpose(ref dk[0], oc, run, g.KH, runStride, ref accT, true);
    }

    /// <summary>
    /// Each channel's nonzeros of ∂y in row order — where the row's patch starts in x, and the value — at
    /// channel·(the stride returned) of the scratch's lists, with their counts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int ListChannels(in ConvGeometry g, int oc, T[] dy, SparseConvScratch<T> s)
    {
        int rows = g.PatchRows, lanes = Room, stride = rows + lanes;
        Scratch.Ensure(ref s.ChannelPatches, oc * stride);
        Scratch.Ensure(ref s.ChannelValues, oc * stride);
        Scratch.Ensure(ref s.ChannelCounts, oc);
        Scratch.Ensure(ref s.RowPatches, rows + lanes);
        int[] channelCounts = s.ChannelCounts, patches = s.ChannelPatches, rowPatches = s.RowPatches;
        T[] channelValues = s.ChannelValues;
        Array.Clear(channelCounts, 0, oc);
        int rowLength = g.W * g.C, oh = g.OH, ow = g.OW, c1 = g.C;
        for (int r = 0, n = 0; n < g.N; n++)
        {
            for (int y = 0; y < oh; y++)
            {
                for (int xo = 0, patch = (n * g.H + y) * rowLength; xo < ow; xo++, r++, patch += c1) rowPatches[r] = patch;
            }
        }

        int wide = Wide ? TOps.Count : 0, full = wide == 0 ? 0 : oc / wide * wide;
        if (wide > 0 && full > 0)
        {
            // Blocks of a vector of rows × a vector of channels transposed, then each channel's row vector compressed.
            Scratch.Ensure(ref s.Tile, wide * wide);
            ref T tile = ref s.Tile[0];
            for (int r0 = 0; r0 < rows; r0 += wide)
            {
                int count = Math.Min(wide, rows - r0);
                for (int c0 = 0; c0 < full; c0 += wide)
                {
                    Avx512Blocks.Transpose(ref dy[r0 * oc + c0], oc, count, ref tile, wide, wide, false);
                    for (int i = 0, c = c0; i < wide; i++, c++)
                    {
                        int at = c * stride + channelCounts[c];
                        channelCounts[c] += Avx512Blocks.CompressLanes(ref Unsafe.Add(ref tile, i * wide), ref rowPatches[r0], ref channelValues[at], ref patches[at]);
                    }
                }
            }
        }

        if (full == 0)
        {
            // Below 512 bits: the gathered rows' nonzeros, in row order, to their channels' lists.
            ref T values = ref s.Values[0];
            ref int channels = ref s.Channels[0];
            int[] counts = s.Counts;
            for (int r = 0; r < rows; r++)
            {
                for (int t = 0, count = counts[r]; t < count; t++)
                {
                    int c = Unsafe.Add(ref channels, r * oc + t), at = c * stride + channelCounts[c]++;
                    patches[at] = rowPatches[r];
                    channelValues[at] = Unsafe.Add(ref values, r * oc + t);
                }
            }
        }
        else if (full < oc)
        {
            // The channels past the last whole vector, row by row.
            for (int r = 0; r < rows; r++)
            {
                for (int c = full; c < oc; c++)
                {
                    T value = dy[r * oc + c];
                    if (value == T.Zero) continue;
                    int at = c * stride + channelCounts[c]++;
                    patches[at] = rowPatches[r];
                    channelValues[at] = value;
                }
            }
        }

        return stride;
    }

    /// <summary>
    /// Between K (KH·run, OC) and Kᵀ (OC rows of KH runs, each padded with zeros to <paramref name="runStride"/>):
    /// Kᵀ from K, or with <paramref name="add"/> K += Kᵀ (one rounding each; nothing of the padding reaches K).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose(ref T k, int oc, int run, int kh1, int runStride, ref T kt, bool add)
    {
        int w = TOps.Count, full = Wide ? oc / w * w : 0, rowStride = kh1 * runStride;
        for (int kh = 0; kh < kh1; kh++)
        {
            ref T kRow = ref Unsafe.Add(ref k, kh * run * oc);
            ref T ktRow = ref Unsafe.Add(ref kt, kh * runStride);
            for (int c0 = 0; c0 < full; c0 += w)
            {
                for (int t0 = 0; t0 < runStride; t0 += w)
                {
                    int taps = Math.Min(w, run - t0);
                    ref T block = ref Unsafe.Add(ref kRow, t0 * oc + c0);
                    ref T blockT = ref Unsafe.Add(ref ktRow, c0 * rowStride + t0);
                    if (add) Avx512Blocks.Transpose(ref blockT, rowStride, w, ref block, oc, taps, true);
                    else Avx512Blocks.Transpose(ref block, oc, taps, ref blockT, rowStride, w, false);
                }
            }

            for (int c = full; c < oc; c++)
            {
                ref T column = ref Unsafe.Add(ref kRow, c);
                ref T row = ref Unsafe.Add(ref ktRow, c * rowStride);
                if (add)
                {
                    for (int i = 0; i < run; i++) Unsafe.Add(ref column, i * oc) += Unsafe.Add(ref row, i);
                }
                else
                {
                    for (int i = 0; i < run; i++) Unsafe.Add(ref row, i) = Unsafe.Add(ref column, i * oc);
                    for (int i = run; i < runStride; i++) Unsafe.Add(ref row, i) = T.Zero;
                }
            }
        }
    }

    /// <summary>
    /// <see cref="Block"/> for each of <paramref name="lists"/> lists of terms: list i's offsets and values at
    /// i·<paramref name="listStride"/>, its count at <paramref name="counts"/> + i, its sums at <paramref name="destination"/>
    /// + i·<paramref name="destinationList"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Sweep<TColumns>(ref T x0, nint rowLength, nint scale, ref int offsets, ref T values, nint listStride, ref int counts, int lists, int rows, ref T destination, nint destinationList, nint rowStride)
        where TColumns : struct, IFixedCount
    {
        for (int i = 0; i < lists; i++)
        {
            Block<TColumns>(ref x0, rowLength, ref offsets, scale, ref values, Unsafe.Add(ref counts, i), rows, ref destination, rowStride);
            offsets = ref Unsafe.Add(ref offsets, listStride);
            values = ref Unsafe.Add(ref values, listStride);
            destination = ref Unsafe.Add(ref destination, destinationList);
        }
    }

    /// <summary>
    /// Kernel rows in a block of <paramref name="columns"/> vectors: at most 10 sums, so 16 registers hold them with a
    /// broadcast and a loaded vector, and at least 8 chains are in flight where the columns allow (5 × 1 has 5).
    /// </summary>
    private static int RowsFor(int columns) => columns switch { >= 4 => 2, 3 => 3, _ => 5 };

    /// <summary>
    /// Σ over <paramref name="count"/> terms, in order, of value × <typeparamref name="TColumns"/> vectors at
    /// <paramref name="x0"/> + offset·<paramref name="scale"/> (row 0) and the next rows, <paramref name="rowLength"/>
    /// apart (rows 1 … <paramref name="rows"/> − 1, at most <see cref="RowsFor"/> of the columns), from zero; stored at
    /// <paramref name="destination"/>, row r at r·<paramref name="rowStride"/>. The terms: a channel's nonzero rows
    /// (offset: the patch in x) for ∂K, a pixel's nonzero channels (offset: the channel's row of Kᵀ) for ∂P.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block<TColumns>(ref T x0, nint rowLength, ref int offsets, nint scale, ref T values, int count, int rows, ref T destination, nint rowStride)
        where TColumns : struct, IFixedCount
    {
        int v = TColumns.Count; // a constant for the JIT: the unused sums and branches disappear
        nint w = TOps.Count, row1 = rowLength, row2 = 2 * row1, row3 = 3 * row1, row4 = 4 * row1;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        TV b0 = TOps.Zero, b1 = TOps.Zero, b2 = TOps.Zero, b3 = TOps.Zero;
        TV c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero;
        TV d0 = TOps.Zero, d1 = TOps.Zero, e0 = TOps.Zero, e1 = TOps.Zero;
        for (int i = 0; i < count; i++)
        {
            ref T p = ref Unsafe.Add(ref x0, Unsafe.Add(ref offsets, i) * scale);
            TV s = TOps.Broadcast(Unsafe.Add(ref values, i));
            a0 = TOps.MultiplyAdd(TOps.Load(ref p), s, a0);
            if (v > 1) a1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, w)), s, a1);
            if (v > 2) a2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 2 * w)), s, a2);
            if (v > 3) a3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 3 * w)), s, a3);
            if (rows > 1)
            {
                ref T q = ref Unsafe.Add(ref p, row1);
                b0 = TOps.MultiplyAdd(TOps.Load(ref q), s, b0);
                if (v > 1) b1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, b1);
                if (v > 2) b2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 2 * w)), s, b2);
                if (v > 3) b3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 3 * w)), s, b3);
            }

            if (v < 4 && rows > 2)
            {
                ref T q = ref Unsafe.Add(ref p, row2);
                c0 = TOps.MultiplyAdd(TOps.Load(ref q), s, c0);
                if (v > 1) c1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, c1);
                if (v > 2) c2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 2 * w)), s, c2);
            }

            if (v < 3 && rows > 3)
            {
                ref T q = ref Unsafe.Add(ref p, row3);
                d0 = TOps.MultiplyAdd(TOps.Load(ref q), s, d0);
                if (v > 1) d1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, d1);
            }

            if (v < 3 && rows > 4)
            {
                ref T q = ref Unsafe.Add(ref p, row4);
                e0 = TOps.MultiplyAdd(TOps.Load(ref q), s, e0);
                if (v > 1) e1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, e1);
            }
        }

        StoreColumns(ref destination, v, a0, a1, a2, a3);
        if (rows > 1) StoreColumns(ref Unsafe.Add(ref destination, rowStride), v, b0, b1, b2, b3);
        if (v < 4 && rows > 2) StoreColumns(ref Unsafe.Add(ref destination, 2 * rowStride), v, c0, c1, c2, c2);
        if (v < 3 && rows > 3) StoreColumns(ref Unsafe.Add(ref destination, 3 * rowStride), v, d0, d1, d1, d1);
        if (v < 3 && rows > 4) StoreColumns(ref Unsafe.Add(ref destination, 4 * rowStride), v, e0, e1, e1, e1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreColumns(ref T destination, int columns, TV v0, TV v1, TV v2, TV v3)
    {
        int w = TOps.Count;
        TOps.Store(v0, ref destination);
        if (columns > 1) TOps.Store(v1, ref Unsafe.Add(ref destination, w));
        if (columns > 2) TOps.Store(v2, ref Unsafe.Add(ref destination, 2 * w));
        if (columns > 3) TOps.Store(v3, ref Unsafe.Add(ref destination, 3 * w));
    }
}


