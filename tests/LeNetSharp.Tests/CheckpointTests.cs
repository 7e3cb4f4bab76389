using System.Diagnostics;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public sealed class CheckpointTests : TempDirectoryTest
{
    private static TrainingOptions Options(string? dir, double momentum = 0) => new()
    {
        Epochs = 3, BatchSize = 4, Seed = 5, LearningRate = 0.05, Momentum = momentum, CheckpointDirectory = dir, CheckpointEvery = 3,
    };

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    [Theory]
    [InlineData(0.0, 5)]   // interrupted mid-epoch (after the batch-3 checkpoint of epoch 0: 5 batches in)
    [InlineData(0.9, 12)]  // with momentum, interrupted in epoch 1
    public void Interrupted_then_resumed_run_ends_with_the_uninterrupted_weights(double momentum, int stopAfterBatches)
    {
        var data = TestData.RandomImages(30, 1); // 8 batches per epoch
        var straight = TestData.SmallNet<float>(7);
        using (var t = new Trainer<float>(straight, Options(null, momentum))) t.Train(data);

        // The "killed" run: cancelled after some batches; only what it checkpointed survives.
        using var cts = new CancellationTokenSource();
        int batches = 0;
        var interrupted = new Trainer<float>(TestData.SmallNet<float>(7), Options(Dir, momentum) with { ReportEvery = 1 });
        var act = () => interrupted.Train(data, new InlineProgress<TrainingProgress>(_ => { if (++batches == stopAfterBatches) cts.Cancel(); }), cts.Token);
        act.Should().Throw<OperationCanceledException>();

        using var resumed = Trainer<float>.Resume(Dir, Options(Dir, momentum));
        resumed.Position.Batch.Should().BeGreaterThan(0, "the last checkpoint was written mid-epoch");
        resumed.Train(data);

        Weights(resumed.Network).Should().Equal(Weights(straight));
        resumed.Optimizer.LearningRate.Should().Be(0.05 * Math.Pow(0.95, 1 + 2 + 3));
    }

    [Theory]
    [InlineData(1, 7, 2, false)]   // interrupted in the first call (epoch 2 of 2)
    [InlineData(2, 7, 2, false)]   // the same with batches split across two threads
    [InlineData(2, 5, 0, false)]   // resumed at the start of epoch 2, whose first batch is split after a one-thread batch
    [InlineData(1, 13, 2, false)]  // interrupted in the second call (epoch 3 of 4): resumed with the epoch count that call was to reach
    [InlineData(2, 13, 2, false)]
    [InlineData(1, 7, 2, true)]    // with Dropout: the resumed run draws the masks the uninterrupted one drew
    [InlineData(2, 13, 2, true)]
    public void A_resumed_trainer_trains_on_as_the_uninterrupted_one_does(int threads, int stopAfterBatches, int resumedAtBatch, bool dropout)
    {
        Func<int, Sequential<float>> net = dropout ? TestData.SmallDropoutNet<float> : TestData.SmallNet<float>;
        var data = TestData.RandomImages(70, 2); // 5 batches of 16 an epoch, the last of 6 (on one thread)
        var options = Options(Dir, momentum: 0.9) with { Epochs = 2, BatchSize = 16, CheckpointEvery = 2, Threads = threads };
        using var straight = new Trainer<float>(net(7), options with { CheckpointDirectory = null });
        straight.Train(data);
        straight.Train(data);

        // The "killed" program trains twice; only what it checkpointed survives.
        using var cts = new CancellationTokenSource();
        int batches = 0;
        var token = new InlineProgress<TrainingProgress>(_ => { if (++batches == stopAfterBatches) cts.Cancel(); });
        using (var interrupted = new Trainer<float>(net(7), options with { ReportEvery = 1 }))
        {
            var act = () =>
            {
                interrupted.Train(data, token, cts.Token);
                interrupted.Train(data, token, cts.Token);
            };
            act.Should().Throw<OperationCanceledException>();
        }

        bool inFirstCall = stopAfterBatches <= 10;
        using var resumed = Trainer<float>.Resume(Dir, options with { Epochs = inFirstCall ? 2 : 4 });
        resumed.Position.Batch.Should().Be(resumedAtBatch);
        resumed.Train(data).Select(s => s.Epochs).Should().AllBeEquivalentTo(inFirstCall ? 2 : 4);
        if (inFirstCall) resumed.Train(data).Select(s => (s.Epoch, s.Epochs)).Should().Equal((3, 4), (4, 4)); // a second call trains Epochs more

        Weights(resumed.Network).Should().Equal(Weights(straight.Network));
        resumed.Optimizer.LearningRate.Should().Be(straight.Optimizer.LearningRate);
        resumed.Position.Should().Be(straight.Position);
    }

    [Fact]
    public void A_trainer_resumed_from_a_finished_run_trains_nothing_until_called_again()
    {
        var data = TestData.RandomImages(8, 1);
        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), Options(Dir) with { Epochs = 1 })) t.Train(data);

        using var resumed = Trainer<float>.Resume(Dir, Options(Dir) with { Epochs = 1 });
        resumed.Train(data).Should().BeEmpty("the checkpoint's call had ended its one epoch");
        resumed.Train(data).Select(s => (s.Epoch, s.Epochs)).Should().Equal((2, 2));
    }

    [Fact]
    public void Resume_with_other_options_names_what_differs()
    {
        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), Options(Dir) with { Epochs = 1 })) t.Train(TestData.RandomImages(8, 1));

        var act = () => Trainer<float>.Resume(Dir, Options(Dir) with { BatchSize = 5, Seed = 6 });

        act.Should().Throw<ModelFormatException>().WithMessage("*cannot resume with different options: batch size 5 (the checkpoint has 4), seed 6 (the checkpoint has 5).");
    }

    [Fact]
    public void Corrupt_or_missing_checkpoints_are_reported()
    {
        FluentActions.Invoking(() => Trainer<float>.Resume(Dir, Options(Dir)))
            .Should().Throw<FileNotFoundException>().WithMessage("*checkpoint.lnsc: no checkpoint to resume from.");

        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), Options(Dir) with { Epochs = 1 })) t.Train(TestData.RandomImages(8, 1));
        string path = Path.Combine(Dir, TrainingCheckpoint.FileName);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[40] ^= 1;
        File.WriteAllBytes(path, bytes);

        FluentActions.Invoking(() => Trainer<float>.Resume(Dir, Options(Dir)))
            .Should().Throw<ModelFormatException>().WithMessage($"{path}: checksum mismatch*");
    }

    [Fact]
    public void Killed_trainer_process_resumes_to_the_same_model_file()
    {
        // The real thing: the sample trainer is killed mid-run, then resumed; its model must equal a straight run's.
        string mnist = TestData.MnistDirectory();
        Mnist_is_there(mnist);
        string straight = Path.Combine(Dir, "straight.model"), resumed = Path.Combine(Dir, "resumed.model");
        string ckpt = Path.Combine(Dir, "ckpt");
        string[] common = ["train", "--data", mnist, "--limit", "6000", "--epochs", "2", "--seed", "3"];
        RunTrainer([.. common, "--model", straight]).Should().Be(0);

        using (var victim = StartTrainer([.. common, "--model", resumed, "--checkpoint", ckpt, "--checkpoint-every", "50"]))
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(ckpt, TrainingCheckpoint.FileName)) && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(5);
            victim.Kill(entireProcessTree: true);
            victim.WaitForExit();
        }

        File.Exists(resumed).Should().BeFalse("the run was killed before it finished");
        RunTrainer([.. common, "--model", resumed, "--resume", ckpt]).Should().Be(0);
        File.ReadAllBytes(resumed).Should().Equal(File.ReadAllBytes(straight));
    }

    private static void Mnist_is_there(string dir) => LeNetSharp.Data.Mnist.EnsureAsync(dir).GetAwaiter().GetResult();

    private static Process StartTrainer(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(typeof(LeNetSharp.Trainer.Program).Assembly.Location);
        foreach (var a in args) start.ArgumentList.Add(a);
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int RunTrainer(string[] args)
    {
        using var p = StartTrainer(args);
        p.WaitForExit();
        return p.ExitCode;
    }

}
