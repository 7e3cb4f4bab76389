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
    [InlineData(4, 6)]
    [InlineData(6, 6)]
    [InlineData(9, 2)]
    public void Column_sums_add_rows_into_four_partials_by_row_mod_4_then_fold_in_order(int rows, int cols)
    {
        var random = new Random(rows * 31 + cols);
        var matrix = new float[rows * cols];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (random.NextSingle() - 0.5f) * MathF.Pow(10, random.Next(-3, 4));
        var sums = new float[cols];
        for (int j = 0; j < cols; j++) sums[j] = random.NextSingle();
        var expected = (float[])sums.Clone();
        for (int j = 0; j < cols; j++)
        {
            var partial = new float[4];
            for (int r = 0; r < rows; r++) partial[r % 4] += matrix[r * cols + j];
            expected[j] = (((expected[j] + partial[0]) + partial[1]) + partial[2]) + partial[3];
        }

        RowOps.AddColumnSums<float>(matrix, sums);

        sums.Should().Equal(expected);
    }
}
