using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>Backward of the fused single-channel conv → ReLU → 2x2 max pool: the weight and bias gradients.</summary>
internal static partial class ConvReluPool<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Elements of one channel's list (<c>int[]</c> and <c>T[]</c>, each).</summary>
    private static int ListLength(ConvPoolGeometry g) => g.N * g.PH * g.PW + g.PW + 2;

    /// <summary>Elements of the lists <see cref="Backward"/> takes (<c>int[]</c> and <c>T[]</c>, each): two channels' at a time.</summary>
    public static int BackwardListLength(ConvPoolGeometry g) => 2 * ListLength(g);

    /// <summary>Elements of the <c>lanes</c> scratch of <see cref="Backward"/>: per channel of a pair, 5 kernel-row vectors and 2 of partial sums.</summary>
    public static int LanesLength => 2 * Lanes;

    /// <summary>One channel's share of <see cref="LanesLength"/>.</summary>
    private static int Lanes => 7 * TOps.Count;

    /// <summary>
    /// ∂K += Σ x-patch·∂y and ∂b += Σ ∂y over the conv outputs in row-major order, ∂y being ∂p at each window's recorded
    /// maximum. <paramref name="xPadded"/> and <paramref name="mask"/> come from <see cref="Forward"/>;
    /// <paramref name="patches"/> and <paramref name="values"/> are scratch of <see cref="BackwardListLength"/>, and
    /// <paramref name="lanes"/> of <see cref="LanesLength"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Backward(ConvPoolGeometry g, T[] xPadded, T[] mask, T[] outputGradient, T[] weightGradient, T[] biasGradient,
        int[] patches, T[] values, T[] lanes)
    {
        if (TOps.Count * Unsafe.SizeOf<T>() == 64 && g.KW <= Vector256<T>.Count)
        {
            // A kernel row fits a 256-bit vector: twice the lanes load twice the bytes for the same sums (each lane is
            // its own chain, so the bits are the same).
            ConvReluPool<Simd256<T>, Vector256<T>, T>.Backward(g, xPadded, mask, outputGradient, weightGradient, biasGradient, patches, values, lanes);
            return;
        }

        // Two channels at a time: each one's sums are chains of dependent FMAs, and two chains keep the core busy
        // where one waits on the FMA's latency. A lone last channel pairs with itself.
        int second = ListLength(g);
        for (int c = 0; c < g.OC; c += 2)
        {
            int d = Math.Min(c + 1, g.OC - 1);
            int countC = List(g, c, mask, outputGradient, patches, values, 0);
            int countD = d == c ? countC : List(g, d, mask, outputGradient, patches, values, second);
            // A vector spans a kernel row; a kernel wider than a vector takes a second pass over its other columns.
            for (int off = 0; off < g.KW; off += TOps.Count)
            {
                Sum(g, off, countC, countD, second, xPadded, patches, values, lanes, withBias: off == 0);
                AddToKernel(g, lanes, 0, c, off, weightGradient);
                if (d != c) AddToKernel(g, lanes, Lanes, d, off, weightGradient);
            }

            // ∂b from the partial sums by conv output mod 4, as RowOps.AddColumnSums.
            int b = 5 * TOps.Count;
            biasGradient[c] = (((biasGradient[c] + lanes[b]) + lanes[b + 1]) + lanes[b + 2]) + lanes[b + 3];
            if (d == c) continue;
            b += Lanes;
            biasGradient[d] = (((biasGradient[d] + lanes[b]) + lanes[b + 1]) + lanes[b + 2]) + lanes[b + 3];
        }
    }

    /// <summary>
    /// Channel <paramref name="c"/>'s windows that pass a gradient, in the row-major order of their maxima over the whole
    /// batch: per pooled row, those whose maximum lies in the upper conv row, then the lower. Each entry: where the
    /// maximum's patch starts in x, times 4, plus its conv output index mod 4; and ∂p. Branch-free: every window is written
    /// to both lists and counted in the one it belongs to. Written from <paramref name="start"/>; returns the count.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static int List(ConvPoolGeometry g, int c, T[] mask, T[] dp, int[] patches, T[] values, int start)
    {
        int oc = g.OC, pw = g.PW, count = 0, lower = g.N * g.PH * pw + 1; // the lower rows' entries wait at the end
        // Row k of the table, for window position k (0–3; 4: no maximum): the maximum's offset in x and in the conv
        // output from the window's top-left corner, whether it joins the upper list, whether the lower.
        Span<int> table = [0, 0, 1, 0, 1, 1, 1, 0, g.W, g.OW, 0, 1, g.W + 1, g.OW + 1, 0, 1, 0, 0, 0, 0];
        ref int t0 = ref table[0];
        ref T m0 = ref mask[0];
        ref T g0 = ref dp[0];
        ref int p0 = ref patches[start];
        ref T v0 = ref values[start];
        for (int n = 0; n < g.N; n++)
        {
            for (int pi = 0; pi < g.PH; pi++)
            {
                int cell = (n * g.PH + pi) * pw * oc + c, lowerCount = 0;
                int x = (n * g.H + 2 * pi) * g.W, output = (n * g.OH + 2 * pi) * g.OW; // the windows' top-left corners
                for (int q = 0; q < pw; q++, cell += oc, x += 2, output += 2)
                {
                    ref int row = ref Unsafe.Add(ref t0, 4 * Math.Min((int)Unsafe.As<T, byte>(ref Unsafe.Add(ref m0, cell)), 4)); // see Position
                    int entry = ((x + row) << 2) | ((output + Unsafe.Add(ref row, 1)) & 3);
                    T value = Unsafe.Add(ref g0, cell);
                    Unsafe.Add(ref p0, count) = entry;
                    Unsafe.Add(ref v0, count) = value;
                    Unsafe.Add(ref p0, lower + lowerCount) = entry;
                    Unsafe.Add(ref v0, lower + lowerCount) = value;
                    count += Unsafe.Add(ref row, 2);
                    lowerCount += Unsafe.Add(ref row, 3);
                }

                // All PW slots, whatever lowerCount is: a loop of fixed length is predicted, one that ends after
                // lowerCount (data) is not; the entries past lowerCount land past the list's end, where nothing reads.
                // Reading ahead of the writes (count < lower), so no entry is overwritten before it is copied.
                for (int i = 0; i < pw; i++)
                {
                    Unsafe.Add(ref p0, count + i) = Unsafe.Add(ref p0, lower + i);
                    Unsafe.Add(ref v0, count + i) = Unsafe.Add(ref v0, lower + i);
                }

                count += lowerCount;
            }
        }

        return count;
    }

    /// <summary>
    /// Over the listed maxima in order, from zero: one vector per kernel row of ∂p·x from kernel column
    /// <paramref name="off"/> on, and (<paramref name="withBias"/>) ∂p added to lane (conv output mod 4) of a partial-sum
    /// vector, the other lanes kept as they are (selected, not multiplied by 0: an infinite ∂p leaves them finite):
    /// exactly the scalar sums. Two channels' lists at once (the second's at <paramref name="second"/>), each channel's
    /// chains in its own order; stored to <paramref name="lanes"/>, the second channel's after the first's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Sum(ConvPoolGeometry g, int off, int countC, int countD, int second, T[] x, int[] patches, T[] values, T[] lanes, bool withBias)
    {
        int kh = g.KH, w = TOps.Count, both = Math.Min(countC, countD);
        nint row = g.W; // from a kernel row to the next in x
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, b0 = TOps.Zero, b1 = TOps.Zero;
        TV c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero, c3 = TOps.Zero, c4 = TOps.Zero, d0 = TOps.Zero, d1 = TOps.Zero;
        ref T x0 = ref Unsafe.Add(ref x[0], off);
        ref int p0 = ref patches[0], q0 = ref patches[second];
        ref T v0 = ref values[0], u0 = ref values[second];
        for (int i = 0; i < both; i++)
        {
            Step(kh, row, ref x0, Unsafe.Add(ref p0, i), Unsafe.Add(ref v0, i), withBias, ref a0, ref a1, ref a2, ref a3, ref a4, ref b0, ref b1);
            Step(kh, row, ref x0, Unsafe.Add(ref q0, i), Unsafe.Add(ref u0, i), withBias, ref c0, ref c1, ref c2, ref c3, ref c4, ref d0, ref d1);
        }

        for (int i = both; i < countC; i++) Step(kh, row, ref x0, Unsafe.Add(ref p0, i), Unsafe.Add(ref v0, i), withBias, ref a0, ref a1, ref a2, ref a3, ref a4, ref b0, ref b1);
        for (int i = both; i < countD; i++) Step(kh, row, ref x0, Unsafe.Add(ref q0, i), Unsafe.Add(ref u0, i), withBias, ref c0, ref c1, ref c2, ref c3, ref c4, ref d0, ref d1);

        ref T l = ref lanes[0];
        StoreRows(ref l, a0, a1, a2, a3, a4);
        StoreRows(ref Unsafe.Add(ref l, Lanes), c0, c1, c2, c3, c4);
        if (!withBias) return;
        TOps.Store(b0, ref Unsafe.Add(ref l, 5 * w));
        TOps.Store(d0, ref Unsafe.Add(ref l, Lanes + 5 * w));
        if (TOps.Count >= 4) return;
        TOps.Store(b1, ref Unsafe.Add(ref l, 6 * w));
        TOps.Store(d1, ref Unsafe.Add(ref l, Lanes + 6 * w));
    }

    /// <summary>One listed maximum into one channel's kernel-row sums (and partial bias sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(int kh, nint row, ref T x0, int entry, T value, bool withBias, ref TV a0, ref TV a1, ref TV a2, ref TV a3, ref TV a4, ref TV b0, ref TV b1)
    {
        ref T p = ref Unsafe.Add(ref x0, entry >> 2);
        TV s = TOps.Broadcast(value);
        a0 = TOps.MultiplyAdd(TOps.Load(ref p), s, a0);
        if (kh > 1) a1 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, row)), s, a1);
        if (kh > 2) a2 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 2 * row)), s, a2);
        if (kh > 3) a3 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 3 * row)), s, a3);
        if (kh > 4) a4 = TOps.MultiplyAdd(TOps.Load(ref Unsafe.Add(ref p, 4 * row)), s, a4);
        if (!withBias) return;
        ref T on = ref Unsafe.Add(ref LaneMasks[0], (entry & 3) * Math.Max(4, TOps.Count));
        b0 = TOps.Select(TOps.Load(ref on), TOps.Add(b0, s), b0);
        if (TOps.Count < 4) b1 = TOps.Select(TOps.Load(ref Unsafe.Add(ref on, TOps.Count)), TOps.Add(b1, s), b1); // two lanes a vector
    }

    /// <summary>Row s (s = 0–3, rows of max(4, W) elements): all bits set in column s (a lane mask, never a number), 0 elsewhere.</summary>
    private static readonly T[] LaneMasks = MakeLaneMasks();

    private static T[] MakeLaneMasks()
    {
        int row = Math.Max(4, TOps.Count);
        var masks = new T[4 * row + TOps.Count];
        for (int s = 0; s < 4; s++) MemoryMarshal.AsBytes(masks.AsSpan(s * row + s, 1)).Fill(0xFF);
        return masks;
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

    /// <summary>∂K[kh, off + l, channel] += lanes[at + kh·W + l] for the kernel columns this slot covers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void AddToKernel(ConvPoolGeometry g, T[] lanes, int at, int channel, int off, T[] dk)
    {
        int w = TOps.Count, columns = Math.Min(w, g.KW - off);
        for (int r = 0; r < g.KH; r++)
        {
            for (int l = 0; l < columns; l++) dk[(r * g.KW + off + l) * g.OC + channel] += lanes[at + r * w + l];
        }
    }
}
