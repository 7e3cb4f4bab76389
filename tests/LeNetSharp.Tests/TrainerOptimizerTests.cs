using System.Security.Cryptography;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>The trainer with Adam, AdamW, clipping and schedules: continued calls, checkpoints, old checkpoint files.</summary>
public sealed class TrainerOptimizerTests : TempDirectoryTest
{
    private static readonly ImageDataset Data = TestData.RandomImages(70, 4); // 5 batches of 16 an epoch, the last of 6

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    private static TrainingOptions Adam(int epochs, int threads = 1) => new()
    {
        Epochs = epochs, BatchSize = 16, Seed = 11, Threads = threads, Optimizer = OptimizerKind.Adam, LearningRate = 0.01,
        WeightDecay = 1e-3, MaxGradientNorm = 2,
        Schedule = new LinearWarmupSchedule(new CosineAnnealingSchedule(30, 1e-4, ScheduleUnit.Step), 4, 0.1),
    };

    private static void SameState(IOptimizer<float> a, IOptimizer<float> b)
    {
        OptimizerState<float> x = a.SaveState(), y = b.SaveState();
        y.Optimizer.Should().Be(x.Optimizer);
        y.Steps.Should().Be(x.Steps);
        y.Buffers.Keys.Should().BeEquivalentTo(x.Buffers.Keys);
        foreach (var (name, arrays) in x.Buffers)
        {
            for (int i = 0; i < arrays.Length; i++) y.Buffers[name][i].Should().Equal(arrays[i], "{0} {1}", name, i);
        }

        b.LearningRate.Should().Be(a.LearningRate);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)] // batches of 16 split across two threads
    public void Several_calls_with_Adam_end_with_the_weights_of_one_longer_call(int threads)
    {
        using var straight = new Trainer<float>(TestData.SmallNet<float>(5), Adam(4, threads));
        var reference = straight.Train(Data);

        using var trainer = new Trainer<float>(TestData.SmallNet<float>(5), Adam(2, threads));
        var summaries = trainer.Train(Data, 1).Concat(trainer.Train(Data)).Concat(trainer.Train(Data, 1)).ToList();

        Weights(trainer.Network).Should().Equal(Weights(straight.Network));
        SameState(straight.Optimizer, trainer.Optimizer);
        summaries.Select(s => (s.Loss, s.LearningRate)).Should().Equal(reference.Select(s => (s.Loss, s.LearningRate)));
        ((Optimizer<float>)trainer.Optimizer).Steps.Should().Be(20);
    }

    [Fact]
    public void A_per_step_schedule_sets_the_rate_before_every_step()
    {
        var schedule = new LinearWarmupSchedule(new CosineAnnealingSchedule(20, 1e-4, ScheduleUnit.Step), 3, 0.1);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 4, ReportEvery = 1, Optimizer = OptimizerKind.AdamW, LearningRate = 0.01, Schedule = schedule };
        var reports = new List<TrainingProgress>();
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), options);

        trainer.Train(TestData.RandomImages(12, 1), new InlineProgress<TrainingProgress>(reports.Add)); // 3 steps an epoch

        reports.Should().HaveCount(6);
        foreach (var r in reports)
        {
            r.LearningRate.Should().Be(schedule.RateAt(0.01, (r.Epoch - 1) * 3 + r.Batch - 1), "epoch {0} batch {1}", r.Epoch, r.Batch);
        }

        trainer.Optimizer.LearningRate.Should().Be(schedule.RateAt(0.01, 6), "after the last epoch the rate is the next step's");
    }

    [Fact]
    public void A_per_epoch_schedule_changes_the_rate_between_epochs()
    {
        var options = new TrainingOptions { Epochs = 5, BatchSize = 4, Optimizer = OptimizerKind.Adam, LearningRate = 0.1, Schedule = new StepSchedule(2, 0.5) };
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), options);

        trainer.Train(TestData.RandomImages(12, 1)).Select(s => s.LearningRate).Should().Equal(0.1, 0.1, 0.05, 0.05, 0.025);
        trainer.Optimizer.LearningRate.Should().Be(0.025, "epoch 6 (index 5) trains at 0.1·0.5^⌊5/2⌋");
    }

    [Theory]
    [InlineData(OptimizerKind.Adam, 1, 8)]   // per-step schedule, interrupted in epoch 2
    [InlineData(OptimizerKind.AdamW, 1, 13)] // interrupted in epoch 3
    [InlineData(OptimizerKind.AdamW, 2, 8)]
    public void An_interrupted_Adam_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_one(OptimizerKind optimizer, int threads, int stopAfterBatches)
    {
        var options = Adam(3, threads) with { Optimizer = optimizer, AmsGrad = optimizer == OptimizerKind.AdamW, CheckpointEvery = 2 };
        using var straight = new Trainer<float>(TestData.SmallNet<float>(7), options);
        straight.Train(Data);

        using var cts = new CancellationTokenSource();
        int batches = 0;
        using (var interrupted = new Trainer<float>(TestData.SmallNet<float>(7), options with { CheckpointDirectory = Dir, ReportEvery = 1 }))
        {
            var act = () => interrupted.Train(Data, new InlineProgress<TrainingProgress>(_ => { if (++batches == stopAfterBatches) cts.Cancel(); }), cts.Token);
            act.Should().Throw<OperationCanceledException>();
        }

        using var resumed = Trainer<float>.Resume(Dir, options with { CheckpointDirectory = Dir, LearningRate = 0.5 }); // the rate comes from the checkpoint
        resumed.Position.Batch.Should().Be(2, "the last checkpoint was written after two batches of the epoch");
        resumed.Optimizer.Should().BeOfType(optimizer == OptimizerKind.Adam ? typeof(Adam<float>) : typeof(AdamW<float>));
        resumed.Train(Data);

        Weights(resumed.Network).Should().Equal(Weights(straight.Network));
        SameState(straight.Optimizer, resumed.Optimizer);
        resumed.Position.Should().Be(straight.Position);
    }

    [Fact]
    public void Resume_with_another_optimizer_or_schedule_names_what_differs()
    {
        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), Adam(1) with { CheckpointDirectory = Dir })) t.Train(Data);

        var act = () => Trainer<float>.Resume(Dir, Adam(1) with { Optimizer = OptimizerKind.AdamW, Beta2 = 0.99, MaxGradientNorm = null, Schedule = null });

        act.Should().Throw<ModelFormatException>().WithMessage(
            "*cannot resume with different options: optimizer AdamW (the checkpoint has Adam), beta2 0.99 (the checkpoint has 0.999), "
            + "max gradient norm none (the checkpoint has 2), schedule the tutorial's (the checkpoint has LinearWarmupSchedule(4 steps from 0.1, then "
            + "CosineAnnealingSchedule(periods 30, minimum rate 0.0001, per step))).");
    }

    [Fact]
    public void A_schedule_that_runs_out_is_refused_before_the_first_step_naming_it_and_the_runs_steps()
    {
        var options = new TrainingOptions { Epochs = 2, BatchSize = 4, Optimizer = OptimizerKind.Adam, LearningRate = 0.01, Schedule = new OneCycleSchedule(5) };
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), options);

        var act = () => trainer.Train(TestData.RandomImages(12, 1)); // 6 steps
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage(
            "OneCycleSchedule(total steps 5, *) has no rate for step 5 (0-based): the cycle has 5 steps; give it more. The run takes 6 steps (2 epochs × 3 batches of up to 4 images; a last short batch is a step).*");

        trainer.Position.Should().Match<TrainingPosition>(p => p.Epoch == 0 && p.Batch == 0, "nothing was trained");
        ((Optimizer<float>)trainer.Optimizer).Steps.Should().Be(0);
    }

    [Fact]
    public void A_cosine_run_of_exactly_its_periods_ends_and_training_on_at_a_rate_of_zero_is_refused()
    {
        var schedule = new CosineAnnealingSchedule(2);
        var options = new TrainingOptions { Epochs = 2, BatchSize = 4, LearningRate = 0.1, Momentum = 0.9, Schedule = schedule };
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), options);
        var data = TestData.RandomImages(12, 1);

        trainer.Train(data).Select(s => s.LearningRate).Should().Equal(0.1, schedule.RateAt(0.1, 1));
        trainer.Optimizer.LearningRate.Should().Be(schedule.RateAt(0.1, 1), "epoch 2's rate (0) is not set");

        FluentActions.Invoking(() => trainer.Train(data)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("CosineAnnealingSchedule(periods 2, minimum rate 0, per epoch) gives the learning rate 0 for epoch 2 (0-based)*");
        trainer.Position.Should().Be(new TrainingPosition(2, 0, 0, 0, 0));
    }

    private sealed class NaNSchedule : ILearningRateSchedule
    {
        public ScheduleUnit Unit => ScheduleUnit.Epoch;

        public double RateAt(double initialRate, long period) => double.NaN;

        public override string ToString() => "my broken schedule";
    }

    [Fact]
    public void A_schedule_of_ones_own_is_checked_before_training()
    {
        var act = () => new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { Schedule = new NaNSchedule() });
        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("my broken schedule gives the learning rate NaN for epoch 0 (0-based)*");
    }

    /// <summary>
    /// Fixtures/checkpoint_v2_momentum.lnsc was written by the trainer before checkpoints had version 3: SmallNet(7),
    /// RandomImages(30, 1), batch 4, seed 5, lr 0.05, momentum 0.9, 3 epochs, cancelled in epoch 2 after its batch-3
    /// checkpoint. That code's uninterrupted run ended with these weights (SHA-256 of the float32s) and this rate.
    /// </summary>
    private const string V2StraightWeights = "CBF663DE99323EC21D302CB1251EE5F12F1CA40C7D793B18392FB02ED84BD6E7";

    private const double V2StraightRate = 0.03675459453124999;

    private static string Sha(float[] weights)
    {
        var bytes = new byte[weights.Length * sizeof(float)];
        Buffer.BlockCopy(weights, 0, bytes, 0, bytes.Length);
        return Convert.ToHexString(SHA256.HashData(bytes));
    }

    [Fact]
    public void A_version_2_checkpoint_resumes_to_the_weights_its_run_would_have_reached()
    {
        var data = TestData.RandomImages(30, 1);
        var options = new TrainingOptions { Epochs = 3, BatchSize = 4, Seed = 5, LearningRate = 0.05, Momentum = 0.9 };
        using (var straight = new Trainer<float>(TestData.SmallNet<float>(7), options))
        {
            straight.Train(data);
            Sha(Weights(straight.Network)).Should().Be(V2StraightWeights, "the momentum SGD of today is yesterday's, bit for bit");
        }

        File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "checkpoint_v2_momentum.lnsc"), Path.Combine(Dir, TrainingCheckpoint.FileName));
        using var cts = new CancellationTokenSource();
        int reports = 0;
        using (var resumed = Trainer<float>.Resume(Dir, options with { CheckpointDirectory = Dir, CheckpointEvery = 3, ReportEvery = 1 }))
        {
            resumed.Position.Should().Match<TrainingPosition>(p => p.Epoch == 1 && p.Batch == 3);
            resumed.Optimizer.LearningRate.Should().Be(0.05 * 0.95);
            ((Optimizer<float>)resumed.Optimizer).Steps.Should().Be(11, "8 batches of epoch 1 and 3 of epoch 2");
            // Interrupted again in epoch 3: its checkpoint is version 3, written by a run whose initial rate is unknown.
            var act = () => resumed.Train(data, new InlineProgress<TrainingProgress>(_ => { if (++reports == 9) cts.Cancel(); }), cts.Token);
            act.Should().Throw<OperationCanceledException>();
        }

        using var again = Trainer<float>.Resume(Dir, options with { CheckpointDirectory = Dir });
        again.Position.Epoch.Should().Be(2);
        again.Train(data);
        Sha(Weights(again.Network)).Should().Be(V2StraightWeights);
        again.Optimizer.LearningRate.Should().Be(V2StraightRate);
    }
}
