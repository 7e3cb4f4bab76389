using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LeNetSharp.Kernels;

/// <summary>
/// AVX-512 blocks of the sparse convolution backward (<see cref="SparseConvBackward{TOps, TV, T}"/>) at 512 bits:
/// whole-vector transposes (two-source permutes, one stage per bit of the lane index) and the compression of a row's
/// nonzeros with their indices (no branch on the data).
/// </summary>
internal static class Avx512Blocks
{
    /// <summary>True when the 512-bit blocks run: AVX-512F and an element type of float or double.</summary>
    public static bool Supports<T>() => Avx512F.IsSupported && (typeof(T) == typeof(float) || typeof(T) == typeof(double));

    /// <summary>
    /// The nonzeros of <paramref name="count"/> values at <paramref name="source"/> (<paramref name="available"/> ≥
    /// <paramref name="count"/> elements may be read there), in order, to <paramref name="values"/> and their indices
    /// plus <paramref name="first"/> to <paramref name="indices"/>, each followed by zeros to the end of a vector
    /// (whole vectors are stored: both need a vector of room after the nonzeros). Returns how many.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Compress<T>(ref T source, int count, int available, ref T values, ref int indices, int first) where T : unmanaged
    {
        int kept = 0;
        if (typeof(T) == typeof(float))
        {
            ref float s = ref Unsafe.As<T, float>(ref source);
            ref float v = ref Unsafe.As<T, float>(ref values);
            for (int c = 0; c < count; c += 16)
            {
                Vector512<float> x = c + 16 <= available ? Vector512.LoadUnsafe(ref s, (nuint)c) : LoadPart(ref Unsafe.Add(ref s, c), available - c);
                Vector512<int> lanes = Vector512<int>.Indices;
                Vector512<float> keep = ~Vector512.Equals(x, Vector512<float>.Zero) & Vector512.LessThan(lanes, Vector512.Create(count - c)).AsSingle();
                Avx512F.Compress(Vector512<float>.Zero, keep, x).StoreUnsafe(ref v, (nuint)kept);
                Avx512F.Compress(Vector512<int>.Zero, keep.AsInt32(), lanes + Vector512.Create(first + c)).StoreUnsafe(ref indices, (nuint)kept);
                kept += BitOperations.PopCount(keep.ExtractMostSignificantBits());
            }

            return kept;
        }

        ref double sd = ref Unsafe.As<T, double>(ref source);
        ref double vd = ref Unsafe.As<T, double>(ref values);
        for (int c = 0; c < count; c += 8)
        {
            Vector512<double> x = c + 8 <= available ? Vector512.LoadUnsafe(ref sd, (nuint)c) : LoadPart(ref Unsafe.Add(ref sd, c), available - c);
            Vector512<long> lanes = Vector512<long>.Indices;
            Vector512<double> keep = ~Vector512.Equals(x, Vector512<double>.Zero) & Vector512.LessThan(lanes, Vector512.Create((long)(count - c))).AsDouble();
            Avx512F.Compress(Vector512<double>.Zero, keep, x).StoreUnsafe(ref vd, (nuint)kept);
            Avx512F.ConvertToVector256Int32(Avx512F.Compress(Vector512<long>.Zero, keep.AsInt64(), lanes + Vector512.Create((long)(first + c)))).StoreUnsafe(ref indices, (nuint)kept);
            kept += BitOperations.PopCount(keep.ExtractMostSignificantBits());
        }

        return kept;
    }

