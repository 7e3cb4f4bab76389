using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Globalization;

namespace LeNetSharp.Trainer;

/// <summary>
/// The trainer's command line (System.CommandLine): one command per verb, each declaring only its own options with
/// their defaults, range-checked typed values, typo suggestions, a <c>help</c> command and shell completion through
/// the <c>[suggest]</c> directive. Parse errors become one <c>error: …</c> line and exit code 2.
/// </summary>
internal sealed class Cli
{
    /// <summary>The exit code of a usage error.</summary>
    public const int UsageError = 2;

    private static readonly string[] BackendNames = ["simd", "simd512", "simd256", "simd128", "reference"];

    /// <summary>
    /// The most epochs a run takes (--epochs; --warmup, --step-size and --early-stop count epochs too): a run keeps a
    /// summary per epoch it has trained, and MNIST runs take tens of epochs, not millions.
    /// </summary>
    internal const int MaxEpochs = 10_000;

    /// <summary>The most timed steps <c>bench</c> takes (--steps).</summary>
    internal const int MaxSteps = 10_000_000;

    /// <summary>The largest --limit and --checkpoint-every (images, batches): far beyond any IDX file, refused as a typo.</summary>
    internal const int MaxCount = 100_000_000;

    /// <summary>The largest --lr: far above any rate that trains (the tutorial's SGD takes 0.01, Adam 0.001), so a larger one is a typo.</summary>
    internal const double MaxLearningRate = 100;

