using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>Runs <see cref="DirectConv{TOps, TV, T}"/> at a given vector width.</summary>
internal static class DirectConv
{
    /// <summary>Whether <see cref="TryForward"/> runs <paramref name="outChannels"/> output channels at <paramref name="bits"/>-bit vectors.</summary>
    public static bool Supports<T>(int bits, int outChannels) where T : unmanaged, IFloatingPointIeee754<T> => bits switch
    {
        512 => DirectConv<Simd512<T>, Vector512<T>, T>.Supports(outChannels),
        256 => DirectConv<Simd256<T>, Vector256<T>, T>.Supports(outChannels),
        128 => DirectConv<Simd128<T>, Vector128<T>, T>.Supports(outChannels),
        _ => false,
    };

    /// <summary>
    /// y ← conv(x, K) + b (stride 1, no padding) at <paramref name="bits"/>-bit vectors when <paramref name="outChannels"/>
    /// fills a vector of that width; false (nothing written) otherwise.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static bool TryForward<T>(int bits, in ConvGeometry g, int outChannels, T[] x, T[] weight, T[] bias, T[] y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (bits)
        {
            case 512 when DirectConv<Simd512<T>, Vector512<T>, T>.Supports(outChannels):
                DirectConv<Simd512<T>, Vector512<T>, T>.Forward(g, outChannels, x, weight, bias, y);
                return true;
            case 256 when DirectConv<Simd256<T>, Vector256<T>, T>.Supports(outChannels):
                DirectConv<Simd256<T>, Vector256<T>, T>.Forward(g, outChannels, x, weight, bias, y);
                return true;
            case 128 when DirectConv<Simd128<T>, Vector128<T>, T>.Supports(outChannels):
                DirectConv<Simd128<T>, Vector128<T>, T>.Forward(g, outChannels, x, weight, bias, y);
                return true;
            default:
                return false;
        }
    }
}

