using System.Globalization;

namespace LeNetSharp.Inference;

/// <summary>The answer for one image: the most likely class and the probability of every class.</summary>
/// <param name="Label">The predicted class: the index of the largest logit (the first one on a tie), as the evaluator counts it.</param>
/// <param name="Probabilities">The softmax of the logits, one per class (length K), owned by the caller.</param>
public sealed record Prediction(int Label, float[] Probabilities)
{
    /// <summary>The probability of <see cref="Label"/>.</summary>
    public float Confidence => Probabilities[Label];

    /// <summary>The second most likely class (the first one on a tie), or −1 when there is only one class.</summary>
    public int RunnerUp
    {
        get
        {
            int best = -1;
            for (int j = 0; j < Probabilities.Length; j++)
            {
                if (j != Label && (best < 0 || Probabilities[j] > Probabilities[best])) best = j;
            }

            return best;
        }
    }

    /// <summary>E.g. "7 (99.1%; runner-up 2, 0.5%)".</summary>
    /// <returns>The label, its probability and the runner-up with its probability.</returns>
    public override string ToString()
    {
        int r = RunnerUp;
        return r < 0
            ? string.Create(CultureInfo.InvariantCulture, $"{Label} ({100 * Confidence:F1}%)")
            : string.Create(CultureInfo.InvariantCulture, $"{Label} ({100 * Confidence:F1}%; runner-up {r}, {100 * Probabilities[r]:F1}%)");
    }
}
