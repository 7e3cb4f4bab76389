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
    public T[] KernelT = [];   // Kᵀ: row oc = the kernel's column oc, with zeros on both sides
    public T[] Values = [];    // per output row m: its nonzero ∂y values, in channel order
    public byte[] Channels = []; // … and their channels
    public int[] Counts = [];  // per row m: how many
    public T[] Masks = [];     // per grid position relative to a tap run: all-ones lanes inside the run
    public int MaskRun = -1;   // the run Masks was made for …
    public int MaskWidth;      // … and the vector width
    public T[] ImageGradient = []; // ∂x, with room after it (the grid's last vectors may pass the end)
    public T[] Input = [];     // x, with a vector of room after it (whole-vector loads past a run's end)
    public T[] KernelGradientT = []; // ∂Kᵀ of this step: row oc, kernel row kh at kh·(run rounded up to vectors)
    public int[] ChannelPatches = []; // per channel: where the patch of each of its nonzero rows starts in x, rows in order
    public T[] ChannelValues = [];    // … and the ∂y values
    public int[] ChannelCounts = [];  // per channel: how many
}

/// <summary>
/// A convolution's weight and input gradients from the nonzeros of ∂y (M, OC) only — below a 2x2 max pool and a ReLU
/// three of every four are exactly 0 — without the patch matrix P or ∂P (M, KH·KW·C).
/// <code>
/// ∂K[k, oc] += Σ_m P[m, k]·∂y[m, oc]   over the rows m in order where ∂y[m, oc] ≠ 0 (P[m, k]: a pixel of x)
/// ∂P[m, k]   = Σ_oc ∂y[m, oc]·K[k, oc] over the channels where ∂y[m, oc] ≠ 0, in order
/// ∂x[pixel]  = Σ_m ∂P[m, tap of pixel] over the rows m in order (col2im)
/// </code>
/// Each sum is the GEMM path's chain of fused multiply-adds (from zero, in the GEMM's order; ∂K's then added to the old
/// ∂K) with its exact-zero terms left out, and each ∂x element adds the same values in the same order as col2im: the
/// results are the im2col + GEMM path's bit for bit when x and K are finite (the GEMM path turns ∞·0 into NaN where a
/// skipped term would have been; this path leaves it out). Call <see cref="Gather"/> first, then either or both gradients.
/// </summary>
internal static class SparseConvBackward<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>True for stride 1, no padding and at most 255 output channels.</summary>
    public static bool Supports(in ConvGeometry g, int outChannels) => g.Padding == 0 && g.Stride == 1 && outChannels <= 255;

    /// <summary>Keeps the nonzero entries of each row of ∂y (M, OC), channels in order, for the gradients below.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gather(in ConvGeometry g, int oc, T[] dy, SparseConvScratch<T> s)
    {
        int m = g.PatchRows;
        Scratch.Ensure(ref s.Values, m * oc);
        Scratch.Ensure(ref s.Channels, m * oc);
        Scratch.Ensure(ref s.Counts, m);
        ref T y = ref dy[0];
        ref T values = ref s.Values[0];
        ref byte channels = ref s.Channels[0];
        int[] counts = s.Counts;
        int w = Vector128<T>.Count;
        for (int r = 0; r < m; r++)
        {
            int count = 0, at = r * oc;
            for (int c0 = 0; c0 < oc; c0 += 64)
            {
                // Bits of the nonzero channels c0 … c0 + 63 (branch-free: one bit per lane), then one step per set bit.
                int end = Math.Min(oc, c0 + 64), c = c0;
                ulong bits = 0;
                for (; c + w <= end; c += w)
                {
                    var v = Vector128.LoadUnsafe(ref y, (nuint)(at + c));
                    bits |= (ulong)(~Vector128.Equals(v, Vector128<T>.Zero)).ExtractMostSignificantBits() << (c - c0);
                }

                for (; c < end; c++) bits |= (Unsafe.Add(ref y, at + c) != T.Zero ? 1UL : 0UL) << (c - c0);
                while (bits != 0)
                {
                    int channel = c0 + BitOperations.TrailingZeroCount(bits);
                    bits &= bits - 1;
                    T value = Unsafe.Add(ref y, at + channel);
                    Unsafe.Add(ref values, at + count) = value;
                    Unsafe.Add(ref channels, at + count) = (byte)channel;
                    count++;
                }
            }

            counts[r] = count;
        }
    }

    /// <summary>
    /// ∂x = col2im(∂P) without storing ∂P: for each row m in order (rows of zeros skipped) and each kernel row, ∂P's run
    /// of KW·C values is computed straight onto a fixed grid of whole vectors of the ∂x image row it lands on (lanes
    /// outside the run masked to an exact +0) and added there: every load of ∂x then finds the previous store of that
    /// vector whole. Only the grid vectors the run reaches are computed, up to 5 at a time, for blocks of kernel rows
    /// sized to the vector count (<see cref="Chunk"/>): 2 rows × 4 or 5 vectors, 3 × 3, 5 × 2 (the tutorial's 30-tap
    /// runs at 512-bit float), 5 × 1. Vectors wholly outside the run would add only +0 to an image that starts at +0
    /// and so never holds −0: leaving them out changes no bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void InputGradient(in ConvGeometry g, int oc, T[] kernel, T[] dx, SparseConvScratch<T> s)
    {
        int w = TOps.Count, k = g.PatchColumns, run = g.KW * g.C, pad = 6 * w, stride = k + 2 * pad;
        Scratch.Ensure(ref s.KernelT, oc * stride);
        if (s.Masks.Length < (run + 6 * w) * w)
        {
            s.Masks = new T[(run + 6 * w) * w];
            s.MaskRun = -1;
        }

        Scratch.Ensure(ref s.ImageGradient, dx.Length + 6 * w);

        // Kᵀ: row c = the kernel's column c, with zeros on both sides (grid loads reach up to 6 vectors past a run).
        ref T kernel0 = ref kernel[0];
        ref T kt0 = ref s.KernelT[pad];
        for (int c = 0; c < oc; c++)
        {
            ref T row = ref Unsafe.Add(ref kt0, c * stride);
            ref T column = ref Unsafe.Add(ref kernel0, c);
            for (int i = 0; i < k; i++) Unsafe.Add(ref row, i) = Unsafe.Add(ref column, i * oc);
        }

        // masks[(i + W − 1)·W …]: all-ones lanes l with 0 ≤ i + l < run, i = a grid vector's start relative to the run.
        // They depend on the run and the width only: made when either changes.
        if (s.MaskRun != run || s.MaskWidth != w)
        {
            TV ones = TOps.GreaterThan(TOps.Broadcast(T.One), TOps.Zero);
            ref T m0 = ref s.Masks[0];
            for (int i = 1 - w; i < run + 5 * w; i++)
            {
                TV lanes = TOps.SelectLow(TOps.Zero, ones, Math.Max(0, -i));          // lanes before the run: off
                lanes = TOps.SelectLow(lanes, TOps.Zero, Math.Clamp(run - i, 0, w)); // lanes from the run's end on: off
                TOps.Store(lanes, ref Unsafe.Add(ref m0, (i + w - 1) * w));
            }

            s.MaskRun = run;
            s.MaskWidth = w;
        }

        ref T masks = ref s.Masks[0];
        T[] image = s.ImageGradient;
        Array.Clear(image);
        int c1 = g.C, rowLength = g.W * c1, oc1 = oc;
        ref T line0 = ref image[0];
        ref T k0 = ref kt0;
        ref T values = ref s.Values[0];
        ref byte channels = ref s.Channels[0];
        int[] counts = s.Counts;
        for (int r = 0, n = 0; n < g.N; n++)
        {
            for (int y = 0; y < g.OH; y++)
            {
                for (int xo = 0; xo < g.OW; xo++, r++)
                {
                    int count = counts[r];
                    if (count == 0) continue; // a row of zeros adds nothing
                    ref T rowValues = ref Unsafe.Add(ref values, r * oc1);
                    ref byte rowChannels = ref Unsafe.Add(ref channels, r * oc1);
                    ref T lines = ref Unsafe.Add(ref line0, (n * g.H + y) * rowLength); // the image row of kernel row 0
                    int start = xo * c1, first = start / w * w, left = (start + run - 1 - first) / w + 1; // the grid's vectors
                    for (int e = first; left > 0;)
                    {
                        // Up to 5 vectors of the grid, exactly the ones the run reaches, for a block of kernel rows.
                        int columns = Math.Min(5, left), blockRows = RowsFor(columns), i = e - start; // i: −(W − 1) … run − 1
                        ref T mask = ref Unsafe.Add(ref masks, (i + w - 1) * w);
                        for (int kh = 0; kh < g.KH; kh += blockRows)
                        {
                            ref T kr = ref Unsafe.Add(ref k0, kh * run + i);
                            ref T line = ref Unsafe.Add(ref lines, kh * rowLength + e);
                            int blockCount = Math.Min(blockRows, g.KH - kh);
                            switch (columns)
                            {
                                case 5: Chunk<Five>(ref kr, stride, run, ref rowValues, ref rowChannels, count, blockCount, ref line, rowLength, ref mask); break;
                                case 4: Chunk<Four>(ref kr, stride, run, ref rowValues, ref rowChannels, count, blockCount, ref line, rowLength, ref mask); break;
                                case 3: Chunk<Three>(ref kr, stride, run, ref rowValues, ref rowChannels, count, blockCount, ref line, rowLength, ref mask); break;
                                case 2: Chunk<Two>(ref kr, stride, run, ref rowValues, ref rowChannels, count, blockCount, ref line, rowLength, ref mask); break;
                                default: Chunk<One>(ref kr, stride, run, ref rowValues, ref rowChannels, count, blockCount, ref line, rowLength, ref mask); break;
                            }
                        }

                        e += columns * w;
                        left -= columns;
                    }
                }
            }
        }

        image.AsSpan(0, dx.Length).CopyTo(dx);
    }

    /// <summary>
    /// ∂K (KH·KW·C, OC) += Pᵀ·∂y over the gathered nonzeros of ∂y, x (N, H, W, C) being the forward's input. The nonzeros
    /// are sorted by channel (rows in order); for each channel, blocks of kernel rows × up to four vectors of their runs
    /// of KW·C input pixels (exactly the vectors a run needs: 2 rows × 4, 3 × 3, 5 × 2, 5 × 1) are summed in registers
    /// over that channel's nonzeros, stored to ∂Kᵀ, and ∂Kᵀ is added to ∂K.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WeightGradient(in ConvGeometry g, int oc, T[] x, T[] dk, SparseConvScratch<T> s)
    {
        int w = TOps.Count, run = g.KW * g.C, vectors = (run + w - 1) / w, runStride = vectors * w, rowStride = g.KH * runStride;
        int rows = g.PatchRows, rowLength = g.W * g.C, length = g.N * g.H * g.W * g.C;
        // x with room after it: a block's loads run up to four vectors along a run and one image row below the kernel.
        Scratch.Ensure(ref s.Input, length + rowLength + 4 * w);
        x.AsSpan(0, length).CopyTo(s.Input);
        Scratch.Ensure(ref s.ChannelPatches, oc * rows);
        Scratch.Ensure(ref s.ChannelValues, oc * rows);
        Scratch.Ensure(ref s.ChannelCounts, oc);
        Scratch.Ensure(ref s.KernelGradientT, oc * rowStride);

        // Each channel's nonzeros in row order: where the row's patch starts in x, and the value.
        int[] channelCounts = s.ChannelCounts, patches = s.ChannelPatches;
        T[] channelValues = s.ChannelValues;
        Array.Clear(channelCounts, 0, oc);
        ref T values = ref s.Values[0];
        ref byte channels = ref s.Channels[0];
        int[] counts = s.Counts;
        for (int r = 0, n = 0; n < g.N; n++)
        {
            for (int y = 0; y < g.OH; y++)
            {
                for (int xo = 0, patch = (n * g.H + y) * rowLength; xo < g.OW; xo++, r++, patch += g.C)
                {
                    for (int t = 0, count = counts[r]; t < count; t++)
                    {
                        int c = Unsafe.Add(ref channels, r * oc + t), at = c * rows + channelCounts[c]++;
                        patches[at] = patch;
                        channelValues[at] = Unsafe.Add(ref values, r * oc + t);
                    }
                }
            }
        }

        ref T accT = ref s.KernelGradientT[0];
        for (int c = 0; c < oc; c++)
        {
            for (int j = 0; j < vectors;)
            {
                // Columns of up to 4 vectors, exactly the run's: a block of kernel rows × those columns (at most 10 sums).
                int columns = Math.Min(4, vectors - j), blockRows = RowsFor(columns);
                for (int kh = 0; kh < g.KH; kh += blockRows)
                {
                    ref T x0 = ref s.Input[kh * rowLength + j * w];
                    ref T destination = ref Unsafe.Add(ref accT, c * rowStride + kh * runStride + j * w);
                    int blockCount = Math.Min(blockRows, g.KH - kh);
                    switch (columns)
                    {
                        case 4: Block<Four>(ref x0, rowLength, ref patches[c * rows], ref channelValues[c * rows], channelCounts[c], blockCount, ref destination, runStride); break;
                        case 3: Block<Three>(ref x0, rowLength, ref patches[c * rows], ref channelValues[c * rows], channelCounts[c], blockCount, ref destination, runStride); break;
                        case 2: Block<Two>(ref x0, rowLength, ref patches[c * rows], ref channelValues[c * rows], channelCounts[c], blockCount, ref destination, runStride); break;
                        default: Block<One>(ref x0, rowLength, ref patches[c * rows], ref channelValues[c * rows], channelCounts[c], blockCount, ref destination, runStride); break;
                    }
                }

                j += columns;
            }
        }

        // ∂K[kh·run + j, c] += ∂Kᵀ[c, kh·runStride + j]: one rounding, as the GEMM's beta = 1.
        ref T k0 = ref dk[0];
        for (int c = 0; c < oc; c++)
        {
            for (int kh = 0; kh < g.KH; kh++)
            {
                ref T src = ref Unsafe.Add(ref accT, c * rowStride + kh * runStride);
                ref T dst = ref Unsafe.Add(ref k0, kh * run * oc + c);
                for (int j = 0; j < run; j++) Unsafe.Add(ref dst, j * oc) += Unsafe.Add(ref src, j);
            }
        }
    }

    /// <summary>
    /// Kernel rows in a block of <paramref name="columns"/> vectors: at most 10 sums, so 16 registers hold them with a
    /// broadcast and a loaded vector, and at least 8 chains are in flight where the columns allow (5 × 1 has 5).
    /// </summary>
    private static int RowsFor(int columns) => columns switch { >= 4 => 2, 3 => 3, _ => 5 };

    /// <summary>
    /// Σ over one channel's nonzeros, in order, of value × <typeparamref name="TColumns"/> vectors at the patch (row 0)
    /// and at the next image rows (rows 1 … <paramref name="rows"/> − 1, at most <see cref="RowsFor"/> of the columns),
    /// from zero; stored at <paramref name="destination"/>, row r at r·<paramref name="rowStride"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block<TColumns>(ref T x0, int rowLength, ref int patches, ref T values, int count, int rows, ref T destination, int rowStride)
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
            ref T p = ref Unsafe.Add(ref x0, Unsafe.Add(ref patches, i));
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

    /// <summary>
    /// ∂P's values at <typeparamref name="TColumns"/> grid vectors of kernel rows 0 … <paramref name="rows"/> − 1 (at most
    /// <see cref="RowsFor"/> of the columns) for one output pixel: for each, Σ over its nonzero ∂y, channels in order,
    /// of ∂y·Kᵀ (the GEMM's chain, from zero), read at <paramref name="k"/> + row·<paramref name="run"/> of the channel's
    /// row of Kᵀ; then added, masked to the run, onto the ∂x image rows at <paramref name="line"/> + row·<paramref name="rowLength"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Chunk<TColumns>(ref T k, int stride, int run, ref T values, ref byte channels, int count, int rows, ref T line, int rowLength, ref T mask)
        where TColumns : struct, IFixedCount
    {
        int v = TColumns.Count; // a constant for the JIT: the unused sums and branches disappear
        nint w = TOps.Count, run1 = run, run2 = 2 * run1, run3 = 3 * run1, run4 = 4 * run1;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero;
        TV b0 = TOps.Zero, b1 = TOps.Zero, b2 = TOps.Zero, b3 = TOps.Zero, b4 = TOps.Zero;
        TV c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero;
        TV d0 = TOps.Zero, d1 = TOps.Zero, e0 = TOps.Zero, e1 = TOps.Zero;
        for (int t = 0; t < count; t++)
        {
            ref T p = ref Unsafe.Add(ref k, (nint)Unsafe.Add(ref channels, t) * stride);
            TV s = TOps.Broadcast(Unsafe.Add(ref values, t));
            a0 = TOps.MultiplyAdd(TOps.Load(ref p), s, a0);
            if (v > 1) a1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, w)), s, a1);
            if (v > 2) a2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 2 * w)), s, a2);
            if (v > 3) a3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 3 * w)), s, a3);
            if (v > 4) a4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 4 * w)), s, a4);
            if (rows > 1)
            {
                ref T q = ref Unsafe.Add(ref p, run1);
                b0 = TOps.MultiplyAdd(TOps.Load(ref q), s, b0);
                if (v > 1) b1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, b1);
                if (v > 2) b2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 2 * w)), s, b2);
                if (v > 3) b3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 3 * w)), s, b3);
                if (v > 4) b4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 4 * w)), s, b4);
            }

            if (v < 4 && rows > 2)
            {
                ref T q = ref Unsafe.Add(ref p, run2);
                c0 = TOps.MultiplyAdd(TOps.Load(ref q), s, c0);
                if (v > 1) c1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, c1);
                if (v > 2) c2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 2 * w)), s, c2);
            }

            if (v < 3 && rows > 3)
            {
                ref T q = ref Unsafe.Add(ref p, run3);
                d0 = TOps.MultiplyAdd(TOps.Load(ref q), s, d0);
                if (v > 1) d1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, d1);
            }

            if (v < 3 && rows > 4)
            {
                ref T q = ref Unsafe.Add(ref p, run4);
                e0 = TOps.MultiplyAdd(TOps.Load(ref q), s, e0);
                if (v > 1) e1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), s, e1);
            }
        }

        nint line1 = rowLength;
        AddMasked(ref line, ref mask, v, a0, a1, a2, a3, a4);
        if (rows > 1) AddMasked(ref Unsafe.Add(ref line, line1), ref mask, v, b0, b1, b2, b3, b4);
        if (v < 4 && rows > 2) AddMasked(ref Unsafe.Add(ref line, 2 * line1), ref mask, v, c0, c1, c2, c2, c2);
        if (v < 3 && rows > 3) AddMasked(ref Unsafe.Add(ref line, 3 * line1), ref mask, v, d0, d1, d1, d1, d1);
        if (v < 3 && rows > 4) AddMasked(ref Unsafe.Add(ref line, 4 * line1), ref mask, v, e0, e1, e1, e1, e1);
    }

    /// <summary>line[j·W …] += p_j masked by the mask W·W lanes on, j = 0 … <paramref name="columns"/> − 1 (masked lanes add an exact +0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddMasked(ref T line, ref T mask, int columns, TV p0, TV p1, TV p2, TV p3, TV p4)
    {
        int w = TOps.Count; // vector j starts W·j further into the run: its mask W·W lanes further on
        Add(ref line, TOps.And(TOps.Load(ref mask), p0));
        if (columns > 1) Add(ref Unsafe.Add(ref line, w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, w * w)), p1));
        if (columns > 2) Add(ref Unsafe.Add(ref line, 2 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 2 * w * w)), p2));
        if (columns > 3) Add(ref Unsafe.Add(ref line, 3 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 3 * w * w)), p3));
        if (columns > 4) Add(ref Unsafe.Add(ref line, 4 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 4 * w * w)), p4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(ref T destination, TV value) => TOps.Store(TOps.Add(TOps.Load(ref destination), value), ref destination);
}
