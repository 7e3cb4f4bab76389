using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>Sums of short runs (5 to a few dozen elements), the unit of work of col2im.</summary>
internal static class ShortCopy
{
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
