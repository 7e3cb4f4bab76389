using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LeNetSharp.Tensors;

/// <summary>
/// Sizes of a fused single-channel convolution (stride 1, no padding) → ReLU → 2x2 max pool.
/// <code>
/// input x : (N, H, W, 1)   kernel K : (KH, KW, 1, OC)   conv y : (N, OH, OW, OC), OH = H − KH + 1, OW = W − KW + 1
/// output p : (N, PH, PW, OC), PH = OH / 2, PW = OW / 2   mask : one byte per output, the window position 0–3 of the
/// first maximum in row-major order, 4 where the maximum is ≤ 0 (ReLU passes no gradient)
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
/// (LeNet: 144 = 18 vectors of 8, no idle lane), and the input a conv output at window corner (dr, dc) needs for tap
/// (kh, kw) is one contiguous load: plane (kw + dc, (kh + dr) mod 2) at L + ((kh + dr) / 2)·PW. Register block: 3
/// output channels × the 4 window corners = 12 accumulators, 3 broadcast weights and 1 loaded vector (16 ymm
/// registers). Each conv output is the same chain as the GEMM path computes: fused multiply-adds over the taps in
/// (kh, kw) order from zero, then + bias, so results equal Conv → Relu → MaxPool2x2 bit for bit, at every vector width.
/// </para>
/// <para>
/// Backward: ∂K[kh, kw, oc] += Σ over conv outputs m in row-major order of x[m + (kh, kw)]·∂y[m, oc], where ∂y is ∂p at
/// the window's maximum and 0 elsewhere (the zeros change nothing), accumulated from zero as the GEMM does. Per
/// channel, the windows that pass a gradient are listed in the order of their maxima (per pooled row, those in the
/// upper conv row, then the lower; branch-free), then summed with one vector per kernel row (up to 5 accumulators) and
/// ∂b's four partial sums (conv output mod 4, as <see cref="RowOps.AddColumnSums{T}"/>) in the lanes of a sixth.
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

    /// <summary>Length of the tile buffer: values and window positions of every channel for one vector of pooled positions.</summary>
    public static int TileLength(ConvPoolGeometry g) => 2 * g.OC * TOps.Count;

    /// <summary>Length of the padded input copy backward reads (whole-vector loads past a row's end stay inside).</summary>
    public static int PaddedInputLength(ConvPoolGeometry g) => g.N * g.H * g.W + 2 * TOps.Count + g.KW;

    /// <summary>
    /// p and mask from x. <paramref name="xPadded"/> receives a copy of x for backward; <paramref name="planes"/> and
    /// <paramref name="tile"/> are scratch of the lengths above. For inference only, pass null for
    /// <paramref name="mask"/> and <paramref name="xPadded"/>: neither the window positions nor the copy are made.
    /// </summary>
    // Not AggressiveOptimization: this loop only calls the kernels, which are; compiled so, it made the pass about 60 %
    // slower (measured side by side, AMD EPYC AVX2), while tier-0 code here costs nothing that shows.
    public static void Forward(ConvPoolGeometry g, T[] x, T[] weight, T[] bias, T[] output, byte[]? mask, T[]? xPadded, T[] planes, T[] tile)
    {
        int w = TOps.Count, image = g.H * g.W, positions = g.PH * g.PW, planeSize = PlaneSize(g);
        if (xPadded is not null) x.AsSpan(0, g.N * image).CopyTo(xPadded);
        for (int n = 0; n < g.N; n++)
        {
            Split(g, x, n * image, planes, planeSize);
            for (int l0 = 0; l0 < positions; l0 += w)
            {
                for (int ob = 0; ob < g.OC; ob += 3) Block(g, l0, ob, planeSize, planes, weight, bias, tile, mask is not null);
                WriteOut(g, tile, n * positions + l0, Math.Min(w, positions - l0), output, mask);
            }
        }
    }

    /// <summary>Plane (b, rp) row i ← x[2i + rp, 2q + b] for q &lt; PW, of the image at <paramref name="offset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
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
                    for (int q0 = 0; ; q0 += w)
                    {
                        int q = Math.Min(q0, pw - w);
                        ref T s = ref Unsafe.Add(ref src, b + 2 * q);
                        TOps.Deinterleave(TOps.Load(ref s), TOps.Load(ref Unsafe.Add(ref s, w)), out TV e, out TV o);
                        TOps.Store(e, ref Unsafe.Add(ref even, q));
                        TOps.Store(o, ref Unsafe.Add(ref odd, q));
                        if (q + w >= pw) break;
                    }

                    continue;
                }

                for (int q = 0; q < pw; q++) Unsafe.Add(ref even, q) = Unsafe.Add(ref src, b + 2 * q);
                if (b < g.KW) for (int q = 0; q < pw; q++) Unsafe.Add(ref odd, q) = Unsafe.Add(ref src, b + 1 + 2 * q);
            }
        }
    }

    /// <summary>Pooled positions l0..l0+W of one image, channels ob..ob+2 (clamped), into the tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block(ConvPoolGeometry g, int l0, int ob, int planeSize, T[] planes, T[] weight, T[] bias, T[] tile, bool positions)
    {
        int oc = g.OC, kw = g.KW, kh = g.KH, w = TOps.Count;
        int c0 = ob, c1 = Math.Min(ob + 1, oc - 1), c2 = Math.Min(ob + 2, oc - 1);
        // Window corners: te/to top conv row, even/odd column; be/bo bottom row.
        TV te0 = TOps.Zero, to0 = TOps.Zero, be0 = TOps.Zero, bo0 = TOps.Zero;
        TV te1 = TOps.Zero, to1 = TOps.Zero, be1 = TOps.Zero, bo1 = TOps.Zero;
        TV te2 = TOps.Zero, to2 = TOps.Zero, be2 = TOps.Zero, bo2 = TOps.Zero;
        ref T p0 = ref Unsafe.Add(ref planes[0], l0);
        ref T k0 = ref weight[0];
        nint next = 2 * planeSize; // plane of column offset b + 1, same row parity
        for (int r = 0; r < kh; r++)
        {
            // Input row 2i + r (top corners) and 2i + r + 1 (bottom corners), column offset kw = 0.
            ref T top = ref Unsafe.Add(ref p0, (r & 1) * planeSize + (r >> 1) * g.PW);
            ref T bottom = ref Unsafe.Add(ref p0, ((r + 1) & 1) * planeSize + ((r + 1) >> 1) * g.PW);
            ref T k = ref Unsafe.Add(ref k0, r * kw * oc);
            for (int t = 0; t < kw; t++)
            {
                TV s0 = TOps.Broadcast(Unsafe.Add(ref k, c0)), s1 = TOps.Broadcast(Unsafe.Add(ref k, c1)), s2 = TOps.Broadcast(Unsafe.Add(ref k, c2));
                TV v = TOps.Load(ref top);
                te0 = TOps.MultiplyAdd(s0, v, te0); te1 = TOps.MultiplyAdd(s1, v, te1); te2 = TOps.MultiplyAdd(s2, v, te2);
                v = TOps.Load(ref Unsafe.Add(ref top, next));
                to0 = TOps.MultiplyAdd(s0, v, to0); to1 = TOps.MultiplyAdd(s1, v, to1); to2 = TOps.MultiplyAdd(s2, v, to2);
                v = TOps.Load(ref bottom);
                be0 = TOps.MultiplyAdd(s0, v, be0); be1 = TOps.MultiplyAdd(s1, v, be1); be2 = TOps.MultiplyAdd(s2, v, be2);
                v = TOps.Load(ref Unsafe.Add(ref bottom, next));
                bo0 = TOps.MultiplyAdd(s0, v, bo0); bo1 = TOps.MultiplyAdd(s1, v, bo1); bo2 = TOps.MultiplyAdd(s2, v, bo2);
                top = ref Unsafe.Add(ref top, next);
                bottom = ref Unsafe.Add(ref bottom, next);
                k = ref Unsafe.Add(ref k, oc);
            }
        }

        Finish(te0, to0, be0, bo0, bias[c0], ref tile[c0 * w], ref tile[(oc + c0) * w], positions);
        if (ob + 1 < oc) Finish(te1, to1, be1, bo1, bias[c1], ref tile[c1 * w], ref tile[(oc + c1) * w], positions);
        if (ob + 2 < oc) Finish(te2, to2, be2, bo2, bias[c2], ref tile[c2 * w], ref tile[(oc + c2) * w], positions);
    }

    /// <summary>
    /// The tile's (OC, W) values and positions → <paramref name="count"/> NHWC pooled positions from
    /// <paramref name="position"/> (positions only when <paramref name="mask"/> is not null).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void WriteOut(ConvPoolGeometry g, T[] tile, int position, int count, T[] output, byte[]? mask)
    {
        int oc = g.OC, w = TOps.Count;
        ref T t0 = ref tile[0];
        ref T o0 = ref output[position * oc];
        for (int l = 0; l < count; l++)
        {
            for (int c = 0; c < oc; c++) Unsafe.Add(ref o0, l * oc + c) = Unsafe.Add(ref t0, c * w + l);
        }

        if (mask is null) return;
        ref T at = ref Unsafe.Add(ref t0, oc * w);
        ref byte m0 = ref mask[position * oc];
        for (int l = 0; l < count; l++)
        {
            for (int c = 0; c < oc; c++) Unsafe.Add(ref m0, l * oc + c) = Unsafe.As<T, byte>(ref Unsafe.Add(ref at, c * w + l)); // a bit pattern: see Finish
        }
    }

    /// <summary>
    /// + bias, ReLU, max of the window and the position of its first maximum (4 when it is ≤ 0). Positions are stored as
    /// the bit patterns of <see cref="Position"/>: only selected and copied, never computed with, so their first byte is
    /// the mask byte. Without <paramref name="positions"/> only the value is stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(TV te, TV to, TV be, TV bo, T bias, ref T value, ref T position, bool positions)
    {
        TV b = TOps.Broadcast(bias);
        te = TOps.Add(te, b); to = TOps.Add(to, b); be = TOps.Add(be, b); bo = TOps.Add(bo, b);
        TV topMax = TOps.Max(te, to), bottomMax = TOps.Max(be, bo), max = TOps.Max(topMax, bottomMax);
        TOps.Store(TOps.Max(max, TOps.Zero), ref value);
        if (!positions) return;
        // Later positions win only when strictly greater: ties go to the first in row-major order, as MaxPool2x2.
        TV top = TOps.Select(TOps.GreaterThan(to, te), TOps.Broadcast(Position1), TOps.Zero);
        TV bottom = TOps.Select(TOps.GreaterThan(bo, be), TOps.Broadcast(Position3), TOps.Broadcast(Position2));
        TV at = TOps.Select(TOps.GreaterThan(bottomMax, topMax), bottom, top);
        at = TOps.Select(TOps.GreaterThan(max, TOps.Zero), at, TOps.Broadcast(Position4));
        TOps.Store(at, ref position);
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
