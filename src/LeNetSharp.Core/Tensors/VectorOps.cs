using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LeNetSharp.Tensors;

/// <summary>Element-wise kernels over spans, vectorised with <see cref="Vector{T}"/> plus a scalar tail.</summary>
internal static class VectorOps
{
    /// <summary>"Vector&lt;T&gt;, 256-bit": the width .NET gives <see cref="Vector{T}"/> on this CPU, for plan summaries.</summary>
    public static string WidthName<T>() => $"Vector<T>, {Vector<byte>.Count * 8}-bit";

    /// <summary>y = max(x, 0), a NaN passed on with its bits (<see cref="ScalarOps.Relu{T}(T)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Relu<T>(ReadOnlySpan<T> x, Span<T> y) where T : unmanaged, INumber<T>
    {
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T ys = ref MemoryMarshal.GetReference(y[..x.Length]);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<T>.Count <= x.Length; i += Vector<T>.Count)
            {
                Relu(Vector.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ys, (nuint)i);
            }
        }

        for (; i < x.Length; i++) Unsafe.Add(ref ys, i) = ScalarOps.Relu(Unsafe.Add(ref xs, i));
    }

    /// <summary>The vector form of <see cref="ScalarOps.Relu{T}(T)"/>: the same bits lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Relu<T>(Vector<T> x) => Vector.AndNot(x, Vector.LessThanOrEqual(x, Vector<T>.Zero));

    /// <summary>The vector form of <see cref="ScalarOps.MaxKeepingNaN{T}(T, T)"/>: the same bits lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> MaxKeepingNaN<T>(Vector<T> a, Vector<T> b) =>
        Vector.ConditionalSelect(Vector.Equals(a, a), Vector.ConditionalSelect(Vector.Equals(b, b), Vector.Max(a, b), b), a);

    /// <summary>dx = dy where y &gt; 0, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void ReluBackward<T>(ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx) where T : unmanaged, INumber<T>
    {
        ref T ys = ref MemoryMarshal.GetReference(y);
        ref T dys = ref MemoryMarshal.GetReference(dy[..y.Length]);
        ref T dxs = ref MemoryMarshal.GetReference(dx[..y.Length]);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i + Vector<T>.Count <= y.Length; i += Vector<T>.Count)
            {
                var positive = Vector.GreaterThan(Vector.LoadUnsafe(ref ys, (nuint)i), Vector<T>.Zero);
                Vector.ConditionalSelect(positive, Vector.LoadUnsafe(ref dys, (nuint)i), Vector<T>.Zero).StoreUnsafe(ref dxs, (nuint)i);
            }
        }

        for (; i < y.Length; i++) Unsafe.Add(ref dxs, i) = Unsafe.Add(ref ys, i) > T.Zero ? Unsafe.Add(ref dys, i) : T.Zero;
    }

    /// <summary>w = w − scale·g (the SGD update).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void SubtractScaled<T>(Span<T> w, ReadOnlySpan<T> g, T scale) where T : unmanaged, INumber<T>
    {
        ref T ws = ref MemoryMarshal.GetReference(w);
        ref T gs = ref MemoryMarshal.GetReference(g[..w.Length]);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var s = new Vector<T>(scale);
            for (; i + Vector<T>.Count <= w.Length; i += Vector<T>.Count)
            {
                (Vector.LoadUnsafe(ref ws, (nuint)i) - s * Vector.LoadUnsafe(ref gs, (nuint)i)).StoreUnsafe(ref ws, (nuint)i);
            }
        }

        for (; i < w.Length; i++) Unsafe.Add(ref ws, i) -= scale * Unsafe.Add(ref gs, i);
    }

    /// <summary>True when no element is NaN or ±∞ (x·0 is 0 for each finite x and NaN otherwise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static bool AllFinite<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref T xs = ref MemoryMarshal.GetReference(x);
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var sum = Vector<T>.Zero;
            for (; i + Vector<T>.Count <= x.Length; i += Vector<T>.Count) sum += Vector.LoadUnsafe(ref xs, (nuint)i) * Vector<T>.Zero;
            if (sum != Vector<T>.Zero) return false;
        }

        T tail = T.Zero;
        for (; i < x.Length; i++) tail += Unsafe.Add(ref xs, i) * T.Zero;
        return tail == T.Zero;
    }

    /// <summary>x = scale·x.</summary>
    public static void Scale<T>(Span<T> x, T scale) where T : unmanaged, INumber<T>
    {
        if (scale == T.One) return;
        for (int i = 0; i < x.Length; i++) x[i] *= scale;
    }

    /// <summary>dst = dst + scale·src.</summary>
    public static void AddScaled<T>(Span<T> dst, ReadOnlySpan<T> src, T scale) where T : unmanaged, INumber<T> =>
        SubtractScaled(dst, src, -scale);

    /// <summary>dst = scale·src, converting bytes to <typeparamref name="T"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void ScaleBytes<T>(ReadOnlySpan<byte> src, Span<T> dst, T scale) where T : unmanaged, INumberBase<T>
    {
        ref byte s = ref MemoryMarshal.GetReference(src);
        ref T d = ref MemoryMarshal.GetReference(dst[..src.Length]);
        int i = 0;
        if (typeof(T) == typeof(float) && Vector.IsHardwareAccelerated && src.Length >= Vector<byte>.Count)
        {
            // byte → ushort → uint → float, 4 float vectors per byte vector. The widened values are below 256, so they
            // convert as signed ints: one instruction, where an unsigned conversion is several on x64.
            var sc = new Vector<float>(float.CreateTruncating(scale));
            ref float df = ref Unsafe.As<T, float>(ref d);
            int f = Vector<float>.Count, last = src.Length - Vector<byte>.Count;
            for (; ; i = Math.Min(i + Vector<byte>.Count, last))
            {
                Vector.Widen(Vector.LoadUnsafe(ref s, (nuint)i), out Vector<ushort> lo, out Vector<ushort> hi);
                Vector.Widen(lo, out Vector<uint> a, out Vector<uint> b);
                Vector.Widen(hi, out Vector<uint> c, out Vector<uint> e);
                (Vector.ConvertToSingle(Vector.AsVectorInt32(a)) * sc).StoreUnsafe(ref df, (nuint)i);
                (Vector.ConvertToSingle(Vector.AsVectorInt32(b)) * sc).StoreUnsafe(ref df, (nuint)(i + f));
                (Vector.ConvertToSingle(Vector.AsVectorInt32(c)) * sc).StoreUnsafe(ref df, (nuint)(i + 2 * f));
                (Vector.ConvertToSingle(Vector.AsVectorInt32(e)) * sc).StoreUnsafe(ref df, (nuint)(i + 3 * f));
                if (i == last) return; // the last vector ends at the end, overlapping the one before: same values rewritten
            }
        }

        for (; i < src.Length; i++) Unsafe.Add(ref d, i) = T.CreateTruncating(Unsafe.Add(ref s, i)) * scale;
    }

    /// <summary>x[i] += c for every element.</summary>
    public static void AddConstant<T>(Span<T> x, T c) where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && x.Length >= Vector<T>.Count)
        {
            var vc = new Vector<T>(c);
            for (; i <= x.Length - Vector<T>.Count; i += Vector<T>.Count)
            {
                var slice = x.Slice(i, Vector<T>.Count);
                (new Vector<T>(slice) + vc).CopyTo(slice);
            }
        }

        for (; i < x.Length; i++) x[i] += c;
    }
}