    private readonly Option<string> _data = new("--data")
    {
        Description = "MNIST folder (its IDX files), or an image folder: one sub-folder of pictures per class (DIR/CLASS/*.png|jpg|jpeg|bmp), "
            + "or DIR/train/CLASS/… and DIR/test/CLASS/…", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "mnist"),
    };

    /// <summary>--data of fetch and bench, which take MNIST only.</summary>
    private readonly Option<string> _mnistData = new("--data")
    {
        Description = "MNIST folder", HelpName = "DIR", DefaultValueFactory = _ => Path.Combine("data", "mnist"),
    };

    private readonly Option<(int Height, int Width)?> _size = new("--size")
    {
        Description = "Image folder: resize every picture to H x W pixels (N for N x N; default: the first picture's size, which all must have). "
            + "eval: the model's own input size when it records one", HelpName = "HxW",
        CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            string value = r.Tokens[^1].Value;
            string[] parts = value.Split('x', 'X');
            if (parts.Length is 1 or 2 && parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v is >= 1 and <= MaxSide))
            {
                int h = int.Parse(parts[0], CultureInfo.InvariantCulture);
                return (h, parts.Length == 2 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : h);
            }

            r.AddError($"--size expects N or HxW, each from 1 to {MaxSide:N0} (e.g. 32 or 32x48), got '{value}'");
            return null;
        },
    };

    /// <summary>The largest side --size accepts (the pictures are decoded up to 50 megapixels anyway).</summary>
    private const int MaxSide = 8192;

    private readonly Option<string> _channels = ChoiceOption("--channels",
        "Image folder: 1 to read the pictures as grey, 3 as RGB (eval: the model's own when it records one)", ["1", "3"], "1");

    private readonly Option<string> _model = new("--model")
    {
        Description = "Model file; a .npz path reads/writes the tutorial's weight arrays, a .onnx path an ONNX model (PyTorch's LeNet exports import too); when written, its folder must exist", HelpName = "PATH",
        DefaultValueFactory = _ => "lenet.model",
    };

    private readonly Option<int> _epochs = IntOption("--epochs", "Passes over the training set", 2, 1, MaxEpochs);
    private readonly Option<int> _batch = IntOption("--batch", "Images per SGD step", 3, 1, LeNetSharp.Training.TrainingOptions.MaxBatchSize);
    private readonly Option<double> _lr = RealOption("--lr", "Learning rate of the first epoch (with --schedule onecycle: the peak; with --warmup: reached after it)", 0.01, new Interval(0, false, MaxLearningRate, true));
    private readonly Option<double> _decay = RealOption("--decay", "Per-epoch learning-rate decay base (--schedule tutorial)", 0.95, new Interval(0, false, 1, true));
    private readonly Option<int> _seed = IntOption("--seed", "Seed of the weights, of the shuffling, of --val-split's draw and of --augment's distortions", 1, int.MinValue, int.MaxValue);
    private readonly Option<int?> _limit = NullableIntOption("--limit", "Train on the first N training images only", 1, MaxCount);

    private static readonly string[] OptimizerNames = ["sgd", "adam", "adamw"];
    private static readonly string[] NetNames = ["lenet", "modern"];

    private readonly Option<string> _net = ChoiceOption("--net",
        "The network to build: lenet (the tutorial's) or modern (conv 5x5 32 and 3x3 64 with batch norm, max pooling and dropout; "
        + "its recipe is the default of every option below that is not given: " + Recipe.ModernRecipeText + ")", NetNames, "lenet");
    private static readonly string[] ScheduleNames = ["tutorial", "constant", "step", "cosine", "onecycle"];

    private readonly Option<string?> _arch = new("--arch")
    {
        Description = "Train this network from its weights instead of a new LeNet: a model file or an .onnx (or the tutorial's .npz); "
            + "it must take the data's images (MNIST: 28x28x1) and give one output per class", HelpName = "FILE",
    };

    private readonly Option<string?> _benchArch = new("--arch")
    {
        Description = "Time this network instead of the tutorial's LeNet: a model file or an .onnx (or the tutorial's .npz), on MNIST when it takes "
            + "28x28x1 images, else on random images of its own size (an .onnx's declared size; for a model file 28x28 or the smallest square it takes)",
        HelpName = "FILE",
    };

    private readonly Option<string> _benchNet = ChoiceOption("--net",
        "The network to time: lenet (the tutorial's) or modern (conv 5x5 32 and 3x3 64 with batch norm, max pooling and dropout; "
        + "its recipe's --batch 64 --optimizer adamw are the defaults when not given, on one thread unless --threads)", NetNames, "lenet");

    private readonly Option<string> _benchOptimizer = ChoiceOption("--optimizer",
        "sgd (see --momentum), adam or adamw (as in PyTorch: betas 0.9 and 0.999, eps 1e-8; adamw with weight decay 0.01); bench steps at lr 0.01", OptimizerNames, "sgd");

    private readonly Option<string> _optimizer = ChoiceOption("--optimizer",
        "sgd (the tutorial's; see --momentum), adam or adamw (as in PyTorch: betas 0.9 and 0.999, eps 1e-8; they usually want --lr 0.001)", OptimizerNames, "sgd");

    private readonly Option<double> _momentum = RealOption("--momentum", "SGD momentum, in [0, 1)", 0, new Interval(0, true, 1, false));
    private readonly Option<double?> _weightDecay = NullableRealOption("--weight-decay",
        "Weight decay: an L2 penalty for sgd and adam, decoupled for adamw (default 0; for adamw 0.01, PyTorch's)", new Interval(0, true, 1, true));

    private readonly Option<string> _schedule = ChoiceOption("--schedule",
        "How the learning rate moves: tutorial (times --decay^(e+1) after epoch e), constant, step (times --gamma every --step-size epochs), "
        + "cosine (every step, from --lr down to 0 at the last), onecycle (every step, from lr/25 up to --lr over the first 30 %, then down to lr/250000)",
        ScheduleNames, "tutorial");

    private readonly Option<int> _warmup = IntOption("--warmup", "Epochs of linear warm-up before the schedule, every step from lr/3 up to --lr (not with onecycle, which warms up itself)", 0, 0, MaxEpochs - 1);
    private readonly Option<int> _stepSize = IntOption("--step-size", "--schedule step: epochs between two drops of the learning rate", 1, 1, MaxEpochs);
    private readonly Option<double> _gamma = RealOption("--gamma", "--schedule step: the factor of each drop, in (0, 1] (0.7 every epoch: PyTorch's MNIST example)", 0.7, new Interval(0, false, 1, true));
    private readonly Option<double?> _valSplit = NullableRealOption("--val-split",
        "Hold out this share of the training images (after --limit, drawn with --seed) and print the loss and accuracy on them after every epoch; in (0, 1)",
        new Interval(0, false, 1, false), helpName: "F");

    private readonly Option<int?> _earlyStop = NullableIntOption("--early-stop",
        "Stop once the validation loss has not improved for PATIENCE epochs, and keep the best epoch's weights (needs --val-split)", 1, MaxEpochs, helpName: "PATIENCE");

    private readonly Option<bool> _augment = new("--augment")
    {
        Description = "Distort the training images at random, anew every epoch (shifts up to 2 px, rotations up to 10°, scales 0.9 to 1.1; drawn from --seed)",
    };
    private readonly Option<bool> _flip = new("--flip")
    {
        Description = "Mirror half the training images left to right, anew every epoch (drawn from --seed): for clothes and objects, not digits; with or without --augment",
    };

    private readonly Option<int> _steps = IntOption("--steps", "Timed training steps", 20_000, 1, MaxSteps);
    private readonly Option<int> _inferBatch = IntOption("--infer-batch", "Images per inference batch", 16, 1, LeNetSharp.Training.TrainingOptions.MaxBatchSize);
    private readonly Option<int> _threads = IntOption("--threads", $"Threads (training: data-parallel, a batch split only at {LeNetSharp.Training.TrainingOptions.MinImagesPerThread} images a thread or more, pays off from batch 32; evaluation: batches of the test set shared out; bench: both, then N threads timed against 1)", 1, 1, MaxThreads);

    /// <summary>Whether the library runs the backend <paramref name="name"/> on this CPU (it refuses a SIMD width the CPU lacks).</summary>
    private static bool Accelerated(string name)
    {
        try
        {
            LeNetSharp.Compute.ComputeBackend.FromName(name);
            return true;
        }
        catch (PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The most threads --threads accepts (each holds a copy of the network and its buffers).</summary>
    private const int MaxThreads = 64;
    private readonly Option<string?> _backend = new("--backend", "--gemm")
    {
        Description = "Where the arithmetic runs: simd (vector width measured on the first batch), simd512, simd256, simd128 (one width), reference (the layers' own code, MathNet's GEMM); default simd", HelpName = "NAME",
        CustomParser = r =>
        {
            if (r.Tokens.Count == 0) return null;
            string value = r.Tokens[^1].Value, name = value.ToLowerInvariant();
            if (name == "mathnet") name = "reference"; // the name this option had as --gemm
            if (!BackendNames.Contains(name)) r.AddError($"--backend expects {string.Join(", ", BackendNames)}, got '{value}'{Suggest(value, BackendNames)}");
            else if (!Accelerated(name))
            {
                r.AddError($"--backend {name}: this CPU has no hardware-accelerated {name[4..]}-bit vectors; it takes {string.Join(", ", BackendNames.Where(Accelerated))}");
            }

            return name;
        },
    };

    private readonly Option<string?> _checkpoint = new("--checkpoint")
    {
        Description = "Save a checkpoint in DIR after every epoch (and see --checkpoint-every)", HelpName = "DIR",
    };

    private readonly Option<int> _checkpointEvery = IntOption("--checkpoint-every", "Also checkpoint every N batches (0: only at epoch ends)", 0, 0, MaxCount);
    private readonly Option<string?> _resume = new("--resume")
    {
        Description = "Continue the run checkpointed in DIR (same options; it keeps checkpointing there)", HelpName = "DIR",
    };

    private readonly Option<string> _to = new("--to")
    {
        Description = "Where to write the converted model (.npz: the tutorial's weight arrays; .onnx: ONNX, NHWC input; else a model file); its folder must exist", HelpName = "PATH",
        Required = true,
    };

    private readonly Option<string?> _report = new("--report")
    {
        Description = "Write pictures (curves, confusion matrix, mistakes, filters, feature maps) and metrics.json into DIR (created if missing)", HelpName = "DIR",
    };

    private readonly Argument<string[]> _files = new("FILE")
    {
        Description = "Pictures of one digit each: PNG, JPEG, BMP, GIF or WebP, any size, dark ink on light paper or light on dark",
        Arity = ArgumentArity.OneOrMore,
    };

    private readonly Option<bool> _json = new("--json")
    {
        Description = "Print one JSON object per line: {\"file\", \"label\", \"class\" (when the model names its classes), \"probabilities\": [one per class]}",
    };

    private readonly RootCommand _root;
    private readonly InvocationConfiguration _invocation;

    /// <summary>
    /// The parser's settings: no response files. System.CommandLine would otherwise read a token starting with '@' as
    /// a file of further arguments, so that <c>predict @scan.png</c> looked for a response file and <c>@/etc/passwd</c>
    /// put that file's lines on the command line (and in error messages); here '@' is an ordinary first character.
    /// </summary>
    private static readonly ParserConfiguration Parsing = new() { ResponseFileTokenReplacer = null };

    /// <summary>Builds the command tree; <paramref name="run"/> executes a parsed command and returns its exit code.</summary>
    /// <param name="run">Runs the command named in <see cref="Options.Command"/>.</param>
    /// <param name="stdout">Where help goes.</param>
    /// <param name="stderr">Where errors go.</param>
    public Cli(Func<Options, int> run, TextWriter stdout, TextWriter stderr)
    {
        _invocation = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        _root = new RootCommand(
            "Trains the tutorial's LeNet on MNIST and uses it. With no command: fetch MNIST if missing, train 2 epochs, "
            + "save the model, evaluate it on the 10,000 test images.");
        _backend.CompletionSources.Add(BackendNames);
        _channels.HelpName = "N";
        foreach (Option path in new Option[] { _data, _mnistData, _model, _arch, _benchArch, _checkpoint, _resume, _to, _report }) path.Validators.Add(NotEmpty);
        _files.Validators.Add(r =>
        {
            if (r.Tokens.Any(t => string.IsNullOrWhiteSpace(t.Value))) r.AddError("FILE expects a path, got an empty string");
        });
        Option[] training =
        [
            _data, _size, _channels, _model, _net, _arch, _epochs, _batch, _optimizer, _lr, _momentum, _weightDecay, _schedule, _decay, _stepSize, _gamma, _warmup, _seed, _limit,
            _valSplit, _earlyStop, _augment, _flip, _threads, _backend, _inferBatch, _checkpoint, _checkpointEvery, _resume, _report,
        ];
        Add(_root, training);
        _root.SetAction(r => RefuseMisfits(r) ?? run(Bind(r, "main")));

        Command Verb(string name, string description, params Option[] options)
        {
            var command = new Command(name, description);
            Add(command, options);
            command.SetAction(r => RefuseMisfits(r) ?? run(Bind(r, name)));
            _root.Add(command);
            return command;
        }

        Verb("fetch", "Fetch MNIST into the data folder (verified by SHA-256)", _mnistData);
        Verb("train", "Train (a new LeNet, or --arch FILE from its weights), save the model, evaluate it on the test images (MNIST's 10,000, or an image folder's)", training);
        Verb("eval", "Evaluate a saved model (or a tutorial .npz weight file, or an .onnx network) on the test images (MNIST's, or an image folder's)", _data, _size, _channels, _model, _inferBatch, _threads, _backend, _report);
        Verb("export", "Convert --model to --to (model file, the tutorial's .npz weights, .onnx)", _model, _to);
        Verb("predict", "Read the digit in each picture (preprocessed like MNIST: inverted if dark on light, cropped, scaled, centred); "
            + "with a model trained on an image folder, name the class of each (the picture resized as in training)", _model, _json)
            .Add(_files);
        Verb("bench", "Time training steps and inference (of the tutorial's LeNet, --net modern or --arch FILE), with a per-layer breakdown and the FLOPs against the core's peak",
            _mnistData, _benchArch, _benchNet, _batch, _benchOptimizer, _momentum, _seed, _steps, _inferBatch, _threads, _backend);

        string[] verbs = [.. _root.Subcommands.Select(c => c.Name)];
        var topic = new Argument<string?>("command") { Description = "The command to describe", HelpName = "COMMAND", Arity = ArgumentArity.ZeroOrOne };
        topic.CompletionSources.Add(verbs);
        topic.Validators.Add(r =>
        {
            if (r.Tokens is [{ Value: var name }] && !verbs.Contains(name)) r.AddError($"unknown command '{name}'{Suggest(name, verbs)}");
        });
        var help = new Command("help", "Show help for a command (or for the trainer)") { topic };
        help.SetAction(r => _root.Parse(r.GetValue(topic) is { } name ? [name, "--help"] : ["--help"], Parsing).Invoke(_invocation));
        _root.Add(help);
    }

    /// <summary>Parses and runs <paramref name="args"/>; a parse error is one <c>error: …</c> line on stderr and exit code 2.</summary>
    /// <param name="args">The command line.</param>
    /// <returns>The exit code.</returns>
    public int Invoke(string[] args)
    {
        var result = _root.Parse(args, Parsing);
        // "--help" wins over other parse errors, except after an unknown command: "trian --help" is a typo to report.
        if ((result.Errors.Count > 0 && result.Action is not HelpAction) || UnknownCommand(result) is not null)
        {
            _invocation.Error.WriteLine($"error: {Program.Printable(Describe(result))}");
            return UsageError;
        }

        return result.Invoke(_invocation);
    }

    /// <summary>The first token when it is a word that names no command (the root takes no positional arguments), else null.</summary>
    private static string? UnknownCommand(ParseResult result) =>
        result.CommandResult.Command is RootCommand && result.Tokens is [{ Type: TokenType.Argument, Value: var token }, ..] && !token.StartsWith('-') ? token : null;

    /// <summary>
    /// Refuses training options that only make sense with others, or not with others, once each value has parsed: the
    /// first misfit is one usage error line naming the options, what they need and what was given, and exit code 2.
    /// </summary>
    /// <returns>2 after printing the error, or null when the options fit together (or the command takes none of them).</returns>
    private int? RefuseMisfits(ParseResult r)
    {
        var own = r.CommandResult.Command.Options;
        bool Given(Option option) => r.GetResult(option) is OptionResult { Implicit: false };
        if (own.Contains(_benchArch)) return Refuse(r, BenchMisfit(r, Given));
        if (!own.Contains(_schedule)) return null;
        // The values the run will use: --net modern's recipe stands in for the options not given.
        var preset = Recipe.WithNetDefaults(new Options { Net = r.GetValue(_net)!, Given = new HashSet<string>() });
        T Value<T>(Option<T> option, T modern) => Given(option) || preset.Net != "modern" ? r.GetValue(option)! : modern;
        string optimizer = Value(_optimizer, preset.Optimizer), schedule = Value(_schedule, preset.Schedule);
        int epochs = Value(_epochs, preset.Epochs), warmup = r.GetValue(_warmup);
        string Of(string value, Option option) => Given(option) || preset.Net != "modern" ? value : $"{value} (--net modern's)";
        string? misfit =
            Given(_earlyStop) && !Given(_valSplit) ? "--early-stop needs --val-split: it watches the loss on held-out images (e.g. --val-split 0.1)"
            : Given(_momentum) && optimizer != "sgd" ? $"--momentum is a setting of --optimizer sgd, not of {Of(optimizer, _optimizer)}"
            : Given(_decay) && schedule != "tutorial" ? $"--decay is a setting of --schedule tutorial, not of {Of(schedule, _schedule)}"
            : (Given(_stepSize) || Given(_gamma)) && schedule != "step" ? $"{(Given(_stepSize) ? "--step-size" : "--gamma")} is a setting of --schedule step, not of {Of(schedule, _schedule)}"
            : warmup > 0 && schedule == "onecycle" ? $"--warmup does not combine with --schedule {Of(schedule, _schedule)}: the cycle warms up itself (from lr/25 over its first 30 %)"
            : warmup > 0 && warmup >= epochs ? string.Create(CultureInfo.InvariantCulture, $"--warmup expects fewer epochs than --epochs ({epochs}), got '{warmup}'")
            : Given(_arch) && Given(_resume) ? "--arch does not combine with --resume: a resumed run trains the checkpoint's network"
            : Given(_arch) && Given(_net) ? "--arch does not combine with --net: --arch trains the file's network, --net builds a new one"
            : null;
        return Refuse(r, misfit);
    }

    /// <summary>bench's options that do not fit together, as <see cref="RefuseMisfits"/> words them, or null.</summary>
    private string? BenchMisfit(ParseResult r, Func<Option, bool> given)
    {
        string optimizer = given(_benchOptimizer) ? r.GetValue(_benchOptimizer)! : Recipe.WithNetDefaults(new Options { Command = "bench", Net = r.GetValue(_benchNet)! }).Optimizer;
        return given(_momentum) && optimizer != "sgd" ? $"--momentum is a setting of --optimizer sgd, not of {optimizer}"
            : given(_benchArch) && given(_benchNet) ? "--arch does not combine with --net: --arch times the file's network, --net builds a new one"
            : null;
    }

    /// <summary>Prints the usage error <paramref name="misfit"/> and returns 2; null when there is none.</summary>
    private int? Refuse(ParseResult r, string? misfit)
    {
        if (misfit is null) return null;
        _invocation.Error.WriteLine($"error: {misfit} ({See(r.CommandResult.Command)})");
        return UsageError;
    }

    /// <summary>"see --help" for the trainer, "see train --help" for a command.</summary>
    private static string See(Command command) => See(command is RootCommand ? "main" : command.Name);

    /// <summary>"see --help" for the main job (<see cref="Options.Command"/> "main") and help, "see train --help" for a command.</summary>
    internal static string See(string command) => command is "main" or "help" ? "see --help" : $"see {command} --help";

    /// <summary>An empty path ("") is a usage error, named as such (not a runtime "(Parameter 'path')" later).</summary>
    private static void NotEmpty(OptionResult r)
    {
        if (r.Tokens is [{ Value: var value }] && string.IsNullOrWhiteSpace(value)) r.AddError($"{r.Option.Name} expects a path, got an empty string");
    }

    private static void Add(Command command, Option[] options)
    {
        foreach (var option in options) command.Add(option);
    }

    private Options Bind(ParseResult r, string command)
    {
        var own = r.CommandResult.Command.Options;
        var o = new Options { Command = command };
        T Get<T>(Option<T> option, T fallback) => own.Contains(option) ? r.GetValue(option)! : fallback;
        return Recipe.WithNetDefaults(o with
        {
            Data = Get(_data, Get(_mnistData, o.Data)), Model = Get(_model, o.Model), Epochs = Get(_epochs, o.Epochs), Batch = Get(_batch, o.Batch),
            LearningRate = Get(_lr, o.LearningRate), Decay = Get(_decay, o.Decay), Seed = Get(_seed, o.Seed), Limit = Get(_limit, o.Limit),
            Steps = Get(_steps, o.Steps), InferBatch = Get(_inferBatch, o.InferBatch), Threads = Get(_threads, o.Threads),
            BackendName = Get(_backend, o.BackendName), Checkpoint = Get(_checkpoint, o.Checkpoint), CheckpointEvery = Get(_checkpointEvery, o.CheckpointEvery),
            Resume = Get(_resume, o.Resume), To = own.Contains(_to) ? r.GetValue(_to) : o.To,
            Report = Get(_report, o.Report), Json = Get(_json, o.Json),
            Net = Get(_net, Get(_benchNet, o.Net)), Arch = Get(_arch, Get(_benchArch, o.Arch)), Optimizer = Get(_optimizer, Get(_benchOptimizer, o.Optimizer)), Momentum = Get(_momentum, o.Momentum), WeightDecay = Get(_weightDecay, o.WeightDecay),
            Schedule = Get(_schedule, o.Schedule), Warmup = Get(_warmup, o.Warmup), StepSize = Get(_stepSize, o.StepSize), Gamma = Get(_gamma, o.Gamma),
            ValSplit = Get(_valSplit, o.ValSplit), EarlyStop = Get(_earlyStop, o.EarlyStop), Augment = Get(_augment, o.Augment), Flip = Get(_flip, o.Flip),
            Size = Get(_size, o.Size), Channels = own.Contains(_channels) ? int.Parse(r.GetValue(_channels)!, CultureInfo.InvariantCulture) : o.Channels,
            Files = r.CommandResult.Command.Arguments.Contains(_files) ? r.GetValue(_files) ?? [] : [],
            Given = r.CommandResult.Children.OfType<OptionResult>().Where(c => !c.Implicit).Select(c => c.Option.Name).ToHashSet(),
        });
    }

    /// <summary>One line for the first parse error, naming the offending token, with a suggestion for a typo.</summary>
    private static string Describe(ParseResult result)
    {
        var command = result.CommandResult.Command;
        string see = See(command);
        if (UnknownCommand(result) is { } unknown) return $"unknown command '{unknown}'{Suggest(unknown, command.Subcommands.Select(c => c.Name))} ({see})";
        if (result.UnmatchedTokens.Count > 0)
        {
            string token = result.UnmatchedTokens[0];
            if (token.StartsWith('-'))
            {
                var names = command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name));
                return $"unknown option '{token}'{Suggest(token, names)} ({see})";
            }

            string takes = command is RootCommand ? "the trainer takes" : $"{command.Name} takes";
            return $"unexpected argument '{token}': {takes} no positional arguments ({see})";
        }

        var error = result.Errors[0];
        if (error.SymbolResult is OptionResult { Tokens.Count: 0, Implicit: false } option) return $"option {option.Option.Name} needs a value ({see})";
        if (error.SymbolResult is ArgumentResult { Tokens.Count: 0, Parent: OptionResult { Implicit: false } parent }) return $"option {parent.Option.Name} needs a value ({see})";
        if (error.SymbolResult is ArgumentResult { Tokens.Count: 0, Parent: CommandResult } missing) return $"{command.Name} needs at least one {missing.Argument.Name} ({see})";
        string message = error.Message.Replace(Environment.NewLine, " ").Replace('\n', ' ').TrimEnd('.');
        return $"{char.ToLowerInvariant(message[0])}{message[1..]} ({see})";
    }

    /// <summary>"; did you mean 'x'?" for the closest candidate within a small edit distance, else "".</summary>
    private static string Suggest(string token, IEnumerable<string> candidates)
    {
        var best = candidates
            .Select(c => (Name: c, Distance: Distance(token.TrimStart('-'), c.TrimStart('-'))))
            .Where(c => c.Distance <= Math.Max(1, c.Name.TrimStart('-').Length / 3))
            .OrderBy(c => c.Distance).ThenBy(c => c.Name, StringComparer.Ordinal)
            .FirstOrDefault();
        return best.Name is null ? "" : $"; did you mean '{best.Name}'?";
    }

    /// <summary>Optimal-string-alignment distance (Levenshtein with adjacent transpositions), case-insensitive.</summary>
    internal static int Distance(string a, string b)
    {
        a = a.ToLowerInvariant();
        b = b.ToLowerInvariant();
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
            }
        }

        return d[a.Length, b.Length];
    }

    private static Option<int> IntOption(string name, string description, int defaultValue, int min, int max) => new(name)
    {
        Description = description, HelpName = "N", DefaultValueFactory = _ => defaultValue,
        CustomParser = r => ParseInt(r, name, min, max) ?? defaultValue,
    };

    private static Option<int?> NullableIntOption(string name, string description, int min, int max, string helpName = "N") => new(name)
    {
        Description = description, HelpName = helpName, CustomParser = r => ParseInt(r, name, min, max),
    };

    /// <summary>The option's integer in [<paramref name="min"/>, <paramref name="max"/>], or null after an error naming the option, the range and the value.</summary>
    private static int? ParseInt(ArgumentResult r, string name, int min, int max)
    {
        if (r.Tokens.Count == 0) return null;
        string value = r.Tokens[^1].Value;
        if (int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= min && v <= max) return v;
        r.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} expects an integer from {min} to {max}, got '{value}'"));
        return null;
    }

    /// <summary>A bounded range of reals, shown as in mathematics ("(0, 1]", "[0, 1)").</summary>
    private readonly record struct Interval(double Min, bool MinIncluded, double Max, bool MaxIncluded)
    {
        public bool Contains(double v) => (MinIncluded ? v >= Min : v > Min) && (MaxIncluded ? v <= Max : v < Max);

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{(MinIncluded ? "[" : "(")}{Min}, {Max}{(MaxIncluded ? "]" : ")")}");
    }

    private static Option<double> RealOption(string name, string description, double defaultValue, Interval range) => new(name)
    {
        Description = description, HelpName = "X", DefaultValueFactory = _ => defaultValue,
        CustomParser = r => ParseReal(r, name, range) ?? defaultValue,
    };

    private static Option<double?> NullableRealOption(string name, string description, Interval range, string helpName = "X") => new(name)
    {
        Description = description, HelpName = helpName, CustomParser = r => ParseReal(r, name, range),
    };

    private static double? ParseReal(ArgumentResult r, string name, Interval range)
    {
        if (r.Tokens.Count == 0) return null;
        string value = r.Tokens[^1].Value;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && range.Contains(v)) return v;
        r.AddError($"{name} expects a number in {range}, got '{value}'");
        return null;
    }

    /// <summary>An option taking one of <paramref name="choices"/> (in any case), offered by shell completion; a typo gets a suggestion.</summary>
    private static Option<string> ChoiceOption(string name, string description, string[] choices, string defaultValue)
    {
        var option = new Option<string>(name)
        {
            Description = description, HelpName = "NAME", DefaultValueFactory = _ => defaultValue,
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0) return defaultValue;
                string value = r.Tokens[^1].Value, choice = value.ToLowerInvariant();
                if (choices.Contains(choice)) return choice;
                r.AddError($"{name} expects {string.Join(", ", choices)}, got '{value}'{Suggest(value, choices)}");
                return defaultValue;
            },
        };
        option.CompletionSources.Add(choices);
        return option;
    }
}
