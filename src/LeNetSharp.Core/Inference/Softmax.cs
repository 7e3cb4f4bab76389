using System.Numerics;

namespace LeNetSharp.Inference;

/// <summary>The softmax function on a vector of logits, computed stably (the largest logit is subtracted first).</summary>
public static class Softmax
{
    /// <summary>
    /// Writes pᵢ = exp(zᵢ − max z) / Σⱼ exp(zⱼ − max z) for every logit zᵢ. Subtracting the maximum changes nothing
    /// mathematically but keeps every exp(·) in (0, 1], so logits of ±1,000 neither overflow to ∞ nor underflow to a
    /// 0/0; the largest probability is always at least 1/K. In place is allowed (the same span for both).
    /// </summary>
    /// <param name="logits">K scores (K ≥ 1).</param>
    /// <param name="probabilities">K destinations; the results are in [0, 1] and sum to 1 (up to rounding). A NaN logit gives NaN.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">The spans are empty or of different lengths.</exception>
    public static void Compute<T>(ReadOnlySpan<T> logits, Span<T> probabilities) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (logits.IsEmpty) throw new ArgumentException("Softmax needs at least one logit.", nameof(logits));
        if (probabilities.Length != logits.Length)
        {
            throw new ArgumentException($"{logits.Length} logits need {logits.Length} probabilities, got room for {probabilities.Length}.", nameof(probabilities));
        }

        T max = logits[0];
        for (int i = 1; i < logits.Length; i++) max = T.MaxNumber(max, logits[i]);
        if (T.IsInfinity(max))
        {
            // exp(∞ − ∞) would be NaN: the limit puts all the mass, shared equally, on the logits equal to +∞.
            int count = 0;
            foreach (T z in logits) if (z == max) count++;
            T share = T.IsPositiveInfinity(max) ? T.One / T.CreateChecked(count) : T.One / T.CreateChecked(logits.Length);
            for (int i = 0; i < logits.Length; i++) probabilities[i] = T.IsPositiveInfinity(max) && logits[i] != max ? T.Zero : share;
            return;
        }

        T sum = T.Zero;
        for (int i = 0; i < logits.Length; i++)
        {
            T e = T.Exp(logits[i] - max);
            probabilities[i] = e;
            sum += e;
        }

        T scale = T.One / sum;
        for (int i = 0; i < probabilities.Length; i++) probabilities[i] *= scale;
    }

    /// <summary>The softmax of <paramref name="logits"/> in a new array (see <see cref="Compute{T}(ReadOnlySpan{T}, Span{T})"/>).</summary>
    /// <param name="logits">K scores (K ≥ 1).</param>
    /// <returns>K probabilities summing to 1, owned by the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="logits"/> is empty.</exception>
    public static float[] Compute(ReadOnlySpan<float> logits)
    {
        var p = new float[logits.Length];
        Compute(logits, p.AsSpan());
        return p;
    }
}
