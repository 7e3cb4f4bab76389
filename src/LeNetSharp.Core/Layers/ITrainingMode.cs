namespace LeNetSharp.Layers;

/// <summary>
/// A layer whose forward differs between training and evaluation, as PyTorch's <c>module.train()</c> and
/// <c>module.eval()</c> switch it: Dropout drops units only in training, BatchNorm uses batch statistics in training and
/// its running ones in evaluation. <see cref="Sequential{T}.Training"/> sets it on every layer of a network; the trainer
/// turns training on for each step, and evaluation and prediction run with it off, so it is never left wrong.
/// </summary>
public interface ITrainingMode
{
    /// <summary>True in training (the default), false in evaluation.</summary>
    bool Training { get; set; }
}
