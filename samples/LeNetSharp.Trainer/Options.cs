using System.Globalization;

namespace LeNetSharp.Trainer;

/// <summary>The trainer's parsed command line.</summary>
internal sealed record Options
{
    public string Command { get; private init; } = "main";
    public string Data { get; private init; } = Path.Combine("data", "mnist");
    public string Model { get; private init; } = "lenet.model";
    public int Epochs { get; private init; } = 2;
    public int Batch { get; private init; } = 3;
    public double LearningRate { get; private init; } = 0.01;
    public double Decay { get; private init; } = 0.95;
    public int Seed { get; private init; } = 1;
    public int? Limit { get; private init; }
    public int Steps { get; private init; } = 20_000;
    public int InferBatch { get; private init; } = 16;
    public int Threads { get; private init; } = 1;
    public string? GemmName { get; private init; }

    /// <summary>The GEMM named by --gemm (the library's default without it); throws where that width is not accelerated.</summary>
    public LeNetSharp.Tensors.GemmProvider Gemm =>
        GemmName is null ? LeNetSharp.Tensors.GemmProvider.Default : LeNetSharp.Tensors.GemmProvider.FromName(GemmName);

    public string? Checkpoint { get; private init; }
    public int CheckpointEvery { get; private init; }
    public string? Resume { get; private init; }
    public string? To { get; private init; }

    /// <summary>Parses arguments; throws <see cref="ArgumentException"/> with a one-line message on anything wrong.</summary>
    public static Options Parse(string[] args)
    {
        var o = new Options();
        int i = 0;
        if (args.Length > 0 && !args[0].StartsWith('-'))
        {
            o = args[0] switch
            {
                "fetch" or "train" or "eval" or "bench" or "export" => o with { Command = args[0] },
                _ => throw new ArgumentException($"unknown command '{args[0]}'; expected fetch, train, eval, bench or export"),
            };
            i = 1;
        }

        for (; i < args.Length; i++)
        {
            string name = args[i];
            if (name is "--help" or "-h") return o with { Command = "help" };
            if (i + 1 >= args.Length) throw new ArgumentException($"option {name} needs a value");
            string value = args[++i];
            o = name switch
            {
                "--data" => o with { Data = value },
                "--model" => o with { Model = value },
                "--epochs" => o with { Epochs = Int(name, value, 1) },
                "--batch" => o with { Batch = Int(name, value, 1) },
                "--lr" => o with { LearningRate = Real(name, value, 0, double.MaxValue) },
                "--decay" => o with { Decay = Real(name, value, 0, 1) },
                "--seed" => o with { Seed = Int(name, value, int.MinValue) },
                "--limit" => o with { Limit = Int(name, value, 1) },
                "--steps" => o with { Steps = Int(name, value, 1) },
                "--infer-batch" => o with { InferBatch = Int(name, value, 1) },
                "--threads" => o with { Threads = Int(name, value, 1) },
                "--gemm" => o with { GemmName = value is "mathnet" or "simd" or "simd512" or "simd256" or "simd128" ? value
                    : throw new ArgumentException($"--gemm expects mathnet, simd, simd512, simd256 or simd128, got '{value}'") },
                "--checkpoint" => o with { Checkpoint = value },
                "--checkpoint-every" => o with { CheckpointEvery = Int(name, value, 1) },
                "--resume" => o with { Resume = value },
                "--to" => o with { To = value },
                _ => throw new ArgumentException($"unknown option '{name}'"),
            };
        }

        return o;
    }

    private static int Int(string name, string value, int min) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= min
            ? v
            : throw new ArgumentException($"{name} expects an integer ≥ {min}, got '{value}'");

    private static double Real(string name, string value, double exclusiveMin, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > exclusiveMin && v <= max
            ? v
            : throw new ArgumentException($"{name} expects a number in ({exclusiveMin}, {max}], got '{value}'");
}
