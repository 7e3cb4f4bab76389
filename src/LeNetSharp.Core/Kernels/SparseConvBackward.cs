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
    /// outside the run masked to an exact +0), two kernel rows × five vectors at a time, and added there: every load of
    /// ∂x then finds the previous store of that vector whole.
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
        nint w1 = w, w2 = 2 * w, w3 = 3 * w, w4 = 4 * w;
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
                    int start = xo * c1, first = start / w * w, last = start + run - 1;
                    for (int kh = 0; kh < g.KH; kh += 2)
                    {
                        int kh1 = Math.Min(kh + 1, g.KH - 1); // past the last kernel row: kh again, not added twice
                        ref T lineA = ref Unsafe.Add(ref line0, (n * g.H + y + kh) * rowLength);
                        ref T lineB = ref Unsafe.Add(ref line0, (n * g.H + y + kh1) * rowLength);
                        for (int e = first; e <= last; e += 5 * w)
                        {
                            int i = e - start; // −(W − 1) … run − 1
                            nint a = kh * run + i, b = kh1 * run + i;
                            TV p0 = TOps.Zero, p1 = TOps.Zero, p2 = TOps.Zero, p3 = TOps.Zero, p4 = TOps.Zero;
                            TV q0 = TOps.Zero, q1 = TOps.Zero, q2 = TOps.Zero, q3 = TOps.Zero, q4 = TOps.Zero;
                            for (int t = 0; t < count; t++)
                            {
                                // ∂P[m, tap] = Σ over the nonzero ∂y[m, c], c in order, of ∂y·K[tap, c]: the GEMM's chain.
                                ref T kr = ref Unsafe.Add(ref k0, (nint)Unsafe.Add(ref rowChannels, t) * stride);
                                TV v = TOps.Broadcast(Unsafe.Add(ref rowValues, t));
                                ref T ka = ref Unsafe.Add(ref kr, a);
                                ref T kb = ref Unsafe.Add(ref kr, b);
                                p0 = TOps.MultiplyAdd(TOps.Load(ref ka), v, p0);
                                p1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref ka, w1)), v, p1);
                                p2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref ka, w2)), v, p2);
                                p3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref ka, w3)), v, p3);
                                p4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref ka, w4)), v, p4);
                                q0 = TOps.MultiplyAdd(TOps.Load(ref kb), v, q0);
                                q1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref kb, w1)), v, q1);
                                q2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref kb, w2)), v, q2);
                                q3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref kb, w3)), v, q3);
                                q4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref kb, w4)), v, q4);
                            }

                            ref T mask = ref Unsafe.Add(ref masks, (i + w - 1) * w);
                            AddMasked(ref Unsafe.Add(ref lineA, e), ref mask, p0, p1, p2, p3, p4);
                            if (kh1 != kh) AddMasked(ref Unsafe.Add(ref lineB, e), ref mask, q0, q1, q2, q3, q4);
                        }
                    }
                }
            }
        }

        image.AsSpan(0, dx.Length).CopyTo(dx);
    }

    /// <summary>
    /// ∂K (KH·KW·C, OC) += Pᵀ·∂y over the gathered nonzeros of ∂y, x (N, H, W, C) being the forward's input. The nonzeros
    /// are sorted by channel (rows in order); for each channel, blocks of two kernel rows × four vectors of their runs of
    /// KW·C input pixels are summed in registers over that channel's nonzeros, stored to ∂Kᵀ, and ∂Kᵀ is added to ∂K.
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
            for (int kh = 0; kh < g.KH; kh += 2)
            {
                for (int j = 0; j < vectors; j += 4)
                {
                    Block(ref s.Input[kh * rowLength + j * w], rowLength, ref patches[c * rows], ref channelValues[c * rows], channelCounts[c],
                        kh + 1 < g.KH, Math.Min(4, vectors - j), ref Unsafe.Add(ref accT, c * rowStride + kh * runStride + j * w), runStride);
                }
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
    /// Σ over one channel's nonzeros, in order, of value × four vectors at the patch (row a) and one image row below
    /// (row b, when <paramref name="second"/>), from zero; the first <paramref name="columns"/> vectors of each row stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(ref T x0, int rowLength, ref int patches, ref T values, int count, bool second, int columns, ref T destination, int rowStride)
    {
        nint w = TOps.Count, row = rowLength;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
        TV b0 = TOps.Zero, b1 = TOps.Zero, b2 = TOps.Zero, b3 = TOps.Zero;
        for (int i = 0; i < count; i++)
        {
            ref T p = ref Unsafe.Add(ref x0, Unsafe.Add(ref patches, i));
            TV v = TOps.Broadcast(Unsafe.Add(ref values, i));
            a0 = TOps.MultiplyAdd(TOps.Load(ref p), v, a0);
            a1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, w)), v, a1);
            a2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 2 * w)), v, a2);
            a3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 3 * w)), v, a3);
            if (second)
            {
                ref T q = ref Unsafe.Add(ref p, row);
                b0 = TOps.MultiplyAdd(TOps.Load(ref q), v, b0);
                b1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, w)), v, b1);
                b2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 2 * w)), v, b2);
                b3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref q, 3 * w)), v, b3);
            }
        }

        StoreColumns(ref destination, columns, a0, a1, a2, a3);
        if (second) StoreColumns(ref Unsafe.Add(ref destination, rowStride), columns, b0, b1, b2, b3);
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

    /// <summary>line[j·W …] += p_j masked by the mask W·W lanes on, j = 0 … 4 (masked lanes add an exact +0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddMasked(ref T line, ref T mask, TV p0, TV p1, TV p2, TV p3, TV p4)
    {
        int w = TOps.Count; // vector j starts W·j further into the run: its mask W·W lanes further on
        Add(ref line, TOps.And(TOps.Load(ref mask), p0));
        Add(ref Unsafe.Add(ref line, w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, w * w)), p1));
        Add(ref Unsafe.Add(ref line, 2 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 2 * w * w)), p2));
        Add(ref Unsafe.Add(ref line, 3 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 3 * w * w)), p3));
        Add(ref Unsafe.Add(ref line, 4 * w), TOps.And(TOps.Load(ref Unsafe.Add(ref mask, 4 * w * w)), p4));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(ref T destination, TV value) => TOps.Store(TOps.Add(TOps.Load(ref destination), value), ref destination);
}
