using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// One LeNet trained once per test run (seed 1, 1 epoch on the 60,000 training images: 97.93 % on the test set) and
/// the MNIST test set, shared by the inference tests. Tests must not change the network: clone it first. (One epoch
/// on 20,000 images gives about 95 %, with so many near-ties between two digits that 2 % of the pictures of the
/// acceptance test flip on resampling noise alone.)
/// </summary>
internal static class TrainedMnist
{
    private static readonly Lazy<(Sequential<float> Network, ImageDataset Test)> Shared = new(() =>
    {
        string dir = TestData.MnistDirectory();
        Mnist.EnsureAsync(dir).GetAwaiter().GetResult();
        var train = Mnist.Load(dir, MnistSplit.Train);
        var net = LeNet.Create<float>(1);
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1 })) trainer.Train(train);
        return (net, Mnist.Load(dir, MnistSplit.Test));
    });

    public static Sequential<float> Network => Shared.Value.Network;

    public static ImageDataset Test => Shared.Value.Test;
}
