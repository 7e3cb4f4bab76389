using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// A managed SIMD GEMM for the skinny shapes of small convnets (one side long, the other 6–256 wide).
/// <para>
/// Every product is computed as X (ra, rb) = Σ_p U(a, p)·V(p, b), vectorised over b, with 4-row × 4-vector or
/// 8-row × 1-vector register blocks accumulated over the whole of k. Either X = C (a = row of C, b = column) or
/// X = Cᵀ (a = column, b = row): a cost estimate (vector FMAs, packing, scattered writes) picks the orientation per
/// call, so a (1728 × 25)·(25 × 6) product whose A is stored transposed is vectorised over its 1728 rows rather
/// than its 6 columns. V's rows must be contiguous and a whole number of vectors wide; otherwise V is first packed
/// into a per-thread scratch buffer (reused, so steady-state calls allocate nothing). A tile of Cᵀ that covers
/// every column of C is transposed on the stack and written as one contiguous run.
/// </para>
/// </summary>
internal static class SimdGemm<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    [ThreadStatic] private static T[]? t_pack;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Multiply(bool transA, bool transB, int m, int n, int k, T alpha, T[] a, T[] b, T beta, T[] c)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == T.Zero)
        {
            ScaleInPlace(c, beta);
            return;
        }

        int w = TOps.Count;
        // Work estimate of each orientation: vector FMAs, plus a packing pass when V is not usable in place, plus
        // writing C: whole vectors when X = C, one scalar per element when X = Cᵀ.
        long direct = (long)m * Ceil(n, w) * k + (transB || n % w != 0 ? (long)k * n : 0) + (long)m * Ceil(n, w);
        long transposed = (long)n * Ceil(m, w) * k + (!transA || m % w != 0 ? (long)k * m : 0) + (long)m * n;
        if (direct <= transposed)
        {
            // a = i (row of C), b = j. U(i, p) = op(A)[i, p]; V(p, j) = op(B)[p, j]; X[i, j] = C[i·n + j].
            Run(m, n, k, a, transA ? 1 : k, transA ? m : 1, b, contiguous: !transB, vRowStride: transB ? 1 : n, vColStride: transB ? k : 1,
                alpha, beta, c, outRowStride: n, outColStride: 1);
        }
        else
        {
            // a = j (column of C), b = i. U(j, p) = op(B)[p, j]; V(p, i) = op(A)[i, p]; X[j, i] = C[i·n + j].
            Run(n, m, k, b, transB ? k : 1, transB ? 1 : n, a, contiguous: transA, vRowStride: transA ? m : 1, vColStride: transA ? 1 : k,
                alpha, beta, c, outRowStride: 1, outColStride: n);
        }
    }

    /// <summary>
    /// X (ra, rb) = Σ_p U[a·ua + p·up] · V[p·vRowStride + b·vColStride]; C[a·outRowStride + b·outColStride] = alpha·X + beta·C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Run(int ra, int rb, int k, T[] u, int ua, int up, T[] v, bool contiguous, int vRowStride, int vColStride,
        T alpha, T beta, T[] c, int outRowStride, int outColStride)
    {
        int w = TOps.Count;
        int ldv = rb;
        T[] vb = v;
        if (!contiguous || rb % w != 0)
        {
            ldv = Ceil(rb, w) * w;
            vb = Pack(v, k, rb, vRowStride, vColStride, ldv);
        }

        ref T u0 = ref u[0];
        ref T v0 = ref vb[0];
        // A long sum runs in ranges of KRange terms, each range sweeping every block of X while its rows of U and V are
        // in cache; a block carries its accumulators from one range to the next in its own tile (Start), so every
        // element is still one chain of fused multiply-adds over p = 0 … k−1: the same bits as one sweep.
        int blocks = (Ceil(ra, 4) + 3) * (ldv / w);
        int ranges = k > 2 * KRange && (long)blocks * TileElements <= MaxRangeTiles ? Ceil(k, KRange) : 1;
        Span<T> tiles = ranges == 1 ? stackalloc T[TileElements] : RangeTiles(blocks * TileElements);
        for (int r = 0; r < ranges; r++)
        {
            int k0 = r * KRange, length = ranges == 1 ? k : Math.Min(KRange, k - k0);
            ref T ur = ref Unsafe.Add(ref u0, (nint)k0 * up);
            ref T vr = ref Unsafe.Add(ref v0, (nint)k0 * ldv);
            if (ThirtyTwoRegisters) Sweep(ra, length, ref ur, ua, up, ref vr, ldv, tiles, ranges > 1, r > 0, r == ranges - 1, alpha, beta, c, outRowStride, outColStride, rb);
            else RunSixteenRegisters(ra, length, ref ur, ua, up, ref vr, ldv, tiles, ranges > 1, r > 0, r == ranges - 1, alpha, beta, c, outRowStride, outColStride, rb);
        }
    }

    /// <summary>Terms of a sum per range when k is long (see <see cref="Run"/>): a range of U's and V's rows stays in L2.</summary>
    private const int KRange = 256;

    /// <summary>The most tile elements the ranged sweeps keep (one tile a block): 2^20, 4 MiB of float.</summary>
    private const long MaxRangeTiles = 1 << 20;

    [ThreadStatic] private static T[]? t_rangeTiles;

    /// <summary>A per-thread buffer of at least <paramref name="length"/> elements for the blocks' tiles (reused).</summary>
    private static Span<T> RangeTiles(int length)
    {
        var tiles = t_rangeTiles;
        if (tiles is null || tiles.Length < length) t_rangeTiles = tiles = new T[length];
        return tiles.AsSpan(0, length);
    }

    /// <summary>
    /// One sweep over every block of X for k terms from <paramref name="u0"/> and <paramref name="v0"/> (32 vector
    /// registers: 4 × 4-vector and 8 × 2-vector blocks). Ranged: block i keeps its accumulators in tile i of
    /// <paramref name="tiles"/>, starting from them when <paramref name="resume"/>, and C is written only on the
    /// <paramref name="last"/> range.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Sweep(int ra, int k, ref T u0, int ua, int up, ref T v0, int ldv, Span<T> tiles, bool ranged, bool resume, bool last,
        T alpha, T beta, T[] c, int outRowStride, int outColStride, int rb)
    {
        int w = TOps.Count, a = 0, index = 0;
        Span<T> tile = tiles;
        while (a < ra)
        {
            int left = ra - a;
            if ((left >= 8 && ldv < 4 * w) || left is > 4 and < 8)
            {
                // Narrow X (1–3 vectors wide), or 5–7 rows left: 8-row blocks keep 8 FMAs in flight; missing rows
                // repeat the last one and are not written.
                int rows = Math.Min(8, left), b = 0;
                for (; b + 2 * w <= ldv; b += 2 * w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block8x2(ref u0, a * ua, ua, rows, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, rows, 2, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                for (; b < ldv; b += w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block8x1(ref u0, a * ua, ua, rows, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, rows, 1, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                a += rows;
            }
            else if (left >= 4)
            {
                int b = 0;
                for (; b + 4 * w <= ldv; b += 4 * w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block4x4(ref u0, a * ua, ua, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, 4, 4, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                for (; b < ldv; b += w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block4x1(ref u0, a * ua, ua, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, 4, 1, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                a += 4;
            }
            else
            {
                for (int b = 0; b < ldv; b += w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block1x1(ref u0, a * ua, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, 1, 1, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                a++;
            }
        }
    }

    /// <summary>The tile of the next block: its own slice of <paramref name="tiles"/> when ranged, else the one shared tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Span<T> Tile(Span<T> tiles, bool ranged, int index) => ranged ? tiles.Slice(index * TileElements, TileElements) : tiles;

    private const int TileElements = 16 * 64; // 16 vectors of up to 64 elements

    /// <summary>
    /// 512-bit vectors come with 32 registers (AVX-512): 16-accumulator blocks fit. 256- and 128-bit code on x64 has 16
    /// (AVX2, SSE), so it uses 12-accumulator blocks that leave room for the loaded vectors and the broadcast.
    /// </summary>
    private static bool ThirtyTwoRegisters => TOps.Count * Unsafe.SizeOf<T>() >= 64;

    /// <summary>
    /// The block loop for 16 vector registers: 6 rows × 2 vectors (12 accumulators, 2 loaded vectors, a broadcast),
    /// 6 × 1 for a last odd vector, single rows when fewer than 4 are left. Blocks whose 2 vectors lie inside a row of C
    /// (X = C, alpha = 1, beta 0 or 1) store straight into C: with a short k (conv2's ∂P sums only 16 products) the
    /// write-out is as long as the block's arithmetic.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void RunSixteenRegisters(int ra, int k, ref T u0, int ua, int up, ref T v0, int ldv, Span<T> tiles, bool ranged, bool resume, bool last,
        T alpha, T beta, T[] c, int outRowStride, int outColStride, int rb)
    {
        int w = TOps.Count, a = 0, index = 0;
        Span<T> tile = tiles;
        bool directOk = !ranged && outColStride == 1 && alpha == T.One && (beta == T.Zero || beta == T.One);
        while (a < ra)
        {
            int left = ra - a;
            if (left >= 4)
            {
                // Missing rows (4 or 5 left) repeat the last one and are not written.
                int rows = Math.Min(6, left), b = 0;
                for (; b + 2 * w <= ldv; b += 2 * w)
                {
                    if (directOk && rows == 6 && b + 2 * w <= rb)
                    {
                        Block6x2(ref u0, a * ua, ua, rows, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, ref c[a * outRowStride + b], outRowStride, beta == T.One, resume: false);
                        continue;
                    }

                    tile = Tile(tiles, ranged, index++);
                    Block6x2(ref u0, a * ua, ua, rows, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, ref tile[0], 0, false, resume);
                    if (last) WriteTile(tile, rows, 2, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                for (; b < ldv; b += w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block8x1(ref u0, a * ua, ua, rows, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, rows, 1, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                a += rows;
            }
            else
            {
                for (int b = 0; b < ldv; b += w)
                {
                    tile = Tile(tiles, ranged, index++);
                    Block1x1(ref u0, a * ua, up, ref Unsafe.Add(ref v0, b), ldv, k, tile, resume);
                    if (last) WriteTile(tile, 1, 1, a, b, rb, alpha, beta, c, outRowStride, outColStride);
                }

                a++;
            }
        }
    }

    /// <summary>
    /// A 6 × 2-vector block of X. With <paramref name="ldc"/> &gt; 0 it goes straight to C (row r at c + r·ldc, plus C's
    /// old value when <paramref name="accumulate"/>: the same single rounding as the tile path's beta = 1); else to the tile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block6x2(ref T u, int r0, int ua, int rows, int up, ref T v, int ldv, int k, Span<T> tile, ref T c, int ldc, bool accumulate, bool resume)
    {
        int w = TOps.Count;
        ref T t0 = ref tile[0];
        TV x0 = Start(ref t0, 0, resume), y0 = Start(ref t0, 1, resume), x1 = Start(ref t0, 2, resume), y1 = Start(ref t0, 3, resume);
        TV x2 = Start(ref t0, 4, resume), y2 = Start(ref t0, 5, resume), x3 = Start(ref t0, 6, resume), y3 = Start(ref t0, 7, resume);
        TV x4 = Start(ref t0, 8, resume), y4 = Start(ref t0, 9, resume), x5 = Start(ref t0, 10, resume), y5 = Start(ref t0, 11, resume);
        nint ua1 = Row(1, rows, ua), ua2 = Row(2, rows, ua), ua3 = Row(3, rows, ua), ua4 = Row(4, rows, ua), ua5 = Row(5, rows, ua);
        nint pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            ref T vr = ref Unsafe.Add(ref v, pv);
            TV v0 = TOps.Load(ref vr), v1 = TOps.Load(ref Unsafe.Add(ref vr, w));
            ref T ur = ref Unsafe.Add(ref u, pu);
            TV s = TOps.Broadcast(ur);
            x0 = TOps.MultiplyAdd(s, v0, x0); y0 = TOps.MultiplyAdd(s, v1, y0);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua1));
            x1 = TOps.MultiplyAdd(s, v0, x1); y1 = TOps.MultiplyAdd(s, v1, y1);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua2));
            x2 = TOps.MultiplyAdd(s, v0, x2); y2 = TOps.MultiplyAdd(s, v1, y2);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua3));
            x3 = TOps.MultiplyAdd(s, v0, x3); y3 = TOps.MultiplyAdd(s, v1, y3);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua4));
            x4 = TOps.MultiplyAdd(s, v0, x4); y4 = TOps.MultiplyAdd(s, v1, y4);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua5));
            x5 = TOps.MultiplyAdd(s, v0, x5); y5 = TOps.MultiplyAdd(s, v1, y5);
        }

        if (ldc > 0)
        {
            StoreRow(x0, y0, ref c, accumulate);
            StoreRow(x1, y1, ref Unsafe.Add(ref c, ldc), accumulate);
            StoreRow(x2, y2, ref Unsafe.Add(ref c, 2 * ldc), accumulate);
            StoreRow(x3, y3, ref Unsafe.Add(ref c, 3 * ldc), accumulate);
            StoreRow(x4, y4, ref Unsafe.Add(ref c, 4 * ldc), accumulate);
            StoreRow(x5, y5, ref Unsafe.Add(ref c, 5 * ldc), accumulate);
            return;
        }

        // Row r, vector j at (2r + j)·W.
        ref T t = ref tile[0];
        TOps.Store(x0, ref t); TOps.Store(y0, ref Unsafe.Add(ref t, w));
        TOps.Store(x1, ref Unsafe.Add(ref t, 2 * w)); TOps.Store(y1, ref Unsafe.Add(ref t, 3 * w));
        TOps.Store(x2, ref Unsafe.Add(ref t, 4 * w)); TOps.Store(y2, ref Unsafe.Add(ref t, 5 * w));
        TOps.Store(x3, ref Unsafe.Add(ref t, 6 * w)); TOps.Store(y3, ref Unsafe.Add(ref t, 7 * w));
        TOps.Store(x4, ref Unsafe.Add(ref t, 8 * w)); TOps.Store(y4, ref Unsafe.Add(ref t, 9 * w));
        TOps.Store(x5, ref Unsafe.Add(ref t, 10 * w)); TOps.Store(y5, ref Unsafe.Add(ref t, 11 * w));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(TV x, TV y, ref T c, bool accumulate)
    {
        ref T c1 = ref Unsafe.Add(ref c, TOps.Count);
        if (accumulate)
        {
            x = TOps.Add(TOps.Load(ref c), x);
            y = TOps.Add(TOps.Load(ref c1), y);
        }

        TOps.Store(x, ref c);
        TOps.Store(y, ref c1);
    }

    // Each block accumulates over all of k in registers, then stores its accumulators to `tile` (row r, vector v at
    // (r·vectors + v)·W) before anything is written to C: no accumulator is live across a call, so none is spilled.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block4x4(ref T u, int r0, int ua, int up, ref T v, int ldv, int k, Span<T> tile, bool resume)
    {
        int w = TOps.Count;
        ref T t0 = ref tile[0];
        TV x00 = Start(ref t0, 0, resume), x01 = Start(ref t0, 1, resume), x02 = Start(ref t0, 2, resume), x03 = Start(ref t0, 3, resume);
        TV x10 = Start(ref t0, 4, resume), x11 = Start(ref t0, 5, resume), x12 = Start(ref t0, 6, resume), x13 = Start(ref t0, 7, resume);
        TV x20 = Start(ref t0, 8, resume), x21 = Start(ref t0, 9, resume), x22 = Start(ref t0, 10, resume), x23 = Start(ref t0, 11, resume);
        TV x30 = Start(ref t0, 12, resume), x31 = Start(ref t0, 13, resume), x32 = Start(ref t0, 14, resume), x33 = Start(ref t0, 15, resume);
        nint ua1 = ua, ua2 = 2 * ua, ua3 = 3 * ua, pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            ref T vr = ref Unsafe.Add(ref v, pv);
            TV v0 = TOps.Load(ref vr), v1 = TOps.Load(ref Unsafe.Add(ref vr, w));
            TV v2 = TOps.Load(ref Unsafe.Add(ref vr, 2 * w)), v3 = TOps.Load(ref Unsafe.Add(ref vr, 3 * w));
            ref T ur = ref Unsafe.Add(ref u, pu);
            TV s = TOps.Broadcast(ur);
            x00 = TOps.MultiplyAdd(s, v0, x00); x01 = TOps.MultiplyAdd(s, v1, x01); x02 = TOps.MultiplyAdd(s, v2, x02); x03 = TOps.MultiplyAdd(s, v3, x03);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua1));
            x10 = TOps.MultiplyAdd(s, v0, x10); x11 = TOps.MultiplyAdd(s, v1, x11); x12 = TOps.MultiplyAdd(s, v2, x12); x13 = TOps.MultiplyAdd(s, v3, x13);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua2));
            x20 = TOps.MultiplyAdd(s, v0, x20); x21 = TOps.MultiplyAdd(s, v1, x21); x22 = TOps.MultiplyAdd(s, v2, x22); x23 = TOps.MultiplyAdd(s, v3, x23);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua3));
            x30 = TOps.MultiplyAdd(s, v0, x30); x31 = TOps.MultiplyAdd(s, v1, x31); x32 = TOps.MultiplyAdd(s, v2, x32); x33 = TOps.MultiplyAdd(s, v3, x33);
        }

        ref T t = ref tile[0];
        TOps.Store(x00, ref t); TOps.Store(x01, ref Unsafe.Add(ref t, w)); TOps.Store(x02, ref Unsafe.Add(ref t, 2 * w)); TOps.Store(x03, ref Unsafe.Add(ref t, 3 * w));
        TOps.Store(x10, ref Unsafe.Add(ref t, 4 * w)); TOps.Store(x11, ref Unsafe.Add(ref t, 5 * w)); TOps.Store(x12, ref Unsafe.Add(ref t, 6 * w)); TOps.Store(x13, ref Unsafe.Add(ref t, 7 * w));
        TOps.Store(x20, ref Unsafe.Add(ref t, 8 * w)); TOps.Store(x21, ref Unsafe.Add(ref t, 9 * w)); TOps.Store(x22, ref Unsafe.Add(ref t, 10 * w)); TOps.Store(x23, ref Unsafe.Add(ref t, 11 * w));
        TOps.Store(x30, ref Unsafe.Add(ref t, 12 * w)); TOps.Store(x31, ref Unsafe.Add(ref t, 13 * w)); TOps.Store(x32, ref Unsafe.Add(ref t, 14 * w)); TOps.Store(x33, ref Unsafe.Add(ref t, 15 * w));
    }

    /// <summary>
    /// Accumulator <paramref name="i"/> of a block at the start of its k range: 0, or (<paramref name="resume"/>) the
    /// value the block stored at i·W of its tile after the previous range, so that a chain of fused multiply-adds split
    /// into ranges is the same chain, bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Start(ref T tile, int i, bool resume) => resume ? TOps.Load(ref Unsafe.Add(ref tile, i * TOps.Count)) : TOps.Zero;

    /// <summary>Offset of block row <paramref name="i"/>; rows past the last re-read it (their results are not written).</summary>
    private static nint Row(int i, int rows, int ua) => (nint)Math.Min(i, rows - 1) * ua;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block8x2(ref T u, int r0, int ua, int rows, int up, ref T v, int ldv, int k, Span<T> tile, bool resume)
    {
        int w = TOps.Count;
        ref T t0 = ref tile[0];
        TV x0 = Start(ref t0, 0, resume), y0 = Start(ref t0, 1, resume), x1 = Start(ref t0, 2, resume), y1 = Start(ref t0, 3, resume);
        TV x2 = Start(ref t0, 4, resume), y2 = Start(ref t0, 5, resume), x3 = Start(ref t0, 6, resume), y3 = Start(ref t0, 7, resume);
        TV x4 = Start(ref t0, 8, resume), y4 = Start(ref t0, 9, resume), x5 = Start(ref t0, 10, resume), y5 = Start(ref t0, 11, resume);
        TV x6 = Start(ref t0, 12, resume), y6 = Start(ref t0, 13, resume), x7 = Start(ref t0, 14, resume), y7 = Start(ref t0, 15, resume);
        nint ua1 = Row(1, rows, ua), ua2 = Row(2, rows, ua), ua3 = Row(3, rows, ua), ua4 = Row(4, rows, ua);
        nint ua5 = Row(5, rows, ua), ua6 = Row(6, rows, ua), ua7 = Row(7, rows, ua), pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            ref T vr = ref Unsafe.Add(ref v, pv);
            TV v0 = TOps.Load(ref vr), v1 = TOps.Load(ref Unsafe.Add(ref vr, w));
            ref T ur = ref Unsafe.Add(ref u, pu);
            TV s = TOps.Broadcast(ur);
            x0 = TOps.MultiplyAdd(s, v0, x0); y0 = TOps.MultiplyAdd(s, v1, y0);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua1));
            x1 = TOps.MultiplyAdd(s, v0, x1); y1 = TOps.MultiplyAdd(s, v1, y1);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua2));
            x2 = TOps.MultiplyAdd(s, v0, x2); y2 = TOps.MultiplyAdd(s, v1, y2);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua3));
            x3 = TOps.MultiplyAdd(s, v0, x3); y3 = TOps.MultiplyAdd(s, v1, y3);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua4));
            x4 = TOps.MultiplyAdd(s, v0, x4); y4 = TOps.MultiplyAdd(s, v1, y4);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua5));
            x5 = TOps.MultiplyAdd(s, v0, x5); y5 = TOps.MultiplyAdd(s, v1, y5);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua6));
            x6 = TOps.MultiplyAdd(s, v0, x6); y6 = TOps.MultiplyAdd(s, v1, y6);
            s = TOps.Broadcast(Unsafe.Add(ref ur, ua7));
            x7 = TOps.MultiplyAdd(s, v0, x7); y7 = TOps.MultiplyAdd(s, v1, y7);
        }

        // Row r, vector j at (2r + j)·W.
        ref T t = ref tile[0];
        TOps.Store(x0, ref t); TOps.Store(y0, ref Unsafe.Add(ref t, w));
        TOps.Store(x1, ref Unsafe.Add(ref t, 2 * w)); TOps.Store(y1, ref Unsafe.Add(ref t, 3 * w));
        TOps.Store(x2, ref Unsafe.Add(ref t, 4 * w)); TOps.Store(y2, ref Unsafe.Add(ref t, 5 * w));
        TOps.Store(x3, ref Unsafe.Add(ref t, 6 * w)); TOps.Store(y3, ref Unsafe.Add(ref t, 7 * w));
        TOps.Store(x4, ref Unsafe.Add(ref t, 8 * w)); TOps.Store(y4, ref Unsafe.Add(ref t, 9 * w));
        TOps.Store(x5, ref Unsafe.Add(ref t, 10 * w)); TOps.Store(y5, ref Unsafe.Add(ref t, 11 * w));
        TOps.Store(x6, ref Unsafe.Add(ref t, 12 * w)); TOps.Store(y6, ref Unsafe.Add(ref t, 13 * w));
        TOps.Store(x7, ref Unsafe.Add(ref t, 14 * w)); TOps.Store(y7, ref Unsafe.Add(ref t, 15 * w));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block8x1(ref T u, int r0, int ua, int rows, int up, ref T v, int ldv, int k, Span<T> tile, bool resume)
    {
        int w = TOps.Count;
        ref T t0 = ref tile[0];
        TV x0 = Start(ref t0, 0, resume), x1 = Start(ref t0, 1, resume), x2 = Start(ref t0, 2, resume), x3 = Start(ref t0, 3, resume);
        TV x4 = Start(ref t0, 4, resume), x5 = Start(ref t0, 5, resume), x6 = Start(ref t0, 6, resume), x7 = Start(ref t0, 7, resume);
        nint ua1 = Row(1, rows, ua), ua2 = Row(2, rows, ua), ua3 = Row(3, rows, ua), ua4 = Row(4, rows, ua);
        nint ua5 = Row(5, rows, ua), ua6 = Row(6, rows, ua), ua7 = Row(7, rows, ua), pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            TV v0 = TOps.Load(ref Unsafe.Add(ref v, pv));
            ref T ur = ref Unsafe.Add(ref u, pu);
            x0 = TOps.MultiplyAdd(TOps.Broadcast(ur), v0, x0);
            x1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua1)), v0, x1);
            x2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua2)), v0, x2);
            x3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua3)), v0, x3);
            x4 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua4)), v0, x4);
            x5 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua5)), v0, x5);
            x6 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua6)), v0, x6);
            x7 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua7)), v0, x7);
        }

        ref T t = ref tile[0];
        TOps.Store(x0, ref t); TOps.Store(x1, ref Unsafe.Add(ref t, w)); TOps.Store(x2, ref Unsafe.Add(ref t, 2 * w)); TOps.Store(x3, ref Unsafe.Add(ref t, 3 * w));
        TOps.Store(x4, ref Unsafe.Add(ref t, 4 * w)); TOps.Store(x5, ref Unsafe.Add(ref t, 5 * w)); TOps.Store(x6, ref Unsafe.Add(ref t, 6 * w)); TOps.Store(x7, ref Unsafe.Add(ref t, 7 * w));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block4x1(ref T u, int r0, int ua, int up, ref T v, int ldv, int k, Span<T> tile, bool resume)
    {
        int w = TOps.Count;
        ref T t0 = ref tile[0];
        TV x0 = Start(ref t0, 0, resume), x1 = Start(ref t0, 1, resume), x2 = Start(ref t0, 2, resume), x3 = Start(ref t0, 3, resume);
        nint ua1 = ua, ua2 = 2 * ua, ua3 = 3 * ua, pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            TV v0 = TOps.Load(ref Unsafe.Add(ref v, pv));
            ref T ur = ref Unsafe.Add(ref u, pu);
            x0 = TOps.MultiplyAdd(TOps.Broadcast(ur), v0, x0);
            x1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua1)), v0, x1);
            x2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua2)), v0, x2);
            x3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref ur, ua3)), v0, x3);
        }

        ref T t = ref tile[0];
        TOps.Store(x0, ref t); TOps.Store(x1, ref Unsafe.Add(ref t, w)); TOps.Store(x2, ref Unsafe.Add(ref t, 2 * w)); TOps.Store(x3, ref Unsafe.Add(ref t, 3 * w));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void Block1x1(ref T u, int r0, int up, ref T v, int ldv, int k, Span<T> tile, bool resume)
    {
        // One accumulator: every element of X is the same chain of fused multiply-adds over p = 0, 1, …, k−1 in every
        // block shape and at every vector width, so results are bitwise identical whatever the width.
        TV x0 = Start(ref tile[0], 0, resume);
        nint pu = r0, pv = 0;
        for (int p = 0; p < k; p++, pu += up, pv += ldv)
        {
            x0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, pu)), TOps.Load(ref Unsafe.Add(ref v, pv)), x0);
        }

        TOps.Store(x0, ref tile[0]);
    }

    /// <summary>
    /// C[(a + r)·ors + (b + v·W + l)·ocs] ← alpha·tile + beta·C for rows r &lt; rows, vectors v &lt; vectors and columns
    /// below rb; beta = 0 never reads C (so NaN in C is not kept).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void WriteTile(Span<T> tile, int rows, int vectors, int a, int b, int rb, T alpha, T beta, T[] c, int ors, int ocs)
    {
        int w = TOps.Count;
        ref T c0 = ref c[0];
        for (int r = 0; r < rows; r++)
        {
            for (int vi = 0; vi < vectors; vi++)
            {
                int col = b + vi * w;
                ref T x = ref Unsafe.AsRef(in tile[(r * vectors + vi) * w]);
                int start = (a + r) * ors + col * ocs;
                if (ocs == 1 && start + w <= c.Length)
                {
                    // A whole vector of C fits in the array: compute all lanes, keep C's own values in lanes past rb.
                    ref T dst = ref Unsafe.Add(ref c0, start);
                    TV y = TOps.Load(ref x);
                    if (alpha != T.One) y = TOps.Multiply(y, TOps.Broadcast(alpha));
                    TV old = TOps.Load(ref dst);
                    if (beta != T.Zero) y = TOps.MultiplyAdd(old, TOps.Broadcast(beta), y);
                    TOps.Store(col + w <= rb ? y : TOps.SelectLow(y, old, rb - col), ref dst);
                    continue;
                }

                int count = Math.Min(w, rb - col);
                if (ocs != 1 && ors == 1 && a == 0 && rows == ocs && b + vectors * w <= rb)
                {
                    // X = Cᵀ and this tile holds every column of C for vectors·W consecutive rows: those rows are one
                    // contiguous run. Transpose the tile on the stack, then combine whole vectors.
                    WriteTransposedRun(tile, rows, vectors, b, alpha, beta, c);
                    return;
                }

                ref T row0 = ref Unsafe.Add(ref c0, start);
                if (beta == T.Zero)
                {
                    for (int l = 0; l < count; l++) Unsafe.Add(ref row0, l * ocs) = alpha * Unsafe.Add(ref x, l);
                }
                else
                {
                    for (int l = 0; l < count; l++)
                    {
                        ref T dst = ref Unsafe.Add(ref row0, l * ocs);
                        dst = T.FusedMultiplyAdd(dst, beta, alpha * Unsafe.Add(ref x, l)); // as the vector path: one rounding
                    }
                }
            }
        }
    }

    /// <summary>
    /// C[(col + i)·rows + r] ← alpha·X + beta·C[…] for i &lt; vectors·W, r &lt; rows, where X[r, i] is lane i mod W of
    /// vector i / W of tile row r: a contiguous run of C.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static void WriteTransposedRun(Span<T> tile, int rows, int vectors, int col, T alpha, T beta, T[] c)
    {
        int w = TOps.Count, width = vectors * w, length = width * rows;
        Span<T> run = tile[(TileElements / 2)..]; // the tile's upper half is free: a narrow tile uses at most 16·W elements
        ref T t0 = ref MemoryMarshal.GetReference(tile);
        ref T src0 = ref MemoryMarshal.GetReference(run);
        for (int r = 0; r < rows; r++)
        {
            for (int x = 0; x < width; x++) Unsafe.Add(ref src0, x * rows + r) = Unsafe.Add(ref t0, r * width + x);
        }

        ref T dst0 = ref c[col * rows];
        int i = 0;
        for (; i + w <= length; i += w)
        {
            ref T dst = ref Unsafe.Add(ref dst0, i);
            TV y = TOps.Load(ref Unsafe.Add(ref src0, i));
            if (alpha != T.One) y = TOps.Multiply(y, TOps.Broadcast(alpha));
            if (beta != T.Zero) y = TOps.MultiplyAdd(TOps.Load(ref dst), TOps.Broadcast(beta), y);
            TOps.Store(y, ref dst);
        }

        for (; i < length; i++)
        {
            ref T dst = ref Unsafe.Add(ref dst0, i);
            T value = Unsafe.Add(ref src0, i);
            dst = beta == T.Zero ? alpha * value : T.FusedMultiplyAdd(dst, beta, alpha * value);
        }
    }

    /// <summary>Copies V (k, rb), element (p, b) at p·rowStride + b·colStride, into a zero-padded (k, ldv) row-major scratch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    private static T[] Pack(T[] v, int k, int rb, int rowStride, int colStride, int ldv)
    {
        int size = k * ldv;
        var pack = t_pack;
        if (pack is null || pack.Length < size) t_pack = pack = new T[Math.Max(size, 4096)];
        int w = TOps.Count;
        ref T v0 = ref v[0];
        ref T pack0 = ref pack[0];
        for (int p = 0; p < k; p++)
        {
            Span<T> dst = pack.AsSpan(p * ldv, ldv);
            int src = p * rowStride;
            if (colStride == 1 && rb < w && src + w <= v.Length)
            {
                // A short row: one vector load, lanes past rb zeroed.
                TOps.Store(TOps.SelectLow(TOps.Load(ref Unsafe.Add(ref v0, src)), TOps.Zero, rb), ref Unsafe.Add(ref pack0, p * ldv));
                continue;
            }

            if (colStride == 1)
            {
                v.AsSpan(src, rb).CopyTo(dst);
            }
            else
            {
                for (int bi = 0; bi < rb; bi++, src += colStride) dst[bi] = v[src];
            }

            dst[rb..].Clear();
        }

        return pack;
    }

    private static void ScaleInPlace(T[] c, T beta)
    {
        if (beta == T.Zero) Array.Clear(c);
        else if (beta != T.One) for (int i = 0; i < c.Length; i++) c[i] *= beta;
    }

    private static int Ceil(int x, int w) => (x + w - 1) / w;
}

