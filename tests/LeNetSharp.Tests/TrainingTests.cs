using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public class TrainingTests
{
    [Fact]
    public void Loss_falls_and_the_net_memorises_a_small_set()
    {
        var data = TestData.RandomImages(24, seed: 1);
        var net = TestData.SmallNet<float>(seed: 1);
        var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 150, BatchSize = 4, LearningRate = 0.05, Momentum = 0.9, Decay = 1 });

        var epochs = trainer.Train(data);

        epochs[0].Loss.Should().BeGreaterThan(0.9, "random labels over 3 classes start near log 3 = 1.1");
        epochs[^1].Loss.Should().BeLessThan(0.05);
        Evaluator.Evaluate(net, data).Accuracy.Should().Be(1.0);
    }

    [Fact]
    public void Same_seed_gives_identical_weights_and_another_seed_does_not()
    {
        float[] Run(int seed)
        {
            var net = TestData.SmallNet<float>(seed);
            new Trainer<float>(net, new TrainingOptions { Epochs = 3, Seed = seed }).Train(TestData.RandomImages(30, 5));
            return net.Parameters.SelectMany(p => p.Value.Data).ToArray();
        }

        Run(7).Should().Equal(Run(7));
        Run(7).Should().NotEqual(Run(8));
    }

    [Fact]
    public void Learning_rate_follows_the_tutorial_schedule()
    {
        var rates = new List<double>();
        var net = TestData.SmallNet<float>(1);
        var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 3 });

        trainer.Train(TestData.RandomImages(6, 1), new InlineProgress<TrainingProgress>(p => rates.Add(p.LearningRate)));

        // after epoch 0: ·0.95¹; after epoch 1: ·0.95²
        rates.Should().Equal(0.01, 0.01 * 0.95, 0.01 * 0.95 * 0.95 * 0.95);
        trainer.Optimizer.LearningRate.Should().BeApproximately(0.01 * Math.Pow(0.95, 6), 1e-15);
    }

    [Fact]
    public void Sgd_step_updates_from_the_gradient_and_clears_it()
    {
        var p = new Parameter<double>("w", 2);
        p.Value.Data[0] = 1;
        p.Value.Data[1] = -2;
        p.Gradient.Data[0] = 10;
        p.Gradient.Data[1] = 4;

        new Sgd<double>([p], learningRate: 0.1).Step();

        p.Value.Data.Should().Equal(0, -2.4);
        p.Gradient.Data.Should().Equal(0, 0);
    }

    [Fact]
    public void Training_reports_progress_and_honours_cancellation()
    {
        using var cts = new CancellationTokenSource();
        var reports = new List<TrainingProgress>();
        var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { Epochs = 5, BatchSize = 2, ReportEvery = 3 });

        var act = () => trainer.Train(TestData.RandomImages(20, 2), new InlineProgress<TrainingProgress>(p =>
        {
            reports.Add(p);
            if (p.IsEpochEnd) cts.Cancel();
        }), cts.Token);

        act.Should().Throw<OperationCanceledException>();
        reports.Select(r => (r.Batch, r.IsEpochEnd)).Should().Equal((3, false), (6, false), (9, false), (10, true));
        reports[^1].Batches.Should().Be(10);
        reports[^1].ImagesPerSecond.Should().BeGreaterThan(0);
    }

    [Fact]
    public void Steps_allocate_nothing_in_steady_state()
    {
        var data = TestData.RandomImages(30, 3);
        var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions());
        int[] batch = [0, 1, 2];
        for (int i = 0; i < 300; i++) trainer.Step(data, batch); // warm-up: buffers and JIT tiers

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) trainer.Step(data, batch);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        allocated.Should().Be(0);
    }

}