    /// <summary>
    /// The nonzeros of the vector at <paramref name="source"/>, in lane order, to <paramref name="values"/>, and for each
    /// the int of its lane at <paramref name="indices"/> to <paramref name="kept"/> (whole vectors stored: both need a
    /// vector of room after the nonzeros). Returns how many.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CompressLanes<T>(ref T source, ref int indices, ref T values, ref int kept) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            Vector512<float> x = Vector512.LoadUnsafe(ref Unsafe.As<T, float>(ref source));
            Vector512<float> keep = ~Vector512.Equals(x, Vector512<float>.Zero);
            Avx512F.Compress(Vector512<float>.Zero, keep, x).StoreUnsafe(ref Unsafe.As<T, float>(ref values));
            Avx512F.Compress(Vector512<int>.Zero, keep.AsInt32(), Vector512.LoadUnsafe(ref indices)).StoreUnsafe(ref kept);
            return BitOperations.PopCount(keep.ExtractMostSignificantBits());
        }

        Vector512<double> xd = Vector512.LoadUnsafe(ref Unsafe.As<T, double>(ref source));
        Vector512<double> keepd = ~Vector512.Equals(xd, Vector512<double>.Zero);
        Avx512F.Compress(Vector512<double>.Zero, keepd, xd).StoreUnsafe(ref Unsafe.As<T, double>(ref values));
        Vector512<long> rows = Avx512F.ConvertToVector512Int64(Vector256.LoadUnsafe(ref indices));
        Avx512F.ConvertToVector256Int32(Avx512F.Compress(Vector512<long>.Zero, keepd.AsInt64(), rows)).StoreUnsafe(ref kept);
        return BitOperations.PopCount(keepd.ExtractMostSignificantBits());
    }

    /// <summary>
    /// The <typeparamref name="T"/> form of the transposes below: a block of 16 floats or 8 doubles square.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose<T>(ref T source, nint sourceStride, int rows, ref T destination, nint destinationStride, int columns, bool add) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) Transpose(ref Unsafe.As<T, float>(ref source), sourceStride, rows, ref Unsafe.As<T, float>(ref destination), destinationStride, columns, add);
        else Transpose(ref Unsafe.As<T, double>(ref source), sourceStride, rows, ref Unsafe.As<T, double>(ref destination), destinationStride, columns, add);
    }

    /// <summary>
    /// The 16 × 16 block of float at <paramref name="source"/> (rows <paramref name="sourceStride"/> apart; rows from
    /// <paramref name="rows"/> on read as 0) transposed: its column i to <paramref name="destination"/> + i·<paramref name="destinationStride"/>
    /// for i below <paramref name="columns"/>, stored, or added to what is there when <paramref name="add"/> (one rounding each).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose(ref float source, nint sourceStride, int rows, ref float destination, nint destinationStride, int columns, bool add)
    {
        Vector512<float> r0 = Vector512.LoadUnsafe(ref source);
        Vector512<float> r1 = rows > 1 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 1 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r2 = rows > 2 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 2 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r3 = rows > 3 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 3 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r4 = rows > 4 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 4 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r5 = rows > 5 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 5 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r6 = rows > 6 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 6 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r7 = rows > 7 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 7 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r8 = rows > 8 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 8 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r9 = rows > 9 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 9 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r10 = rows > 10 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 10 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r11 = rows > 11 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 11 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r12 = rows > 12 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 12 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r13 = rows > 13 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 13 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r14 = rows > 14 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 14 * sourceStride)) : Vector512<float>.Zero;
        Vector512<float> r15 = rows > 15 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 15 * sourceStride)) : Vector512<float>.Zero;
        Vector512<int> lo8 = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), hi8 = Vector512.Create(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r0, lo8, r8), c = Avx512F.PermuteVar16x32x2(r0, hi8, r8); r0 = a; r8 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r1, lo8, r9), c = Avx512F.PermuteVar16x32x2(r1, hi8, r9); r1 = a; r9 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r2, lo8, r10), c = Avx512F.PermuteVar16x32x2(r2, hi8, r10); r2 = a; r10 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r3, lo8, r11), c = Avx512F.PermuteVar16x32x2(r3, hi8, r11); r3 = a; r11 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r4, lo8, r12), c = Avx512F.PermuteVar16x32x2(r4, hi8, r12); r4 = a; r12 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r5, lo8, r13), c = Avx512F.PermuteVar16x32x2(r5, hi8, r13); r5 = a; r13 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r6, lo8, r14), c = Avx512F.PermuteVar16x32x2(r6, hi8, r14); r6 = a; r14 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r7, lo8, r15), c = Avx512F.PermuteVar16x32x2(r7, hi8, r15); r7 = a; r15 = c; }
        Vector512<int> lo4 = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27), hi4 = Vector512.Create(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r0, lo4, r4), c = Avx512F.PermuteVar16x32x2(r0, hi4, r4); r0 = a; r4 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r1, lo4, r5), c = Avx512F.PermuteVar16x32x2(r1, hi4, r5); r1 = a; r5 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r2, lo4, r6), c = Avx512F.PermuteVar16x32x2(r2, hi4, r6); r2 = a; r6 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r3, lo4, r7), c = Avx512F.PermuteVar16x32x2(r3, hi4, r7); r3 = a; r7 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r8, lo4, r12), c = Avx512F.PermuteVar16x32x2(r8, hi4, r12); r8 = a; r12 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r9, lo4, r13), c = Avx512F.PermuteVar16x32x2(r9, hi4, r13); r9 = a; r13 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r10, lo4, r14), c = Avx512F.PermuteVar16x32x2(r10, hi4, r14); r10 = a; r14 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r11, lo4, r15), c = Avx512F.PermuteVar16x32x2(r11, hi4, r15); r11 = a; r15 = c; }
        Vector512<int> lo2 = Vector512.Create(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29), hi2 = Vector512.Create(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r0, lo2, r2), c = Avx512F.PermuteVar16x32x2(r0, hi2, r2); r0 = a; r2 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r1, lo2, r3), c = Avx512F.PermuteVar16x32x2(r1, hi2, r3); r1 = a; r3 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r4, lo2, r6), c = Avx512F.PermuteVar16x32x2(r4, hi2, r6); r4 = a; r6 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r5, lo2, r7), c = Avx512F.PermuteVar16x32x2(r5, hi2, r7); r5 = a; r7 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r8, lo2, r10), c = Avx512F.PermuteVar16x32x2(r8, hi2, r10); r8 = a; r10 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r9, lo2, r11), c = Avx512F.PermuteVar16x32x2(r9, hi2, r11); r9 = a; r11 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r12, lo2, r14), c = Avx512F.PermuteVar16x32x2(r12, hi2, r14); r12 = a; r14 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r13, lo2, r15), c = Avx512F.PermuteVar16x32x2(r13, hi2, r15); r13 = a; r15 = c; }
        Vector512<int> lo1 = Vector512.Create(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30), hi1 = Vector512.Create(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r0, lo1, r1), c = Avx512F.PermuteVar16x32x2(r0, hi1, r1); r0 = a; r1 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r2, lo1, r3), c = Avx512F.PermuteVar16x32x2(r2, hi1, r3); r2 = a; r3 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r4, lo1, r5), c = Avx512F.PermuteVar16x32x2(r4, hi1, r5); r4 = a; r5 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r6, lo1, r7), c = Avx512F.PermuteVar16x32x2(r6, hi1, r7); r6 = a; r7 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r8, lo1, r9), c = Avx512F.PermuteVar16x32x2(r8, hi1, r9); r8 = a; r9 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r10, lo1, r11), c = Avx512F.PermuteVar16x32x2(r10, hi1, r11); r10 = a; r11 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r12, lo1, r13), c = Avx512F.PermuteVar16x32x2(r12, hi1, r13); r12 = a; r13 = c; }
        { Vector512<float> a = Avx512F.PermuteVar16x32x2(r14, lo1, r15), c = Avx512F.PermuteVar16x32x2(r14, hi1, r15); r14 = a; r15 = c; }
        if (add)
        {
            Add(r0, ref Unsafe.Add(ref destination, 0 * destinationStride));
            if (columns > 1) Add(r1, ref Unsafe.Add(ref destination, 1 * destinationStride));
            if (columns > 2) Add(r2, ref Unsafe.Add(ref destination, 2 * destinationStride));
            if (columns > 3) Add(r3, ref Unsafe.Add(ref destination, 3 * destinationStride));
            if (columns > 4) Add(r4, ref Unsafe.Add(ref destination, 4 * destinationStride));
            if (columns > 5) Add(r5, ref Unsafe.Add(ref destination, 5 * destinationStride));
            if (columns > 6) Add(r6, ref Unsafe.Add(ref destination, 6 * destinationStride));
            if (columns > 7) Add(r7, ref Unsafe.Add(ref destination, 7 * destinationStride));
            if (columns > 8) Add(r8, ref Unsafe.Add(ref destination, 8 * destinationStride));
            if (columns > 9) Add(r9, ref Unsafe.Add(ref destination, 9 * destinationStride));
            if (columns > 10) Add(r10, ref Unsafe.Add(ref destination, 10 * destinationStride));
            if (columns > 11) Add(r11, ref Unsafe.Add(ref destination, 11 * destinationStride));
            if (columns > 12) Add(r12, ref Unsafe.Add(ref destination, 12 * destinationStride));
            if (columns > 13) Add(r13, ref Unsafe.Add(ref destination, 13 * destinationStride));
            if (columns > 14) Add(r14, ref Unsafe.Add(ref destination, 14 * destinationStride));
            if (columns > 15) Add(r15, ref Unsafe.Add(ref destination, 15 * destinationStride));
            return;
        }

        r0.StoreUnsafe(ref Unsafe.Add(ref destination, 0 * destinationStride));
        if (columns > 1) r1.StoreUnsafe(ref Unsafe.Add(ref destination, 1 * destinationStride));
        if (columns > 2) r2.StoreUnsafe(ref Unsafe.Add(ref destination, 2 * destinationStride));
        if (columns > 3) r3.StoreUnsafe(ref Unsafe.Add(ref destination, 3 * destinationStride));
        if (columns > 4) r4.StoreUnsafe(ref Unsafe.Add(ref destination, 4 * destinationStride));
        if (columns > 5) r5.StoreUnsafe(ref Unsafe.Add(ref destination, 5 * destinationStride));
        if (columns > 6) r6.StoreUnsafe(ref Unsafe.Add(ref destination, 6 * destinationStride));
        if (columns > 7) r7.StoreUnsafe(ref Unsafe.Add(ref destination, 7 * destinationStride));
        if (columns > 8) r8.StoreUnsafe(ref Unsafe.Add(ref destination, 8 * destinationStride));
        if (columns > 9) r9.StoreUnsafe(ref Unsafe.Add(ref destination, 9 * destinationStride));
        if (columns > 10) r10.StoreUnsafe(ref Unsafe.Add(ref destination, 10 * destinationStride));
        if (columns > 11) r11.StoreUnsafe(ref Unsafe.Add(ref destination, 11 * destinationStride));
        if (columns > 12) r12.StoreUnsafe(ref Unsafe.Add(ref destination, 12 * destinationStride));
        if (columns > 13) r13.StoreUnsafe(ref Unsafe.Add(ref destination, 13 * destinationStride));
        if (columns > 14) r14.StoreUnsafe(ref Unsafe.Add(ref destination, 14 * destinationStride));
        if (columns > 15) r15.StoreUnsafe(ref Unsafe.Add(ref destination, 15 * destinationStride));
    }

    /// <summary>
    /// The 8 × 8 block of double at <paramref name="source"/> (rows <paramref name="sourceStride"/> apart; rows from
    /// <paramref name="rows"/> on read as 0) transposed: its column i to <paramref name="destination"/> + i·<paramref name="destinationStride"/>
    /// for i below <paramref name="columns"/>, stored, or added to what is there when <paramref name="add"/> (one rounding each).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose(ref double source, nint sourceStride, int rows, ref double destination, nint destinationStride, int columns, bool add)
    {
        Vector512<double> r0 = Vector512.LoadUnsafe(ref source);
        Vector512<double> r1 = rows > 1 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 1 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r2 = rows > 2 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 2 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r3 = rows > 3 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 3 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r4 = rows > 4 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 4 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r5 = rows > 5 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 5 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r6 = rows > 6 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 6 * sourceStride)) : Vector512<double>.Zero;
        Vector512<double> r7 = rows > 7 ? Vector512.LoadUnsafe(ref Unsafe.Add(ref source, 7 * sourceStride)) : Vector512<double>.Zero;
        Vector512<long> lo4 = Vector512.Create(0L, 1L, 2L, 3L, 8L, 9L, 10L, 11L), hi4 = Vector512.Create(4L, 5L, 6L, 7L, 12L, 13L, 14L, 15L);
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r0, lo4, r4), c = Avx512F.PermuteVar8x64x2(r0, hi4, r4); r0 = a; r4 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r1, lo4, r5), c = Avx512F.PermuteVar8x64x2(r1, hi4, r5); r1 = a; r5 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r2, lo4, r6), c = Avx512F.PermuteVar8x64x2(r2, hi4, r6); r2 = a; r6 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r3, lo4, r7), c = Avx512F.PermuteVar8x64x2(r3, hi4, r7); r3 = a; r7 = c; }
        Vector512<long> lo2 = Vector512.Create(0L, 1L, 8L, 9L, 4L, 5L, 12L, 13L), hi2 = Vector512.Create(2L, 3L, 10L, 11L, 6L, 7L, 14L, 15L);
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r0, lo2, r2), c = Avx512F.PermuteVar8x64x2(r0, hi2, r2); r0 = a; r2 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r1, lo2, r3), c = Avx512F.PermuteVar8x64x2(r1, hi2, r3); r1 = a; r3 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r4, lo2, r6), c = Avx512F.PermuteVar8x64x2(r4, hi2, r6); r4 = a; r6 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r5, lo2, r7), c = Avx512F.PermuteVar8x64x2(r5, hi2, r7); r5 = a; r7 = c; }
        Vector512<long> lo1 = Vector512.Create(0L, 8L, 2L, 10L, 4L, 12L, 6L, 14L), hi1 = Vector512.Create(1L, 9L, 3L, 11L, 5L, 13L, 7L, 15L);
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r0, lo1, r1), c = Avx512F.PermuteVar8x64x2(r0, hi1, r1); r0 = a; r1 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r2, lo1, r3), c = Avx512F.PermuteVar8x64x2(r2, hi1, r3); r2 = a; r3 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r4, lo1, r5), c = Avx512F.PermuteVar8x64x2(r4, hi1, r5); r4 = a; r5 = c; }
        { Vector512<double> a = Avx512F.PermuteVar8x64x2(r6, lo1, r7), c = Avx512F.PermuteVar8x64x2(r6, hi1, r7); r6 = a; r7 = c; }
        if (add)
        {
            Add(r0, ref Unsafe.Add(ref destination, 0 * destinationStride));
            if (columns > 1) Add(r1, ref Unsafe.Add(ref destination, 1 * destinationStride));
            if (columns > 2) Add(r2, ref Unsafe.Add(ref destination, 2 * destinationStride));
            if (columns > 3) Add(r3, ref Unsafe.Add(ref destination, 3 * destinationStride));
            if (columns > 4) Add(r4, ref Unsafe.Add(ref destination, 4 * destinationStride));
            if (columns > 5) Add(r5, ref Unsafe.Add(ref destination, 5 * destinationStride));
            if (columns > 6) Add(r6, ref Unsafe.Add(ref destination, 6 * destinationStride));
            if (columns > 7) Add(r7, ref Unsafe.Add(ref destination, 7 * destinationStride));
            return;
        }

        r0.StoreUnsafe(ref Unsafe.Add(ref destination, 0 * destinationStride));
        if (columns > 1) r1.StoreUnsafe(ref Unsafe.Add(ref destination, 1 * destinationStride));
        if (columns > 2) r2.StoreUnsafe(ref Unsafe.Add(ref destination, 2 * destinationStride));
        if (columns > 3) r3.StoreUnsafe(ref Unsafe.Add(ref destination, 3 * destinationStride));
        if (columns > 4) r4.StoreUnsafe(ref Unsafe.Add(ref destination, 4 * destinationStride));
        if (columns > 5) r5.StoreUnsafe(ref Unsafe.Add(ref destination, 5 * destinationStride));
        if (columns > 6) r6.StoreUnsafe(ref Unsafe.Add(ref destination, 6 * destinationStride));
        if (columns > 7) r7.StoreUnsafe(ref Unsafe.Add(ref destination, 7 * destinationStride));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Vector512<float> value, ref float destination) => (Vector512.LoadUnsafe(ref destination) + value).StoreUnsafe(ref destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(Vector512<double> value, ref double destination) => (Vector512.LoadUnsafe(ref destination) + value).StoreUnsafe(ref destination);

    /// <summary>The first <paramref name="count"/> (below a vector) elements at <paramref name="source"/>, the other lanes 0 (nothing read past them).</summary>
    private static Vector512<float> LoadPart(ref float source, int count)
    {
        Span<float> lanes = stackalloc float[16];
        lanes.Clear();
        for (int i = 0; i < count; i++) lanes[i] = Unsafe.Add(ref source, i);
        return Vector512.Create<float>(lanes);
    }

    private static Vector512<double> LoadPart(ref double source, int count)
    {
        Span<double> lanes = stackalloc double[8];
        lanes.Clear();
        for (int i = 0; i < count; i++) lanes[i] = Unsafe.Add(ref source, i);
        return Vector512.Create<double>(lanes);
    }
}
