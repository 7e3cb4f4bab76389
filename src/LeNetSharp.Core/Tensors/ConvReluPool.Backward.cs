using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LeNetSharp.Tensors;

/// <summary>Backward of the fused single-channel conv → ReLU → 2x2 max pool: the weight and bias gradients.</summary>
internal static partial class ConvReluPool<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>
    /// Length of the scratch <see cref="Backward"/> takes: a copy of ∂p with a zero after it, 8 partial sums of ∂b, then
    /// 10 vectors.
    /// </summary>
    public static int BackwardScratchLength(ConvPoolGeometry g) => g.N * g.PH * g.PW * g.OC + 9 + 10 * TOps.Count;

    /// <summary>
    /// ∂K += Σ x-patch·∂y and ∂b += Σ ∂y over the conv outputs in row-major order, ∂y being ∂p at each window's recorded
    /// maximum. <paramref name="xPadded"/> and <paramref name="mask"/> come from <see cref="Forward"/>;
    /// <paramref name="scratch"/> has <see cref="BackwardScratchLength"/> elements.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Backward(ConvPoolGeometry g, T[] xPadded, byte[] mask, T[] outputGradient, T[] weightGradient, T[] biasGradient, T[] scratch)
    {
        // ∂p, then a zero that every window whose maximum is not in the conv row at hand reads instead: no branch on the mask.
        int cells = g.N * g.PH * g.PW * g.OC;
        outputGradient.AsSpan(0, cells).CopyTo(scratch);
        scratch[cells] = T.Zero;
        int w = TOps.Count;
        if (g.KW <= w)
        {
            // Two channels per pass, one vector per kernel row each.
            for (int c = 0; c < g.OC; c += 2) Pass(g, c, Math.Min(c + 1, g.OC - 1), 0, 0, xPadded, mask, scratch, weightGradient, biasGradient);
        }
        else
        {
            // One channel per pass, two vectors per kernel row.
            for (int c = 0; c < g.OC; c++) Pass(g, c, c, 0, w, xPadded, mask, scratch, weightGradient, biasGradient);
        }
    }

    /// <summary>Two slots: (channel <paramref name="ca"/>, kernel columns from <paramref name="offA"/>) and likewise b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Pass(ConvPoolGeometry g, int ca, int cb, int offA, int offB, T[] x, byte[] mask, T[] scratch, T[] dk, T[] db)
    {
        int kh = g.KH, width = g.W, oc = g.OC, zero = g.N * g.PH * g.PW * oc;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero;
        TV b0 = TOps.Zero, b1 = TOps.Zero, b2 = TOps.Zero, b3 = TOps.Zero, b4 = TOps.Zero;
        ref T x0 = ref x[0];
        ref byte m0 = ref mask[0];
        ref T g0 = ref scratch[0];
        // Slot a's partial sums 0–3 of ∂b, then slot b's: conv output m goes to m mod 4, as RowOps.AddColumnSums.
        ref T bias = ref Unsafe.Add(ref g0, zero + 1);
        for (int i = 0; i < 8; i++) Unsafe.Add(ref bias, i) = T.Zero;
        nint w1 = width, w2 = 2 * width, w3 = 3 * width, w4 = 4 * width;
        for (int n = 0; n < g.N; n++)
        {
            for (int pi = 0; pi < g.PH; pi++)
            {
                for (int d = 0; d < 2; d++)
                {
                    // Conv row 2·pi + d, left to right: the windows' maxima that lie in it, in order.
                    int cell = (n * g.PH + pi) * g.PW * oc;
                    int rowStart = (n * g.H + 2 * pi + d) * width;
                    int outputRow = (n * g.OH + 2 * pi + d) * g.OW; // index m of the row's first conv output
                    for (int q = 0; q < g.PW; q++, cell += oc)
                    {
                        int ma = Unsafe.Add(ref m0, cell + ca), mb = Unsafe.Add(ref m0, cell + cb);
                        // The window's gradient when its maximum lies in this row, else the zero (4, no maximum, never matches).
                        int keepA = (((ma >> 1) ^ d) - 1) >> 31, keepB = (((mb >> 1) ^ d) - 1) >> 31;
                        T ga = Unsafe.Add(ref g0, zero + ((cell + ca - zero) & keepA));
                        T gb = Unsafe.Add(ref g0, zero + ((cell + cb - zero) & keepB));
                        int columnA = 2 * q + (ma & 1), columnB = 2 * q + (mb & 1);
                        Unsafe.Add(ref bias, (outputRow + columnA) & 3) += ga;
                        Unsafe.Add(ref bias, 4 + ((outputRow + columnB) & 3)) += gb;
                        ref T pa = ref Unsafe.Add(ref x0, rowStart + columnA + offA);
                        ref T pb = ref Unsafe.Add(ref x0, rowStart + columnB + offB);
                        TV sa = TOps.Broadcast(ga), sb = TOps.Broadcast(gb);
                        a0 = TOps.MultiplyAdd(TOps.Load(ref pa), sa, a0);
                        b0 = TOps.MultiplyAdd(TOps.Load(ref pb), sb, b0);
                        if (kh > 1)
                        {
                            a1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pa, w1)), sa, a1);
                            b1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pb, w1)), sb, b1);
                        }

                        if (kh > 2)
                        {
                            a2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pa, w2)), sa, a2);
                            b2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pb, w2)), sb, b2);
                        }

                        if (kh > 3)
                        {
                            a3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pa, w3)), sa, a3);
                            b3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pb, w3)), sb, b3);
                        }

                        if (kh > 4)
                        {
                            a4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pa, w4)), sa, a4);
                            b4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref pb, w4)), sb, b4);
                        }
                    }
                }
            }
        }

        // The accumulators go to the scratch past ∂p and its zero, then into ∂K; nothing else is live across the loop.
        ref T lanes = ref Unsafe.Add(ref bias, 8);
        StoreRows(ref lanes, a0, a1, a2, a3, a4);
        StoreRows(ref Unsafe.Add(ref lanes, 5 * TOps.Count), b0, b1, b2, b3, b4);
        Finish(g, scratch, zero + 1, ca, offA, cb, offB, dk, db);
    }

    /// <summary>∂K and ∂b of both slots from the partial sums and accumulators stored at <paramref name="bias"/>.</summary>
    private static void Finish(ConvPoolGeometry g, T[] scratch, int bias, int ca, int offA, int cb, int offB, T[] dk, T[] db)
    {
        var stored = scratch.AsSpan(bias + 8, 10 * TOps.Count);
        AddToKernel(g, stored, ca, offA, dk);
        db[ca] = (((db[ca] + scratch[bias]) + scratch[bias + 1]) + scratch[bias + 2]) + scratch[bias + 3];
        if (ca == cb && offA == offB) return; // the clamped second slot repeats the first: written once
        AddToKernel(g, stored[(5 * TOps.Count)..], cb, offB, dk);
        if (ca != cb) db[cb] = (((db[cb] + scratch[bias + 4]) + scratch[bias + 5]) + scratch[bias + 6]) + scratch[bias + 7];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRows(ref T l, TV r0, TV r1, TV r2, TV r3, TV r4)
    {
        int w = TOps.Count;
        TOps.Store(r0, ref l);
        TOps.Store(r1, ref Unsafe.Add(ref l, w));
        TOps.Store(r2, ref Unsafe.Add(ref l, 2 * w));
        TOps.Store(r3, ref Unsafe.Add(ref l, 3 * w));
        TOps.Store(r4, ref Unsafe.Add(ref l, 4 * w));
    }

    /// <summary>∂K[kh, off + l, channel] += lanes[kh·W + l] for the kernel columns this slot covers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void AddToKernel(ConvPoolGeometry g, ReadOnlySpan<T> lanes, int channel, int off, T[] dk)
    {
        int w = TOps.Count, columns = Math.Min(w, g.KW - off);
        for (int r = 0; r < g.KH; r++)
        {
            for (int l = 0; l < columns; l++) dk[(r * g.KW + off + l) * g.OC + channel] += lanes[r * w + l];
        }
    }
}
