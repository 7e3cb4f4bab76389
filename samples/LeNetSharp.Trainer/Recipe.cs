using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Training;

namespace LeNetSharp.Trainer;

/// <summary>
/// The training recipe the command line describes, beyond the tutorial's: the network (<c>--arch</c>), the optimizer,
/// the learning-rate schedule and its warm-up, the validation split, early stopping and augmentation; how each turns
/// into <see cref="TrainingOptions"/>, and how each is printed. With none of these options given, the run is the
/// tutorial's: <see cref="Schedule"/> is null and nothing here prints a line.
/// </summary>
internal static class Recipe
{
    /// <summary>--net modern's recipe, for the help text: the defaults <see cref="WithNetDefaults"/> and <see cref="WithDataDefaults"/> give.</summary>
    public const string ModernRecipeText =
        "--epochs 15 --batch 64 --optimizer adamw --lr 0.01 --weight-decay 0.01 --schedule onecycle --threads 2, and --augment on MNIST or --flip on Fashion-MNIST";

    /// <summary>
    /// <paramref name="o"/> with --net modern's recipe in place of every recipe option not given on the command line;
    /// unchanged for --net lenet, whose recipe is the tutorial's (the defaults). The augmentation depends on the data:
    /// see <see cref="WithDataDefaults"/>. <c>bench --net modern</c> takes the recipe's batch and optimizer but keeps one
    /// thread unless --threads is given.
    /// </summary>
    public static Options WithNetDefaults(Options o)
    {
        if (o.Net != "modern") return o;
        T Keep<T>(string option, T given, T modern) => o.Given.Contains(option) ? given : modern;
        return o with
        {
            Epochs = Keep("--epochs", o.Epochs, 15),
            Batch = Keep("--batch", o.Batch, 64),
            Optimizer = Keep("--optimizer", o.Optimizer, "adamw"),
            LearningRate = Keep("--lr", o.LearningRate, 0.01),
            WeightDecay = Keep("--weight-decay", o.WeightDecay, 0.01),
            Schedule = Keep("--schedule", o.Schedule, "onecycle"),
            Threads = o.Command == "bench" ? o.Threads : Keep("--threads", o.Threads, 2), // bench times one core unless told
        };
    }

    /// <summary>
    /// --net modern's augmentation for the dataset recognised in --data (<paramref name="dataset"/>: "MNIST",
    /// "Fashion-MNIST" or null) unless --augment or --flip is given: MNIST's shifts, turns and scales for its digits,
    /// mirroring for Fashion-MNIST's clothes (which the digits' distortions only slow down), none for other data.
    /// </summary>
    public static Options WithDataDefaults(Options o, string? dataset) =>
        o.Net != "modern" || o.Given.Contains("--augment") || o.Given.Contains("--flip") ? o
        : o with { Augment = dataset == "MNIST", Flip = dataset == "Fashion-MNIST" };

    /// <summary>
    /// The network of <c>--arch</c>: a model file, an ONNX model or the tutorial's .npz weights, checked to take
    /// <paramref name="data"/>'s images and to give one output per class before anything is trained.
    /// </summary>
    /// <exception cref="InvalidDataException">The network does not fit the data; the message names the file and both shapes.</exception>
    public static Sequential<float> LoadArchitecture(string path, ImageDataset data)
    {
        var network = LoadNetwork(path, out var shape);
        if (shape is { } s && s != (data.Height, data.Width, data.Channels))
        {
            throw new InvalidDataException($"{path}: the ONNX graph takes {s.Height}x{s.Width}x{s.Channels} images (H x W x C), the data's are {data.Height}x{data.Width}x{data.Channels}.");
        }

        CheckFits(path, network, data.Height, data.Width, data.Channels, data.Classes);
        return network;
    }

    /// <summary>
    /// The network in <paramref name="path"/> (a model file, an ONNX model or the tutorial's .npz weights), with the
    /// image size an ONNX graph declares (null for the other formats, which record none). A first convolution is set
    /// not to compute its input gradient (<see cref="Conv{T}.ComputeInputGradient"/>): nothing reads the gradient of
    /// the images, and the weights train to the same bits without it.
    /// </summary>
    public static Sequential<float> LoadNetwork(string path, out (int Height, int Width, int Channels)? imageShape)
    {
        Sequential<float> network;
        if (ModelFiles.IsOnnx(path))
        {
            network = OnnxModel.Import(path, out var shape);
            imageShape = shape;
        }
        else
        {
            network = ModelFiles.Load(path);
            imageShape = null;
        }

        if (network.Layers.Count > 0 && network.Layers[0] is Conv<float> first) first.ComputeInputGradient = false;
        return network;
    }

