using System.Diagnostics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// The newer layers, optimizers, schedules, dataset views, augmentation, validation and early stopping, and their
/// model files and checkpoints, attacked as a hostile or careless user would: extreme settings, runs past their end,
/// changed settings on resume. Each must give the right result or one clear error, quickly, and leave nothing
/// half-done.
/// </summary>
public sealed class NewSurfacesHostileTests : TempDirectoryTest
{
    private static readonly (ImageDataset Train, ImageDataset Validation) Sets = TestData.RandomImages(90, 8).Split(1 / 3.0, seed: 2);

    /// <summary>Conv 3x3 1→4, BatchNorm2d, Relu, MaxPool2x2, Flatten, Linear 36→3, for 8x8 images.</summary>
    private static Sequential<float> BatchNormNet(int seed)
    {
        var random = new Random(seed);
        return new Sequential<float>(
            new Conv<float>(1, 4, 3, 3, random), new BatchNorm2d<float>(4), new Relu<float>(), new MaxPool2x2<float>(),
            new Flatten<float>(), new Linear<float>(36, 3, random));
    }

    [Fact]
    public void Early_stopping_restores_the_running_statistics_of_the_best_epoch_with_its_weights()
    {
        // MinDelta 100: only the first epoch counts as an improvement, so the run stops after epoch 2 and goes back to 1.
        var options = new TrainingOptions
        {
            Epochs = 6, BatchSize = 16, LearningRate = 0.05, Momentum = 0.9, Seed = 4, ValidationData = Sets.Validation,
            EarlyStopping = new EarlyStopping { Patience = 1, MinDelta = 100 }, CheckpointDirectory = Dir,
        };
        using var trainer = new Trainer<float>(BatchNormNet(6), options);
        var result = trainer.Train(Sets.Train);

        result.StopReason.Should().Be(TrainingStopReason.EarlyStopped);
        result.BestEpoch.Should().Be(1);
        Evaluator.Evaluate(trainer.Network, Sets.Validation).Loss.Should().Be(result.BestValidationLoss!.Value,
            "the restored network is the one that reached the best validation loss");
        var best = ModelFile.Load<float>(Path.Combine(Dir, EarlyStopping.BestModelFileName));
        trainer.Network.State.Select(s => s.Value.Data.ToArray()).Should().BeEquivalentTo(best.State.Select(s => s.Value.Data.ToArray()),
            o => o.WithStrictOrdering());
    }

    [Fact]
    public void The_tutorial_schedule_without_decay_answers_a_far_period_at_once()
    {
        var clock = Stopwatch.StartNew();
        new TutorialSchedule(1).RateAt(0.01, long.MaxValue).Should().Be(0.01);
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void A_float_LeakyRelu_refuses_a_slope_beyond_float()
    {
        FluentActions.Invoking(() => new LeakyRelu<float>(1e308)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("*slope 1E+308 is beyond the range of Single*");
        new LeakyRelu<double>(1e308).Slope.Should().Be(1e308);

        // A double model holding such a slope, loaded as float: one error naming the file and the layer.
        string path = Path.Combine(Dir, "slope.model");
        ModelFile.Save(new Sequential<double>(new Flatten<double>(), new LeakyRelu<double>(1e300)), path);
        FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: layer 1 (LeakyRelu*slope 1E+300 is beyond the range of Single*");
        ModelFile.Load<double>(path).Layers[1].Should().BeOfType<LeakyRelu<double>>();
    }

    [Fact]
    public void Resume_refuses_another_augmentation()
    {
        var options = new TrainingOptions
        {
            Epochs = 1, BatchSize = 16, LearningRate = 0.05, Seed = 4, CheckpointDirectory = Dir,
            Augmentation = new ImageAugmentation { Seed = 3 },
        };
        using (var trainer = new Trainer<float>(TestData.SmallNet<float>(6), options)) trainer.Train(Sets.Train);
        FluentActions.Invoking(() => Trainer<float>.Resume(Dir, options with { Epochs = 2, Augmentation = new ImageAugmentation { Seed = 5 } }))
            .Should().Throw<ModelFormatException>()
            .WithMessage("*cannot resume with different options: augmentation (max shift 2, max rotation 10, scale 0.9 to 1.1, no flip, seed 5) (the checkpoint has (max shift 2, max rotation 10, scale 0.9 to 1.1, no flip, seed 3))*");
        FluentActions.Invoking(() => Trainer<float>.Resume(Dir, options with { Epochs = 2, Augmentation = new ImageAugmentation { Seed = 3, FlipHorizontal = true } }))
            .Should().Throw<ModelFormatException>().WithMessage("*augmentation (max shift 2, max rotation 10, scale 0.9 to 1.1, flip, seed 3) (the checkpoint has (*, no flip, seed 3))*");
        FluentActions.Invoking(() => Trainer<float>.Resume(Dir, options with { Epochs = 2, Augmentation = null }))
            .Should().Throw<ModelFormatException>().WithMessage("*augmentation none (the checkpoint has (max shift 2*");
        using var resumed = Trainer<float>.Resume(Dir, options with { Epochs = 2 });
        resumed.Train(Sets.Train).Should().HaveCount(1);
    }
}
