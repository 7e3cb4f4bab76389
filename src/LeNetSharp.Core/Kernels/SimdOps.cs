using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// The vector operations the SIMD kernels need, for one vector type <typeparamref name="TV"/> holding
/// <see cref="Count"/> elements of <typeparamref name="T"/>. Implemented by stateless structs so that the JIT
/// specialises the kernel for each vector width; the typeof checks below are JIT-time constants.
/// </summary>
internal interface ISimdOps<TV, T> where TV : struct where T : unmanaged
{
    static abstract int Count { get; }
    static abstract string Name { get; }
    static abstract TV Zero { get; }
    static abstract TV Load(ref T source);
    static abstract void Store(TV value, ref T destination);
    static abstract TV Broadcast(T value);
    static abstract TV MultiplyAdd(TV a, TV b, TV c); // a·b + c, fused where the hardware can
    static abstract TV Multiply(TV a, TV b);
    static abstract TV Add(TV a, TV b);
    static abstract TV SelectLow(TV low, TV high, int count); // lanes below count from low, the rest from high
    static abstract TV MaxNative(TV a, TV b);                  // the CPU's maximum: one of a, b, the larger when neither is NaN and they differ
    static abstract TV AnyNaN(TV a, TV b);                     // all-ones lanes where a or b is NaN
    static abstract bool AnySet(TV mask);                      // whether any lane of an all-ones/zero lane mask is set
    static abstract TV Or(TV a, TV b);
    static abstract TV GreaterThan(TV a, TV b);                // all-ones lanes where a > b
    static abstract TV Select(TV mask, TV whereSet, TV whereClear);
    static abstract TV And(TV a, TV b);                        // bitwise: an all-ones/zero lane mask keeps/clears the other
    static abstract void Deinterleave(TV a, TV b, out TV even, out TV odd); // lanes 0, 2, 4, … and 1, 3, 5, … of a then b
    static abstract TV AllBitsSet { get; }
    static abstract TV Subtract(TV a, TV b);
    static abstract TV LessThanOrEqual(TV a, TV b);            // all-ones lanes where a <= b
    static abstract TV AndNot(TV a, TV b);                     // bitwise a & ~b

    /// <summary>The IEEE maximum lane by lane for numbers (+0 above −0); which of two NaNs it gives is not fixed.</summary>
    static abstract TV Max(TV a, TV b);

    /// <summary>Every lane holding the unsigned integer <paramref name="value"/> (its bits, not the number).</summary>
    static abstract TV Lanes(int value);

    /// <summary>All-ones lanes where <paramref name="a"/> and <paramref name="b"/> hold the same bits (integer equality).</summary>
    static abstract TV EqualLanes(TV a, TV b);

    /// <summary>The low byte of each lane of <paramref name="lanes"/> (integers 0–255) to <c>Count</c> bytes at <paramref name="destination"/>.</summary>
    static abstract void StoreLowBytes(TV lanes, ref byte destination);

    /// <summary>The inverse of <see cref="StoreLowBytes"/>: <c>Count</c> bytes from <paramref name="source"/>, each widened to a lane.</summary>
    static abstract TV LoadLowBytes(ref byte source);
}

/// <summary>
/// <see cref="ISimdOps{TV, T}"/> with the same width's vectors of double, <typeparamref name="TD"/>, for kernels that
/// compute in double what they read and write in <typeparamref name="T"/> (float or double).
/// </summary>
internal interface ISimdWidening<TV, TD, T> : ISimdOps<TV, T> where TV : struct where TD : struct where T : unmanaged
{
    /// <summary>
    /// The lanes of <paramref name="value"/> as double, exactly: for float the lower and the upper half, for double
    /// <paramref name="value"/> itself in <paramref name="lower"/> (<paramref name="upper"/> is then zero and unused).
    /// </summary>
    static abstract void Widen(TV value, out TD lower, out TD upper);

    /// <summary>
    /// The inverse of <see cref="Widen"/>: for float both halves rounded to nearest (as a cast of each lane), for double
    /// <paramref name="lower"/>.
    /// </summary>
    static abstract TV Narrow(TD lower, TD upper);

