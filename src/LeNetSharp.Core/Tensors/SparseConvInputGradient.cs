using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>
/// Reusable buffers of <see cref="SparseConvInputGradient{TOps, TV, T}"/> for one convolution (allocated when the shape
/// grows, then reused: a training step allocates nothing).
/// </summary>
internal sealed class SparseConvScratch<T>
{
    public T[] KernelT = [];   // Kᵀ: row oc = the kernel's column oc, with zeros on both sides
    public T[] Values = [];    // per output row m: its nonzero ∂y values, in channel order
    public byte[] Channels = []; // … and their channels
    public int[] Counts = [];  // per row m: how many
    public T[] Masks = [];     // per grid position relative to a tap run: all-ones lanes inside the run
    public T[] ImageGradient = []; // ∂x, with room after it (the grid's last vectors may pass the end)

    public static void Ensure<TE>(ref TE[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new TE[length];
    }
}

/// <summary>
/// A convolution's input gradient ∂x = col2im(∂P), ∂P = ∂y·Kᵀ, without multiplying by the zeros of ∂y (M, OC) — below a
/// 2x2 max pool and a ReLU three of every four are exactly 0 — and without storing ∂P (M, KH·KW·C).
/// <code>
/// ∂P[m, k] = Σ_oc ∂y[m, oc]·K[k, oc]   over the channels where ∂y[m, oc] ≠ 0, in order
/// ∂x[pixel] = Σ_m ∂P[m, tap of pixel]   over the rows m in order (col2im)
/// </code>
/// Each ∂P element is the GEMM path's chain of fused multiply-adds (from zero, over oc in order) with its exact-zero
/// terms left out, and each ∂x element adds the same values in the same order as col2im: the results are the GEMM
/// path's bit for bit.
/// </summary>
internal static class SparseConvInputGradient<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>True for stride 1, no padding and at most 255 output channels.</summary>
    public static bool Supports(in ConvGeometry g, int outChannels) => g.Padding == 0 && g.Stride == 1 && outChannels <= 255;

    /// <summary>∂x (N, H, W, C) = col2im(∂y·Kᵀ), overwritten; ∂y (M, OC), the kernel (K, OC).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in ConvGeometry g, int oc, T[] dy, T[] kernel, T[] dx, SparseConvScratch<T> s)
    {
        int m = g.PatchRows;
        SparseConvScratch<T>.Ensure(ref s.Values, m * oc);
        SparseConvScratch<T>.Ensure(ref s.Channels, m * oc);
        SparseConvScratch<T>.Ensure(ref s.Counts, m);
        Gather(m, oc, dy, s);
        Scatter(g, oc, kernel, dx, s);
    }

    /// <summary>The nonzero ∂y entries of each row, channels in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Gather(int m, int oc, T[] dy, SparseConvScratch<T> s)
    {
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
    private static void Scatter(in ConvGeometry g, int oc, T[] kernel, T[] dx, SparseConvScratch<T> s)
    {
        int w = TOps.Count, k = g.PatchColumns, run = g.KW * g.C, pad = 6 * w, stride = k + 2 * pad;
        SparseConvScratch<T>.Ensure(ref s.KernelT, oc * stride);
        SparseConvScratch<T>.Ensure(ref s.Masks, (run + 6 * w) * w);
        SparseConvScratch<T>.Ensure(ref s.ImageGradient, dx.Length + 6 * w);

        // Kᵀ: row c = the kernel's column c, with zeros on both sides (grid loads reach up to 6 vectors past a run).
        T[] kt = s.KernelT;
        for (int i = 0; i < k; i++)
            for (int c = 0; c < oc; c++) kt[c * stride + pad + i] = kernel[i * oc + c];

        // masks[(i + W − 1)·W …]: all-ones lanes l with 0 ≤ i + l < run, i = a grid vector's start relative to the run.
        TV ones = TOps.GreaterThan(TOps.Broadcast(T.One), TOps.Zero);
        ref T masks = ref s.Masks[0];
        for (int i = 1 - w; i < run + 5 * w; i++)
        {
            TV lanes = TOps.SelectLow(TOps.Zero, ones, Math.Max(0, -i));          // lanes before the run: off
            lanes = TOps.SelectLow(lanes, TOps.Zero, Math.Clamp(run - i, 0, w)); // lanes from the run's end on: off
            TOps.Store(lanes, ref Unsafe.Add(ref masks, (i + w - 1) * w));
        }

        T[] image = s.ImageGradient;
        Array.Clear(image);
        int c1 = g.C, rowLength = g.W * c1, oc1 = oc;
        ref T line0 = ref image[0];
        ref T k0 = ref kt[pad];
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
