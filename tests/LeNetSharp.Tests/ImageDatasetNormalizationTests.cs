using LeNetSharp.Data;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public class ImageDatasetNormalizationTests
{
    [Fact]
    public void Float_pixels_are_used_as_given()
    {
        var data = ImageDataset.FromFloats([0.5f, -1f, 2f, 0.25f], [1, 0], 1, 2, 1, 2);
        data.HasFloatPixels.Should().BeTrue();
        data.FloatPixels(1).ToArray().Should().Equal(2f, 0.25f);
        FluentActions.Invoking(() => data.Pixels(0).ToArray()).Should().Throw<InvalidOperationException>().WithMessage("*FloatPixels*");
        var batch = new Tensor<double>(2, 1, 2, 1);
        var labels = new int[2];
        data.FillBatch([1, 0], batch, labels);
        batch.Data.Should().Equal(2, 0.25, 0.5, -1);
        labels.Should().Equal(0, 1);
        data.Take(1).FloatPixels(0).ToArray().Should().Equal(0.5f, -1f);
    }

    [Fact]
    public void Float_datasets_refuse_non_finite_values_and_wrong_lengths()
    {
        FluentActions.Invoking(() => ImageDataset.FromFloats([0f, float.NaN], [0], 1, 2, 1, 2)).Should().Throw<ArgumentException>().WithMessage("*NaN*index 1*");
        FluentActions.Invoking(() => ImageDataset.FromFloats(new float[3], [0], 1, 2, 1, 2)).Should().Throw<ArgumentException>().WithMessage("*2 pixel values*got 3*");
    }

    [Fact]
    public void Statistics_and_normalisation_are_exact_on_a_hand_made_set()
    {
        // Bytes 0, 255, 255, 0 → values 0, 1, 1, 0: mean 0.5, population deviation 0.5.
        var data = new ImageDataset([0, 255, 255, 0], [0, 1], 1, 2, 1, 2);
        data.PixelStatistics().Should().Be((0.5f, 0.5f));
        var normalised = data.Normalize(0.5f, 0.5f);
        (normalised.Mean, normalised.StandardDeviation).Should().Be((0.5f, 0.5f));
        (data.Mean, data.StandardDeviation).Should().Be((0f, 1f), "the original is unchanged");

        var batch = new Tensor<float>(2, 1, 2, 1);
        normalised.FillBatch([0, 1], batch, new int[2]);
        batch.Data.Should().Equal(-1f, 1f, 1f, -1f);
        normalised.Take(1).Mean.Should().Be(0.5f);

        var floats = ImageDataset.FromFloats([1f, 3f], [0], 1, 2, 1, 2);
        floats.PixelStatistics().Should().Be((2f, 1f));
        var fb = new Tensor<float>(1, 1, 2, 1);
        floats.Normalize(2f, 1f).FillBatch([0], fb, new int[1]);
        fb.Data.Should().Equal(-1f, 1f);
    }

    [Fact]
    public void Normalisation_arguments_are_checked()
    {
        var data = new ImageDataset([0, 255], [0], 1, 2, 1, 2);
        FluentActions.Invoking(() => data.Normalize(0, 0)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => data.Normalize(float.NaN, 1)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Mnist_training_statistics_are_the_well_known_ones_and_a_normalised_batch_is_centred()
    {
        var train = Mnist.Load(TestData.MnistDirectory(), MnistSplit.Train);
        var (mean, std) = train.PixelStatistics();
        mean.Should().BeApproximately(0.1307f, 5e-5f);
        std.Should().BeApproximately(0.3081f, 5e-5f);

        var normalised = train.Normalize(mean, std);
        var batch = new Tensor<float>(1000, 28, 28, 1);
        normalised.FillBatch(Enumerable.Range(0, 1000).ToArray(), batch, new int[1000]);
        batch.Data.Average().Should().BeApproximately(0f, 0.05f);
    }

    [Fact]
    public void Filling_normalised_batches_allocates_nothing()
    {
        var data = new ImageDataset(new byte[64 * 10], new byte[10], 8, 8, 1, 3).Normalize(0.1f, 0.3f);
        var batch = new Tensor<float>(4, 8, 8, 1);
        var labels = new int[4];
        int[] indices = [0, 3, 5, 9];
        data.FillBatch(indices, batch, labels);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) data.FillBatch(indices, batch, labels);
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void A_network_trains_on_normalised_mnist()
    {
        var dir = TestData.MnistDirectory();
        var train = Mnist.Load(dir, MnistSplit.Train).Take(6000);
        var (mean, std) = train.PixelStatistics();
        var net = Layers.LeNet.Create<float>(1);
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1 })) trainer.Train(train.Normalize(mean, std));
        var test = Mnist.Load(dir, MnistSplit.Test).Take(2000).Normalize(mean, std);
        Evaluator.Evaluate(net, test).Accuracy.Should().BeGreaterThan(0.85);
    }
}
