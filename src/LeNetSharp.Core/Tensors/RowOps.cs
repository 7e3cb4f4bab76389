using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    /// <summary>
    /// Adds the column sums of <paramref name="matrix"/> (rows, columns) into <paramref name="sums"/> (columns): each
    /// sum runs down its column in row order, starting from its old value, whatever the vector width (vectors span
    /// columns, never rows), so the result is the same bits on every machine.
    /// </summary>
    public static void AddColumnSums<T>(ReadOnlySpan<T> matrix, Span<T> sums) where T : unmanaged, INumberBase<T>
    {
        int cols = sums.Length, rows = matrix.Length / cols;
        ref T m = ref MemoryMarshal.GetReference(matrix);
        ref T s = ref MemoryMarshal.GetReference(sums);
        int j = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            int w = Vector256<T>.Count;
            for (; j + w <= cols; j += w)
            {
                var acc = Vector256.LoadUnsafe(ref s, (nuint)j);
                for (int r = 0; r < rows; r++) acc += Vector256.LoadUnsafe(ref m, (nuint)(r * cols + j));
                acc.StoreUnsafe(ref s, (nuint)j);
            }

            if (j < cols && rows > 1)
            {
                // Fewer than a vector of columns left (conv1's 6): whole-vector loads whose extra lanes (the next row's
                // first elements) are masked to zero; the last row, whose load could run past the matrix, goes scalar.
                int left = cols - j;
                var mask = Vector256.LessThan(Vector256<T>.Indices, Vector256.Create(T.CreateTruncating(left)));
                Span<T> start = stackalloc T[w];
                sums.Slice(j, left).CopyTo(start);
                var acc = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(start));
                int r = 0;
                for (; r < rows && r * cols + j + w <= matrix.Length; r++) acc += Vector256.LoadUnsafe(ref m, (nuint)(r * cols + j)) & mask;
                acc.StoreUnsafe(ref MemoryMarshal.GetReference(start));
                for (; r < rows; r++)
                    for (int l = 0; l < left; l++) start[l] += Unsafe.Add(ref m, r * cols + j + l);
                start[..left].CopyTo(sums[j..]);
                return;
            }
        }

        for (; j < cols; j++)
        {
            T acc = Unsafe.Add(ref s, j);
            for (int r = 0; r < rows; r++) acc += Unsafe.Add(ref m, r * cols + j);
            Unsafe.Add(ref s, j) = acc;
        }
    }
}
