using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>Row-wise helpers for (rows, columns) row-major matrices, shared by the bias-carrying layers.</summary>
internal static class RowOps
{
    /// <summary>Writes <paramref name="row"/> (columns) into every row of <paramref name="matrix"/> (rows, columns).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
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
    /// Adds the column sums of <paramref name="matrix"/> (rows, columns) into <paramref name="sums"/> (columns) in one
    /// fixed order whatever the vector width (vectors span columns, never rows): row r goes to partial sum r mod 4 of its
    /// column, each partial adds its rows in order from zero, then sum = (((old + p0) + p1) + p2) + p3. Four partials
    /// keep the rounding error of conv1's 1,728-row sums small and the adds independent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
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
                Vector256<T> p0 = Vector256<T>.Zero, p1 = p0, p2 = p0, p3 = p0;
                int r = 0;
                for (; r + 4 <= rows; r += 4)
                {
                    p0 += Vector256.LoadUnsafe(ref m, (nuint)(r * cols + j));
                    p1 += Vector256.LoadUnsafe(ref m, (nuint)((r + 1) * cols + j));
                    p2 += Vector256.LoadUnsafe(ref m, (nuint)((r + 2) * cols + j));
                    p3 += Vector256.LoadUnsafe(ref m, (nuint)((r + 3) * cols + j));
                }

                if (r < rows) p0 += Vector256.LoadUnsafe(ref m, (nuint)(r * cols + j));
                if (r + 1 < rows) p1 += Vector256.LoadUnsafe(ref m, (nuint)((r + 1) * cols + j));
                if (r + 2 < rows) p2 += Vector256.LoadUnsafe(ref m, (nuint)((r + 2) * cols + j));
                (((Vector256.LoadUnsafe(ref s, (nuint)j) + p0) + p1) + p2 + p3).StoreUnsafe(ref s, (nuint)j);
            }

            if (j < cols && rows * cols >= w + j)
            {
                // Fewer than a vector of columns left (conv1's 6): whole-vector loads whose extra lanes (the next row's
                // first elements) are masked to zero; rows whose load would run past the matrix go scalar.
                int left = cols - j;
                var mask = Vector256.LessThan(Vector256<T>.Indices, Vector256.Create(T.CreateTruncating(left)));
                Span<T> partials = stackalloc T[4 * w];
                Vector256<T> p0 = Vector256<T>.Zero, p1 = p0, p2 = p0, p3 = p0;
                int r = 0, vectorRows = (matrix.Length - w - j) / cols + 1; // rows r with r·cols + j + w ≤ length
                for (; r + 4 <= vectorRows; r += 4)
                {
                    p0 += Vector256.LoadUnsafe(ref m, (nuint)(r * cols + j)) & mask;
                    p1 += Vector256.LoadUnsafe(ref m, (nuint)((r + 1) * cols + j)) & mask;
                    p2 += Vector256.LoadUnsafe(ref m, (nuint)((r + 2) * cols + j)) & mask;
                    p3 += Vector256.LoadUnsafe(ref m, (nuint)((r + 3) * cols + j)) & mask;
                }

                ref T pr = ref MemoryMarshal.GetReference(partials);
                p0.StoreUnsafe(ref pr);
                p1.StoreUnsafe(ref pr, (nuint)w);
                p2.StoreUnsafe(ref pr, (nuint)(2 * w));
                p3.StoreUnsafe(ref pr, (nuint)(3 * w));
                for (; r < rows; r++)
                    for (int l = 0; l < left; l++) partials[(r & 3) * w + l] += Unsafe.Add(ref m, r * cols + j + l);
                for (int l = 0; l < left; l++)
                {
                    sums[j + l] = (((sums[j + l] + partials[l]) + partials[w + l]) + partials[2 * w + l]) + partials[3 * w + l];
                }

                return;
            }
        }

        for (; j < cols; j++)
        {
            T p0 = T.Zero, p1 = T.Zero, p2 = T.Zero, p3 = T.Zero;
            for (int r = 0; r < rows; r++)
            {
                T v = Unsafe.Add(ref m, r * cols + j);
                switch (r & 3)
                {
                    case 0: p0 += v; break;
                    case 1: p1 += v; break;
                    case 2: p2 += v; break;
                    default: p3 += v; break;
                }
            }

            Unsafe.Add(ref s, j) = (((Unsafe.Add(ref s, j) + p0) + p1) + p2) + p3;
        }
    }
}