    /// <summary>Checks that <paramref name="network"/> (read from <paramref name="path"/>) takes <paramref name="data"/>'s images and gives one output per class.</summary>
    /// <exception cref="InvalidDataException">It does not; the message names the file and both shapes.</exception>
    public static void CheckFits(string path, Sequential<float> network, ImageDataset data) =>
        CheckFits(path, network, data.Height, data.Width, data.Channels, data.Classes, needsWeights: false);

    /// <summary>
    /// Checks that <paramref name="network"/> takes <paramref name="height"/> x <paramref name="width"/> x
    /// <paramref name="channels"/> images, turns each into <paramref name="classes"/> scores (any number when null), stays
    /// within the library's ceilings for such images and, with <paramref name="needsWeights"/>, has weights to train.
    /// </summary>
    /// <exception cref="InvalidDataException">It does not; the message names the file and both shapes.</exception>
    public static void CheckFits(string path, Sequential<float> network, int height, int width, int channels, int? classes, bool needsWeights = true)
    {
        string images = $"{height}x{width}x{channels}";
        IReadOnlyList<int[]> shapes;
        try
        {
            shapes = network.OutputShapes([1, height, width, channels]);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: the network does not take the data's {images} images (H x W x C): {e.Message}", e);
        }

        int[] output = shapes.Count > 0 ? shapes[^1] : [1, height, width, channels];
        if (output.Length != 2)
        {
            throw new InvalidDataException($"{path}: the network turns the data's {images} images into ({string.Join(", ", output[1..])}) each, "
                + $"not {(classes is int c ? c.ToString(CultureInfo.InvariantCulture) + " " : "")}scores, one per class: end it with Flatten and Linear.");
        }

        if (classes is int expected && output[1] != expected)
        {
            throw new InvalidDataException($"{path}: the network gives {output[1]} outputs per image, but the data has {expected} classes.");
        }

        ModelFiles.RequireWithinCeilings(network, path, height, width, channels);
        if (needsWeights && network.ParameterCount == 0) throw new InvalidDataException($"{path}: the network has no weights to train.");
    }

    /// <summary>Whether two networks have the same layers with the same settings (their weights aside).</summary>
    public static bool SameLayers(Sequential<float> a, Sequential<float> b) =>
        a.Layers.Select(l => l.Describe().ToString()).SequenceEqual(b.Layers.Select(l => l.Describe().ToString()));

    /// <summary>"arch: PATH: 8 layers, Conv 5x5 1→6 stride 1 pad 0 → Relu → … → Linear 256→10".</summary>
    public static string ArchitectureLine(string path, Sequential<float> network) =>
        $"arch: {path}: {network.Layers.Count} layers, {string.Join(" → ", network.Layers.Select(l => l.Name))}";

