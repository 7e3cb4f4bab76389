using System.Globalization;
using System.Text.RegularExpressions;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Trainer;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// The trainer's recipe options: --arch, --optimizer, --momentum, --weight-decay, --schedule, --warmup, --step-size,
/// --gamma, --val-split, --early-stop and --augment. Parsing and ranges, the combinations refused, the schedules they
/// build, and short real runs on MNIST (a few hundred images) with what they print.
/// </summary>
public sealed class TrainerRecipeTests : TempDirectoryTest
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TrainerCliTests.Run(args);

    /// <summary>The options the command line binds, without running anything.</summary>
    private static Options Parsed(params string[] args)
    {
        Options? parsed = null;
        var err = new StringWriter();
        int code = new Cli(o => { parsed = o; return 0; }, TextWriter.Null, err).Invoke(args);
        code.Should().Be(0, err.ToString());
        return parsed!;
    }

    /// <summary>A short MNIST run into a model file of the test folder; asserts success, returns stdout's lines without the tenth-of-an-epoch ones.</summary>
    private List<string> Train(params string[] args)
    {
        string model = Path.Combine(Dir, $"{Guid.NewGuid():N}.model");
        var (code, output, err) = Run(["train", "--data", TestData.MnistDirectory(), "--model", model, .. args]);
        code.Should().Be(0, err);
        err.Should().BeEmpty();
        var lines = output.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).Where(l => !l.Contains(" batches)", StringComparison.Ordinal)).ToList();
        lines[0].Should().StartWith("data: ");
        lines[^1].Should().MatchRegex(@"^test accuracy: \d+\.\d\d% \(\d+/10000\)$");
        return lines;
    }

    /// <summary>Synthetic 28x28 IDX files: 64 training and 16 test images, labels 0-9.</summary>
    private string SyntheticData() => TestData.SyntheticIdx(Path.Combine(Dir, "data"), 64, 16);

    [Theory]
    [InlineData("error: --optimizer expects sgd, adam, adamw, got 'adamx'; did you mean 'adam'? (see train --help)", "train", "--optimizer", "adamx")]
    [InlineData("error: --schedule expects tutorial, constant, step, cosine, onecycle, got 'cosin'; did you mean 'cosine'? (see train --help)", "train", "--schedule", "cosin")]
    [InlineData("error: --val-split expects a number in (0, 1), got '1' (see train --help)", "train", "--val-split", "1")]
    [InlineData("error: --val-split expects a number in (0, 1), got '0' (see --help)", "--val-split", "0")]
    [InlineData("error: --val-split expects a number in (0, 1), got 'ten' (see train --help)", "train", "--val-split", "ten")]
    [InlineData("error: option --val-split needs a value (see train --help)", "train", "--val-split")]
    [InlineData("error: --early-stop expects an integer from 1 to 10000, got '0' (see train --help)", "train", "--early-stop", "0", "--val-split", "0.1")]
    [InlineData("error: --warmup expects an integer from 0 to 9999, got '-1' (see train --help)", "train", "--warmup", "-1")]
    [InlineData("error: --momentum expects a number in [0, 1), got '1' (see train --help)", "train", "--momentum", "1")]
    [InlineData("error: --weight-decay expects a number in [0, 1], got '-0.1' (see train --help)", "train", "--weight-decay", "-0.1")]
    [InlineData("error: --step-size expects an integer from 1 to 10000, got '0' (see train --help)", "train", "--schedule", "step", "--step-size", "0")]
    [InlineData("error: --gamma expects a number in (0, 1], got '1.5' (see train --help)", "train", "--schedule", "step", "--gamma", "1.5")]
    [InlineData("error: --arch expects a path, got an empty string (see train --help)", "train", "--arch", "")]
    [InlineData("error: unexpected argument 'yes': train takes no positional arguments (see train --help)", "train", "--augment", "yes")]
    [InlineData("error: unknown option '--warm-up'; did you mean '--warmup'? (see train --help)", "train", "--warm-up", "1")]
    [InlineData("error: unknown option '--optimizer' (see eval --help)", "eval", "--optimizer", "adam")]
    // Options that need another, or exclude one: refused once every value has parsed, before anything runs.
    [InlineData("error: --early-stop needs --val-split: it watches the loss on held-out images (e.g. --val-split 0.1) (see train --help)", "train", "--early-stop", "3")]
    [InlineData("error: --early-stop needs --val-split: it watches the loss on held-out images (e.g. --val-split 0.1) (see --help)", "--early-stop", "3")]
    [InlineData("error: --momentum is a setting of --optimizer sgd, not of adam (see train --help)", "train", "--optimizer", "adam", "--momentum", "0.9")]
    [InlineData("error: --decay is a setting of --schedule tutorial, not of cosine (see train --help)", "train", "--schedule", "cosine", "--decay", "0.9")]
    [InlineData("error: --gamma is a setting of --schedule step, not of tutorial (see train --help)", "train", "--gamma", "0.5")]
    [InlineData("error: --step-size is a setting of --schedule step, not of onecycle (see train --help)", "train", "--schedule", "onecycle", "--step-size", "2")]
    [InlineData("error: --warmup does not combine with --schedule onecycle: the cycle warms up itself (from lr/25 over its first 30 %) (see train --help)",
        "train", "--schedule", "onecycle", "--warmup", "1", "--epochs", "3")]
    [InlineData("error: --warmup expects fewer epochs than --epochs (2), got '2' (see train --help)", "train", "--warmup", "2")]
    [InlineData("error: --warmup expects fewer epochs than --epochs (3), got '5' (see --help)", "--warmup", "5", "--epochs", "3")]
    [InlineData("error: --arch does not combine with --resume: a resumed run trains the checkpoint's network (see train --help)", "train", "--arch", "a.model", "--resume", "ck")]
    [InlineData("error: --arch does not combine with --net: --arch trains the file's network, --net builds a new one (see train --help)", "train", "--arch", "a.model", "--net", "modern")]
    [InlineData("error: --net expects lenet, modern, got 'modren'; did you mean 'modern'? (see train --help)", "train", "--net", "modren")]
    [InlineData("error: --momentum is a setting of --optimizer sgd, not of adamw (--net modern's) (see train --help)", "train", "--net", "modern", "--momentum", "0.9")]
    [InlineData("error: --warmup does not combine with --schedule onecycle (--net modern's): the cycle warms up itself (from lr/25 over its first 30 %) (see train --help)",
        "train", "--net", "modern", "--warmup", "1")]
    public void Bad_recipe_options_give_one_line_and_exit_code_2(string message, params string[] args)
    {
        var (code, output, err) = Run(args);
        code.Should().Be(2);
        err.TrimEnd().Should().Be(message);
        output.Should().BeEmpty("nothing runs, not even the main job's fetch");
    }

    [Fact]
    public void Help_wins_over_options_that_do_not_fit_together()
    {
        var (code, output, err) = Run("train", "--early-stop", "3", "--help");
        code.Should().Be(0);
        err.Should().BeEmpty();
        output.Should().Contain("--early-stop <PATIENCE>").And.Contain("--val-split <F>");
    }

    [Fact]
    public void Without_recipe_options_the_run_is_the_tutorials()
    {
        var o = Parsed("train");
        (o.Arch, o.Optimizer, o.Momentum, o.WeightDecay, o.EffectiveWeightDecay, o.Schedule, o.Warmup, o.ValSplit, o.EarlyStop, o.Augment)
            .Should().Be(((string?)null, "sgd", 0.0, (double?)null, 0.0, "tutorial", 0, (double?)null, (int?)null, false));
        Recipe.Schedule(o, 20_000).Should().BeNull("the trainer's own default, the tutorial's decay bit for bit");
        Recipe.RateText(o, 0.01).Should().Be("lr 0.01, decay 0.95");
        Recipe.Lines(o, null, 60_000).Should().BeEmpty();
        Parsed().Should().BeEquivalentTo(o with { Command = "main" }, c => c.ComparingByMembers<Options>(), "the main job takes train's options with the same defaults");
    }

    [Fact]
    public void Recipe_options_bind_names_in_any_case_and_weight_decay_defaults_per_optimizer()
    {
        var o = Parsed("train", "--arch", "net.onnx", "--optimizer", "AdamW", "--schedule", "Step", "--step-size", "3", "--gamma", "0.5", "--warmup", "1",
            "--epochs", "9", "--val-split", "0.25", "--early-stop", "4", "--augment");
        (o.Arch, o.Optimizer, o.Schedule, o.StepSize, o.Gamma, o.Warmup, o.ValSplit, o.EarlyStop, o.Augment)
            .Should().Be(("net.onnx", "adamw", "step", 3, 0.5, 1, (double?)0.25, (int?)4, true));
        o.EffectiveWeightDecay.Should().Be(0.01, "PyTorch's AdamW default");
        Parsed("train", "--optimizer", "adamw", "--weight-decay", "0").EffectiveWeightDecay.Should().Be(0);
        Parsed("train", "--optimizer", "adam").EffectiveWeightDecay.Should().Be(0);
        Parsed("train", "--momentum", "0.9", "--weight-decay", "5e-4").Should().Match<Options>(p => p.Momentum == 0.9 && p.EffectiveWeightDecay == 5e-4);
        Recipe.RateText(o, 0.001).Should().Be("optimizer adamw (weight decay 0.01), lr 0.001, schedule step (gamma 0.5 every 3 epochs), warm-up 1 epoch");
        Recipe.RateText(Parsed("train", "--momentum", "0.9"), 0.01).Should().Be("optimizer sgd (momentum 0.9), lr 0.01, decay 0.95");
        Recipe.RateText(Parsed("train", "--schedule", "onecycle"), 0.01).Should().Be("lr 0.01, schedule onecycle (lr is the peak)");
    }

    [Fact]
    public void Schedules_move_the_rate_as_documented()
    {
        const int Batches = 10;
        const double Lr = 0.1;
        static double At(ILearningRateSchedule s, long step) => s.RateAt(Lr, s.Unit == ScheduleUnit.Step ? step : step / Batches);

        var step = Recipe.Schedule(Parsed("train", "--schedule", "step", "--step-size", "2", "--gamma", "0.5", "--epochs", "6"), Batches)!;
        new[] { 0, 19, 20, 39, 40 }.Select(s => At(step, s)).Should().Equal(0.1, 0.1, 0.05, 0.05, 0.025);
        At(Recipe.Schedule(Parsed("train", "--schedule", "constant"), Batches)!, 19).Should().Be(Lr);

        // Cosine every step, from lr at the first to near 0 at the last step of the run.
        var cosine = Recipe.Schedule(Parsed("train", "--schedule", "cosine", "--epochs", "2"), Batches)!;
        cosine.Unit.Should().Be(ScheduleUnit.Step);
        At(cosine, 0).Should().Be(Lr);
        At(cosine, 10).Should().BeApproximately(Lr / 2, 1e-15);
        At(cosine, 19).Should().BeApproximately(Lr * (1 + Math.Cos(Math.PI * 19 / 20)) / 2, 1e-15);

        var cycle = Recipe.Schedule(Parsed("train", "--schedule", "onecycle", "--epochs", "2"), Batches)!;
        At(cycle, 0).Should().BeApproximately(Lr / 25, 1e-15);
        new[] { 0, 3, 5, 6, 10, 19 }.Select(s => At(cycle, s)).Max().Should().Be(At(cycle, 5), "the peak is at 30 % of the 20 steps");
        At(cycle, 5).Should().BeApproximately(Lr, 1e-15);
        At(cycle, 19).Should().BeApproximately(Lr / 25 / 1e4, 1e-18);

        // A warm-up of 1 epoch rises every step from lr/3, then the schedule starts from its own beginning.
        var warm = Recipe.Schedule(Parsed("train", "--warmup", "1", "--epochs", "3"), Batches)!;
        warm.Unit.Should().Be(ScheduleUnit.Step);
        At(warm, 0).Should().BeApproximately(Lr / 3, 1e-15);
        At(warm, 5).Should().BeApproximately(Lr * 2 / 3, 1e-15);
        var tutorial = new TutorialSchedule(0.95);
        for (int s = 10; s < 30; s++) At(warm, s).Should().Be(tutorial.RateAt(Lr, (s - 10) / Batches), $"step {s}");
        warm.ToString().Should().Be("LinearWarmupSchedule(10 steps from 0.3333333333333333, then TutorialSchedule(decay 0.95) by steps of 10-step epochs)");

        var warmCosine = Recipe.Schedule(Parsed("train", "--schedule", "cosine", "--warmup", "1", "--epochs", "3"), Batches)!;
        At(warmCosine, 9).Should().BeApproximately(Lr * (1.0 / 3 + 2.0 / 3 * 9 / 10), 1e-15);
        At(warmCosine, 10).Should().Be(Lr);
        At(warmCosine, 29).Should().BeApproximately(Lr * (1 + Math.Cos(Math.PI * 19 / 20)) / 2, 1e-15, "the cosine spans the 2 epochs after the warm-up");
    }

    /// <summary>What the schedule does to the rate over the epochs asked for is checked before training, naming --epochs, the schedule and the epoch.</summary>
    [Theory]
    [InlineData("error: --epochs 2000 with the tutorial schedule (decay 0.95) takes the learning rate from 0.01 to 0 (underflow) after epoch 170; "
        + "use fewer epochs, a --decay closer to 1 or --schedule constant (see train --help)", "train", "--epochs", "2000")]
    [InlineData("error: --epochs 171 with the tutorial schedule (decay 0.5) takes the learning rate from 100 to 0 (underflow) after epoch 47; "
        + "use fewer epochs, a --decay closer to 1 or --schedule constant (see train --help)", "train", "--epochs", "171", "--decay", "0.5", "--lr", "100")]
    [InlineData("error: --epochs 400 with --schedule step (gamma 0.1 every 1 epoch) takes the learning rate from 0.01 to 0 (underflow) after epoch 322; "
        + "use fewer epochs, a --gamma closer to 1, a larger --step-size or --schedule constant (see train --help)", "train", "--epochs", "400", "--schedule", "step", "--gamma", "0.1")]
    [InlineData("error: --epochs 400 with the tutorial schedule (decay 0.95) after a warm-up of 2 epochs takes the learning rate from 0.01 to 0 (underflow) after epoch 172; "
        + "use fewer epochs, a --decay closer to 1 or --schedule constant (see train --help)", "train", "--epochs", "400", "--warmup", "2")]
    [InlineData("error: --epochs 2 with --schedule constant after a warm-up of 1 epoch gives the first step the learning rate 0 (underflow), from 5E-324; "
        + "use a larger --lr (see train --help)", "train", "--epochs", "2", "--schedule", "constant", "--warmup", "1", "--lr", "5e-324")]
    public void A_schedule_that_takes_the_rate_to_0_is_refused_before_training(string message, params string[] args)
    {
        string model = Path.Combine(Dir, "m.model");
        var (code, output, err) = Run([.. args, "--data", SyntheticData(), "--limit", "3", "--model", model]);
        code.Should().Be(2);
        err.TrimEnd().Should().Be(message);
        output.Should().NotContain("epoch 1/", "nothing is trained");
        File.Exists(model).Should().BeFalse();
    }

    [Fact]
    public void The_schedule_check_finds_the_first_step_without_a_usable_rate()
    {
        Options o = Parsed("train", "--epochs", "170");
        Recipe.ScheduleProblem(o, new TrainingOptions { Epochs = 170 }, 20_000).Should().BeNull("epoch 170 (0-based 169) still trains at a positive rate");
        Recipe.ScheduleProblem(o, new TrainingOptions { Epochs = 171 }, 20_000).Should().EndWith("after epoch 170; use fewer epochs, a --decay closer to 1 or --schedule constant");
        new TutorialSchedule().RateAt(0.01, 169).Should().BePositive();

        // A per-step schedule: cosine from 1e-320 reaches 0 part-way through the last epoch.
        o = Parsed("train", "--schedule", "cosine", "--lr", "1e-320", "--epochs", "2");
        var run = new TrainingOptions { Epochs = 2, LearningRate = 1e-320, Schedule = Recipe.Schedule(o, 1000) };
        string problem = Recipe.ScheduleProblem(o, run, 1000)!;
        problem.Should().MatchRegex(@"^--epochs 2 with --schedule cosine takes the learning rate from 1E-320 to 0 \(underflow\) in epoch 2, at step \d{3} of its 1,000; use a larger --lr$");
        int step = int.Parse(System.Text.RegularExpressions.Regex.Match(problem, @"at step (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var rate = (long s) => { try { return run.Schedule!.RateAt(1e-320, s); } catch (ArgumentOutOfRangeException) { return 0; } };
        rate(1000 + step - 2).Should().BePositive();
        rate(1000 + step - 1).Should().Be(0);

        foreach (var fine in new[] { Parsed("train"), Parsed("train", "--schedule", "onecycle", "--epochs", "10000"), Parsed("train", "--decay", "1", "--epochs", "10000") })
        {
            var options = new TrainingOptions { Epochs = fine.Epochs, LearningRate = fine.LearningRate, Decay = fine.Decay, Schedule = Recipe.Schedule(fine, 20_000) };
            Recipe.ScheduleProblem(fine, options, 20_000).Should().BeNull();
        }
    }

    [Fact]
    public void Suggest_directive_completes_optimizer_and_schedule_names()
    {
        static string[] Words(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Words(Run("[suggest:18]", "train --optimizer ").Out).Should().BeEquivalentTo("adam", "adamw", "sgd");
        Words(Run("[suggest:17]", "train --schedule ").Out).Should().BeEquivalentTo("constant", "cosine", "onecycle", "step", "tutorial");
        Words(Run("[suggest:14]", "train --val-sp").Out).Should().Equal("--val-split");
    }

    /// <summary>The issue's example, on 600 images: every new option in one run, and every line it adds.</summary>
    [Fact]
    public void Net_modern_takes_its_recipe_for_every_option_not_given()
    {
        var o = Parsed("train", "--net", "modern");
        (o.Net, o.Epochs, o.Batch, o.Optimizer, o.LearningRate, o.EffectiveWeightDecay, o.Schedule, o.Augment, o.Flip, o.Threads)
            .Should().Be(("modern", 15, 64, "adamw", 0.01, 0.01, "onecycle", false, false, 2));
        // The augmentation follows the data, unless one is given.
        (Recipe.WithDataDefaults(o, "MNIST").Augment, Recipe.WithDataDefaults(o, "MNIST").Flip).Should().Be((true, false));
        (Recipe.WithDataDefaults(o, "Fashion-MNIST").Augment, Recipe.WithDataDefaults(o, "Fashion-MNIST").Flip).Should().Be((false, true));
        Recipe.WithDataDefaults(o, null).Should().Be(o, "no augmentation for data it does not know");
        var flipOnMnist = Parsed("train", "--net", "modern", "--flip");
        Recipe.WithDataDefaults(flipOnMnist, "MNIST").Should().Be(flipOnMnist, "--flip given: the recipe's choice stands aside");
        Recipe.WithDataDefaults(Parsed("train"), "MNIST").Augment.Should().BeFalse("--net lenet keeps the tutorial's recipe");
        var mine = Parsed("train", "--net", "modern", "--epochs", "3", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05", "--threads", "1");
        (mine.Epochs, mine.Batch, mine.Optimizer, mine.Momentum, mine.LearningRate, mine.Schedule, mine.Threads)
            .Should().Be((3, 64, "sgd", 0.9, 0.05, "onecycle", 1), "a given option wins over the recipe's");
        Parsed("train", "--net", "lenet").Should().BeEquivalentTo(Parsed("train") with { Given = new HashSet<string> { "--net" } },
            c => c.ComparingByMembers<Options>(), "lenet is the tutorial's recipe");
        Recipe.ModernRecipeText.Should().Be(
            "--epochs 15 --batch 64 --optimizer adamw --lr 0.01 --weight-decay 0.01 --schedule onecycle --threads 2, and --augment on MNIST or --flip on Fashion-MNIST");
    }

    [Fact]
    public void Flip_mirrors_with_or_without_the_other_distortions()
    {
        var flip = Parsed("train", "--flip");
        Recipe.Augmentation(flip).Should().Be(new ImageAugmentation { MaxShift = 0, MaxRotation = 0, MinScale = 1, MaxScale = 1, FlipHorizontal = true });
        Recipe.Lines(flip, null, 100).Should().Equal("augmentation: half the training images mirrored left to right, anew every epoch (seed 1)");
        var both = Parsed("train", "--augment", "--flip", "--seed", "4");
        Recipe.Augmentation(both).Should().Be(new ImageAugmentation { FlipHorizontal = true, Seed = 4 });
        Recipe.Lines(both, null, 100).Should().Equal(
            "augmentation: every training image shifted up to 2 px, rotated up to 10°, scaled 0.9 to 1.1, and half of them mirrored, anew every epoch (seed 4)");
        Recipe.Augmentation(Parsed("train")).Should().BeNull();
    }

    [Fact]
    public void A_batch_larger_than_the_images_left_is_a_usage_error_naming_the_options()
    {
        string data = TestData.MnistDirectory(), model = Path.Combine(Dir, "m.model");
        Run("train", "--data", data, "--model", model, "--net", "modern", "--limit", "10").Should()
            .Be((2, $"data: MNIST (4 files, SHA-256 verified) in {data}\n",
                "error: --batch 64 is larger than the training set: 10 training images are left after --limit 10; give a smaller --batch or more images (see train --help)\n"));
        Run("train", "--data", data, "--model", model, "--limit", "100", "--val-split", "0.95", "--batch", "8").Err.Should()
            .Be("error: --batch 8 is larger than the training set: 5 training images are left after --limit 100 and --val-split 0.95; give a smaller --batch or more images (see train --help)\n");
        File.Exists(model).Should().BeFalse();
    }

    [Fact]
    public void Resuming_names_the_checkpoints_network_and_refuses_another_net()
    {
        string data = TestData.MnistDirectory(), checkpoint = Path.Combine(Dir, "ck"), model = Path.Combine(Dir, "m.model");
        Run("train", "--data", data, "--model", model, "--limit", "60", "--epochs", "1", "--augment", "--checkpoint", checkpoint).Code.Should().Be(0);
        string[] modernRecipe = ["--batch", "3", "--optimizer", "sgd", "--weight-decay", "0", "--schedule", "tutorial", "--threads", "1", "--limit", "60", "--epochs", "2"];
        var (code, _, err) = Run(["train", "--data", data, "--model", model, "--net", "modern", .. modernRecipe, "--resume", checkpoint]);
        (code, err).Should().Be((2, $"error: --resume {checkpoint}: the checkpoint trains a network of 8 layers (5,142 parameters), not the modern CNN (--net modern); "
            + "resume with the --net it was started with (see train --help)\n"));
        Run("train", "--data", data, "--model", model, "--limit", "60", "--epochs", "2", "--augment", "--resume", checkpoint).Out.Should()
            .Contain("training LeNet (5,142 parameters) on 60 images", "without --net the checkpoint's LeNet is named as it is");
    }

    [Fact]
    public void Net_modern_trains_saves_and_evaluates_the_modern_cnn()
    {
        string model = Path.Combine(Dir, "modern.model");
        var (code, output, err) = Run("train", "--net", "modern", "--data", TestData.MnistDirectory(), "--model", model, "--epochs", "1", "--limit", "640");
        code.Should().Be(0, err);
        output.Should().MatchRegex(@"training the modern CNN \(87,946 parameters\) on 640 images: 1 epoch, batch 64, optimizer adamw \(weight decay 0\.01\), "
            + @"lr 0\.01, schedule onecycle \(lr is the peak\), seed 1, threads 2, backend \S+");
        output.Should().Contain("augmentation: every training image shifted up to 2 px");
        var loaded = ModelFiles.Load(model);
        loaded.Layers.Select(l => l.Name).Should().Equal(ModernCnn.Create<float>(1).Layers.Select(l => l.Name));
        var accuracy = Regex.Match(output, @"test accuracy: (\d+\.\d\d)%").Groups[1].Value;
        double.Parse(accuracy, CultureInfo.InvariantCulture).Should().BeGreaterThan(20, "ten steps already beat chance (10 %)");
        Run("eval", "--data", TestData.MnistDirectory(), "--model", model).Out.Should().Contain($"test accuracy: {accuracy}%");
    }

    [Fact]
    public void A_run_with_every_recipe_option_prints_what_it_does()
    {
        var lines = Train("--optimizer", "adam", "--lr", "0.001", "--schedule", "cosine", "--warmup", "1", "--val-split", "0.1", "--early-stop", "3",
            "--augment", "--epochs", "4", "--limit", "600");
        lines[1].Should().MatchRegex(@"^training LeNet \(5,142 parameters\) on 540 images: 4 epochs, batch 3, optimizer adam, lr 0\.001, schedule cosine, warm-up 1 epoch, seed 1, threads 1, backend \S+");
        lines[2].Should().Be("validation: 60 of the 600 training images held out (--val-split 0.1, seed 1), loss and accuracy after every epoch; "
            + "early stop once it has not improved for 3 epochs, keeping the best epoch's weights");
        lines[3].Should().Be("augmentation: every training image shifted up to 2 px, rotated up to 10°, scaled 0.9 to 1.1, anew every epoch (seed 1)");
        for (int e = 1; e <= 4; e++)
        {
            lines[3 + e].Should().MatchRegex($@"^epoch {e}/4  loss \d\.\d{{4}}  train acc \d+\.\d\d%  val loss \d\.\d{{4}}  val acc \d+\.\d\d%  lr \S+  \d+\.\d s  \d+ img/s$");
        }

        lines[8].Should().MatchRegex(@"^ended 4 epochs \(1 to 4\) without stopping early: (the last epoch had the best validation loss, \d\.\d{4}|the best validation loss was epoch \d's, \d\.\d{4}; the weights of epoch 4 are kept)$");
        lines[9].Should().StartWith("saved ");
        lines.Should().HaveCount(11);
    }

    [Fact]
    public void Early_stopping_says_which_epochs_weights_it_restored()
    {
        // Adam at a constant 0.01 on 800 images: the validation loss is lowest after epoch 4 and higher after 5 and 6.
        var lines = Train("--optimizer", "adam", "--schedule", "constant", "--val-split", "0.2", "--early-stop", "2", "--epochs", "20", "--limit", "1000");
        lines.Where(l => l.StartsWith("epoch ", StringComparison.Ordinal)).Should().HaveCount(6).And.AllSatisfy(l => l.Should().Contain("/20  loss ").And.Contain("  val loss "));
        lines[^3].Should().MatchRegex(@"^stopped early after epoch 6: validation loss not improved on \d\.\d{4} \(epoch 4\) for 2 epochs; the weights of epoch 4 are restored$");
    }

    [Fact]
    public void Each_schedule_and_optimizer_trains_and_shows_its_rates()
    {
        static string[] Rates(List<string> lines) =>
            [.. lines.Where(l => l.StartsWith("epoch ", StringComparison.Ordinal)).Select(l => l.Split("  lr ")[1].Split(' ')[0])];

        // Per epoch: each epoch line shows the rate it trained at.
        var step = Train("--schedule", "step", "--gamma", "0.5", "--epochs", "3", "--limit", "300");
        step[1].Should().Contain(", lr 0.01, schedule step (gamma 0.5 every 1 epoch), seed 1,");
        Rates(step).Should().Equal("0.01", "0.005", "0.0025");
        var constant = Train("--schedule", "constant", "--optimizer", "sgd", "--momentum", "0.9", "--epochs", "2", "--limit", "300");
        constant[1].Should().Contain(", optimizer sgd (momentum 0.9), lr 0.01, schedule constant, seed 1,");
        Rates(constant).Should().Equal("0.01", "0.01");

        // Per step: the rate of each epoch's last step (100 a epoch here).
        Rates(Train("--schedule", "onecycle", "--optimizer", "adamw", "--lr", "0.002", "--epochs", "2", "--limit", "300"))[^1].Should().Be("8E-09", "lr/25/10⁴ at the last step");
        var warm = Train("--warmup", "1", "--epochs", "2", "--limit", "300", "--decay", "0.9");
        warm[1].Should().Contain(", lr 0.01, decay 0.9, warm-up 1 epoch, seed 1,");
        Rates(warm).Should().Equal("0.009933", "0.01");
    }

    [Fact]
    public void Naming_the_defaults_changes_nothing()
    {
        string a = Path.Combine(Dir, "a.model"), b = Path.Combine(Dir, "b.model");
        var plain = Run("train", "--data", TestData.MnistDirectory(), "--limit", "300", "--epochs", "1", "--model", a);
        var named = Run("train", "--data", TestData.MnistDirectory(), "--limit", "300", "--epochs", "1", "--model", b,
            "--optimizer", "sgd", "--momentum", "0", "--weight-decay", "0", "--schedule", "tutorial", "--decay", "0.95", "--warmup", "0");
        (plain.Code, named.Code).Should().Be((0, 0));
        named.Out.Split('\n')[1].Should().Be(plain.Out.Split('\n')[1]).And.StartWith("training LeNet (5,142 parameters) on 300 images: 1 epoch, batch 3, lr 0.01, decay 0.95, seed 1,");
        File.ReadAllBytes(b).Should().Equal(File.ReadAllBytes(a));
    }

    /// <summary>A LeNet saved as a model file and exported as ONNX trains from its weights, to the same bits from either file.</summary>
    [Fact]
    public void Arch_trains_a_saved_model_or_an_exported_onnx_from_its_weights()
    {
        var network = LeNet.Create<float>(7);
        string saved = Path.Combine(Dir, "seven.model"), exported = Path.Combine(Dir, "seven.onnx");
        ModelFile.Save(network, saved);
        OnnxModel.Export(network, exported);

        var trained = new List<string>();
        foreach (string arch in new[] { saved, exported })
        {
            string model = Path.Combine(Dir, Path.GetFileName(arch) + ".trained.model");
            var (code, output, err) = Run("train", "--data", TestData.MnistDirectory(), "--arch", arch, "--epochs", "1", "--limit", "300", "--model", model);
            code.Should().Be(0, err);
            var lines = output.Split('\n');
            lines[1].Should().Be($"arch: {arch}: 8 layers, Conv 5x5 1→6 stride 1 pad 0 → Relu → MaxPool2x2 → Conv 5x5 6→16 stride 1 pad 0 → Relu → MaxPool2x2 → Flatten → Linear 256→10");
            lines[2].Should().StartWith($"training {arch} (5,142 parameters, from its weights) on 300 images: 1 epoch, batch 3, lr 0.01, decay 0.95, seed 1,");
            trained.Add(lines.Single(l => l.StartsWith("epoch 1/1  loss ", StringComparison.Ordinal)).Split("  lr ")[0]);
            File.Exists(model).Should().BeTrue();
        }

        trained[1].Should().Be(trained[0], "the ONNX file holds the same weights");
        File.ReadAllBytes(Path.Combine(Dir, "seven.onnx.trained.model")).Should().Equal(File.ReadAllBytes(Path.Combine(Dir, "seven.model.trained.model")));
        File.ReadAllBytes(saved).Should().Equal(File.ReadAllBytes(Path.Combine(Dir, "seven.model")), "--arch only reads");
        ModelFile.Load<float>(Path.Combine(Dir, "seven.model.trained.model")).Parameters[0].Value.Data.Should()
            .NotEqual(network.Parameters[0].Value.Data, "trained on from the file's weights");
    }

    [Fact]
    public void Arch_trains_the_new_layers_with_the_recipe_options()
    {
        var random = new Random(3);
        var network = new Sequential<float>(
            new Conv<float>(1, 4, 3, 3, random), new BatchNorm2d<float>(4), new LeakyRelu<float>(), new MaxPool2d<float>(2), new Dropout<float>(0.1, seed: 2),
            new Conv<float>(4, 8, 3, 3, random), new Tanh<float>(), new AvgPool2d<float>(2), new Flatten<float>(), new Linear<float>(200, 10, random));
        string arch = Path.Combine(Dir, "modern.model");
        ModelFile.Save(network, arch);
        var lines = Train("--arch", arch, "--optimizer", "adamw", "--lr", "0.003", "--schedule", "cosine", "--val-split", "0.2", "--augment", "--epochs", "2", "--limit", "300", "--batch", "16");
        lines[1].Should().StartWith($"arch: {arch}: 10 layers, Conv 3x3 1→4 stride 1 pad 0 → BatchNorm2d");
        lines[2].Should().StartWith($"training {arch} (").And.Contain("parameters, from its weights) on 240 images: 2 epochs, batch 16, optimizer adamw (weight decay 0.01), lr 0.003, schedule cosine, seed 1,");
        lines.Should().ContainMatch("epoch 2/2  loss *  train acc *  val loss *  val acc *");
    }

    [Fact]
    public void Arch_that_does_not_fit_the_data_is_one_error_line_before_training()
    {
        string data = SyntheticData();
        var random = new Random(1);
        string Save(string name, Sequential<float> network)
        {
            string path = Path.Combine(Dir, name);
            if (name.EndsWith(".onnx", StringComparison.Ordinal)) OnnxModel.Export(network, path, 32, 32, 1);
            else ModelFile.Save(network, path);
            return path;
        }

        string five = Save("five.model", new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 5, random)));
        string maps = Save("maps.model", new Sequential<float>(new Conv<float>(1, 2, 5, 5, random), new Relu<float>()));
        string wide = Save("wide.model", new Sequential<float>(new Flatten<float>(), new Linear<float>(1024, 10, random)));
        string onnx = Save("big.onnx", new Sequential<float>(new Conv<float>(1, 2, 5, 5, random), new Flatten<float>(), new Linear<float>(28 * 28 * 2, 10, random)));
        string mlp = Save("mlp.model", new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 10, random)));
        string model = Path.Combine(Dir, "out.model");
        foreach (var (args, expected) in new (string[], string)[]
        {
            (["--arch", five], $"error: {five}: the network gives 5 outputs per image, but the data has 10 classes."),
            (["--arch", maps], $"error: {maps}: the network turns the data's 28x28x1 images into (24, 24, 2) each, not 10 scores, one per class: end it with Flatten and Linear."),
            (["--arch", wide], $"error: {wide}: the network does not take the data's 28x28x1 images (H x W x C): *"),
            (["--arch", onnx], $"error: {onnx}: the ONNX graph takes 32x32x1 images (H x W x C), the data's are 28x28x1."),
            (["--arch", Path.Combine(Dir, "missing.model")], $"error: {Path.Combine(Dir, "missing.model")}: model file not found."),
            (["--arch", mlp, "--report", Path.Combine(Dir, "report")], $"error: {mlp}: --report draws the first convolution's filters, and this network has no Conv layer; leave out --report."),
            (["--val-split", "0.001"], "error: --val-split 0.001 of 64 training images leaves no image for validation; give a larger share or more images."),
            (["--val-split", "0.999"], "error: --val-split 0.999 of 64 training images leaves no image for training; give a smaller share or more images."),
        })
        {
            var (code, output, err) = Run(["train", "--data", data, "--model", model, .. args]);
            code.Should().Be(1, string.Join(' ', args));
            err.TrimEnd().Should().Match(expected).And.NotContain("\n");
            output.Should().NotContain("epoch");
            File.Exists(model).Should().BeFalse();
        }

        var eval = Run("eval", "--data", data, "--model", mlp, "--report", Path.Combine(Dir, "report"));
        (eval.Code, eval.Err.TrimEnd()).Should().Be((1, $"error: {mlp}: --report draws the first convolution's filters, and this network has no Conv layer; leave out --report."));
        Directory.Exists(Path.Combine(Dir, "report")).Should().BeFalse();

        var mlpRun = Run("train", "--data", data, "--model", model, "--arch", mlp, "--epochs", "1");
        mlpRun.Code.Should().Be(0, "a network without convolutions trains (only the report needs one): " + mlpRun.Err);
    }

    [Fact]
    public void Early_stop_that_cannot_stop_is_named()
    {
        var (code, output, _) = Run("train", "--data", SyntheticData(), "--model", Path.Combine(Dir, "m.model"), "--val-split", "0.25", "--early-stop", "2", "--epochs", "2");
        code.Should().Be(0);
        output.Should().Contain("note: --early-stop 2 cannot stop a run of 2 epochs: the first epoch sets the best validation loss, and 2 more must pass without beating it\n");
        output.Should().MatchRegex(@"\nended 2 epochs \(1 to 2\) without stopping early: ");
    }

    /// <summary>A warm-up schedule is recorded in the checkpoint by its description, so --resume with the same options goes on, and with others is refused.</summary>
    [Fact]
    public void A_checkpointed_recipe_resumes_with_the_same_options_only()
    {
        string data = SyntheticData(), ckpt = Path.Combine(Dir, "ckpt"), model = Path.Combine(Dir, "m.model");
        string[] recipe = ["--optimizer", "adam", "--lr", "0.001", "--warmup", "1", "--val-split", "0.25", "--early-stop", "5", "--augment"];
        Run(["train", "--data", data, "--model", model, "--epochs", "2", "--checkpoint", ckpt, .. recipe]).Code.Should().Be(0);
        var resumed = Run(["train", "--data", data, "--model", model, "--epochs", "3", "--resume", ckpt, .. recipe]);
        resumed.Code.Should().Be(0, resumed.Err);
        resumed.Out.Should().Contain(", resuming from " + ckpt + " at epoch 3 batch 0").And.Contain("\nepoch 3/3  loss ")
            .And.Contain("\nended 1 epoch (3 to 3) without stopping early: ");

        var other = Run(["train", "--data", data, "--model", model, "--epochs", "4", "--resume", ckpt, "--optimizer", "adamw", .. recipe[2..]]);
        other.Code.Should().Be(1);
        other.Err.Should().StartWith($"error: {ckpt}").And.Contain("optimizer");
    }
}
