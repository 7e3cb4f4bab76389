using LeNetSharp.Training;

namespace LeNetSharp.Trainer;

/// <summary>A point of the training curves: loss and accuracy over the batches since the previous point.</summary>
/// <param name="Epoch">Position in epochs (1.5 = half-way through the second epoch).</param>
/// <param name="Batches">Batches since the start of training.</param>
/// <param name="Loss">Mean cross-entropy of those batches.</param>
/// <param name="Accuracy">Fraction of their images classified right (before each step).</param>
internal readonly record struct CurvePoint(double Epoch, long Batches, double Loss, double Accuracy);

/// <summary>The summary of one epoch, with the test accuracy measured right after it.</summary>
internal sealed record EpochSummary(int Epoch, double Loss, double TrainAccuracy, double TestAccuracy, double Seconds, double ImagesPerSecond, double LearningRate);

/// <summary>
/// Records the curves from the trainer's progress reports. A report carries the epoch's running means; the means over
/// the batches between two reports follow exactly from two consecutive ones (sum = mean × count).
/// </summary>
/// <param name="images">Training images per epoch.</param>
/// <param name="batchSize">Images per batch.</param>
/// <param name="testAccuracy">Measures the test accuracy of the network as it is now (called at each epoch end).</param>
internal sealed class TrainingHistory(int images, int batchSize, Func<double> testAccuracy)
{
    private int _epoch;
    private int _batch;
    private double _lossSum;
    private double _correct;

    public List<CurvePoint> Points { get; } = [];

    public List<EpochSummary> Epochs { get; } = [];

    public void Observe(TrainingProgress p)
    {
        if (p.Epoch != _epoch) (_epoch, _batch, _lossSum, _correct) = (p.Epoch, 0, 0, 0);
        long seen = Math.Min((long)p.Batch * batchSize, images), seenBefore = Math.Min((long)_batch * batchSize, images);
        double lossSum = p.Loss * p.Batch, correct = p.Accuracy * seen;
        if (p.Batch > _batch)
        {
            Points.Add(new CurvePoint(p.Epoch - 1 + (double)p.Batch / p.Batches, (long)(p.Epoch - 1) * p.Batches + p.Batch,
                (lossSum - _lossSum) / (p.Batch - _batch), (correct - _correct) / Math.Max(1, seen - seenBefore)));
        }

        (_batch, _lossSum, _correct) = (p.Batch, lossSum, correct);
        if (p.IsEpochEnd)
        {
            Epochs.Add(new EpochSummary(p.Epoch, p.Loss, p.Accuracy, testAccuracy(), p.Elapsed.TotalSeconds, p.ImagesPerSecond, p.LearningRate));
        }
    }
}