    /// <summary>
    /// Holds out <paramref name="fraction"/> of <paramref name="data"/> for validation (<see cref="ImageDataset.Split"/>,
    /// seeded with <paramref name="seed"/>).
    /// </summary>
    /// <exception cref="ArgumentException">One part would be empty; the message names --val-split and the image count.</exception>
    public static (ImageDataset Train, ImageDataset Validation) Split(ImageDataset data, double fraction, int seed)
    {
        long held = (long)Math.Round(data.Count * fraction, MidpointRounding.AwayFromZero);
        if (held < 1 || held > data.Count - 1)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"--val-split {fraction} of {data.Count:N0} training images leaves no image for {(held < 1 ? "validation" : "training")}; give {(held < 1 ? "a larger" : "a smaller")} share or more images."));
        }

        return data.Split(fraction, seed);
    }

    /// <summary>The optimizer named by --optimizer.</summary>
    public static OptimizerKind Optimizer(Options o) => o.Optimizer switch
    {
        "adam" => OptimizerKind.Adam,
        "adamw" => OptimizerKind.AdamW,
        _ => OptimizerKind.Sgd,
    };

    /// <summary>
    /// The schedule of --schedule and --warmup for epochs of <paramref name="batches"/> batches; null for the
    /// tutorial's without warm-up (the trainer's default, bit for bit). Cosine and one-cycle move every step, over the
    /// run's steps after the warm-up; the others every epoch. A warm-up rises every step from a third of --lr
    /// (PyTorch's <c>LinearLR</c> default) over --warmup epochs, then the schedule starts from its own beginning.
    /// </summary>
    public static ILearningRateSchedule? Schedule(Options o, int batches)
    {
        long after = (long)(o.Epochs - o.Warmup) * batches;
        ILearningRateSchedule? schedule = o.Schedule switch
        {
            "constant" => new ConstantSchedule(),
            "step" => new StepSchedule(o.StepSize, o.Gamma),
            "cosine" => new CosineAnnealingSchedule(after, 0, ScheduleUnit.Step),
            "onecycle" => new OneCycleSchedule(after),
            _ => o.Warmup == 0 ? null : new TutorialSchedule(o.Decay),
        };
        if (schedule is null || o.Warmup == 0) return schedule;
        if (schedule.Unit == ScheduleUnit.Epoch) schedule = new EpochScheduleBySteps(schedule, batches);
        return new LinearWarmupSchedule(schedule, (long)o.Warmup * batches);
    }

    /// <summary>
    /// Why the run's schedule would stop it, or null: the rate of every epoch (or step) the run trains must be positive,
    /// and a decaying schedule underflows to 0 after enough epochs (the tutorial's, 0.95^(e+1) after epoch e, after 170
    /// from 0.01). Checked before the first step, from the rate the run starts at (--lr, or the checkpoint's with
    /// --resume), so the run is refused instead of stopping on the epoch that reaches 0. The schedules here are
    /// monotonic apart from a rise at the start (warm-up, one-cycle), so the first and last steps bound them, and a
    /// bisection finds the first unusable one.
    /// </summary>
    /// <param name="o">The command line's options (for the message).</param>
    /// <param name="options">The run's options: its schedule (null: the tutorial's with <see cref="TrainingOptions.Decay"/>) and initial rate.</param>
    /// <param name="batches">Steps in an epoch (≥ 1).</param>
    /// <returns>One line naming --epochs, the schedule, where the rate reaches 0 and what to change; or null.</returns>
    public static string? ScheduleProblem(Options o, TrainingOptions options, int batches)
    {
        var schedule = options.Schedule ?? new TutorialSchedule(options.Decay);
        double start = options.LearningRate;
        long periods = schedule.Unit == ScheduleUnit.Step ? (long)options.Epochs * batches : options.Epochs;
        // The library's schedules refuse to return a rate that is not positive and finite. With the options' bounds (a
        // rate of at most 100, factors of at most 1) that can only be a rate that underflowed to 0.
        double Rate(long period)
        {
            try
            {
                return schedule.RateAt(start, period);
            }
            catch (ArgumentOutOfRangeException)
            {
                return 0;
            }
        }

        static bool Usable(double rate) => rate > 0 && double.IsFinite(rate);
        long bad;
        if (!Usable(Rate(0)))
        {
            bad = 0;
        }
        else if (!Usable(Rate(periods - 1)))
        {
            long good = 0; // Usable(Rate(good)) and !Usable(Rate(bad)) throughout
            bad = periods - 1;
            while (bad - good > 1)
            {
                long middle = good + (bad - good) / 2;
                if (Usable(Rate(middle))) good = middle;
                else bad = middle;
            }
        }
        else
        {
            return null;
        }

        var c = CultureInfo.InvariantCulture;
        double rate = Rate(bad);
        string value = rate == 0 ? "0 (underflow)" : string.Create(c, $"{rate}");
        string where = schedule.Unit == ScheduleUnit.Epoch ? string.Create(c, $"after epoch {bad}")
            : bad % batches == 0 ? string.Create(c, $"after epoch {bad / batches}")
            : string.Create(c, $"in epoch {bad / batches + 1}, at step {bad % batches + 1:N0} of its {batches:N0}");
        string named = o.Schedule switch
        {
            "tutorial" => string.Create(c, $"the tutorial schedule (decay {o.Decay})"),
            "step" => string.Create(c, $"--schedule step (gamma {o.Gamma} every {Epochs(o.StepSize)})"),
            _ => $"--schedule {o.Schedule}",
        };
        string warmup = o.Warmup == 0 ? "" : $" after a warm-up of {Epochs(o.Warmup)}";
        string change = bad == 0 || o.Schedule is "constant" or "cosine" or "onecycle" ? "use a larger --lr"
            : o.Schedule == "step" ? "use fewer epochs, a --gamma closer to 1, a larger --step-size or --schedule constant"
            : "use fewer epochs, a --decay closer to 1 or --schedule constant";
        string effect = bad == 0 ? string.Create(c, $"gives the first step the learning rate {value}, from {start}")
            : string.Create(c, $"takes the learning rate from {start} to {value} {where}");
        return string.Create(c, $"--epochs {options.Epochs} with {named}{warmup} {effect}; {change}");
    }

    /// <summary>
    /// The optimizer and schedule part of the "training …" line: "lr 0.01, decay 0.95" for the tutorial's (as it
    /// always read), else e.g. "optimizer adam, lr 0.001, schedule cosine, warm-up 1 epoch".
    /// </summary>
    public static string RateText(Options o, double learningRate)
    {
        var c = CultureInfo.InvariantCulture;
        var settings = new List<string>();
        if (o.Momentum != 0) settings.Add(string.Create(c, $"momentum {o.Momentum}"));
        if (o.EffectiveWeightDecay != 0) settings.Add(string.Create(c, $"weight decay {o.EffectiveWeightDecay}"));
        string optimizer = o.Optimizer == "sgd" && settings.Count == 0 ? ""
            : $"optimizer {o.Optimizer}{(settings.Count == 0 ? "" : $" ({string.Join(", ", settings)})")}, ";
        string schedule = o.Schedule switch
        {
            "tutorial" => $"decay {o.Decay}",
            "step" => string.Create(c, $"schedule step (gamma {o.Gamma} every {Epochs(o.StepSize)})"),
            "onecycle" => "schedule onecycle (lr is the peak)",
            _ => $"schedule {o.Schedule}",
        };
        string warmup = o.Warmup == 0 ? "" : $", warm-up {Epochs(o.Warmup)}";
        return $"{optimizer}lr {learningRate}, {schedule}{warmup}";
    }

    /// <summary>"validation: …" and "augmentation: …", the lines that follow "training …" when those options are on.</summary>
    public static IEnumerable<string> Lines(Options o, ImageDataset? validation, int pool)
    {
        if (validation is not null)
        {
            string stop = o.EarlyStop is int patience ? $"; early stop once it has not improved for {Epochs(patience)}, keeping the best epoch's weights" : "";
            yield return string.Create(CultureInfo.InvariantCulture,
                $"validation: {validation.Count:N0} of the {pool:N0} training images held out (--val-split {o.ValSplit}, seed {o.Seed}), loss and accuracy after every epoch{stop}");
        }

        if (Augmentation(o) is { } a)
        {
            string distort = o.Augment
                ? string.Create(CultureInfo.InvariantCulture, $"every training image shifted up to {a.MaxShift} px, rotated up to {a.MaxRotation}°, scaled {a.MinScale} to {a.MaxScale}")
                : "";
            string flip = o.Flip ? (o.Augment ? ", and half of them mirrored" : "half the training images mirrored left to right") : "";
            yield return $"augmentation: {distort}{flip}, anew every epoch (seed {o.Seed})";
        }
    }

    /// <summary>
    /// The augmentation of --augment (the classic MNIST recipe's shifts, rotations and scales) and --flip (left-right
    /// mirroring of half the images), seeded with --seed; null with neither.
    /// </summary>
    public static ImageAugmentation? Augmentation(Options o) =>
        !o.Augment && !o.Flip ? null
        : o.Augment ? new ImageAugmentation { Seed = o.Seed, FlipHorizontal = o.Flip }
        : new ImageAugmentation { MaxShift = 0, MaxRotation = 0, MinScale = 1, MaxScale = 1, Seed = o.Seed, FlipHorizontal = true };

    /// <summary>
    /// Why a run with early stopping ended: stopped early (which epoch's weights are restored), or all its epochs
    /// ended (which epoch was best, and that the last epoch's weights are kept).
    /// </summary>
    public static string StopLine(TrainingResult result)
    {
        if (result.StopReason == TrainingStopReason.EarlyStopped || result.Count == 0 || result.BestEpoch is not int best) return result.ToString();
        int last = result[result.Count - 1].Epoch;
        var c = CultureInfo.InvariantCulture;
        return best == last
            ? string.Create(c, $"{result} without stopping early: the last epoch had the best validation loss, {result.BestValidationLoss:F4}")
            : string.Create(c, $"{result} without stopping early: the best validation loss was epoch {best}'s, {result.BestValidationLoss:F4}; the weights of epoch {last} are kept");
    }

    private static string Epochs(int n) => n == 1 ? "1 epoch" : string.Create(CultureInfo.InvariantCulture, $"{n} epochs");
}

/// <summary>
/// A per-epoch schedule asked every step for the rate of the epoch the step falls in, so that a per-step warm-up
/// (<see cref="LinearWarmupSchedule"/> counts in its schedule's unit) can go in front of it.
/// </summary>
/// <param name="Epochs">The per-epoch schedule.</param>
/// <param name="BatchesPerEpoch">Steps in an epoch (≥ 1).</param>
internal sealed record EpochScheduleBySteps(ILearningRateSchedule Epochs, long BatchesPerEpoch) : ILearningRateSchedule
{
    public ScheduleUnit Unit => ScheduleUnit.Step;

    public double RateAt(double initialRate, long period) => Epochs.RateAt(initialRate, period / BatchesPerEpoch);

    /// <summary>E.g. "TutorialSchedule(decay 0.95) by steps of 20000-step epochs" (recorded in checkpoints, compared on --resume).</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Epochs} by steps of {BatchesPerEpoch}-step epochs");
}
