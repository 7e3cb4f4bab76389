using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>Accuracy, loss and confusion matrix of a classifier on a dataset.</summary>
public sealed class EvaluationResult
{
    internal EvaluationResult(int[,] confusion, double loss)
    {
        ConfusionMatrix = confusion;
        Loss = loss;
        for (int i = 0; i < confusion.GetLength(0); i++)
        {
            for (int j = 0; j < confusion.GetLength(1); j++)
            {
                Total += confusion[i, j];
                if (i == j) Correct += confusion[i, j];
            }
        }
    }

    /// <summary>The confusion matrix: counts of shape (classes, classes), indexed [true class, predicted class].</summary>
    public int[,] ConfusionMatrix { get; }

    /// <summary>Images classified right.</summary>
    public int Correct { get; }

    /// <summary>Images evaluated.</summary>
    public int Total { get; }

    /// <summary>Correct / Total, in [0, 1].</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;

    /// <summary>
    /// The mean softmax cross-entropy over the images, −log p(true class) with p the softmax of the logits (computed in
    /// double, summed in image order whatever the thread count): the loss training minimises, which Keras reports as
    /// <c>val_loss</c>. NaN when no image was evaluated.
    /// </summary>
    public double Loss { get; }

    /// <summary>The accuracy with its counts, without naming the data: "accuracy: 98.12% (9812/10000)".</summary>
    /// <returns>The formatted accuracy.</returns>
    public override string ToString() => ToString(null);

    /// <summary>
    /// The accuracy with its counts, prefixed by the name of the split evaluated: <c>ToString("test")</c> gives
    /// "test accuracy: 98.12% (9812/10000)" (the sample trainer's last line), <c>ToString("validation")</c>
    /// "validation accuracy: …". Always two decimals and '.' as the separator, whatever the culture.
    /// </summary>
    /// <param name="split">The data's name ("test", "train", …), or null/empty for none.</param>
    /// <returns>The formatted accuracy.</returns>
    public string ToString(string? split) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{(string.IsNullOrEmpty(split) ? "" : split + " ")}accuracy: {100 * Accuracy:F2}% ({Correct}/{Total})");
}

/// <summary>Runs a network forward over a whole dataset in batches, counts right answers and sums the loss.</summary>
public static class Evaluator
{
    /// <summary>Classifies every image of <paramref name="data"/> (argmax of the logits) and measures the loss (<see cref="EvaluationResult.Loss"/>).</summary>
    /// <param name="network">A trained network whose input fits the images.</param>
    /// <param name="data">The images.</param>
    /// <param name="batchSize">Images per forward pass (default 16: small batches keep the im2col buffers in cache).</param>
    /// <param name="threads">
    /// Threads (default 1). With more than one, each thread runs an independent copy of the network (see
    /// <see cref="Sequential{T}.Clone"/>; the copies are kept with the network and get its current weights and
    /// running statistics at every call) and takes the next batch of <paramref name="batchSize"/> images until none is left, so a thread on a
    /// slower core does less; the result is the same whatever the count.
    /// </param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>Accuracy, loss and confusion matrix.</returns>
    /// <remarks>
    /// Safe to call from several threads at once on the same network: a call that finds the network busy (another
    /// evaluation, say) runs on a copy holding its current weights instead, so every call gets the right counts.
    /// </remarks>
    /// <exception cref="ArgumentException">
    /// Before any work: the network does not take the dataset's images, or its output count differs from the
    /// dataset's class count (the message names both).
    /// </exception>
    /// <exception cref="OperationCanceledException">Cancelled.</exception>
    public static EvaluationResult Evaluate<T>(Sequential<T> network, ImageDataset data, int batchSize = 16, int threads = 1,
        CancellationToken cancellationToken = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        NetworkChecks.RequireFit(network, data.Height, data.Width, data.Channels, data.Classes, "the dataset");
        threads = Math.Min(threads, Math.Max(1, data.Count / batchSize));
        var confusions = new int[threads][,];
        // Each batch's loss sum has its slot, added up in batch order at the end: the same bits whichever thread ran it.
        int perBatch = Math.Min(batchSize, data.Count);
        var batchLosses = new double[perBatch == 0 ? 0 : (data.Count + perBatch - 1) / perBatch];
        // Part 0 runs on the network itself when no other thread is using it (no copy, no extra buffers); the other
        // parts, and part 0 when the network is busy, on copies rented from the pool kept with the network.
        bool own = network.Runner.TryEnter(out int previous);
        var pool = ReplicaPool(network);
        var networks = new Sequential<T>[threads];
        try
        {
            for (int t = 0; t < threads; t++) networks[t] = t == 0 && own ? network : Rent(pool, network);

            // One dedicated thread per extra part (not the thread pool, whose workers may be busy or not yet
            // created), the caller running the first part itself. The first failure stops the other parts.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var failures = new Exception?[threads];
            // Batches are handed out one at a time from a shared cursor, not as fixed halves: when one core is slower
            // (another process, a noisy neighbour) the other takes more batches instead of waiting at the end. The
            // counts do not depend on which thread saw which image.
            var cursor = new BatchCursor();
            void RunPart(int t)
            {
                try
                {
                    confusions[t] = EvaluateBatches(networks[t], data, cursor, batchSize, batchLosses, stop.Token);
                }
                catch (Exception e)
                {
                    failures[t] = e;
                    stop.Cancel();
                }
            }

            var helpers = new Thread[threads - 1];
            for (int t = 1; t < threads; t++)
            {
                int part = t;
                helpers[t - 1] = new Thread(() => RunPart(part)) { IsBackground = true, Name = $"LeNetSharp evaluator {part}" };
                helpers[t - 1].Start();
            }

            RunPart(0);
            foreach (var h in helpers) h.Join();

            // Surface the failure as it was thrown (not wrapped in an AggregateException): the caller's cancellation,
            // else the first part's own error rather than the cancellations it caused in the others.
            cancellationToken.ThrowIfCancellationRequested();
            var failure = failures.FirstOrDefault(e => e is not null and not OperationCanceledException) ?? failures.FirstOrDefault(e => e is not null);
            if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        finally
        {
            if (own) network.Runner.Exit(previous);
            for (int t = 0; t < threads; t++)
            {
                if (networks[t] is { } n && !ReferenceEquals(n, network)) pool.Add(n);
            }
        }

        var total = confusions[0];
        for (int t = 1; t < threads; t++)
            for (int i = 0; i < data.Classes; i++)
                for (int j = 0; j < data.Classes; j++) total[i, j] += confusions[t][i, j];
        double lossSum = 0;
        foreach (double l in batchLosses) lossSum += l;
        return new EvaluationResult(total, data.Count == 0 ? double.NaN : lossSum / data.Count);
    }

    /// <summary>Idle copies of <paramref name="network"/>, kept with it (a weak table) so repeated evaluations reuse their buffers.</summary>
    private static System.Collections.Concurrent.ConcurrentBag<Sequential<T>> ReplicaPool<T>(Sequential<T> network)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        (System.Collections.Concurrent.ConcurrentBag<Sequential<T>>)ReplicaCache.GetValue(network, _ => new System.Collections.Concurrent.ConcurrentBag<Sequential<T>>());

    /// <summary>An idle copy from the pool (or a new one) holding the network's current weights and state.</summary>
    private static Sequential<T> Rent<T>(System.Collections.Concurrent.ConcurrentBag<Sequential<T>> pool, Sequential<T> network)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!pool.TryTake(out var copy)) return network.Clone();
        copy.Backend = network.Backend;
        for (int p = 0; p < network.Parameters.Count; p++) copy.Parameters[p].Value.CopyFrom(network.Parameters[p].Value);
        for (int s = 0; s < network.State.Count; s++) copy.State[s].Value.CopyFrom(network.State[s].Value); // BatchNorm's running statistics
        return copy;
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, object> ReplicaCache = new();

