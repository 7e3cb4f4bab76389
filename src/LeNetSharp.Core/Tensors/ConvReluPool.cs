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
/// Forward splits each input row into its even and odd columns, so the four conv outputs of a pooling window are four
/// vectors over neighbouring windows (top-left, top-right, bottom-left, bottom-right) built from contiguous loads;
/// pooling is then element-wise. Register block: 3 output channels × those 4 vectors = 12 accumulators (fits 16 ymm
/// registers with the two input vectors and a broadcast weight). Each conv output is the same chain as the GEMM path
/// computes: fused multiply-adds over the taps in (kh, kw) order from zero, then + bias, so results equal
/// Conv → Relu → MaxPool2x2 bit for bit, at every vector width.
/// </para>
/// <para>
/// Backward: ∂K[kh, kw, oc] += Σ over conv outputs m in row-major order of x[m + (kh, kw)]·∂y[m, oc], where ∂y is ∂p at
/// the window's maximum and 0 elsewhere (the zeros change nothing), accumulated from zero as the GEMM does; vectors
/// span a kernel row, two (channel or half-row) slots × up to 5 kernel rows = 10 accumulators. ∂b adds ∂y down each
/// channel in the same order as <see cref="RowOps.AddColumnSums{T}"/>.
/// </para>
/// </summary>
internal static partial class ConvReluPool<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>True when the kernels handle this shape at this width: KH ≤ 5 rows, KW within two vectors, a pool window.</summary>
    public static bool Supports(int kh, int kw, int h, int w) => kh <= 5 && kw <= 2 * TOps.Count && h - kh + 1 >= 2 && w - kw + 1 >= 2;

    /// <summary>Lanes computed per pooled row: PW, or a whole vector when PW is narrower.</summary>
    private static int Lanes(ConvPoolGeometry g) => Math.Max(g.PW, TOps.Count);

    /// <summary>Elements per row of the even/odd column buffers (room for the shifted loads past PW).</summary>
    private static int RowStride(ConvPoolGeometry g) => Math.Max((g.W + 1) / 2, Lanes(g) + g.KW / 2) + 1;

    /// <summary>Length of each of the even and odd column buffers (one image).</summary>
    public static int SplitLength(ConvPoolGeometry g) => g.H * RowStride(g) + TOps.Count;

    /// <summary>Length of the tile buffer (values and window positions of one pooled row).</summary>
    public static int TileLength(ConvPoolGeometry g) => 2 * g.OC * Lanes(g);

    /// <summary>Length of the padded input copy backward reads (whole-vector loads past a row's end stay inside).</summary>
    public static int PaddedInputLength(ConvPoolGeometry g) => g.N * g.H * g.W + 2 * TOps.Count + g.KW;

    /// <summary>
    /// p and mask from x. <paramref name="xPadded"/> receives a copy of x for backward; <paramref name="even"/>,
    /// <paramref name="odd"/> and <paramref name="tile"/> are scratch of the lengths above.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Forward(ConvPoolGeometry g, T[] x, T[] weight, T[] bias, T[] output, byte[] mask, T[] xPadded, T[] even, T[] odd, T[] tile)
    {
        int w = TOps.Count, lanes = Lanes(g), stride = RowStride(g), half = (g.W + 1) / 2, image = g.H * g.W;
        x.AsSpan(0, g.N * image).CopyTo(xPadded);
        for (int n = 0; n < g.N; n++)
        {
            // Even and odd columns of every row of image n.
            for (int r = 0; r < g.H; r++)
            {
                ref T row = ref x[n * image + r * g.W];
                ref T e = ref even[r * stride];
                ref T o = ref odd[r * stride];
                for (int q = 0; q < half; q++)
                {
                    Unsafe.Add(ref e, q) = Unsafe.Add(ref row, 2 * q);
                    Unsafe.Add(ref o, q) = 2 * q + 1 < g.W ? Unsafe.Add(ref row, 2 * q + 1) : T.Zero;
                }
            }

            for (int pi = 0; pi < g.PH; pi++)
            {
                for (int ob = 0; ob < g.OC; ob += 3)
                {
                    // Vector starts 0, W, 2W, …; the last one shifted back to end at PW (overlapping lanes are computed
                    // twice, identically), or a single vector when PW is narrower than one.
                    for (int q0 = 0; ; q0 += w)
                    {
                        int start = Math.Min(q0, lanes - w);
                        Block(g, pi, ob, start, stride, even, odd, weight, bias, tile, lanes);
                        if (start + w >= lanes) break;
                    }
                }

                // (OC, lanes) tile → NHWC pooled row, window positions as bytes.
                int outRow = (n * g.PH + pi) * g.PW * g.OC;
                for (int q = 0; q < g.PW; q++)
                {
                    for (int oc = 0; oc < g.OC; oc++)
                    {
                        output[outRow + q * g.OC + oc] = tile[oc * lanes + q];
                        mask[outRow + q * g.OC + oc] = byte.CreateTruncating(tile[(g.OC + oc) * lanes + q]);
                    }
                }
            }
        }
    }

    /// <summary>Pooled row <paramref name="pi"/>, channels ob..ob+2 (clamped), lanes start..start+W of the tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block(ConvPoolGeometry g, int pi, int ob, int start, int stride, T[] even, T[] odd, T[] weight, T[] bias, T[] tile, int lanes)
    {
        int oc = g.OC, kw = g.KW, kh = g.KH;
        int c0 = ob, c1 = Math.Min(ob + 1, oc - 1), c2 = Math.Min(ob + 2, oc - 1);
        // te/to: top conv row, even/odd column of each window; be/bo: bottom row.
        TV te0 = TOps.Zero, to0 = TOps.Zero, be0 = TOps.Zero, bo0 = TOps.Zero;
        TV te1 = TOps.Zero, to1 = TOps.Zero, be1 = TOps.Zero, bo1 = TOps.Zero;
        TV te2 = TOps.Zero, to2 = TOps.Zero, be2 = TOps.Zero, bo2 = TOps.Zero;
        ref T e0 = ref even[0];
        ref T o0 = ref odd[0];
        ref T k0 = ref weight[0];
        int taps = kw / 2;
        for (int r = 0; r <= kh; r++)
        {
            // Input row 2·pi + r feeds the top conv row with kernel row r and the bottom one with kernel row r − 1.
            int rowOffset = (2 * pi + r) * stride + start;
            for (int t = 0; t <= taps; t++)
            {
                // Columns 2q + 2t and 2q + 2t + 1 of the window at q: E and O. The even output takes kw = 2t (E), then
                // 2t + 1 (O); the odd output kw = 2t − 1 (E), then 2t (O): each accumulator sees its taps in kw order.
                TV e = TOps.Load(ref Unsafe.Add(ref e0, rowOffset + t));
                TV o = TOps.Load(ref Unsafe.Add(ref o0, rowOffset + t));
                if (r < kh)
                {
                    int tap = r * kw + 2 * t;
                    if (t > 0)
                    {
                        ref T k = ref Unsafe.Add(ref k0, (tap - 1) * oc);
                        to0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c0)), e, to0);
                        to1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c1)), e, to1);
                        to2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c2)), e, to2);
                    }

                    if (2 * t < kw)
                    {
                        ref T k = ref Unsafe.Add(ref k0, tap * oc);
                        TV s = TOps.Broadcast(Unsafe.Add(ref k, c0));
                        te0 = TOps.MultiplyAdd(s, e, te0); to0 = TOps.MultiplyAdd(s, o, to0);
                        s = TOps.Broadcast(Unsafe.Add(ref k, c1));
                        te1 = TOps.MultiplyAdd(s, e, te1); to1 = TOps.MultiplyAdd(s, o, to1);
                        s = TOps.Broadcast(Unsafe.Add(ref k, c2));
                        te2 = TOps.MultiplyAdd(s, e, te2); to2 = TOps.MultiplyAdd(s, o, to2);
                    }

                    if (2 * t + 1 < kw)
                    {
                        ref T k = ref Unsafe.Add(ref k0, (tap + 1) * oc);
                        te0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c0)), o, te0);
                        te1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c1)), o, te1);
                        te2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c2)), o, te2);
                    }
                }

                if (r > 0)
                {
                    int tap = (r - 1) * kw + 2 * t;
                    if (t > 0)
                    {
                        ref T k = ref Unsafe.Add(ref k0, (tap - 1) * oc);
                        bo0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c0)), e, bo0);
                        bo1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c1)), e, bo1);
                        bo2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c2)), e, bo2);
                    }

                    if (2 * t < kw)
                    {
                        ref T k = ref Unsafe.Add(ref k0, tap * oc);
                        TV s = TOps.Broadcast(Unsafe.Add(ref k, c0));
                        be0 = TOps.MultiplyAdd(s, e, be0); bo0 = TOps.MultiplyAdd(s, o, bo0);
                        s = TOps.Broadcast(Unsafe.Add(ref k, c1));
                        be1 = TOps.MultiplyAdd(s, e, be1); bo1 = TOps.MultiplyAdd(s, o, bo1);
                        s = TOps.Broadcast(Unsafe.Add(ref k, c2));
                        be2 = TOps.MultiplyAdd(s, e, be2); bo2 = TOps.MultiplyAdd(s, o, bo2);
                    }

                    if (2 * t + 1 < kw)
                    {
                        ref T k = ref Unsafe.Add(ref k0, (tap + 1) * oc);
                        be0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c0)), o, be0);
                        be1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c1)), o, be1);
                        be2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref k, c2)), o, be2);
                    }
                }
            }
        }

        Finish(te0, to0, be0, bo0, bias[c0], ref tile[c0 * lanes + start], ref tile[(oc + c0) * lanes + start]);
        if (ob + 1 < oc) Finish(te1, to1, be1, bo1, bias[c1], ref tile[c1 * lanes + start], ref tile[(oc + c1) * lanes + start]);
        if (ob + 2 < oc) Finish(te2, to2, be2, bo2, bias[c2], ref tile[c2 * lanes + start], ref tile[(oc + c2) * lanes + start]);
    }

    /// <summary>+ bias, ReLU, max of the window and the position of its first maximum (4 when it is ≤ 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish(TV te, TV to, TV be, TV bo, T bias, ref T value, ref T position)
    {
        TV b = TOps.Broadcast(bias);
        te = TOps.Add(te, b); to = TOps.Add(to, b); be = TOps.Add(be, b); bo = TOps.Add(bo, b);
        TV topMax = TOps.Max(te, to), bottomMax = TOps.Max(be, bo), max = TOps.Max(topMax, bottomMax);
        // Later positions win only when strictly greater: ties go to the first in row-major order, as MaxPool2x2.
        TV top = TOps.Select(TOps.GreaterThan(to, te), TOps.Broadcast(T.One), TOps.Zero);
        TV bottom = TOps.Select(TOps.GreaterThan(bo, be), TOps.Broadcast(T.CreateTruncating(3)), TOps.Broadcast(T.CreateTruncating(2)));
        TV at = TOps.Select(TOps.GreaterThan(bottomMax, topMax), bottom, top);
        at = TOps.Select(TOps.GreaterThan(max, TOps.Zero), at, TOps.Broadcast(T.CreateTruncating(4)));
        TOps.Store(TOps.Max(max, TOps.Zero), ref value);
        TOps.Store(at, ref position);
    }
}
