using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// Central-difference gradient checks in double precision. The scalar checked is L = ⟨f(x), G⟩ for a random
/// upstream gradient G, so every output element contributes with its own weight (an all-ones G would only
/// check the sum of outputs).
/// </summary>
internal static class GradientCheck
{
    public const double Epsilon = 1e-6;
    public const double Tolerance = 1e-6;

    /// <summary>‖a − n‖ / max(‖a‖ + ‖n‖, tiny): 0 for a perfect match, 1 for unrelated vectors.</summary>
    public static double RelativeError(ReadOnlySpan<double> analytic, ReadOnlySpan<double> numeric)
    {
        double diff = 0, na = 0, nn = 0;
        for (int i = 0; i < analytic.Length; i++)
        {
            diff += (analytic[i] - numeric[i]) * (analytic[i] - numeric[i]);
            na += analytic[i] * analytic[i];
            nn += numeric[i] * numeric[i];
        }

        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(na) + Math.Sqrt(nn), 1e-300);
    }

    public static Tensor<double> Random(Random random, params int[] shape)
    {
        var t = new Tensor<double>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = random.NextDouble() * 2 - 1;
        return t;
    }

    /// <summary>
    /// Checks ∂L/∂x and ∂L/∂θ for every parameter θ of <paramref name="layer"/>; returns the relative errors
    /// keyed "input", "weight", "bias", … so the caller can assert on each.
    /// </summary>
    public static Dictionary<string, double> Layer(ILayer<double> layer, Tensor<double> input, Random random)
    {
        var output = layer.Forward(input);
        var upstream = Random(random, output.Shape.ToArray());
        double Loss()
        {
            var y = layer.Forward(input).Data;
            double s = 0;
            for (int i = 0; i < y.Length; i++) s += y[i] * upstream.Data[i];
            return s;
        }

        foreach (var p in layer.Parameters) p.ZeroGradient();
        layer.Forward(input);
        var inputGrad = layer.Backward(upstream).Data.ToArray();
        var analytic = layer.Parameters.ToDictionary(p => p.Name, p => p.Gradient.Data.ToArray());

        var errors = new Dictionary<string, double> { ["input"] = RelativeError(inputGrad, Numeric(input.Data, Loss)) };
        foreach (var p in layer.Parameters) errors[p.Name] = RelativeError(analytic[p.Name], Numeric(p.Value.Data, Loss));
        return errors;
    }

    /// <summary>Central differences of <paramref name="loss"/> with respect to each element of <paramref name="values"/> (restored afterwards).</summary>
    public static double[] Numeric(double[] values, Func<double> loss, IReadOnlyList<int>? indices = null)
    {
        indices ??= Enumerable.Range(0, values.Length).ToArray();
        var numeric = new double[indices.Count];
        for (int j = 0; j < indices.Count; j++)
        {
            int i = indices[j];
            double saved = values[i];
            values[i] = saved + Epsilon;
            double plus = loss();
            values[i] = saved - Epsilon;
            double minus = loss();
            values[i] = saved;
            numeric[j] = (plus - minus) / (2 * Epsilon);
        }

        return numeric;
    }
}
