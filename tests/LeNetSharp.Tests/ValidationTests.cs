using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>Validation after every epoch and early stopping on its loss.</summary>
public sealed class ValidationTests : TempDirectoryTest
{
    // 60 random images over 3 classes: the net memorises them, and the validation loss on 30 others climbs.
    private static readonly (ImageDataset Train, ImageDataset Validation) Sets = TestData.RandomImages(90, 8).Split(1 / 3.0, seed: 2);

    private static TrainingOptions Options(int epochs, int threads = 1) => new()
    {
        Epochs = epochs, BatchSize = 16, LearningRate = 0.05, Momentum = 0.9, Threads = threads, Seed = 4,
        ValidationData = Sets.Validation,
    };

    private static float[] Weights(Sequential<float> net) => [.. net.Parameters.SelectMany(p => p.Value.Data)];

    /// <summary>A run without early stopping: each epoch's summary and the weights it ended with.</summary>
    private static (List<TrainingProgress> Summaries, List<float[]> Weights) Reference(int epochs, int threads = 1)
    {
        var weights = new List<float[]>();
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(6), Options(epochs, threads));
        var summaries = trainer.Train(Sets.Train, new InlineProgress<TrainingProgress>(p =>
        {
            if (p.IsEpochEnd) weights.Add(Weights(trainer.Network));
        }));
        return ([.. summaries], weights);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Each_epoch_reports_the_Evaluator_figures_of_its_weights(int threads)
    {
        var reports = new List<TrainingProgress>();
        var evaluations = new List<EvaluationResult>();
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(6), Options(3, threads) with { ReportEvery = 2 });
        trainer.Train(Sets.Train, new InlineProgress<TrainingProgress>(p =>
        {
            reports.Add(p);
            if (p.IsEpochEnd) evaluations.Add(Evaluator.Evaluate(trainer.Network, Sets.Validation));
        }));

