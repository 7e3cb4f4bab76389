using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>Accuracy and confusion matrix of a classifier on a dataset.</summary>
public sealed class EvaluationResult
{
    internal EvaluationResult(int[,] confusion)
    {
        Confusion = confusion;
        for (int i = 0; i < confusion.GetLength(0); i++)
        {
            for (int j = 0; j < confusion.GetLength(1); j++)
            {
                Total += confusion[i, j];
                if (i == j) Correct += confusion[i, j];
            }
        }
    }

    /// <summary>Counts, shape (classes, classes): [true class, predicted class].</summary>
    public int[,] Confusion { get; }

    /// <summary>Images classified right.</summary>
    public int Correct { get; }

    /// <summary>Images evaluated.</summary>
    public int Total { get; }

    /// <summary>Correct / Total, in [0, 1].</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;

    /// <summary>"test accuracy: 98.12% (9812/10000)".</summary>
    public override string ToString() => $"test accuracy: {100 * Accuracy:F2}% ({Correct}/{Total})";
}

/// <summary>Runs a network forward over a whole dataset in batches and counts right answers.</summary>
public static class Evaluator
{
    /// <summary>Classifies every image of <paramref name="data"/> (argmax of the logits).</summary>
    /// <param name="network">A trained network whose input fits the images.</param>
    /// <param name="data">The images.</param>
    /// <param name="batchSize">Images per forward pass (default 16: small batches keep the im2col buffers in cache).</param>
    /// <param name="threads">
    /// Threads (default 1). With more than one, the dataset is cut into that many contiguous parts, each run by an
    /// independent copy of the network (built-in layers only; the copies are kept with the network and get its
    /// current weights at every call); the result is the same whatever the count.
    /// </param>
    /// <param name="cancellationToken">Checked between batches.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>Accuracy and confusion matrix.</returns>
    public static EvaluationResult Evaluate<T>(Sequential<T> network, ImageDataset data, int batchSize = 16, int threads = 1,
        CancellationToken cancellationToken = default)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        threads = Math.Min(threads, Math.Max(1, data.Count / batchSize));
        var confusions = new int[threads][,];
        var networks = Replicas(network, threads);
        // One dedicated thread per extra part (not the thread pool, whose workers may be busy or not yet created), the
        // caller running the first part itself.
        void RunPart(int t)
        {
            int start = (int)((long)data.Count * t / threads), end = (int)((long)data.Count * (t + 1) / threads);
            confusions[t] = EvaluateRange(networks[t], data, start, end, batchSize, cancellationToken);
        }

        var helpers = new Task[threads - 1];
        for (int t = 1; t < threads; t++)
        {
            int part = t;
            helpers[t - 1] = Task.Factory.StartNew(() => RunPart(part), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        RunPart(0);
        try
        {
            Task.WaitAll(helpers);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerExceptions[0]); // e.g. the OperationCanceledException
        }

        var total = confusions[0];
        for (int t = 1; t < threads; t++)
            for (int i = 0; i < data.Classes; i++)
                for (int j = 0; j < data.Classes; j++) total[i, j] += confusions[t][i, j];
        return new EvaluationResult(total);
    }

    /// <summary>
    /// <paramref name="network"/> and threads − 1 copies holding its current weights. The copies are kept with the
    /// network (a weak table) and refreshed by copying weights, so repeated evaluations do not rebuild their buffers.
    /// </summary>
    private static Sequential<T>[] Replicas<T>(Sequential<T> network, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var cached = (List<Sequential<T>>)ReplicaCache.GetValue(network, _ => new List<Sequential<T>>());
        lock (cached)
        {
            while (cached.Count < threads - 1) cached.Add(Persistence.ModelFile.Replicate(network));
            var networks = new Sequential<T>[threads];
            networks[0] = network;
            for (int t = 1; t < threads; t++)
            {
                networks[t] = cached[t - 1];
                networks[t].GemmProvider = network.GemmProvider;
                for (int p = 0; p < network.Parameters.Count; p++) networks[t].Parameters[p].Value.CopyFrom(network.Parameters[p].Value);
            }

            return networks;
        }
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, object> ReplicaCache = new();

    private static int[,] EvaluateRange<T>(Sequential<T> network, ImageDataset data, int begin, int end, int batchSize, CancellationToken ct)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var confusion = new int[data.Classes, data.Classes];
        batchSize = Math.Min(batchSize, end - begin);
        if (batchSize < 1) return confusion;
        var indices = new int[batchSize];
        var labels = new int[batchSize];
        var predictions = new int[batchSize];
        var batch = new Tensor<T>(batchSize, data.Height, data.Width, data.Channels);
        for (int start = begin; start < end; start += batchSize)
        {
            ct.ThrowIfCancellationRequested();
            // A short last batch is padded by repeating its last image, so every forward pass has the same shape
            // and the layers keep their buffers; only the first n answers count.
            int n = Math.Min(batchSize, end - start);
            for (int i = 0; i < batchSize; i++) indices[i] = start + Math.Min(i, n - 1);
            data.FillBatch(indices, batch, labels);
            SoftmaxCrossEntropy<T>.ArgMaxRows(network.Forward(batch), predictions);
            for (int i = 0; i < n; i++) confusion[labels[i], predictions[i]]++;
        }

        return confusion;
    }
}