/// <summary>
/// A convolution (stride 1, no padding) computed straight from the NHWC input, without a patch matrix:
/// <code>
/// input x : (N, H, W, C)   kernel K : (KH, KW, C, OC) = (KH·KW·C, OC) row-major   bias b : (OC)
/// output y : (N, OH, OW, OC), y[m, oc] = (Σ over taps p = (kh, kw, c) in order of x[m + (kh, kw), c]·K[p, oc]) + b[oc]
/// </code>
/// Vectors run over the output channels, at 0, W, 2W, … and the last one shifted back to end at OC (OC ≥ W; shared lanes
/// are computed twice, identically, so a Linear layer's 10 outputs need no padded copy of its weight). Output pixels go
/// in groups of 12: each pair of vectors in two register blocks of 6 pixels × 2 vectors (12 accumulators, 2 kernel
/// vectors, a broadcast: 15 registers), and an odd last vector (OC = W, say, or 3W) in one block of 12 pixels × 1
/// vector (12 accumulators, the kernel vector, a broadcast: 14), so no vector's sums are computed twice. Each block reads
/// its pixels' windows in place: the taps of one kernel row are KW·C contiguous input elements. Each output is the chain
/// SimdGemm computes for im2col + GEMM (fused multiply-adds over p from zero, then + bias), so the results are the same
/// bits whatever the block.
/// </summary>
internal static class DirectConv<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Output pixels of a two-vector block; a group (and a one-vector block) has twice as many.</summary>
    private const int Rows = 6;

    /// <summary>True when <paramref name="outChannels"/> fills at least one vector.</summary>
    public static bool Supports(int outChannels) => outChannels >= TOps.Count;

    /// <summary>y ← conv(x, K) + b for geometry <paramref name="g"/> (stride 1, no padding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Forward(in ConvGeometry g, int outChannels, T[] x, T[] weight, T[] bias, T[] y)
    {
        int w = TOps.Count, oh = g.OH, ow = g.OW, pixels = g.N * oh * ow, group = 2 * Rows;
        int vectors = (outChannels + w - 1) / w, pairs = vectors / 2, single = outChannels - w; // the odd last vector's start
        Span<int> bases = stackalloc int[group];
        T[] packed = (vectors & 1) != 0 ? PackColumn(weight, g.PatchColumns, outChannels, single) : [];
        int i = 0, j = 0, at = 0; // output pixel m's row (over the whole batch) and column; its window's first input element
        for (int m = 0; m < pixels; m += group)
        {
            int rows = Math.Min(group, pixels - m);
            for (int r = 0; r < group; r++)
            {
                // Missing pixels repeat the last one and are not written.
                if (r < rows)
                {
                    bases[r] = at;
                    if (++j < ow)
                    {
                        at += g.C;
                    }
                    else
                    {
                        // Next output row; past an image's last one, the next image (its first KH − 1 input rows skipped).
                        j = 0;
                        at += (g.KW - 1) * g.C + (++i % oh == 0 ? (g.KH - 1) * g.W * g.C : 0) + g.C;
                    }
                }
                else
                {
                    bases[r] = bases[rows - 1];
                }
            }

            for (int p = 0; p < pairs; p++)
            {
                // Vectors 2p and 2p + 1, the second shifted back to end at OC when it is the last.
                int first = 2 * p * w, second = Math.Min(first + w, single);
                Block(g, bases, Math.Min(Rows, rows), x, weight, bias, y, m, first, second - first, outChannels);
                if (rows > Rows) Block(g, bases[Rows..], rows - Rows, x, weight, bias, y, m + Rows, first, second - first, outChannels);
            }

            if ((vectors & 1) != 0) Block12(g, bases, rows, x, packed, bias, y, m, single, outChannels);
        }
    }

    [ThreadStatic] private static T[]? t_packed;

    /// <summary>K's columns v..v+W as <paramref name="taps"/> contiguous vectors, in a per-thread buffer (reused).</summary>
    private static T[] PackColumn(T[] weight, int taps, int oc, int v)
    {
        int w = TOps.Count;
        var packed = t_packed;
        if (packed is null || packed.Length < taps * w) t_packed = packed = new T[taps * w];
        ref T k = ref weight[v];
        ref T dst = ref packed[0];
        for (int t = 0; t < taps; t++) TOps.Store(TOps.Load(ref Unsafe.Add(ref k, (nint)t * oc)), ref Unsafe.Add(ref dst, (nint)t * w));
        return packed;
    }

    /// <summary>Pixels m..m+rows (rows ≤ 6), channels v..v+W and v+second..v+second+W.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block(in ConvGeometry g, Span<int> bases, int rows, T[] x, T[] weight, T[] bias, T[] y, int m, int v, int second, int oc)
    {
        int w = TOps.Count, run = g.KW * g.C, rowStep = g.W * g.C;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero;
        TV b0 = TOps.Zero, b1 = TOps.Zero, b2 = TOps.Zero, b3 = TOps.Zero, b4 = TOps.Zero, b5 = TOps.Zero;
        ref T x0 = ref x[0];
        ref T p0 = ref Unsafe.Add(ref x0, bases[0]), p1 = ref Unsafe.Add(ref x0, bases[1]), p2 = ref Unsafe.Add(ref x0, bases[2]);
        ref T p3 = ref Unsafe.Add(ref x0, bases[3]), p4 = ref Unsafe.Add(ref x0, bases[4]), p5 = ref Unsafe.Add(ref x0, bases[5]);
        ref T k = ref weight[v];
        nint kStep = oc, k1At = second; // native-sized outside the loop: no sign extension a tap
        for (int kh = 0; kh < g.KH; kh++)
        {
            for (nint off = (nint)kh * rowStep, end = off + run; off < end; off++)
            {
                TV k0 = TOps.Load(ref k), k1 = TOps.Load(ref Unsafe.Add(ref k, k1At));
                TV s = TOps.Broadcast(Unsafe.Add(ref p0, off));
                a0 = TOps.MultiplyAdd(s, k0, a0); b0 = TOps.MultiplyAdd(s, k1, b0);
                s = TOps.Broadcast(Unsafe.Add(ref p1, off));
                a1 = TOps.MultiplyAdd(s, k0, a1); b1 = TOps.MultiplyAdd(s, k1, b1);
                s = TOps.Broadcast(Unsafe.Add(ref p2, off));
                a2 = TOps.MultiplyAdd(s, k0, a2); b2 = TOps.MultiplyAdd(s, k1, b2);
                s = TOps.Broadcast(Unsafe.Add(ref p3, off));
                a3 = TOps.MultiplyAdd(s, k0, a3); b3 = TOps.MultiplyAdd(s, k1, b3);
                s = TOps.Broadcast(Unsafe.Add(ref p4, off));
                a4 = TOps.MultiplyAdd(s, k0, a4); b4 = TOps.MultiplyAdd(s, k1, b4);
                s = TOps.Broadcast(Unsafe.Add(ref p5, off));
                a5 = TOps.MultiplyAdd(s, k0, a5); b5 = TOps.MultiplyAdd(s, k1, b5);
                k = ref Unsafe.Add(ref k, kStep);
            }
        }

        TV c0 = TOps.Load(ref bias[v]), c1 = TOps.Load(ref bias[v + second]);
        ref T out0 = ref y[m * oc + v];
        Store(a0, b0, c0, c1, ref out0, second);
        if (rows > 1) Store(a1, b1, c0, c1, ref Unsafe.Add(ref out0, oc), second);
        if (rows > 2) Store(a2, b2, c0, c1, ref Unsafe.Add(ref out0, 2 * oc), second);
        if (rows > 3) Store(a3, b3, c0, c1, ref Unsafe.Add(ref out0, 3 * oc), second);
        if (rows > 4) Store(a4, b4, c0, c1, ref Unsafe.Add(ref out0, 4 * oc), second);
        if (rows > 5) Store(a5, b5, c0, c1, ref Unsafe.Add(ref out0, 5 * oc), second);
    }

    /// <summary>
    /// Pixels m..m+rows (rows ≤ 12), channels v..v+W: one vector, so the block has twice the pixels of a two-vector one
    /// and the same number of accumulators. <paramref name="packed"/> holds the vector's kernel column as
    /// KH·KW·C contiguous vectors, so the kernel pointer steps by a constant: the loop's 12 pixel pointers, the kernel
    /// pointer and the offset fit x64's general registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block12(in ConvGeometry g, Span<int> bases, int rows, T[] x, T[] packed, T[] bias, T[] y, int m, int v, int oc)
    {
        nint w = TOps.Count, run = g.KW * g.C, rowStep = g.W * g.C;
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero;
        TV a6 = TOps.Zero, a7 = TOps.Zero, a8 = TOps.Zero, a9 = TOps.Zero, a10 = TOps.Zero, a11 = TOps.Zero;
        // Each pixel's pointer at the end of its run of the kernel row; the offset counts up from −run to 0.
        ref T x0 = ref x[0];
        ref T p0 = ref Unsafe.Add(ref x0, bases[0] + run), p1 = ref Unsafe.Add(ref x0, bases[1] + run);
        ref T p2 = ref Unsafe.Add(ref x0, bases[2] + run), p3 = ref Unsafe.Add(ref x0, bases[3] + run);
        ref T p4 = ref Unsafe.Add(ref x0, bases[4] + run), p5 = ref Unsafe.Add(ref x0, bases[5] + run);
        ref T p6 = ref Unsafe.Add(ref x0, bases[6] + run), p7 = ref Unsafe.Add(ref x0, bases[7] + run);
        ref T p8 = ref Unsafe.Add(ref x0, bases[8] + run), p9 = ref Unsafe.Add(ref x0, bases[9] + run);
        ref T p10 = ref Unsafe.Add(ref x0, bases[10] + run), p11 = ref Unsafe.Add(ref x0, bases[11] + run);
        ref T k = ref packed[0];
        for (int kh = 0; kh < g.KH; kh++)
        {
            for (nint off = -run; off < 0; off++)
            {
                TV kv = TOps.Load(ref k);
                a0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p0, off)), kv, a0);
                a1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p1, off)), kv, a1);
                a2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p2, off)), kv, a2);
                a3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p3, off)), kv, a3);
                a4 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p4, off)), kv, a4);
                a5 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p5, off)), kv, a5);
                a6 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p6, off)), kv, a6);
                a7 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p7, off)), kv, a7);
                a8 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p8, off)), kv, a8);
                a9 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p9, off)), kv, a9);
                a10 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p10, off)), kv, a10);
                a11 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref p11, off)), kv, a11);
                k = ref Unsafe.Add(ref k, w);
            }

            p0 = ref Unsafe.Add(ref p0, rowStep); p1 = ref Unsafe.Add(ref p1, rowStep); p2 = ref Unsafe.Add(ref p2, rowStep);
            p3 = ref Unsafe.Add(ref p3, rowStep); p4 = ref Unsafe.Add(ref p4, rowStep); p5 = ref Unsafe.Add(ref p5, rowStep);
            p6 = ref Unsafe.Add(ref p6, rowStep); p7 = ref Unsafe.Add(ref p7, rowStep); p8 = ref Unsafe.Add(ref p8, rowStep);
            p9 = ref Unsafe.Add(ref p9, rowStep); p10 = ref Unsafe.Add(ref p10, rowStep); p11 = ref Unsafe.Add(ref p11, rowStep);
        }

        TV c = TOps.Load(ref bias[v]);
        ref T out0 = ref y[m * oc + v];
        TOps.Store(TOps.Add(c, a0), ref out0);
        if (rows > 1) TOps.Store(TOps.Add(c, a1), ref Unsafe.Add(ref out0, oc));
        if (rows > 2) TOps.Store(TOps.Add(c, a2), ref Unsafe.Add(ref out0, 2 * oc));
        if (rows > 3) TOps.Store(TOps.Add(c, a3), ref Unsafe.Add(ref out0, 3 * oc));
        if (rows > 4) TOps.Store(TOps.Add(c, a4), ref Unsafe.Add(ref out0, 4 * oc));
        if (rows > 5) TOps.Store(TOps.Add(c, a5), ref Unsafe.Add(ref out0, 5 * oc));
        if (rows > 6) TOps.Store(TOps.Add(c, a6), ref Unsafe.Add(ref out0, 6 * oc));
        if (rows > 7) TOps.Store(TOps.Add(c, a7), ref Unsafe.Add(ref out0, 7 * oc));
        if (rows > 8) TOps.Store(TOps.Add(c, a8), ref Unsafe.Add(ref out0, 8 * oc));
        if (rows > 9) TOps.Store(TOps.Add(c, a9), ref Unsafe.Add(ref out0, 9 * oc));
        if (rows > 10) TOps.Store(TOps.Add(c, a10), ref Unsafe.Add(ref out0, 10 * oc));
        if (rows > 11) TOps.Store(TOps.Add(c, a11), ref Unsafe.Add(ref out0, 11 * oc));
    }

    /// <summary>One output pixel: bias + accumulator (the GEMM's single rounding of C + X), both vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(TV a, TV b, TV biasA, TV biasB, ref T y, int second)
    {
        TOps.Store(TOps.Add(biasA, a), ref y);
        TOps.Store(TOps.Add(biasB, b), ref Unsafe.Add(ref y, second));
    }
}
