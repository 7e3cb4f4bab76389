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
public static class Program
{
    /// <summary>Entry point: returns 0 on success, 1 on a runtime failure, 2 on bad arguments.</summary>
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
        catch (Exception e) when (e is IOException or InvalidDataException or MnistUnavailableException or UnauthorizedAccessException or ArgumentException or PlatformNotSupportedException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    private static int Execute(Options options, TextWriter stdout, TextWriter stderr)
    {
        _ = options.Gemm; // a width this CPU lacks fails here, before any work
        switch (options.Command)
        {
            case "fetch":
                Fetch(options, stdout);
                break;
            case "train":
                Train(options, stdout);
                break;
            case "eval":
                Evaluate(options, stdout, LoadModel(options.Model), history: null);
                break;
            case "export":
                Export(options, stdout);
                break;
            case "bench":
                Bench.Run(options, stdout);
                break;
            default: // the main job
                Fetch(options, stdout);
                Train(options, stdout);
                break;
        }

        return 0;
    }

    private static void Fetch(Options o, TextWriter stdout)
    {
        var log = new SyncProgress<string>(line => stdout.WriteLine($"mnist: {line}"));
        Mnist.EnsureAsync(o.Data, log).GetAwaiter().GetResult();
    }

    private static void Train(Options o, TextWriter stdout)
    {
        var train = Mnist.Load(o.Data, MnistSplit.Train);
        if (o.Limit is int limit) train = train.Take(limit);
        var trainingOptions = new TrainingOptions
        {
            Epochs = o.Epochs, BatchSize = o.Batch, LearningRate = o.LearningRate, Decay = o.Decay, Seed = o.Seed, Threads = o.Threads,
            CheckpointDirectory = o.Checkpoint ?? o.Resume, CheckpointEvery = o.CheckpointEvery,
            ReportEvery = TrainingDisplay.ReportEvery((train.Count + o.Batch - 1) / o.Batch),
        };
        using var trainer = o.Resume is { } resume
            ? Trainer<float>.Resume(resume, trainingOptions)
            : new Trainer<float>(LeNet.Create<float>(o.Seed), trainingOptions);
        var network = trainer.Network;
        network.GemmProvider = o.Gemm;
        string from = o.Resume is null ? "" : $", resuming from {o.Resume} at epoch {trainer.Position.Epoch + 1} batch {trainer.Position.Batch}";
        stdout.WriteLine($"training LeNet ({network.ParameterCount:N0} parameters) on {train.Count:N0} images: "
            + $"{o.Epochs} epochs, batch {o.Batch}, lr {trainer.Optimizer.LearningRate}, decay {o.Decay}, seed {o.Seed}, threads {o.Threads}, gemm {network.GemmProvider.Name}{from}");
        // With --report, the curves are recorded and the test accuracy measured after every epoch.
        var test = o.Report is null ? null : Mnist.Load(o.Data, MnistSplit.Test);
        var history = test is null ? null
            : new TrainingHistory(train.Count, o.Batch, () => Evaluator.Evaluate(network, test, o.InferBatch, o.Threads).Accuracy);
        TrainingDisplay.Run(stdout, o.Batch, history is null ? null : history.Observe, progress => trainer.Train(train, progress));
        SaveModel(network, o.Model);
        stdout.WriteLine($"saved {o.Model}");
        Evaluate(o, stdout, network, history);
    }

    /// <summary>A .npz path means the tutorial's weight file; .onnx an ONNX model; anything else, a LeNetSharp model file.</summary>
    private static bool IsNpz(string path) => path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase);

    private static bool IsOnnx(string path) => path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);

    private static Sequential<float> LoadModel(string path) =>
        IsNpz(path) ? TutorialWeights.Import<float>(path) : IsOnnx(path) ? OnnxModel.Import(path) : ModelFile.Load<float>(path);

    private static void SaveModel(Sequential<float> network, string path)
    {
        if (IsNpz(path)) TutorialWeights.Export(network, path);
        else if (IsOnnx(path)) OnnxModel.Export(network, path);
        else ModelFile.Save(network, path);
    }

    private static void Export(Options o, TextWriter stdout)
    {
        SaveModel(LoadModel(o.Model), o.To!);
        stdout.WriteLine($"exported {o.Model} to {o.To}");
    }

    /// <summary>Prints the test accuracy (last, after the report's files when --report is given).</summary>
    private static void Evaluate(Options o, TextWriter stdout, Sequential<float> network, TrainingHistory? history)
    {
        network.GemmProvider = o.Gemm;
        var test = Mnist.Load(o.Data, MnistSplit.Test);
        if (o.Report is { } report) Report.Write(report, network, test, o.Model, history, o.InferBatch, stdout);
        stdout.WriteLine(Evaluator.Evaluate(network, test, o.InferBatch, o.Threads).ToString("test"));
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls back synchronously on the reporting thread (no synchronisation context).</summary>
/// <typeparam name="T">The report type.</typeparam>
internal sealed class SyncProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