    /// <summary><see cref="Widen"/> of the vector at <paramref name="source"/>, each half converted as it is loaded where the CPU can.</summary>
    static abstract void LoadWidened(ref T source, out TD lower, out TD upper);

    /// <summary>Each lane rounded to nearest <typeparamref name="T"/> and widened back: the lanes of Widen(Narrow(·)), half by half.</summary>
    static abstract TD RoundThrough(TD value);
}

internal readonly struct Simd512<T> : ISimdWidening<Vector512<T>, Vector512<double>, T> where T : unmanaged, INumberBase<T>
{
    public static Vector512<T> AllBitsSet => Vector512<T>.AllBitsSet;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Subtract(Vector512<T> a, Vector512<T> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> LessThanOrEqual(Vector512<T> a, Vector512<T> b) => Vector512.LessThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> AndNot(Vector512<T> a, Vector512<T> b) => Vector512.AndNot(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector512<T> value, out Vector512<double> lower, out Vector512<double> upper)
    {
        if (typeof(T) == typeof(float))
        {
            lower = Vector512.WidenLower(value.As<T, float>());
            upper = Vector512.WidenUpper(value.As<T, float>());
            return;
        }

        if (typeof(T) == typeof(double))
        {
            lower = value.As<T, double>();
            upper = Vector512<double>.Zero;
            return;
        }

        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Narrow(Vector512<double> lower, Vector512<double> upper)
    {
        if (typeof(T) == typeof(float)) return Vector512.Narrow(lower, upper).As<float, T>();
        if (typeof(T) == typeof(double)) return lower.As<double, T>();
        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadWidened(ref T source, out Vector512<double> lower, out Vector512<double> upper)
    {
        if (typeof(T) == typeof(float) && Avx512F.IsSupported)
        {
            ref float s = ref Unsafe.As<T, float>(ref source);
            lower = Avx512F.ConvertToVector512Double(Vector256.LoadUnsafe(ref s));
            upper = Avx512F.ConvertToVector512Double(Vector256.LoadUnsafe(ref s, 8));
            return;
        }
        Widen(Vector512.LoadUnsafe(ref source), out lower, out upper);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> RoundThrough(Vector512<double> value)
    {
        if (typeof(T) == typeof(float) && Avx512F.IsSupported) return Avx512F.ConvertToVector512Double(Avx512F.ConvertToVector256Single(value));
        if (typeof(T) == typeof(float)) return Vector512.WidenLower(Vector512.Narrow(value, value));
        if (typeof(T) == typeof(double)) return value;
        throw SimdOps.WideningUnsupported<T>();
    }

    public static int Count => Vector512<T>.Count;
    public static string Name => "Vector512";
    public static Vector512<T> Zero => Vector512<T>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Load(ref T source) => Vector512.LoadUnsafe(ref source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<T> value, ref T destination) => value.StoreUnsafe(ref destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Broadcast(T value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Multiply(Vector512<T> a, Vector512<T> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Add(Vector512<T> a, Vector512<T> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> MaxNative(Vector512<T> a, Vector512<T> b) => Vector512.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Or(Vector512<T> a, Vector512<T> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool AnySet(Vector512<T> mask) => Vector512.ExtractMostSignificantBits(mask) != 0;

    /// <summary>One unordered compare where the CPU has it, else two self-compares.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> AnyNaN(Vector512<T> a, Vector512<T> b)
    {
        if (typeof(T) == typeof(float) && Avx512F.IsSupported) return Avx512F.CompareUnordered(a.AsSingle(), b.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double) && Avx512F.IsSupported) return Avx512F.CompareUnordered(a.AsDouble(), b.AsDouble()).As<double, T>();
        return ~(Vector512.Equals(a, a) & Vector512.Equals(b, b));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> GreaterThan(Vector512<T> a, Vector512<T> b) => Vector512.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> And(Vector512<T> a, Vector512<T> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Select(Vector512<T> mask, Vector512<T> whereSet, Vector512<T> whereClear) => Vector512.ConditionalSelect(mask, whereSet, whereClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> SelectLow(Vector512<T> low, Vector512<T> high, int count) =>
        Vector512.ConditionalSelect(Vector512.LessThan(Vector512<T>.Indices, Vector512.Create(T.CreateTruncating(count))), low, high);

    /// <summary>Even lanes of a then b, odd lanes of a then b: each input sorted by lane parity, then the halves combined.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(Vector512<T> a, Vector512<T> b, out Vector512<T> even, out Vector512<T> odd)
    {
        if (typeof(T) == typeof(float))
        {
            Vector512<int> order = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
            Vector512<float> sa = Vector512.Shuffle(a.AsSingle(), order), sb = Vector512.Shuffle(b.AsSingle(), order);
            even = Vector512.Create(sa.GetLower(), sb.GetLower()).As<float, T>();
            odd = Vector512.Create(sa.GetUpper(), sb.GetUpper()).As<float, T>();
            return;
        }

        if (typeof(T) == typeof(double))
        {
            Vector512<long> order = Vector512.Create(0, 2, 4, 6, 1, 3, 5, 7L);
            Vector512<double> sa = Vector512.Shuffle(a.AsDouble(), order), sb = Vector512.Shuffle(b.AsDouble(), order);
            even = Vector512.Create(sa.GetLower(), sb.GetLower()).As<double, T>();
            odd = Vector512.Create(sa.GetUpper(), sb.GetUpper()).As<double, T>();
            return;
        }

        throw SimdOps.DeinterleaveUnsupported<T>(); // the fused conv kernel, its only caller, runs on float and double only
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> MultiplyAdd(Vector512<T> a, Vector512<T> b, Vector512<T> c)
    {
        if (typeof(T) == typeof(float)) return Vector512.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector512.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
        return a * b + c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<T> Max(Vector512<T> a, Vector512<T> b) => Vector512.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> Lanes(int value) => Unsafe.SizeOf<T>() == 4
        ? Vector512.Create((uint)value).As<uint, T>()
        : Vector512.Create((ulong)value).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> EqualLanes(Vector512<T> a, Vector512<T> b) => Unsafe.SizeOf<T>() == 4
        ? Vector512.Equals(a.As<T, uint>(), b.As<T, uint>()).As<uint, T>()
        : Vector512.Equals(a.As<T, ulong>(), b.As<T, ulong>()).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreLowBytes(Vector512<T> lanes, ref byte destination)
    {
        if (Avx512F.IsSupported) // one truncating move of each lane to its low byte
        {
            SimdOps.StoreFirst(Unsafe.SizeOf<T>() == 4 ? Avx512F.ConvertToVector128Byte(lanes.As<T, uint>()) : Avx512F.ConvertToVector128Byte(lanes.As<T, ulong>()), Count, ref destination);
            return;
        }

        Vector512<byte> bytes; // the lanes' low bytes first, in order
        if (Unsafe.SizeOf<T>() == 4)
        {
            var u = lanes.As<T, uint>();
            var s = Vector512.Narrow(u, u);
            bytes = Vector512.Narrow(s, s);
        }
        else
        {
            var u = lanes.As<T, ulong>();
            var i = Vector512.Narrow(u, u);
            var s = Vector512.Narrow(i, i);
            bytes = Vector512.Narrow(s, s);
        }

        SimdOps.StoreFirst(bytes.GetLower().GetLower(), Count, ref destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<T> LoadLowBytes(ref byte source)
    {
        if (Avx512F.IsSupported) // one zero-extending move of each byte to its lane
        {
            var first = SimdOps.LoadFirst(ref source, Count);
            return Unsafe.SizeOf<T>() == 4 ? Avx512F.ConvertToVector512UInt32(first).As<uint, T>() : Avx512F.ConvertToVector512UInt64(first).As<ulong, T>();
        }

        var bytes = SimdOps.LoadFirst(ref source, Count).ToVector256Unsafe().ToVector512Unsafe();
        var widened = Vector512.WidenLower(Vector512.WidenLower(bytes));
        return Unsafe.SizeOf<T>() == 4 ? widened.As<uint, T>() : Vector512.WidenLower(widened).As<ulong, T>();
    }
}

internal readonly struct Simd256<T> : ISimdWidening<Vector256<T>, Vector256<double>, T> where T : unmanaged, INumberBase<T>
{
    public static Vector256<T> AllBitsSet => Vector256<T>.AllBitsSet;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Subtract(Vector256<T> a, Vector256<T> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> LessThanOrEqual(Vector256<T> a, Vector256<T> b) => Vector256.LessThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> AndNot(Vector256<T> a, Vector256<T> b) => Vector256.AndNot(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector256<T> value, out Vector256<double> lower, out Vector256<double> upper)
    {
        if (typeof(T) == typeof(float))
        {
            lower = Vector256.WidenLower(value.As<T, float>());
            upper = Vector256.WidenUpper(value.As<T, float>());
            return;
        }

        if (typeof(T) == typeof(double))
        {
            lower = value.As<T, double>();
            upper = Vector256<double>.Zero;
            return;
        }

        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Narrow(Vector256<double> lower, Vector256<double> upper)
    {
        if (typeof(T) == typeof(float)) return Vector256.Narrow(lower, upper).As<float, T>();
        if (typeof(T) == typeof(double)) return lower.As<double, T>();
        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadWidened(ref T source, out Vector256<double> lower, out Vector256<double> upper)
    {
        if (typeof(T) == typeof(float) && Avx.IsSupported)
        {
            ref float s = ref Unsafe.As<T, float>(ref source);
            lower = Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref s));
            upper = Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref s, 4));
            return;
        }
        Widen(Vector256.LoadUnsafe(ref source), out lower, out upper);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> RoundThrough(Vector256<double> value)
    {
        if (typeof(T) == typeof(float) && Avx.IsSupported) return Avx.ConvertToVector256Double(Avx.ConvertToVector128Single(value));
        if (typeof(T) == typeof(float)) return Vector256.WidenLower(Vector256.Narrow(value, value));
        if (typeof(T) == typeof(double)) return value;
        throw SimdOps.WideningUnsupported<T>();
    }

    public static int Count => Vector256<T>.Count;
    public static string Name => "Vector256";
    public static Vector256<T> Zero => Vector256<T>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Load(ref T source) => Vector256.LoadUnsafe(ref source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<T> value, ref T destination) => value.StoreUnsafe(ref destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Broadcast(T value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Multiply(Vector256<T> a, Vector256<T> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Add(Vector256<T> a, Vector256<T> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> MaxNative(Vector256<T> a, Vector256<T> b) => Vector256.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Or(Vector256<T> a, Vector256<T> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool AnySet(Vector256<T> mask) => Vector256.ExtractMostSignificantBits(mask) != 0;

    /// <summary>One unordered compare where the CPU has it, else two self-compares.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> AnyNaN(Vector256<T> a, Vector256<T> b)
    {
        if (typeof(T) == typeof(float) && Avx.IsSupported) return Avx.CompareUnordered(a.AsSingle(), b.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double) && Avx.IsSupported) return Avx.CompareUnordered(a.AsDouble(), b.AsDouble()).As<double, T>();
        return ~(Vector256.Equals(a, a) & Vector256.Equals(b, b));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> GreaterThan(Vector256<T> a, Vector256<T> b) => Vector256.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> And(Vector256<T> a, Vector256<T> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Select(Vector256<T> mask, Vector256<T> whereSet, Vector256<T> whereClear) => Vector256.ConditionalSelect(mask, whereSet, whereClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> SelectLow(Vector256<T> low, Vector256<T> high, int count) =>
        Vector256.ConditionalSelect(Vector256.LessThan(Vector256<T>.Indices, Vector256.Create(T.CreateTruncating(count))), low, high);

    /// <summary>Even lanes of a then b, odd lanes of a then b: each input sorted by lane parity, then the halves combined.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(Vector256<T> a, Vector256<T> b, out Vector256<T> even, out Vector256<T> odd)
    {
        if (typeof(T) == typeof(float) && Avx2.IsSupported)
        {
            // In-lane shuffles give (a0 a2 b0 b2 | a4 a6 b4 b6), then one cross-lane permute of 64-bit pairs: 4 shuffles in all.
            Vector256<float> fa = a.AsSingle(), fb = b.AsSingle();
            even = Avx2.Permute4x64(Avx.Shuffle(fa, fb, 0x88).AsDouble(), 0xD8).As<double, T>();
            odd = Avx2.Permute4x64(Avx.Shuffle(fa, fb, 0xDD).AsDouble(), 0xD8).As<double, T>();
            return;
        }

        if (typeof(T) == typeof(float))
        {
            Vector256<int> order = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7);
            Vector256<float> sa = Vector256.Shuffle(a.AsSingle(), order), sb = Vector256.Shuffle(b.AsSingle(), order);
            even = Vector256.Create(sa.GetLower(), sb.GetLower()).As<float, T>();
            odd = Vector256.Create(sa.GetUpper(), sb.GetUpper()).As<float, T>();
            return;
        }

        if (typeof(T) == typeof(double))
        {
            Vector256<long> order = Vector256.Create(0, 2, 1, 3L);
            Vector256<double> sa = Vector256.Shuffle(a.AsDouble(), order), sb = Vector256.Shuffle(b.AsDouble(), order);
            even = Vector256.Create(sa.GetLower(), sb.GetLower()).As<double, T>();
            odd = Vector256.Create(sa.GetUpper(), sb.GetUpper()).As<double, T>();
            return;
        }

        throw SimdOps.DeinterleaveUnsupported<T>(); // the fused conv kernel, its only caller, runs on float and double only
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> MultiplyAdd(Vector256<T> a, Vector256<T> b, Vector256<T> c)
    {
        if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector256.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
        return a * b + c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<T> Max(Vector256<T> a, Vector256<T> b) => Vector256.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> Lanes(int value) => Unsafe.SizeOf<T>() == 4
        ? Vector256.Create((uint)value).As<uint, T>()
        : Vector256.Create((ulong)value).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> EqualLanes(Vector256<T> a, Vector256<T> b) => Unsafe.SizeOf<T>() == 4
        ? Vector256.Equals(a.As<T, uint>(), b.As<T, uint>()).As<uint, T>()
        : Vector256.Equals(a.As<T, ulong>(), b.As<T, ulong>()).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreLowBytes(Vector256<T> lanes, ref byte destination)
    {
        Vector256<byte> bytes; // the lanes' low bytes first, in order
        if (Unsafe.SizeOf<T>() == 4)
        {
            var u = lanes.As<T, uint>();
            var s = Vector256.Narrow(u, u);
            bytes = Vector256.Narrow(s, s);
        }
        else
        {
            var u = lanes.As<T, ulong>();
            var i = Vector256.Narrow(u, u);
            var s = Vector256.Narrow(i, i);
            bytes = Vector256.Narrow(s, s);
        }

        SimdOps.StoreFirst(bytes.GetLower(), Count, ref destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<T> LoadLowBytes(ref byte source)
    {
        var bytes = SimdOps.LoadFirst(ref source, Count).ToVector256Unsafe();
        var widened = Vector256.WidenLower(Vector256.WidenLower(bytes));
        return Unsafe.SizeOf<T>() == 4 ? widened.As<uint, T>() : Vector256.WidenLower(widened).As<ulong, T>();
    }
}

internal readonly struct Simd128<T> : ISimdWidening<Vector128<T>, Vector128<double>, T> where T : unmanaged, INumberBase<T>
{
    public static Vector128<T> AllBitsSet => Vector128<T>.AllBitsSet;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Subtract(Vector128<T> a, Vector128<T> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> LessThanOrEqual(Vector128<T> a, Vector128<T> b) => Vector128.LessThanOrEqual(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> AndNot(Vector128<T> a, Vector128<T> b) => Vector128.AndNot(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector128<T> value, out Vector128<double> lower, out Vector128<double> upper)
    {
        if (typeof(T) == typeof(float))
        {
            lower = Vector128.WidenLower(value.As<T, float>());
            upper = Vector128.WidenUpper(value.As<T, float>());
            return;
        }

        if (typeof(T) == typeof(double))
        {
            lower = value.As<T, double>();
            upper = Vector128<double>.Zero;
            return;
        }

        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Narrow(Vector128<double> lower, Vector128<double> upper)
    {
        if (typeof(T) == typeof(float)) return Vector128.Narrow(lower, upper).As<float, T>();
        if (typeof(T) == typeof(double)) return lower.As<double, T>();
        throw SimdOps.WideningUnsupported<T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadWidened(ref T source, out Vector128<double> lower, out Vector128<double> upper)
    {
        Widen(Vector128.LoadUnsafe(ref source), out lower, out upper);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<double> RoundThrough(Vector128<double> value)
    {
        if (typeof(T) == typeof(float)) return Vector128.WidenLower(Vector128.Narrow(value, value));
        if (typeof(T) == typeof(double)) return value;
        throw SimdOps.WideningUnsupported<T>();
    }

    public static int Count => Vector128<T>.Count;
    public static string Name => "Vector128";
    public static Vector128<T> Zero => Vector128<T>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Load(ref T source) => Vector128.LoadUnsafe(ref source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<T> value, ref T destination) => value.StoreUnsafe(ref destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Broadcast(T value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Multiply(Vector128<T> a, Vector128<T> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Add(Vector128<T> a, Vector128<T> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> MaxNative(Vector128<T> a, Vector128<T> b) => Vector128.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Or(Vector128<T> a, Vector128<T> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static bool AnySet(Vector128<T> mask) => Vector128.ExtractMostSignificantBits(mask) != 0;

    /// <summary>One unordered compare where the CPU has it, else two self-compares.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> AnyNaN(Vector128<T> a, Vector128<T> b)
    {
        if (typeof(T) == typeof(float) && Sse.IsSupported) return Sse.CompareUnordered(a.AsSingle(), b.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double) && Sse2.IsSupported) return Sse2.CompareUnordered(a.AsDouble(), b.AsDouble()).As<double, T>();
        return ~(Vector128.Equals(a, a) & Vector128.Equals(b, b));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> GreaterThan(Vector128<T> a, Vector128<T> b) => Vector128.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> And(Vector128<T> a, Vector128<T> b) => a & b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Select(Vector128<T> mask, Vector128<T> whereSet, Vector128<T> whereClear) => Vector128.ConditionalSelect(mask, whereSet, whereClear);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> SelectLow(Vector128<T> low, Vector128<T> high, int count) =>
        Vector128.ConditionalSelect(Vector128.LessThan(Vector128<T>.Indices, Vector128.Create(T.CreateTruncating(count))), low, high);

    /// <summary>Even lanes of a then b, odd lanes of a then b: each input sorted by lane parity, then the halves combined.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Deinterleave(Vector128<T> a, Vector128<T> b, out Vector128<T> even, out Vector128<T> odd)
    {
        if (typeof(T) == typeof(float))
        {
            Vector128<int> order = Vector128.Create(0, 2, 1, 3);
            Vector128<float> sa = Vector128.Shuffle(a.AsSingle(), order), sb = Vector128.Shuffle(b.AsSingle(), order);
            even = Vector128.Create(sa.GetLower(), sb.GetLower()).As<float, T>();
            odd = Vector128.Create(sa.GetUpper(), sb.GetUpper()).As<float, T>();
            return;
        }

        if (typeof(T) == typeof(double))
        {
            Vector128<long> order = Vector128.Create(0, 1L);
            Vector128<double> sa = Vector128.Shuffle(a.AsDouble(), order), sb = Vector128.Shuffle(b.AsDouble(), order);
            even = Vector128.Create(sa.GetLower(), sb.GetLower()).As<double, T>();
            odd = Vector128.Create(sa.GetUpper(), sb.GetUpper()).As<double, T>();
            return;
        }

        throw SimdOps.DeinterleaveUnsupported<T>(); // the fused conv kernel, its only caller, runs on float and double only
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> MultiplyAdd(Vector128<T> a, Vector128<T> b, Vector128<T> c)
    {
        if (typeof(T) == typeof(float)) return Vector128.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector128.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
        return a * b + c;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<T> Max(Vector128<T> a, Vector128<T> b) => Vector128.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> Lanes(int value) => Unsafe.SizeOf<T>() == 4
        ? Vector128.Create((uint)value).As<uint, T>()
        : Vector128.Create((ulong)value).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> EqualLanes(Vector128<T> a, Vector128<T> b) => Unsafe.SizeOf<T>() == 4
        ? Vector128.Equals(a.As<T, uint>(), b.As<T, uint>()).As<uint, T>()
        : Vector128.Equals(a.As<T, ulong>(), b.As<T, ulong>()).As<ulong, T>();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreLowBytes(Vector128<T> lanes, ref byte destination)
    {
        Vector128<byte> bytes; // the lanes' low bytes first, in order
        if (Unsafe.SizeOf<T>() == 4)
        {
            var u = lanes.As<T, uint>();
            var s = Vector128.Narrow(u, u);
            bytes = Vector128.Narrow(s, s);
        }
        else
        {
            var u = lanes.As<T, ulong>();
            var i = Vector128.Narrow(u, u);
            var s = Vector128.Narrow(i, i);
            bytes = Vector128.Narrow(s, s);
        }

        SimdOps.StoreFirst(bytes, Count, ref destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<T> LoadLowBytes(ref byte source)
    {
        var bytes = SimdOps.LoadFirst(ref source, Count);
        var widened = Vector128.WidenLower(Vector128.WidenLower(bytes));
        return Unsafe.SizeOf<T>() == 4 ? widened.As<uint, T>() : Vector128.WidenLower(widened).As<ulong, T>();
    }
}

/// <summary>What the SIMD operation structs share.</summary>
internal static class SimdOps
{
    /// <summary>The error for Deinterleave on an element type other than float or double.</summary>
    public static NotSupportedException DeinterleaveUnsupported<T>() =>
        new($"Deinterleave supports float and double, not {typeof(T).Name}.");

    /// <summary>The error for Widen and Narrow on an element type other than float or double.</summary>
    public static NotSupportedException WideningUnsupported<T>() =>
        new($"Widening to double supports float and double, not {typeof(T).Name}.");

    /// <summary><see cref="ScalarOps.MaxKeepingNaN{T}(T, T)"/> lane by lane: a where it is NaN, else b where it is NaN, else the IEEE maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV MaxKeepingNaN<TOps, TV, T>(TV a, TV b) where TOps : struct, ISimdOps<TV, T> where TV : struct where T : unmanaged =>
        TOps.Select(TOps.AnyNaN(a, a), a, TOps.Select(TOps.AnyNaN(b, b), b, TOps.Max(a, b)));

    /// <summary><see cref="ScalarOps.Relu{T}(T)"/> lane by lane: +0 where y ≤ 0 (−0 included), y elsewhere (a NaN with its bits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Relu<TOps, TV, T>(TV y) where TOps : struct, ISimdOps<TV, T> where TV : struct where T : unmanaged =>
        TOps.AndNot(y, TOps.LessThanOrEqual(y, TOps.Zero));

    /// <summary>The first <paramref name="count"/> (2, 4, 8 or 16) bytes of <paramref name="bytes"/> to <paramref name="destination"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void StoreFirst(Vector128<byte> bytes, int count, ref byte destination)
    {
        switch (count) // a constant for the JIT: one branch remains
        {
            case 2: Unsafe.WriteUnaligned(ref destination, bytes.AsUInt16().ToScalar()); break;
            case 4: Unsafe.WriteUnaligned(ref destination, bytes.AsUInt32().ToScalar()); break;
            case 8: Unsafe.WriteUnaligned(ref destination, bytes.AsUInt64().ToScalar()); break;
            default: bytes.StoreUnsafe(ref destination); break;
        }
    }

    /// <summary><paramref name="count"/> (2, 4, 8 or 16) bytes from <paramref name="source"/> in the first lanes (nothing after them is read).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> LoadFirst(ref byte source, int count) => count switch
    {
        2 => Vector128.CreateScalar(Unsafe.ReadUnaligned<ushort>(ref source)).AsByte(),
        4 => Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(ref source)).AsByte(),
        8 => Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(ref source)).AsByte(),
        _ => Vector128.LoadUnsafe(ref source),
    };
}
