using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>
/// A managed SIMD GEMM for the skinny shapes of small convnets (one side long, the other 6–256 wide).
/// <para>
/// Every product is computed as X (ra, rb) = Σ_p U(a, p)·V(p, b), vectorised over b, with a 4-row × 4-vector
/// register block accumulated over the whole of k. Either X = C (a = row of C, b = column) or X = Cᵀ
/// (a = column, b = row): the orientation that keeps more vector lanes busy is chosen per call, so a
/// (1728 × 25)·(25 × 6) product is vectorised over its 1728 rows rather than its 6 columns. V's rows must be
/// contiguous and a whole number of vectors wide; otherwise V is first packed into a per-thread scratch buffer
/// (reused, so steady-state calls allocate nothing).
/// </para>
/// </summary>
internal static class SimdGemm<TOps, TV, T>
    where TOps : struct, ISimdOps<TV, T>
    where TV : struct
    where T : unmanaged, IFloatingPointIeee754<T>
{
    [ThreadStatic] private static T[]? t_pack;

    public static void Multiply(bool transA, bool transB, int m, int n, int k, T alpha, T[] a, T[] b, T beta, T[] c)
    {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == T.Zero)
        {
            ScaleInPlace(c, beta);
            return;
        }

        int w = TOps.Count;
        // Work estimate of each orientation: vector FMAs, plus a packing pass when V is not usable in place.
        long direct = (long)m * Ceil(n, w) * k + (transB || n % w != 0 ? (long)k * n : 0);
        long transposed = (long)n * Ceil(m, w) * k + (!transA || m % w != 0 ? (long)k * m : 0);
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
        ref T c0 = ref c[0];
        int a = 0;
        for (; a + 4 <= ra; a += 4)
        {
            int b = 0;
            for (; b + 4 * w <= ldv; b += 4 * w) Block4x4(ref u0, a, ua, up, ref v0, ldv, b, k, rb, alpha, beta, ref c0, outRowStride, outColStride);
            for (; b < ldv; b += w) Block4x1(ref u0, a, ua, up, ref v0, ldv, b, k, rb, alpha, beta, ref c0, outRowStride, outColStride);
        }

        for (; a < ra; a++)
        {
            for (int b = 0; b < ldv; b += w) Block1x1(ref u0, a, ua, up, ref v0, ldv, b, k, rb, alpha, beta, ref c0, outRowStride, outColStride);
        }
    }

    private static void Block4x4(ref T u, int a, int ua, int up, ref T v, int ldv, int b, int k, int rb,
        T alpha, T beta, ref T c, int ors, int ocs)
    {
        int w = TOps.Count;
        TV x00 = TOps.Zero, x01 = TOps.Zero, x02 = TOps.Zero, x03 = TOps.Zero;
        TV x10 = TOps.Zero, x11 = TOps.Zero, x12 = TOps.Zero, x13 = TOps.Zero;
        TV x20 = TOps.Zero, x21 = TOps.Zero, x22 = TOps.Zero, x23 = TOps.Zero;
        TV x30 = TOps.Zero, x31 = TOps.Zero, x32 = TOps.Zero, x33 = TOps.Zero;
        int r0 = a * ua, r1 = r0 + ua, r2 = r1 + ua, r3 = r2 + ua;
        for (int p = 0, up_ = 0, vp = b; p < k; p++, up_ += up, vp += ldv)
        {
            ref T vr = ref Unsafe.Add(ref v, vp);
            TV v0 = TOps.Load(ref vr), v1 = TOps.Load(ref Unsafe.Add(ref vr, w));
            TV v2 = TOps.Load(ref Unsafe.Add(ref vr, 2 * w)), v3 = TOps.Load(ref Unsafe.Add(ref vr, 3 * w));
            TV s = TOps.Broadcast(Unsafe.Add(ref u, r0 + up_));
            x00 = TOps.MultiplyAdd(s, v0, x00); x01 = TOps.MultiplyAdd(s, v1, x01); x02 = TOps.MultiplyAdd(s, v2, x02); x03 = TOps.MultiplyAdd(s, v3, x03);
            s = TOps.Broadcast(Unsafe.Add(ref u, r1 + up_));
            x10 = TOps.MultiplyAdd(s, v0, x10); x11 = TOps.MultiplyAdd(s, v1, x11); x12 = TOps.MultiplyAdd(s, v2, x12); x13 = TOps.MultiplyAdd(s, v3, x13);
            s = TOps.Broadcast(Unsafe.Add(ref u, r2 + up_));
            x20 = TOps.MultiplyAdd(s, v0, x20); x21 = TOps.MultiplyAdd(s, v1, x21); x22 = TOps.MultiplyAdd(s, v2, x22); x23 = TOps.MultiplyAdd(s, v3, x23);
            s = TOps.Broadcast(Unsafe.Add(ref u, r3 + up_));
            x30 = TOps.MultiplyAdd(s, v0, x30); x31 = TOps.MultiplyAdd(s, v1, x31); x32 = TOps.MultiplyAdd(s, v2, x32); x33 = TOps.MultiplyAdd(s, v3, x33);
        }

        Write(x00, a, b, rb, alpha, beta, ref c, ors, ocs); Write(x01, a, b + w, rb, alpha, beta, ref c, ors, ocs);
        Write(x02, a, b + 2 * w, rb, alpha, beta, ref c, ors, ocs); Write(x03, a, b + 3 * w, rb, alpha, beta, ref c, ors, ocs);
        Write(x10, a + 1, b, rb, alpha, beta, ref c, ors, ocs); Write(x11, a + 1, b + w, rb, alpha, beta, ref c, ors, ocs);
        Write(x12, a + 1, b + 2 * w, rb, alpha, beta, ref c, ors, ocs); Write(x13, a + 1, b + 3 * w, rb, alpha, beta, ref c, ors, ocs);
        Write(x20, a + 2, b, rb, alpha, beta, ref c, ors, ocs); Write(x21, a + 2, b + w, rb, alpha, beta, ref c, ors, ocs);
        Write(x22, a + 2, b + 2 * w, rb, alpha, beta, ref c, ors, ocs); Write(x23, a + 2, b + 3 * w, rb, alpha, beta, ref c, ors, ocs);
        Write(x30, a + 3, b, rb, alpha, beta, ref c, ors, ocs); Write(x31, a + 3, b + w, rb, alpha, beta, ref c, ors, ocs);
        Write(x32, a + 3, b + 2 * w, rb, alpha, beta, ref c, ors, ocs); Write(x33, a + 3, b + 3 * w, rb, alpha, beta, ref c, ors, ocs);
    }

    private static void Block4x1(ref T u, int a, int ua, int up, ref T v, int ldv, int b, int k, int rb,
        T alpha, T beta, ref T c, int ors, int ocs)
    {
        TV x0 = TOps.Zero, x1 = TOps.Zero, x2 = TOps.Zero, x3 = TOps.Zero;
        int r0 = a * ua, r1 = r0 + ua, r2 = r1 + ua, r3 = r2 + ua;
        for (int p = 0, up_ = 0, vp = b; p < k; p++, up_ += up, vp += ldv)
        {
            TV v0 = TOps.Load(ref Unsafe.Add(ref v, vp));
            x0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r0 + up_)), v0, x0);
            x1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r1 + up_)), v0, x1);
            x2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r2 + up_)), v0, x2);
            x3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r3 + up_)), v0, x3);
        }

        Write(x0, a, b, rb, alpha, beta, ref c, ors, ocs);
        Write(x1, a + 1, b, rb, alpha, beta, ref c, ors, ocs);
        Write(x2, a + 2, b, rb, alpha, beta, ref c, ors, ocs);
        Write(x3, a + 3, b, rb, alpha, beta, ref c, ors, ocs);
    }

    private static void Block1x1(ref T u, int a, int ua, int up, ref T v, int ldv, int b, int k, int rb,
        T alpha, T beta, ref T c, int ors, int ocs)
    {
        TV x0 = TOps.Zero, x1 = TOps.Zero;
        int r0 = a * ua, p = 0;
        // Two accumulators break the FMA dependency chain on this (rarely hot) tail path.
        for (; p + 2 <= k; p += 2)
        {
            x0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r0 + p * up)), TOps.Load(ref Unsafe.Add(ref v, p * ldv + b)), x0);
            x1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r0 + (p + 1) * up)), TOps.Load(ref Unsafe.Add(ref v, (p + 1) * ldv + b)), x1);
        }

        if (p < k) x0 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, r0 + p * up)), TOps.Load(ref Unsafe.Add(ref v, p * ldv + b)), x0);
        Write(TOps.Add(x0, x1), a, b, rb, alpha, beta, ref c, ors, ocs);
    }

    /// <summary>C[a, b .. b+W) ← alpha·x + beta·C, for the lanes below rb; beta = 0 never reads C (so NaN in C is not kept).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Write(TV x, int a, int b, int rb, T alpha, T beta, ref T c, int ors, int ocs)
    {
        int w = TOps.Count;
        if (ocs == 1 && b + w <= rb)
        {
            ref T dst = ref Unsafe.Add(ref c, a * ors + b);
            TV y = alpha == T.One ? x : TOps.Multiply(x, TOps.Broadcast(alpha));
            if (beta != T.Zero) y = TOps.MultiplyAdd(TOps.Load(ref dst), TOps.Broadcast(beta), y);
            TOps.Store(y, ref dst);
        }
        else
        {
            WriteLanes(x, a, b, rb, alpha, beta, ref c, ors, ocs);
        }
    }

    /// <summary>The slow path of <see cref="Write"/>: a partial vector, or a strided (transposed) destination.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WriteLanes(TV x, int a, int b, int rb, T alpha, T beta, ref T c, int ors, int ocs)
    {
        int w = TOps.Count;
        Span<T> lanes = stackalloc T[64];
        TOps.Store(x, ref lanes[0]);
        int count = Math.Min(w, rb - b);
        for (int l = 0; l < count; l++)
        {
            ref T dst = ref Unsafe.Add(ref c, a * ors + (b + l) * ocs);
            dst = beta == T.Zero ? alpha * lanes[l] : alpha * lanes[l] + beta * dst;
        }
    }

    /// <summary>Copies V (k, rb), element (p, b) at p·rowStride + b·colStride, into a zero-padded (k, ldv) row-major scratch.</summary>
    private static T[] Pack(T[] v, int k, int rb, int rowStride, int colStride, int ldv)
    {
        int size = k * ldv;
        var pack = t_pack;
        if (pack is null || pack.Length < size) t_pack = pack = new T[Math.Max(size, 4096)];
        for (int p = 0; p < k; p++)
        {
            Span<T> dst = pack.AsSpan(p * ldv, ldv);
            if (colStride == 1)
            {
                v.AsSpan(p * rowStride, rb).CopyTo(dst);
            }
            else
            {
                for (int bi = 0, src = p * rowStride; bi < rb; bi++, src += colStride) dst[bi] = v[src];
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
