using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LeNetSharp.Tensors;

/// <summary>Row-wise helpers for (rows, columns) row-major matrices, shared by the bias-carrying layers.</summary>
internal static class RowOps
{
    /// <summary>Writes <paramref name="row"/> (columns) into every row of <paramref name="matrix"/> (rows, columns).</summary>
    public static void BroadcastRows<T>(ReadOnlySpan<T> row, Span<T> matrix)
    {
        if (matrix.IsEmpty) return;
        row.CopyTo(matrix);
        // Double the filled prefix each pass: log2(rows) block copies instead of one short copy per row.
        for (int filled = row.Length; filled < matrix.Length; filled *= 2)
        {
            matrix[..Math.Min(filled, matrix.Length - filled)].CopyTo(matrix[filled..]);
        }
    }

    /// <summary>Adds the column sums of <paramref name="matrix"/> (rows, columns) into <paramref name="sums"/> (columns).</summary>
    public static void AddColumnSums<T>(ReadOnlySpan<T> matrix, Span<T> sums) where T : unmanaged, INumberBase<T>
    {
        int cols = sums.Length, rows = matrix.Length / cols, start = 0;
        int w = Vector<T>.Count;
        // Sum blocks of `period` rows as flat vectors (period·cols is a whole number of vectors), then fold the lanes.
        int period = w / (int)BigInteger.GreatestCommonDivisor(cols, w);
        int block = period * cols;
        if (Vector.IsHardwareAccelerated && block <= 8 * w && rows >= 2 * period)
        {
            Span<Vector<T>> acc = stackalloc Vector<T>[8];
            acc.Clear();
            int vectors = block / w;
            ref T m = ref MemoryMarshal.GetReference(matrix);
            for (; start + block <= rows * cols; start += block)
            {
                for (int v = 0; v < vectors; v++) acc[v] += Vector.LoadUnsafe(ref m, (nuint)(start + v * w));
            }

            Span<T> lanes = MemoryMarshal.Cast<Vector<T>, T>(acc)[..block];
            for (int i = 0; i < block; i++) sums[i % cols] += lanes[i];
        }

        for (; start < rows * cols; start += cols)
        {
            ReadOnlySpan<T> r = matrix.Slice(start, cols);
            for (int j = 0; j < cols; j++) sums[j] += r[j];
        }
    }
}
