using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>Training with TrainingOptions.Augmentation: exactly the distorted images, whatever the thread count.</summary>
public class AugmentedTrainingTests
{
    private static readonly ImageDataset Data = TestData.RandomImages(70, 4); // 5 batches of 16 an epoch, the last of 6

    private static readonly ImageAugmentation Augmentation = new() { Seed = 3 };

    private static TrainingOptions Options(int threads) => new() { BatchSize = 16, LearningRate = 0.05, Momentum = 0.9, Threads = threads, Seed = 11 };

    private static float[] Weights(Sequential<float> net) => [.. net.Parameters.SelectMany(p => p.Value.Data)];

    /// <summary>The images of <see cref="Data"/> as epoch <paramref name="epoch"/> distorts them, as a float dataset used as given.</summary>
    private static ImageDataset Distorted(int epoch)
    {
        var batch = new Tensor<float>(Data.Count, 8, 8, 1);
        var labels = new int[Data.Count];
        Augmentation.FillBatch(Data, [.. Enumerable.Range(0, Data.Count)], epoch, batch, labels);
        return ImageDataset.FromFloats(batch.Data.ToArray(), [.. labels.Select(l => (byte)l)], 8, 8, 1, 3);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)] // batches of 16 split across two threads, each distorting its own shard
    public void The_trainer_trains_on_exactly_the_distorted_images(int threads)
    {
        using var augmented = new Trainer<float>(TestData.SmallNet<float>(5), Options(threads) with { Augmentation = Augmentation });
        augmented.Train(Data, 3);

        // The same run on the distorted images made beforehand, one epoch's at a time (the shuffling depends on the seed and epoch alone).
        using var reference = new Trainer<float>(TestData.SmallNet<float>(5), Options(threads));
        for (int epoch = 0; epoch < 3; epoch++) reference.Train(Distorted(epoch), 1);

        Weights(augmented.Network).Should().Equal(Weights(reference.Network));
    }

    [Fact]
    public void The_augmentation_seed_decides_the_run()
    {
        float[] Run(int seed)
        {
            using var trainer = new Trainer<float>(TestData.SmallNet<float>(5), Options(1) with { Augmentation = Augmentation with { Seed = seed } });
            trainer.Train(Data, 2);
            return Weights(trainer.Network);
        }

        Run(3).Should().Equal(Run(3));
        Run(3).Should().NotEqual(Run(4));
        using var plain = new Trainer<float>(TestData.SmallNet<float>(5), Options(1));
        plain.Train(Data, 2);
        Run(3).Should().NotEqual(Weights(plain.Network));
    }

    [Fact]
    public void Augmented_steps_allocate_nothing_in_steady_state()
    {
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { Augmentation = new ImageAugmentation() });
        int[] batch = [0, 1, 2];
        for (int i = 0; i < 300; i++) trainer.Step(Data, batch); // warm-up: buffers and JIT tiers

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) trainer.Step(Data, batch);
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public async Task A_short_mnist_run_with_augmentation_still_learns()
    {
        string dir = TestData.MnistDirectory();
        await Mnist.EnsureAsync(dir);
        var (train, validation) = Mnist.Load(dir, MnistSplit.Train).Take(4_000).Split(0.25, seed: 1);
        var net = LeNet.Create<float>(1);
        using var trainer = new Trainer<float>(net, new TrainingOptions
        {
            Epochs = 1, BatchSize = 3, Seed = 1, Augmentation = new ImageAugmentation(), ValidationData = validation,
        });

        var result = trainer.Train(train); // 3,000 distorted images, 1,000 steps

        result[0].ValidationAccuracy.Should().BeGreaterThan(0.8, "random guesses get 0.1");
        Evaluator.Evaluate(net, Mnist.Load(dir, MnistSplit.Test).Take(1_000)).Accuracy.Should().BeGreaterThan(0.8);
    }
}
