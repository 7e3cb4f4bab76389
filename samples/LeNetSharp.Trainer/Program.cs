using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Trainer;

/// <summary>
/// The sample console trainer: argument parsing and printing only; all the maths lives in LeNetSharp.Core.
/// </summary>
/// <remarks>
/// Error contract: exit 0 on success; 2 on a usage error; 1 on any other failure, including an unexpected exception;
/// 130 when training is interrupted (SIGINT / Ctrl-C or SIGTERM). A failure prints exactly one line, <c>error: …</c>,
/// on stderr and no stack trace; an interruption prints one <c>interrupted: …</c> line saying what was saved. Output
/// files are checked before any work and written (atomically) only once the command has succeeded.
/// </remarks>
public static class Program
{
    /// <summary>Entry point: returns 0 on success, 1 on a runtime failure, 2 on bad arguments, 130 when interrupted.</summary>
    /// <param name="args">Command and options.</param>
    /// <returns>The process exit code.</returns>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the trainer with the given streams (the tests call this).</summary>
    /// <param name="args">Command and options.</param>
    /// <param name="stdout">Where progress and results go.</param>
    /// <param name="stderr">Where the one-line error goes.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            return new Cli(options => Execute(options, stdout, stderr), stdout, stderr).Invoke(args);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"error: {e.Message} ({Cli.See(e.Command)})");
            return Cli.UsageError;
        }
        catch (OutOfMemoryException)
        {
            // Within the library's ceilings a network can still need more than this machine has (big pictures, big batches).
            stderr.WriteLine("error: out of memory: the network, its batch and its pictures need more memory than this process can have; "
                + "try a smaller --batch or --size, or --threads 1");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"error: {ErrorLine(e)}");
            return 1;
        }
    }

    /// <summary>The exit code of a run interrupted by SIGINT or SIGTERM (128 + SIGINT, as shells report it).</summary>
    internal const int Interrupted = 130;

    /// <summary>One line for any exception: its message, unwrapped and folded, control characters escaped; an unexpected type is named.</summary>
    internal static string ErrorLine(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } or System.Reflection.TargetInvocationException && e.InnerException is not null) e = e.InnerException!;
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name }) message = message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal);
        message = string.Join(" ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        bool expected = e is IOException or InvalidDataException or MnistUnavailableException or UnauthorizedAccessException or ArgumentException
            or PlatformNotSupportedException or NotSupportedException or NonFiniteLossException;
        return Printable(expected ? message : $"unexpected {e.GetType().Name}: {message}");
    }

    /// <summary>
    /// <paramref name="line"/> with every control character (C0, DEL, C1) written as <c>\u001B</c>: a file name's
    /// terminal escapes or line breaks reach an error line as text, never as commands to the terminal.
    /// </summary>
    internal static string Printable(string line)
    {
        if (!line.Any(char.IsControl)) return line;
        var sb = new System.Text.StringBuilder(line.Length + 16);
        foreach (char c in line)
        {
            if (char.IsControl(c)) sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            else sb.Append(c);
        }

        return sb.ToString();
    }

    private static int Execute(Options options, TextWriter stdout, TextWriter stderr)
    {
        _ = options.Backend; // a width this CPU lacks fails here, before any work
        switch (options.Command)
        {
            case "fetch":
                Fetch(options, stdout);
                return 0;
            case "train":
                DataSource.RequireData(options.Data);
                return Train(options, stdout, stderr);
            case "eval":
                DataSource.RequireData(options.Data);
                var model = LoadModel(options.Model);
                if (DataSource.IsImageFolder(options.Data))
                {
                    var (images, split) = DataSource.ForEvaluation(options, model, stdout);
                    Evaluate(options, stdout, model, history: null, images, save: null, split);
                    return 0;
                }

                DataSource.RefuseImageOptions(options);
                var files = Mnist.Recognize(options.Data, MnistSplit.Test);
                var test = Mnist.Load(options.Data, MnistSplit.Test);
                ModelFiles.RequireWithinCeilings(model, options.Model, test.Height, test.Width, test.Channels);
                PrintDataset(options, stdout, files);
                if (options.Report is { } report)
                {
                    Report.EnsureWritable(report);
                    Report.EnsureDrawable(model, options.Model);
                }

                Evaluate(options, stdout, model, history: null, test, save: null);
                return 0;
            case "export":
                EnsureWritableFile(options.To!);
                Export(options, stdout);
                return 0;
            case "predict":
                var predictor = LoadModel(options.Model);
                ModelFiles.RequireWithinCeilings(predictor, options.Model, LeNet.ImageSize, LeNet.ImageSize, 1); // pictures become 28x28 grey
                return PredictCommand.Run(predictor, options.Files, options.Json, stdout, stderr);
            case "bench":
                Bench.Run(options, stdout);
                return 0;
            default: // the main job (an image folder as --data needs no fetch)
                if (!DataSource.IsImageFolder(options.Data)) Fetch(options, stdout);
                return Train(options, stdout, stderr);
        }
    }

    /// <summary>
    /// "data: MNIST (4 files, SHA-256 verified) in DIR" or "data: unrecognised IDX dataset in DIR", the first line of
    /// train, eval and bench (<see cref="Mnist.Recognize"/> has already refused a mix of known and unknown files).
    /// </summary>
    internal static void PrintDataset(Options o, TextWriter stdout, DatasetRecognition recognition)
    {
        if (recognition.Files.Count > 0) stdout.WriteLine($"data: {recognition} in {o.Data}");
    }

    private static void Fetch(Options o, TextWriter stdout)
    {
        var log = new SynchronousProgress<string>(line => stdout.WriteLine($"mnist: {line}"));
        Mnist.EnsureAsync(o.Data, log).GetAwaiter().GetResult();
    }

    /// <summary>Whether <paramref name="network"/> has the layers --net builds for <paramref name="data"/>.</summary>
    private static bool IsNetOf(Options o, Sequential<float> network, ImageDataset data)
    {
        try
        {
            return Recipe.SameLayers(network, DataSource.NewNetwork(o, data));
        }
        catch (ArgumentException)
        {
            return false; // --net cannot even take these images
        }
    }

    private static int Train(Options o, TextWriter stdout, TextWriter stderr)
    {
        // Everything that can fail is checked before training: the data (both splits), the outputs, the options.
        ImageDataset train;
        ImageDataset? test;
        if (DataSource.IsImageFolder(o.Data))
        {
            (train, test) = DataSource.ForTraining(o, stdout);
        }
        else
        {
            DataSource.RefuseImageOptions(o);
            var files = Mnist.Recognize(o.Data, MnistSplit.Train, MnistSplit.Test);
            train = Mnist.Load(o.Data, MnistSplit.Train);
            test = Mnist.Load(o.Data, MnistSplit.Test);
            PrintDataset(o, stdout, files);
            o = Recipe.WithDataDefaults(o, files.Dataset);
        }

        string? checkpoints = o.Checkpoint ?? o.Resume;
        EnsureWritableFile(o.Model);
        if (checkpoints is not null) AtomicFile.EnsureWritable(Path.Combine(checkpoints, TrainingCheckpoint.FileName));
        if (o.Report is { } reportDir) Report.EnsureWritable(reportDir);
        if (o.Given.Contains("--checkpoint-every") && checkpoints is null) stdout.WriteLine("note: --checkpoint-every is ignored without --checkpoint");
        if (o.Given.Contains("--lr") && o.Resume is not null) stdout.WriteLine("note: --lr is ignored when resuming: the learning rate comes from the checkpoint");
        if (o.Limit is int limit) train = train.Take(limit);
        var arch = o.Arch is { } archPath ? Recipe.LoadArchitecture(archPath, train) : null;
        int pool = train.Count;
        ImageDataset? validation = null;
        if (o.ValSplit is double fraction) (train, validation) = Recipe.Split(train, fraction, o.Seed);
        if (o.EarlyStop is int patience && patience >= o.Epochs)
        {
            stdout.WriteLine($"note: --early-stop {patience} cannot stop a run of {o.Epochs} epoch{(o.Epochs == 1 ? "" : "s")}: "
                + $"the first epoch sets the best validation loss, and {patience} more must pass without beating it");
        }

        if (train.Count < o.Batch)
        {
            string left = o.Limit is null && o.ValSplit is null ? $"{o.Data} has {train.Count:N0} training images"
                : $"{train.Count:N0} training images are left after {(o.Limit is null ? "" : $"--limit {o.Limit}")}{(o.Limit is not null && o.ValSplit is not null ? " and " : "")}{(o.ValSplit is null ? "" : $"--val-split {o.ValSplit?.ToString(System.Globalization.CultureInfo.InvariantCulture)}")}";
            throw new UsageException(o.Command, $"--batch {o.Batch} is larger than the training set: {left}; give a smaller --batch or more images");
        }

        int batches = (train.Count + o.Batch - 1) / o.Batch;
        var schedule = Recipe.Schedule(o, batches); // null: the tutorial's, from Decay
        var trainingOptions = new TrainingOptions
        {
            Epochs = o.Epochs, BatchSize = o.Batch, LearningRate = o.LearningRate, Decay = schedule is null ? o.Decay : new TrainingOptions().Decay, Seed = o.Seed, Threads = o.Threads,
            CheckpointDirectory = o.Checkpoint ?? o.Resume, CheckpointEvery = o.CheckpointEvery,
            ReportEvery = TrainingDisplay.ReportEvery(batches),
            Optimizer = Recipe.Optimizer(o), Momentum = o.Momentum, WeightDecay = o.EffectiveWeightDecay, Schedule = schedule,
            ValidationData = validation, EarlyStopping = o.EarlyStop is int stopAfter ? new EarlyStopping { Patience = stopAfter } : null,
            Augmentation = Recipe.Augmentation(o),
        };
        if (o.Threads > 1 && !trainingOptions.SplitsBatch(o.Batch))
        {
            int fewest = TrainingOptions.MinImagesPerThread;
            stdout.WriteLine($"note: --threads {o.Threads}{(o.Net == "modern" && !o.Given.Contains("--threads") ? " (--net modern's)" : "")} has no effect at batch {o.Batch}: a batch runs on one thread below {fewest} images a thread (try --batch {fewest * o.Threads} or more)");
        }

        // The schedule must give every epoch a usable rate; a resumed run starts from the checkpoint's rate, known once it is loaded.
        bool Unusable(TrainingOptions run)
        {
            if (Recipe.ScheduleProblem(o, run, batches) is not { } problem) return false;
            stderr.WriteLine($"error: {problem} ({Cli.See(o.Command)})");
            return true;
        }

        if (o.Resume is null && Unusable(trainingOptions)) return Cli.UsageError;
        using var trainer = o.Resume is { } resume
            ? Trainer<float>.Resume(resume, trainingOptions)
            : new Trainer<float>(arch ?? DataSource.NewNetwork(o, train), trainingOptions);
        if (o.Resume is not null && Unusable(trainer.Options)) return Cli.UsageError;
        var network = trainer.Network;
        // A checkpoint holds its own network: it is named as --net names it only when it is that network.
        string name = o.Arch ?? DataSource.NetworkName(o, train);
        if (o.Resume is not null && !IsNetOf(o, network, train))
        {
            if (o.Given.Contains("--net"))
            {
                stderr.WriteLine($"error: --resume {o.Resume}: the checkpoint trains a network of {network.Layers.Count} layers ({network.ParameterCount:N0} parameters), "
                    + $"not {name} (--net {o.Net}); resume with the --net it was started with ({Cli.See(o.Command)})");
                return Cli.UsageError;
            }

            name = $"the network of {o.Resume}";
        }

        network.Backend = o.Backend;
        DataSource.Describe(network, train);
        if (o.Report is not null) Report.EnsureDrawable(network, o.Resume ?? name);
        string from = o.Resume is null ? "" : $", resuming from {o.Resume} at epoch {trainer.Position.Epoch + 1} batch {trainer.Position.Batch}";
        if (o.Arch is not null) stdout.WriteLine(Recipe.ArchitectureLine(o.Arch, network));
        string weights = o.Arch is null ? "" : ", from its weights";
        stdout.WriteLine($"training {name} ({network.ParameterCount:N0} parameters{weights}) on {train.Count:N0} images: "
            + $"{o.Epochs} epoch{(o.Epochs == 1 ? "" : "s")}, batch {o.Batch}, {Recipe.RateText(o, trainer.Optimizer.LearningRate)}, seed {o.Seed}, threads {o.Threads}, backend {network.Backend.Name}{from}");
        foreach (string line in Recipe.Lines(o, validation, pool)) stdout.WriteLine(line);
        // With --report, the curves are recorded and the test accuracy measured after every epoch.
        var history = o.Report is null ? null
            : new TrainingHistory(train.Count, o.Batch, () => Evaluator.Evaluate(network, test!, o.InferBatch, o.Threads).Accuracy);
        using var interrupt = new CancellationTokenSource();
        TrainingResult? result = null;
        using (Signals.CancelOn(interrupt))
        {
            try
            {
                TrainingDisplay.Run(stdout, o.Batch, history is null ? null : history.Observe, progress => result = trainer.Train(train, progress, interrupt.Token));
            }
            catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
            {
                var at = trainer.Position;
                string where = $"epoch {at.Epoch + 1}, batch {at.Batch}";
                if (checkpoints is not null)
                {
                    TrainingCheckpoint.Save(checkpoints, trainer);
                    stderr.WriteLine($"interrupted: checkpoint saved in {checkpoints} at {where} ({o.Model} not written); "
                        + $"continue with the same options and --resume {checkpoints}");
                }
                else
                {
                    stderr.WriteLine($"interrupted at {where}: nothing saved ({o.Model} not written); run with --checkpoint DIR to be able to resume");
                }

                return Interrupted;
            }
        }

        if (o.EarlyStop is not null && result is not null) stdout.WriteLine(Recipe.StopLine(result));

        // An image folder without a test split is measured on the held-out images, or on the training images themselves.
        string split = test is not null ? "test" : validation is not null ? "validation" : "training";
        string ranAt = RanAt(network);
        Evaluate(o, stdout, network, history, test ?? validation ?? train, save: () =>
        {
            SaveModel(network, o.Model);
            stdout.WriteLine($"saved {o.Model}{ranAt}");
        }, split);
        return 0;
    }

    /// <summary>
    /// Checks an output file (--model, --to) before any work: its folder must exist (it is not created: a mistyped
    /// folder is reported, not made), and <see cref="AtomicFile.EnsureWritable"/> must accept it.
    /// </summary>
    private static void EnsureWritableFile(string path)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null && !Directory.Exists(folder)) throw new IOException($"{path}: cannot be written: folder {folder} does not exist.");
        AtomicFile.EnsureWritable(path);
    }

    /// <summary>A .npz path means the tutorial's weight file; .onnx an ONNX model; anything else, a LeNetSharp model file.</summary>
    private static Sequential<float> LoadModel(string path) => ModelFiles.Load(path);

    private static void SaveModel(Sequential<float> network, string path) => ModelFiles.Save(network, path);

    private static void Export(Options o, TextWriter stdout)
    {
        var network = LoadModel(o.Model);
        var (height, width, channels) = ModelFiles.InputShape(network, o.Model);
        ModelFiles.RequireWithinCeilings(network, o.Model, height, width, channels); // what eval and predict would refuse
        SaveModel(network, o.To!);
        stdout.WriteLine($"exported {o.Model} to {o.To}");
    }

    /// <summary>
    /// Renders the report in memory (when --report is given), then runs <paramref name="save"/> (the model, for train),
    /// then writes the report's files and prints the accuracy on <paramref name="split"/> ("test", …) last: a report that fails to render leaves nothing written.
    /// </summary>
    private static void Evaluate(Options o, TextWriter stdout, Sequential<float> network, TrainingHistory? history, ImageDataset test, Action? save, string split = "test")
    {
        network.Backend = o.Backend;
        var rendered = o.Report is null ? null : Report.Render(network, test, o.Model, history, o.InferBatch);
        save?.Invoke();
        if (rendered is not null) Report.Write(o.Report!, rendered, stdout);
        stdout.WriteLine(Evaluator.Evaluate(network, test, o.InferBatch, o.Threads).ToString(split));
    }

    /// <summary>
    /// " (trained at 512-bit vectors, measured fastest here)", or " (trained at 512- and 256-bit vectors, …)" when the steps
    /// ran at different widths: the widths of the SIMD backend's training plans, or "".
    /// </summary>
    /// <remarks>
    /// Read from the network's training plans, not its last one: an evaluation after training (validation, --report)
    /// runs inference plans, whose widths are measured apart. "measured fastest here" only where every training plan's
    /// widths were timed (not for a network that could not be copied, nor on a CPU with one width).
    /// </remarks>
    internal static string RanAt(LeNetSharp.Layers.Sequential<float> network)
    {
        var plans = network.Runner.Plans.Where(p => p.Mode == LeNetSharp.Compute.PlanMode.Training && p.Bits > 0).ToArray();
        if (plans.Length == 0) return "";
        var widths = LeNetSharp.Compute.WidthNames.Distinct(plans.SelectMany(p => p.Widths));
        bool measured = network.Backend == LeNetSharp.Compute.ComputeBackend.Simd
            && plans.All(p => LeNetSharp.Compute.WidthCalibration.Measured(network, p.InputShape, p.Mode));
        return RanAt(widths, measured);
    }

    /// <summary>" (trained at 512- and 256-bit vectors, measured fastest here)" for <paramref name="widths"/> (widest first).</summary>
    internal static string RanAt(IReadOnlyList<int> widths, bool measured) =>
        $" (trained at {LeNetSharp.Compute.WidthNames.Bits(widths)} vectors{(measured ? ", measured fastest here" : "")})";
}

/// <summary>SIGINT (Ctrl-C) and SIGTERM cancel a token instead of killing the process, once; a second signal kills it.</summary>
internal static class Signals
{
    /// <summary>Routes SIGINT and SIGTERM to <paramref name="source"/> until the result is disposed.</summary>
    public static IDisposable CancelOn(CancellationTokenSource source)
    {
        void Handle(System.Runtime.InteropServices.PosixSignalContext context)
        {
            if (source.IsCancellationRequested) return; // the second signal terminates as usual
            context.Cancel = true;
            source.Cancel();
        }

        var registrations = new List<IDisposable>();
        foreach (var signal in new[] { System.Runtime.InteropServices.PosixSignal.SIGINT, System.Runtime.InteropServices.PosixSignal.SIGTERM })
        {
            try
            {
                registrations.Add(System.Runtime.InteropServices.PosixSignalRegistration.Create(signal, Handle));
            }
            catch (PlatformNotSupportedException)
            {
                // SIGTERM has no equivalent on some platforms: Ctrl-C still works.
            }
        }

        return new Registrations(registrations);
    }

    private sealed class Registrations(List<IDisposable> items) : IDisposable
    {
        public void Dispose() => items.ForEach(r => r.Dispose());
    }
}
