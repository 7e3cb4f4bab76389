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
/// are computed twice, identically, so a Linear layer's 10 outputs need no padded copy of its weight); a register block
/// holds 6 output pixels × 2 vectors (12 accumulators, 2 kernel vectors, a broadcast: 16 ymm registers), reading each pixel's window in
/// place: the taps of one kernel row are KW·C contiguous input elements. Each output is the chain SimdGemm computes
/// for im2col + GEMM (fused multiply-adds over p from zero, then + bias), so the results are the same bits.
/// </summary>
internal static class DirectConv<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int Rows = 6;

    /// <summary>True when <paramref name="outChannels"/> fills at least one vector.</summary>
    public static bool Supports(int outChannels) => outChannels >= TOps.Count;

    /// <summary>y ← conv(x, K) + b for geometry <paramref name="g"/> (stride 1, no padding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Forward(in ConvGeometry g, int outChannels, T[] x, T[] weight, T[] bias, T[] y)
    {
        int w = TOps.Count, oh = g.OH, ow = g.OW, pixels = g.N * oh * ow;
        Span<int> bases = stackalloc int[Rows];
        int i = 0, j = 0, at = 0; // output pixel m's row (over the whole batch) and column; its window's first input element
        for (int m = 0; m < pixels; m += Rows)
        {
            int rows = Math.Min(Rows, pixels - m);
            for (int r = 0; r < Rows; r++)
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

            for (int v = 0; v < outChannels; v += 2 * w)
            {
                int first = Math.Min(v, outChannels - w), second = Math.Min(v + w, outChannels - w);
                Block(g, bases, rows, x, weight, bias, y, m, first, second - first, outChannels);
                if (second + w >= outChannels) break;
            }
        }
    }

    /// <summary>Pixels m..m+rows, channels v..v+W and v+second..v+second+W (second = 0: one vector, computed twice).</summary>
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

    /// <summary>One output pixel: bias + accumulator (the GEMM's single rounding of C + X), both vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(TV a, TV b, TV biasA, TV biasB, ref T y, int second)
    {
        TOps.Store(TOps.Add(biasA, a), ref y);
        TOps.Store(TOps.Add(biasB, b), ref Unsafe.Add(ref y, second));
    }
}
