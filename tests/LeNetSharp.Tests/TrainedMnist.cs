using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// One LeNet trained once per test run (seed 1, 1 epoch on the first 20,000 training images, about 95 % on the test
/// set) and the MNIST test set, shared by the inference tests. Tests must not change the network: clone it first.
/// </summary>
internal static class TrainedMnist
{
    private static readonly Lazy<(Sequential<float> Network, ImageDataset Test)> Shared = new(() =>
    {
        string dir = TestData.MnistDirectory();
        Mnist.EnsureAsync(dir).GetAwaiter().GetResult();
        var train = Mnist.Load(dir, MnistSplit.Train).Take(20_000);
        var net = LeNet.Create<float>(1);
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1 })) trainer.Train(train);
        return (net, Mnist.Load(dir, MnistSplit.Test));
    });

    public static Sequential<float> Network => Shared.Value.Network;

    public static ImageDataset Test => Shared.Value.Test;
}
