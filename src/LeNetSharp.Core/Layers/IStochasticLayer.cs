namespace LeNetSharp.Layers;

/// <summary>
/// A layer that draws random numbers in training (Dropout). The trainer tells it, before each step, which step it is and
/// where its images start in the batch, so the draws for an image depend on the layer's seed, the optimizer's step
/// count and the image's place in the batch alone: the same whatever the thread split, different on every thread's
/// replica, and the same again after a checkpoint is resumed (the step count is in the checkpoint).
/// </summary>
internal interface IStochasticLayer
{
    /// <summary>
    /// Makes the next training forward draw the numbers of training step <paramref name="step"/> for a (sub-)batch whose
    /// first image is image <paramref name="firstImage"/> of the whole batch. Applies to that one forward only.
    /// </summary>
    /// <param name="step">The optimizer's steps taken before this one (≥ 0).</param>
    /// <param name="firstImage">The sub-batch's first image's index in the batch (0 for a batch run whole).</param>
    void SetStream(long step, int firstImage);
}
