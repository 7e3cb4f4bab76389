using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Softmax followed by cross-entropy against integer class labels, fused for numerical stability.
/// <code>
/// logits z : (N, K)      labels : N integers in [0, K)
/// p        = softmax(z) per row, computed as exp(z − max z) / Σ exp(z − max z)
/// loss     = −(1/N) Σ_n log p[n, label_n]     (log p by log-sum-exp, finite for logits of ±1000)
/// ∂z       = (p − onehot(labels)) / N
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class SoftmaxCrossEntropy<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _probabilities;
    private Tensor<T>? _logitGrad;
    private int[] _labels = [];

    /// <summary>Creates the loss; only <see cref="float"/> and <see cref="double"/> elements are supported.</summary>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is another type (e.g. <see cref="Half"/>).</exception>
    public SoftmaxCrossEntropy() => ElementTypes.Require<T>($"SoftmaxCrossEntropy<{typeof(T).Name}>");

    /// <summary>Softmax probabilities of the last <see cref="Forward"/>, shape (N, K).</summary>
    /// <exception cref="InvalidOperationException">Read before <see cref="Forward"/>.</exception>
    public Tensor<T> Probabilities =>
        _probabilities ?? throw new InvalidOperationException("SoftmaxCrossEntropy: Probabilities read before Forward.");

    /// <summary>Computes the softmax and the mean cross-entropy loss of a batch.</summary>
    /// <param name="logits">Unnormalised scores, shape (N, K).</param>
    /// <param name="labels">N class indices, each in [0, K).</param>
    /// <returns>The mean loss over the batch.</returns>
    /// <exception cref="ArgumentException">Shapes disagree or a label is out of range.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public T Forward(Tensor<T> logits, ReadOnlySpan<int> labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.Rank != 2)
        {
            throw new ArgumentException($"SoftmaxCrossEntropy: expected logits (N, K), got {logits.ShapeString}.", nameof(logits));
        }

        int n = logits.Dim(0), k = logits.Dim(1);
        if (labels.Length != n)
        {
            throw new ArgumentException($"SoftmaxCrossEntropy: {labels.Length} labels for {n} rows of logits {logits.ShapeString}.", nameof(labels));
        }

        var probabilities = Tensor<T>.Reuse(ref _probabilities, n, k);
        if (_labels.Length != n) _labels = new int[n];
        T total = T.Zero;
        for (int row = 0; row < n; row++)
        {
            int label = labels[row];
            if ((uint)label >= (uint)k)
            {
                throw new ArgumentException($"SoftmaxCrossEntropy: label {label} at row {row} is outside [0, {k}).", nameof(labels));
            }

            _labels[row] = label;
            ReadOnlySpan<T> z = logits.Span.Slice(row * k, k);
            Span<T> p = probabilities.Span.Slice(row * k, k);
            T max = z[0];
            for (int j = 1; j < k; j++) max = T.Max(max, z[j]);
            T sum = T.Zero;
            for (int j = 0; j < k; j++)
            {
                p[j] = T.Exp(z[j] - max);
                sum += p[j];
            }

            T inv = T.One / sum;
            for (int j = 0; j < k; j++) p[j] *= inv;
            total += T.Log(sum) - (z[label] - max); // −log p[label] = log Σ exp(z − max) − (z[label] − max)
        }

        return total / T.CreateChecked(n);
    }

    /// <summary>The gradient of the last mean loss with respect to the logits: (p − onehot) / N, shape (N, K).</summary>
    /// <returns>A buffer owned by this instance.</returns>
    /// <exception cref="InvalidOperationException">Called before <see cref="Forward"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward()
    {
        var p = Probabilities;
        int n = p.Dim(0), k = p.Dim(1);
        var grad = Tensor<T>.Reuse(ref _logitGrad, n, k);
        T scale = T.One / T.CreateChecked(n);
        ReadOnlySpan<T> ps = p.Span;
        Span<T> g = grad.Span;
        for (int i = 0; i < ps.Length; i++) g[i] = ps[i] * scale;
        for (int row = 0; row < n; row++) g[row * k + _labels[row]] -= scale;
        return grad;
    }

    /// <summary>Writes the index of each row's largest value of <paramref name="scores"/> (N, K) into <paramref name="predictions"/> (first maximum wins).</summary>
    /// <param name="scores">Logits or probabilities, shape (N, K).</param>
    /// <param name="predictions">N destinations.</param>
    /// <returns>The number of rows.</returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static int ArgMaxRows(Tensor<T> scores, Span<int> predictions)
    {
        ArgumentNullException.ThrowIfNull(scores);
        int n = scores.Dim(0), k = scores.Length / n;
        if (predictions.Length < n)
        {
            throw new ArgumentException($"Need room for {n} predictions, got {predictions.Length}.", nameof(predictions));
        }

        for (int row = 0; row < n; row++)
        {
            ReadOnlySpan<T> r = scores.Span.Slice(row * k, k);
            int best = 0;
            for (int j = 1; j < k; j++) if (r[j] > r[best]) best = j;
            predictions[row] = best;
        }

        return n;
    }
}