    /// <summary>The next batch to evaluate, shared by the threads of one <see cref="Evaluate{T}"/> call.</summary>
    private sealed class BatchCursor
    {
        public int Next;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // a few calls per run: never in tier-0 code
    private static int[,] EvaluateBatches<T>(Sequential<T> network, ImageDataset data, BatchCursor cursor, int batchSize, double[] batchLosses, CancellationToken ct)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var confusion = new int[data.Classes, data.Classes];
        batchSize = Math.Min(batchSize, data.Count);
        if (batchSize < 1) return confusion;
        var indices = new int[batchSize];
        var labels = new int[batchSize];
        var predictions = new int[batchSize];
        var batch = new Tensor<T>(batchSize, data.Height, data.Width, data.Channels);
        while (true)
        {
            long start = (long)(Interlocked.Increment(ref cursor.Next) - 1) * batchSize;
            if (start >= data.Count) break;
            ct.ThrowIfCancellationRequested();
            // A short last batch is padded by repeating its last image, so every forward pass has the same shape
            // and the layers keep their buffers; only the first n answers count.
            int n = (int)Math.Min(batchSize, data.Count - start);
            for (int i = 0; i < batchSize; i++) indices[i] = (int)start + Math.Min(i, n - 1);
            data.FillBatch(indices, batch, labels);
            var logits = network.Infer(batch);
            SoftmaxCrossEntropy<T>.ArgMaxRows(logits, predictions);
            for (int i = 0; i < n; i++) confusion[labels[i], predictions[i]]++;
            batchLosses[start / batchSize] = CrossEntropySum(logits.Span, data.Classes, labels.AsSpan(0, n));
        }

        return confusion;
    }

    /// <summary>Σ over the first labels.Length rows of −log softmax(row)[label], in double: log Σ exp(z − max) + max − z[label].</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] // once a batch: never in tier-0 code
    private static double CrossEntropySum<T>(ReadOnlySpan<T> logits, int classes, ReadOnlySpan<int> labels) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double sum = 0;
        for (int i = 0; i < labels.Length; i++)
        {
            var row = logits.Slice(i * classes, classes);
            double max = double.NegativeInfinity;
            foreach (T z in row) max = Math.Max(max, double.CreateTruncating(z));
            double exponentials = 0;
            foreach (T z in row) exponentials += Math.Exp(double.CreateTruncating(z) - max);
            sum += Math.Log(exponentials) + max - double.CreateTruncating(row[labels[i]]);
        }

        return sum;
    }
}
