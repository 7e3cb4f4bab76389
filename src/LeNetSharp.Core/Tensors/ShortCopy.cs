using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>Copies and sums of short runs (an image row, a kernel row: 5 to a few dozen elements), the units of work of im2col and col2im.</summary>
internal static class ShortCopy
{
    /// <summary>Copies a short run (an image row) with 512- and 256-bit moves and a scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Copy<T>(ref T src, ref T dst, int length) where T : unmanaged
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + Vector512<T>.Count <= length; i += Vector512<T>.Count)
            {
                Vector512.LoadUnsafe(ref Unsafe.Add(ref src, i)).StoreUnsafe(ref Unsafe.Add(ref dst, i));
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<T>.Count <= length; i += Vector256<T>.Count)
            {
                Vector256.LoadUnsafe(ref Unsafe.Add(ref src, i)).StoreUnsafe(ref Unsafe.Add(ref dst, i));
            }
        }

        for (; i < length; i++) Unsafe.Add(ref dst, i) = Unsafe.Add(ref src, i);
    }

    /// <summary>dst[i] += src[i] for every i of <paramref name="src"/>.</summary>
    /// <param name="src">The run to add.</param>
    /// <param name="dst">The destination; at least as long as <paramref name="src"/>.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add<T>(ReadOnlySpan<T> src, Span<T> dst) where T : unmanaged, System.Numerics.INumberBase<T>
    {
        ref T s = ref MemoryMarshal.GetReference(src);
        ref T d = ref MemoryMarshal.GetReference(dst[..src.Length]);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<T>.Count <= src.Length; i += Vector256<T>.Count)
            {
                (Vector256.LoadUnsafe(ref Unsafe.Add(ref d, i)) + Vector256.LoadUnsafe(ref Unsafe.Add(ref s, i))).StoreUnsafe(ref Unsafe.Add(ref d, i));
            }
        }

        for (; i < src.Length; i++) Unsafe.Add(ref d, i) += Unsafe.Add(ref s, i);
    }
}