public class ParallelTrainingTests
{
    private static float[] Train(int threads, int seed = 3)
    {
        var net = TestData.SmallNet<float>(seed);
        using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 2, BatchSize = 32, Threads = threads, Seed = seed });
        trainer.Train(TestData.RandomImages(200, 9));
        return net.Parameters.SelectMany(p => p.Value.Data).ToArray();
    }

    [Fact]
    public void A_split_batch_after_a_one_thread_batch_sees_the_current_weights()
    {
        // A batch of 8 runs on one thread, 32 are split across two: the replicas must then start from the weights the
        // 8-image step left, as those of a trainer made after it do.
        var data = TestData.RandomImages(40, 9);
        var options = new TrainingOptions { Threads = 2 };
        int[] small = [.. Enumerable.Range(0, 8)], large = [.. Enumerable.Range(8, 32)];

        var net = TestData.SmallNet<float>(3);
        using (var trainer = new Trainer<float>(net, options))
        {
            trainer.Step(data, small);
            trainer.Step(data, large);
        }

        var reference = TestData.SmallNet<float>(3);
        using (var first = new Trainer<float>(reference, options)) first.Step(data, small);
        using (var second = new Trainer<float>(reference, options)) second.Step(data, large);

        Weights(net).Should().Equal(Weights(reference));
    }

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    [Fact]
    public void Two_threads_are_deterministic()
    {
        Train(2).Should().Equal(Train(2));
    }

    [Fact]
    public void Two_threads_compute_the_same_update_as_one_up_to_rounding()
    {
        float[] one = Train(1), two = Train(2);
        one.Should().NotEqual(two, "the gradient sums are ordered differently");
        for (int i = 0; i < one.Length; i++) two[i].Should().BeApproximately(one[i], 1e-4f, "parameter {0}", i);
    }

    [Fact]
    public void Parallel_evaluation_gives_the_same_confusion_matrix()
    {
        var net = TestData.SmallNet<float>(1);
        var data = TestData.RandomImages(333, 4);
        var one = Evaluator.Evaluate(net, data, batchSize: 10);
        var two = Evaluator.Evaluate(net, data, batchSize: 10, threads: 2);
        two.ConfusionMatrix.Should().BeEquivalentTo(one.ConfusionMatrix);
        two.Total.Should().Be(333);
        // Threads take batches from a shared cursor: every image counted once, the short last batch included.
        foreach (int threads in new[] { 3, 8 })
        {
            var many = Evaluator.Evaluate(net, data, batchSize: 7, threads: threads);
            many.ConfusionMatrix.Should().BeEquivalentTo(one.ConfusionMatrix, "{0} threads", threads);
        }
    }
}

public class ParallelEvaluationCancellationTests
{
    [Fact]
    public void Cancelled_parallel_evaluation_throws_OperationCanceledException()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var act = () => Evaluator.Evaluate(TestData.SmallNet<float>(1), TestData.RandomImages(100, 1), batchSize: 10, threads: 2, cts.Token);
        act.Should().Throw<OperationCanceledException>();
    }

    [Fact]
    public void Worker_pool_runs_every_index_once_a_round_also_after_its_threads_park()
    {
        using var pool = new WorkerPool(3);
        var runs = new int[3];
        var threads = new int[3];
        for (int round = 1; round <= 6; round++)
        {
            pool.Run(i =>
            {
                Interlocked.Increment(ref runs[i]);
                threads[i] = Environment.CurrentManagedThreadId;
            });
            runs.Should().AllBeEquivalentTo(round, "round {0}", round);
            threads.Distinct().Should().HaveCount(3, "each index has a thread of its own");
            if (round % 2 == 0) Thread.Sleep(50); // long enough for the waiting threads to stop spinning and park
        }
    }

    [Fact]
    public void Worker_pool_hands_a_worker_exception_to_the_caller_and_goes_on()
    {
        using var pool = new WorkerPool(2);
        var act = () => pool.Run(i =>
        {
            if (i == 1) throw new InvalidDataException("worker 1 failed");
        });
        act.Should().Throw<InvalidDataException>().WithMessage("worker 1 failed");

        int sum = 0;
        pool.Run(i => Interlocked.Add(ref sum, i + 1));
        sum.Should().Be(3, "the pool still runs both workers after a failure");
    }
}

public class ContinuedTrainingTests
{
    private static readonly ImageDataset Data = TestData.RandomImages(70, 4); // 5 batches of 16 an epoch, the last of 6

    private static TrainingOptions Options(int epochs, int threads, double momentum) => new()
    {
        Epochs = epochs, BatchSize = 16, LearningRate = 0.05, Momentum = momentum, Threads = threads, Seed = 11,
    };

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    private static (double Loss, double Accuracy, double LearningRate, int Epoch) Figures(TrainingProgress p) => (p.Loss, p.Accuracy, p.LearningRate, p.Epoch);

    [Theory]
    [InlineData(1, 0.0)]
    [InlineData(1, 0.9)]
    [InlineData(2, 0.0)] // batches of 16 split across two threads; each epoch's short last batch runs on one
    [InlineData(2, 0.9)]
    public void Several_calls_end_with_the_weights_of_one_longer_call(int threads, double momentum)
    {
        using var straight = new Trainer<float>(TestData.SmallNet<float>(5), Options(4, threads, momentum));
        var reference = straight.Train(Data);

        IEnumerable<Func<Trainer<float>, IReadOnlyList<TrainingProgress>>[]> ways =
        [
            [t => t.Train(Data), t => t.Train(Data)],                    // Epochs = 2, twice
            [t => t.Train(Data, 1), t => t.Train(Data, 3)],
            [t => t.Train(Data, 1), t => t.Train(Data), t => t.Train(Data, 1)],
        ];
        foreach (var calls in ways)
        {
            using var trainer = new Trainer<float>(TestData.SmallNet<float>(5), Options(2, threads, momentum));
            var summaries = calls.SelectMany(call => call(trainer)).ToList();

            Weights(trainer.Network).Should().Equal(Weights(straight.Network), "{0} calls, bit for bit", calls.Length);
            trainer.Optimizer.LearningRate.Should().Be(straight.Optimizer.LearningRate);
            trainer.Position.Should().Be(straight.Position);
            summaries.Select(Figures).Should().Equal(reference.Select(Figures));
        }
    }

