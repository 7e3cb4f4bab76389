using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>Kernels against naive loops that sum in the documented order: bit for bit, not up to a tolerance.</summary>
public class KernelReferenceTests
{
    [Theory]
    [InlineData(1, 6)]
    [InlineData(1728, 6)]
    [InlineData(192, 16)]
    [InlineData(3, 10)]
    [InlineData(5, 3)]
    [InlineData(7, 19)]
    [InlineData(2, 8)]
    public void Column_sums_run_down_each_column_in_row_order(int rows, int cols)
    {
        var random = new Random(rows * 31 + cols);
        var matrix = new float[rows * cols];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (random.NextSingle() - 0.5f) * MathF.Pow(10, random.Next(-3, 4));
        var sums = new float[cols];
        for (int j = 0; j < cols; j++) sums[j] = random.NextSingle();
        var expected = (float[])sums.Clone();
        for (int j = 0; j < cols; j++)
            for (int r = 0; r < rows; r++) expected[j] += matrix[r * cols + j];

        RowOps.AddColumnSums<float>(matrix, sums);

        sums.Should().Equal(expected);
    }
}