        var ends = reports.Where(r => r.IsEpochEnd).ToList();
        ends.Select(r => r.ValidationLoss).Should().Equal(evaluations.Select(e => (double?)e.Loss));
        ends.Select(r => r.ValidationAccuracy).Should().Equal(evaluations.Select(e => (double?)e.Accuracy));
        reports.Where(r => !r.IsEpochEnd).Should().NotBeEmpty().And.OnlyContain(r => r.ValidationLoss == null && r.ValidationAccuracy == null);
        ends[^1].ToString().Should().EndWith(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"images/s  validation loss {evaluations[^1].Loss:F4}  validation accuracy {100 * evaluations[^1].Accuracy:F2}%"));
        (reports[0] with { ValidationLoss = null }).ToString().Should().NotContain("validation");
    }

    [Fact]
    public void Validating_changes_no_weight()
    {
        using var plain = new Trainer<float>(TestData.SmallNet<float>(6), Options(3) with { ValidationData = null });
        plain.Train(Sets.Train);
        Weights(plain.Network).Should().Equal(Reference(3).Weights[^1]);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    [InlineData(2, 2)]
    [InlineData(1, 4)]
    public void Early_stopping_stops_after_patience_epochs_and_restores_the_best_weights_bit_for_bit(int threads, int patience)
    {
        // No later epoch can beat the first by 100: epoch 1 is the best, and training stops at epoch 1 + patience.
        var (summaries, weights) = Reference(8, threads);
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(6),
            Options(8, threads) with { EarlyStopping = new EarlyStopping { Patience = patience, MinDelta = 100 } });

        var result = trainer.Train(Sets.Train);

        result.StopReason.Should().Be(TrainingStopReason.EarlyStopped);
        result.Select(s => s.Epoch).Should().Equal(Enumerable.Range(1, 1 + patience));
        result.Select(s => s.ValidationLoss).Should().Equal(summaries.Take(1 + patience).Select(s => s.ValidationLoss), "the same run up to the stop");
        (result.BestEpoch, result.BestValidationLoss, result.RestoredBestWeights).Should().Be((1, summaries[0].ValidationLoss, true));
        Weights(trainer.Network).Should().Equal(weights[0], "the weights of epoch 1, restored");
        trainer.Position.Should().Be(new TrainingPosition(1 + patience, 0, 0, 0, 0));
        result.ToString().Should().Be(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"stopped early after epoch {1 + patience}: validation loss not improved on {summaries[0].ValidationLoss:F4} (epoch 1) for {patience} epoch{(patience == 1 ? "" : "s")}; the weights of epoch 1 are restored"));
    }

    [Fact]
    public void Early_stopping_follows_the_validation_losses_of_the_run()
    {
        // The rule, applied to the losses of a run without early stopping, must give the epoch a run with it stops at.
        var (summaries, weights) = Reference(14);
        double[] losses = [.. summaries.Select(s => s.ValidationLoss!.Value)];
        const int patience = 3;
        double best = double.PositiveInfinity;
        int bestEpoch = 0, since = 0, stopEpoch = 0;
        for (int e = 1; e <= losses.Length && stopEpoch == 0; e++)
        {
            if (losses[e - 1] < best) (best, bestEpoch, since) = (losses[e - 1], e, 0);
            else if (++since >= patience) stopEpoch = e;
        }

        stopEpoch.Should().BeInRange(bestEpoch + patience, 13, "the run overfits its random labels: the validation loss turns up");

        using var trainer = new Trainer<float>(TestData.SmallNet<float>(6), Options(14) with { EarlyStopping = new EarlyStopping { Patience = patience } });
        var result = trainer.Train(Sets.Train);

        result.StopReason.Should().Be(TrainingStopReason.EarlyStopped);
        result[^1].Epoch.Should().Be(stopEpoch);
        result.BestEpoch.Should().Be(bestEpoch);
        Weights(trainer.Network).Should().Equal(weights[bestEpoch - 1]);
    }

    [Fact]
    public void A_call_after_an_early_stop_trains_on_from_the_best_weights_with_patience_afresh()
    {
        var (_, weights) = Reference(1);
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(6), Options(10) with { EarlyStopping = new EarlyStopping { Patience = 2, MinDelta = 100 } });
        trainer.Train(Sets.Train).Select(s => s.Epoch).Should().Equal(1, 2, 3);

        var again = trainer.Train(Sets.Train);

        again.StopReason.Should().Be(TrainingStopReason.EarlyStopped);
        again.Select(s => (s.Epoch, s.Epochs)).Should().Equal((4, 13), (5, 13));
        again.BestEpoch.Should().Be(1, "the best loss is remembered across calls");
        Weights(trainer.Network).Should().Equal(weights[0]);
        trainer.Optimizer.LearningRate.Should().BeApproximately(0.05 * Math.Pow(0.95, 1 + 2 + 3 + 4 + 5), 1e-15, "the schedule is not rewound");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Without_a_stop_several_calls_end_as_one_longer_call(int threads)
    {
        var stopping = new EarlyStopping { Patience = 50 };
        using var straight = new Trainer<float>(TestData.SmallNet<float>(6), Options(6, threads) with { EarlyStopping = stopping });
        var whole = straight.Train(Sets.Train);
        using var split = new Trainer<float>(TestData.SmallNet<float>(6), Options(2, threads) with { EarlyStopping = stopping });
        var parts = split.Train(Sets.Train).Concat(split.Train(Sets.Train, 1)).Concat(split.Train(Sets.Train, 3)).ToList();

        whole.StopReason.Should().Be(TrainingStopReason.Completed);
        whole.RestoredBestWeights.Should().BeFalse();
        parts.Select(s => s.ValidationLoss).Should().Equal(whole.Select(s => s.ValidationLoss));
        Weights(split.Network).Should().Equal(Weights(straight.Network));
    }

    [Fact]
    public void The_best_weights_come_back_at_the_end_only_when_asked()
    {
        var (_, weights) = Reference(4);
        var stopping = new EarlyStopping { Patience = 10, MinDelta = 100 };
        using var keep = new Trainer<float>(TestData.SmallNet<float>(6), Options(4) with { EarlyStopping = stopping });
        var kept = keep.Train(Sets.Train);
        (kept.StopReason, kept.RestoredBestWeights, kept.BestEpoch).Should().Be((TrainingStopReason.Completed, false, 1));
        Weights(keep.Network).Should().Equal(weights[3]);
        kept.ToString().Should().Be("ended 4 epochs (1 to 4)");
        keep.Train(Sets.Train, epochs: 1).ToString().Should().Be("ended 1 epoch (5 to 5)");

        using var restore = new Trainer<float>(TestData.SmallNet<float>(6), Options(4) with { EarlyStopping = stopping with { RestoreBestWeightsAtEnd = true } });
        var restored = restore.Train(Sets.Train);
        (restored.StopReason, restored.RestoredBestWeights).Should().Be((TrainingStopReason.Completed, true));
        Weights(restore.Network).Should().Equal(weights[0]);
        restored.ToString().Should().Be("ended 4 epochs (1 to 4); the weights of epoch 1 are restored");
    }

    [Fact]
    public void With_checkpoints_the_best_model_is_kept_and_the_checkpoint_holds_the_restored_weights()
    {
        var (_, weights) = Reference(1);
        var options = Options(10) with { EarlyStopping = new EarlyStopping { Patience = 2, MinDelta = 100 }, CheckpointDirectory = Dir };
        using (var trainer = new Trainer<float>(TestData.SmallNet<float>(6), options))
        {
            trainer.Train(Sets.Train).StopReason.Should().Be(TrainingStopReason.EarlyStopped);
        }

        Weights(ModelFile.Load<float>(Path.Combine(Dir, EarlyStopping.BestModelFileName))).Should().Equal(weights[0]);
        using var resumed = Trainer<float>.Resume(Dir, options);
        Weights(resumed.Network).Should().Equal(weights[0]);
        resumed.Position.Epoch.Should().Be(3);
    }

    [Fact]
    public void Hostile_validation_and_stopping_options_are_refused_by_name()
    {
        var net = TestData.SmallNet<float>(1);
        TrainingOptions[] bad =
        [
            new() { EarlyStopping = new EarlyStopping() },
            new() { ValidationData = Sets.Validation, EarlyStopping = new EarlyStopping { Patience = 0 } },
            new() { ValidationData = Sets.Validation, EarlyStopping = new EarlyStopping { MinDelta = -1 } },
            new() { ValidationData = Sets.Validation, EarlyStopping = new EarlyStopping { MinDelta = double.NaN } },
            new() { ValidationData = new ImageDataset([], [], 8, 8, 1, 3) },
            new() { Augmentation = new ImageAugmentation { MaxRotation = -1 } },
        ];
        string[] names = ["EarlyStopping", "Patience", "MinDelta", "MinDelta", "ValidationData", "MaxRotation"];
        for (int i = 0; i < bad.Length; i++)
        {
            FluentActions.Invoking(() => new Trainer<float>(net, bad[i])).Should().Throw<ArgumentException>().WithParameterName(names[i]);
        }

        // A validation set the network cannot take is refused before any step.
        using var trainer = new Trainer<float>(net, new TrainingOptions { ValidationData = new ImageDataset(new byte[4 * 100], new byte[4], 10, 10, 1, 3) });
        var before = Weights(net);
        FluentActions.Invoking(() => trainer.Train(Sets.Train)).Should().Throw<ArgumentException>().WithMessage("*validation data*");
        Weights(net).Should().Equal(before);
        trainer.Position.Should().Be(default(TrainingPosition));
    }
}