    [Fact]
    public void Reports_of_a_later_call_go_on_with_the_epoch_numbers_and_the_schedule()
    {
        var reports = new List<TrainingProgress>();
        var progress = new InlineProgress<TrainingProgress>(reports.Add);
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { Epochs = 2, BatchSize = 4, ReportEvery = 2 });
        var data = TestData.RandomImages(12, 1); // 3 batches an epoch: one report within it, one at its end

        trainer.Train(data, progress).Select(s => s.Epoch).Should().Equal(1, 2);
        trainer.Train(data, progress).Select(s => s.Epoch).Should().Equal(3, 4);
        trainer.Train(data, 1, progress).Select(s => s.Epoch).Should().Equal(5);

        reports.Select(r => (r.Epoch, r.Epochs, r.Batch, r.IsEpochEnd)).Should().Equal(
            (1, 2, 2, false), (1, 2, 3, true), (2, 2, 2, false), (2, 2, 3, true),
            (3, 4, 2, false), (3, 4, 3, true), (4, 4, 2, false), (4, 4, 3, true),
            (5, 5, 2, false), (5, 5, 3, true));
        double rate = 0.01;
        var expected = new List<double>();
        for (int e = 0; e < 5; e++)
        {
            expected.Add(rate);
            rate = TutorialSchedule.Next(rate, e, 0.95);
        }

        reports.Where(r => r.IsEpochEnd).Select(r => r.LearningRate).Should().Equal(expected);
        trainer.Optimizer.LearningRate.Should().Be(rate);
        trainer.Position.Should().Be(new TrainingPosition(5, 0, 0, 0, 0));
    }

    [Fact]
    public void A_cancelled_call_is_finished_by_the_next_and_the_one_after_trains_on()
    {
        using var straight = new Trainer<float>(TestData.SmallNet<float>(5), Options(3, 1, 0.9));
        straight.Train(Data);
        straight.Train(Data);

        using var cts = new CancellationTokenSource();
        int batches = 0;
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(5), Options(3, 1, 0.9) with { ReportEvery = 1 });
        var act = () => trainer.Train(Data, new InlineProgress<TrainingProgress>(_ => { if (++batches == 7) cts.Cancel(); }), cts.Token);
        act.Should().Throw<OperationCanceledException>();
        trainer.Position.Should().Match<TrainingPosition>(p => p.Epoch == 1 && p.Batch == 2, "7 reports: 5 in epoch 1 (its end included), 2 in epoch 2");

        trainer.Train(Data).Select(s => (s.Epoch, s.Epochs)).Should().Equal((2, 3), (3, 3));
        trainer.Train(Data).Select(s => (s.Epoch, s.Epochs)).Should().Equal((4, 6), (5, 6), (6, 6));

        Weights(trainer.Network).Should().Equal(Weights(straight.Network));
        trainer.Optimizer.LearningRate.Should().Be(straight.Optimizer.LearningRate);
    }

    [Fact]
    public void A_call_stopped_by_a_throwing_report_handler_is_finished_by_the_next()
    {
        using var straight = new Trainer<float>(TestData.SmallNet<float>(5), Options(2, 1, 0.9));
        straight.Train(Data);

        using var trainer = new Trainer<float>(TestData.SmallNet<float>(5), Options(2, 1, 0.9) with { ReportEvery = 2 });
        var act = () => trainer.Train(Data, new InlineProgress<TrainingProgress>(p =>
        {
            if (p.Epoch == 2 && p.Batch == 4) throw new InvalidOperationException("handler failed");
        }));
        act.Should().Throw<InvalidOperationException>().WithMessage("handler failed");
        trainer.Position.Should().Match<TrainingPosition>(p => p.Epoch == 1 && p.Batch == 4, "the fourth batch of epoch 2 was stepped before its report");

        trainer.Train(Data).Select(s => s.Epoch).Should().Equal(2);
        Weights(trainer.Network).Should().Equal(Weights(straight.Network));
    }

    [Fact]
    public void An_epoch_count_below_one_is_refused()
    {
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions());
        FluentActions.Invoking(() => trainer.Train(Data, 0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("epochs");
        trainer.Position.Should().Be(default(TrainingPosition));
    }
}
