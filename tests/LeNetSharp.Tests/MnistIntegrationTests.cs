using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// Real MNIST. The data is fetched into the repository's data/mnist when missing (CI fetches it beforehand),
/// so these tests run everywhere and never skip.
/// </summary>
public class MnistIntegrationTests
{
    [Fact]
    public async Task One_epoch_on_20000_images_reaches_92_percent_and_eval_reproduces_it()
    {
        string dir = TestData.MnistDirectory();
        await Mnist.EnsureAsync(dir);
        var train = Mnist.Load(dir, MnistSplit.Train).Take(20_000);
        var test = Mnist.Load(dir, MnistSplit.Test);
        var net = LeNet.Create<float>(1);

        new Trainer<float>(net, new TrainingOptions { Epochs = 1 }).Train(train);
        var result = Evaluator.Evaluate(net, test);

        result.Total.Should().Be(10_000);
        result.Accuracy.Should().BeGreaterThanOrEqualTo(0.92, "a correct net lands between 93.5% and 96% ({0})", result);

        string path = Path.Combine(Path.GetTempPath(), $"lenet-{Guid.NewGuid():N}.model");
        try
        {
            ModelFile.Save(net, path);
            Evaluator.Evaluate(ModelFile.Load<float>(path), test).Correct.Should().Be(result.Correct);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task The_fetched_files_are_the_published_ones()
    {
        string dir = TestData.MnistDirectory();
        await Mnist.EnsureAsync(dir);
        var train = Mnist.Load(dir, MnistSplit.Train);
        var test = Mnist.Load(dir, MnistSplit.Test);

        train.Count.Should().Be(60_000);
        test.Count.Should().Be(10_000);
        train.Label(0).Should().Be(5); // the famous first training digit
        test.Label(0).Should().Be(7);
    }
}