/// <summary>
/// <see cref="GemmProvider"/> backed by <see cref="SimdGemm{TOps, TV, T}"/> at one vector width.
/// </summary>
internal sealed class SimdGemmProvider : GemmProvider
{
    private readonly int _bits;

    public SimdGemmProvider(int bits)
    {
        bool ok = bits switch
        {
            512 => Vector512.IsHardwareAccelerated,
            256 => Vector256.IsHardwareAccelerated,
            128 => true, // software fallback where not accelerated: correct, just slow
            _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Vector width must be 128, 256 or 512 bits."),
        };
        if (!ok) throw new PlatformNotSupportedException($"{bits}-bit vectors are not hardware-accelerated on this machine.");
        _bits = bits;
    }

    public int VectorBits => _bits;

    public override string Name => $"simd (Vector{_bits})";

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public override void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, float[] a, float[] b, float beta, float[] c)
    {
        switch (_bits)
        {
            case 512: SimdGemm<Simd512<float>, Vector512<float>, float>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
            case 256: SimdGemm<Simd256<float>, Vector256<float>, float>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
            default: SimdGemm<Simd128<float>, Vector128<float>, float>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
        }
    }

    public override void Multiply(bool transA, bool transB, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[] c)
    {
        switch (_bits)
        {
            case 512: SimdGemm<Simd512<double>, Vector512<double>, double>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
            case 256: SimdGemm<Simd256<double>, Vector256<double>, double>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
            default: SimdGemm<Simd128<double>, Vector128<double>, double>.Multiply(transA, transB, m, n, k, alpha, a, b, beta, c); break;
        }
    }
}
