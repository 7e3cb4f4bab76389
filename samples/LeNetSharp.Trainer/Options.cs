namespace LeNetSharp.Trainer;

/// <summary>
/// The trainer's options once parsed (see <see cref="Cli"/>): one record for every command, each command reading
/// only the values it declares; an option a command does not have keeps the default shown here.
/// </summary>
internal sealed record Options
{
    public string Command { get; init; } = "main";
    public string Data { get; init; } = Path.Combine("data", "mnist");
    public string Model { get; init; } = "lenet.model";
    public int Epochs { get; init; } = 2;
    public int Batch { get; init; } = 3;
    public double LearningRate { get; init; } = 0.01;
    public double Decay { get; init; } = 0.95;
    public int Seed { get; init; } = 1;
    public int? Limit { get; init; }
    public int Steps { get; init; } = 20_000;
    public int InferBatch { get; init; } = 16;
    public int Threads { get; init; } = 1;
    public string? BackendName { get; init; }

    /// <summary>The backend named by --backend (the library's default without it); throws where that width is not accelerated.</summary>
    public LeNetSharp.Compute.ComputeBackend Backend =>
        BackendName is null ? LeNetSharp.Compute.ComputeBackend.Default : LeNetSharp.Compute.ComputeBackend.FromName(BackendName);

    public string? Checkpoint { get; init; }
    public int CheckpointEvery { get; init; }
    public string? Resume { get; init; }
    public string? To { get; init; }
    public string? Report { get; init; }
    public string[] Files { get; init; } = [];
    public bool Json { get; init; }

    /// <summary>The network to build when there is no --arch: "lenet" (the tutorial's) or "modern" (<see cref="LeNetSharp.Layers.ModernCnn"/>, with its recipe).</summary>
    public string Net { get; init; } = "lenet";

    /// <summary>The network to train from its weights (--arch), or null for a new network (--net).</summary>
    public string? Arch { get; init; }

    /// <summary>"sgd", "adam" or "adamw".</summary>
    public string Optimizer { get; init; } = "sgd";

    public double Momentum { get; init; }

    /// <summary>--weight-decay as given; null: 0, or 0.01 with adamw (see <see cref="EffectiveWeightDecay"/>).</summary>
    public double? WeightDecay { get; init; }

    /// <summary>The weight decay the run uses: --weight-decay, else PyTorch's default for the optimizer (0.01 for AdamW, else 0).</summary>
    public double EffectiveWeightDecay => WeightDecay ?? (Optimizer == "adamw" ? 0.01 : 0);

    /// <summary>"tutorial", "constant", "step", "cosine" or "onecycle".</summary>
    public string Schedule { get; init; } = "tutorial";

    /// <summary>Epochs of linear warm-up before the schedule (0: none).</summary>
    public int Warmup { get; init; }

    public int StepSize { get; init; } = 1;
    public double Gamma { get; init; } = 0.7;

    /// <summary>The share of the training images held out for validation, or null for none.</summary>
    public double? ValSplit { get; init; }

    /// <summary>The early-stopping patience in epochs, or null for none.</summary>
    public int? EarlyStop { get; init; }

    public bool Augment { get; init; }

    /// <summary>--flip: mirror half the training images left to right, anew every epoch.</summary>
    public bool Flip { get; init; }

    /// <summary>--size: the (height, width) an image folder's pictures are resized to, or null for the first picture's size.</summary>
    public (int Height, int Width)? Size { get; init; }

    /// <summary>--channels: 1 (grey) or 3 (RGB), for an image folder.</summary>
    public int Channels { get; init; } = 1;

    /// <summary>The options given on the command line (by name, e.g. "--lr"), as opposed to defaults.</summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>();
}
