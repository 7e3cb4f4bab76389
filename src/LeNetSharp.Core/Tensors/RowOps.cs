using System.Numerics;

namespace LeNetSharp.Tensors;

/// <summary>Row-wise helpers for (rows, columns) row-major matrices, shared by the bias-carrying layers.</summary>
internal static class RowOps
{
    /// <summary>Writes <paramref name="row"/> (columns) into every row of <paramref name="matrix"/> (rows, columns).</summary>
    public static void BroadcastRows<T>(ReadOnlySpan<T> row, Span<T> matrix)
    {
        for (int start = 0; start < matrix.Length; start += row.Length) row.CopyTo(matrix.Slice(start, row.Length));
    }

    /// <summary>Adds the column sums of <paramref name="matrix"/> (rows, columns) into <paramref name="sums"/> (columns).</summary>
    public static void AddColumnSums<T>(ReadOnlySpan<T> matrix, Span<T> sums) where T : INumberBase<T>
    {
        for (int start = 0; start < matrix.Length; start += sums.Length)
        {
            ReadOnlySpan<T> r = matrix.Slice(start, sums.Length);
            for (int j = 0; j < r.Length; j++) sums[j] += r[j];
        }
    }
}
