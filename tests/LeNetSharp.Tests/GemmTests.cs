using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

public class GemmTests
{
    public static TheoryData<bool, bool, int, int, int> Cases()
    {
        var data = new TheoryData<bool, bool, int, int, int>();
        foreach (bool ta in new[] { false, true })
        foreach (bool tb in new[] { false, true })
        foreach (var (m, n, k) in new[] { (1, 1, 1), (3, 10, 256), (1728, 6, 25), (7, 5, 3), (150, 16, 192), (17, 33, 9) })
            data.Add(ta, tb, m, n, k);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MathNet_provider_matches_naive_product_in_every_transpose_case(bool transA, bool transB, int m, int n, int k)
    {
        var random = new Random(m * 31 + n * 7 + k);
        double[] a = GradientCheck.Random(random, m * k).Data, b = GradientCheck.Random(random, k * n).Data;
        double[] c = GradientCheck.Random(random, m * n).Data, expected = new double[m * n];
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double s = 0;
            for (int p = 0; p < k; p++) s += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
            expected[i * n + j] = 0.5 * s + 2 * c[i * n + j];
        }

        Gemm.Multiply(transA, transB, m, n, k, 0.5, a, b, 2.0, c);

        for (int i = 0; i < c.Length; i++) c[i].Should().BeApproximately(expected[i], 1e-12 * (1 + Math.Abs(expected[i])));
    }

    [Fact]
    public void Wrong_buffer_length_names_the_matrix_and_its_shape()
    {
        var act = () => Gemm.Multiply(false, false, 2, 3, 4, 1.0, new double[8], new double[11], 0.0, new double[6]);
        act.Should().Throw<ArgumentException>().WithMessage("Matrix b should be (4, 3) = 12 elements, but has 11*");
    }

    [Fact]
    public void Float_and_double_agree()
    {
        var random = new Random(3);
        double[] a = GradientCheck.Random(random, 12).Data, b = GradientCheck.Random(random, 20).Data;
        double[] cd = new double[15];
        float[] cf = new float[15];
        Gemm.Multiply(false, false, 3, 5, 4, 1.0, a, b, 0.0, cd);
        Gemm.Multiply(false, false, 3, 5, 4, 1f, a.Select(v => (float)v).ToArray(), b.Select(v => (float)v).ToArray(), 0f, cf);
        for (int i = 0; i < 15; i++) cf[i].Should().BeApproximately((float)cd[i], 1e-5f);
    }
}
