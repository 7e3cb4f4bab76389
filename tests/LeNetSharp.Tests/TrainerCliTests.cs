using LeNetSharp.Trainer;

namespace LeNetSharp.Tests;

public class TrainerCliTests
{
    /// <summary>Runs the trainer in-process with captured streams.</summary>
    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("error: unknown command 'fly' (see --help)", "fly")]
    [InlineData("error: unknown command 'trian'; did you mean 'train'? (see --help)", "trian")]
    [InlineData("error: unknown command 'evl'; did you mean 'eval'? (see --help)", "evl")]
    [InlineData("error: --epochs expects an integer from 1 to 10000, got 'zero' (see train --help)", "train", "--epochs", "zero")]
    [InlineData("error: --epochs expects an integer from 1 to 10000, got '0' (see --help)", "--epochs", "0")]
    [InlineData("error: --lr expects a number in (0, 100], got '-1' (see train --help)", "train", "--lr", "-1")]
    [InlineData("error: --decay expects a number in (0, 1], got '1.5' (see train --help)", "train", "--decay", "1.5")]
    [InlineData("error: option --model needs a value (see eval --help)", "eval", "--model")]
    [InlineData("error: unknown option '--fast' (see train --help)", "train", "--fast", "1")]
    [InlineData("error: unknown option '--epoch'; did you mean '--epochs'? (see train --help)", "train", "--epoch", "1")]
    [InlineData("error: unknown option '--epochs' (see eval --help)", "eval", "--epochs", "1")]
    [InlineData("error: unexpected argument 'foo': train takes no positional arguments (see train --help)", "train", "foo")]
    [InlineData("error: unexpected argument 'more': eval takes no positional arguments (see eval --help)", "eval", "--model", "a.model", "more")]
    [InlineData("error: option '--to' is required (see export --help)", "export")]
    [InlineData("error: --backend expects simd, simd512, simd256, simd128, reference, got 'blas' (see bench --help)", "bench", "--backend", "blas")]
    [InlineData("error: --backend expects simd, simd512, simd256, simd128, reference, got 'SIMD1024'; did you mean 'simd128'? (see bench --help)", "bench", "--gemm", "SIMD1024")]
    [InlineData("error: --backend expects simd, simd512, simd256, simd128, reference, got 'simd265'; did you mean 'simd256'? (see train --help)", "train", "--backend", "simd265")]
    [InlineData("error: unknown command 'tain'; did you mean 'train'? (see --help)", "help", "tain")]
    [InlineData("error: unknown command 'trian'; did you mean 'train'? (see --help)", "trian", "--help")]
    [InlineData("error: unknown command 'fly' (see --help)", "fly", "-h")]
    [InlineData("error: predict needs at least one FILE (see predict --help)", "predict", "--json")]
    public void Bad_arguments_give_one_line_and_exit_code_2(string message, params string[] args)
    {
        var (code, output, err) = Run(args);
        code.Should().Be(2);
        err.TrimEnd().Should().Be(message);
        err.TrimEnd().Should().NotContain("\n");
        output.Should().BeEmpty();
    }

    /// <summary>Every number the command line takes is range-checked as it is parsed: one line naming the option, the range and the value.</summary>
    [Theory]
    [InlineData("--epochs expects an integer from 1 to 10000, got '2147483647'", "train", "--epochs", "2147483647")]
    [InlineData("--epochs expects an integer from 1 to 10000, got '10001'", "train", "--epochs", "10001")]
    [InlineData("--epochs expects an integer from 1 to 10000, got '1e3'", "train", "--epochs", "1e3")]
    [InlineData("--batch expects an integer from 1 to 4096, got '0'", "bench", "--batch", "0")]
    [InlineData("--steps expects an integer from 1 to 10000000, got '10000001'", "bench", "--steps", "10000001")]
    [InlineData("--limit expects an integer from 1 to 100000000, got '2147483648'", "train", "--limit", "2147483648")]
    [InlineData("--threads expects an integer from 1 to 64, got '0'", "eval", "--threads", "0")]
    [InlineData("--infer-batch expects an integer from 1 to 4096, got '4097'", "eval", "--infer-batch", "4097")]
    [InlineData("--seed expects an integer from -2147483648 to 2147483647, got '2147483648'", "bench", "--seed", "2147483648")]
    [InlineData("--checkpoint-every expects an integer from 0 to 100000000, got '-1'", "train", "--checkpoint-every", "-1")]
    [InlineData("--warmup expects an integer from 0 to 9999, got '10000'", "train", "--warmup", "10000")]
    [InlineData("--step-size expects an integer from 1 to 10000, got '10001'", "train", "--schedule", "step", "--step-size", "10001")]
    [InlineData("--early-stop expects an integer from 1 to 10000, got '99999'", "train", "--val-split", "0.1", "--early-stop", "99999")]
    [InlineData("--val-split expects a number in (0, 1), got 'NaN'", "train", "--val-split", "NaN")]
    [InlineData("--lr expects a number in (0, 100], got '1e99'", "train", "--lr", "1e99")]
    [InlineData("--lr expects a number in (0, 100], got 'Infinity'", "train", "--lr", "Infinity")]
    [InlineData("--lr expects a number in (0, 100], got '1e-400'", "train", "--lr", "1e-400")]
    [InlineData("--momentum expects a number in [0, 1), got '-0.5'", "train", "--momentum", "-0.5")]
    [InlineData("--decay expects a number in (0, 1], got '0'", "train", "--decay", "0")]
    [InlineData("--gamma expects a number in (0, 1], got 'NaN'", "train", "--schedule", "step", "--gamma", "NaN")]
    [InlineData("--weight-decay expects a number in [0, 1], got '1.5'", "train", "--weight-decay", "1.5")]
    public void Every_number_is_range_checked_naming_the_option_the_range_and_the_value(string message, params string[] args)
    {
        var (code, output, err) = Run(args);
        code.Should().Be(2);
        err.TrimEnd().Should().Be($"error: {message} (see {args[0]} --help)");
        output.Should().BeEmpty();
    }

    /// <summary>
    /// Response files are off: a token starting with '@' is a name like any other, never a file whose lines become
    /// arguments (which would make <c>@/etc/passwd</c> print that file's first line in the error).
    /// </summary>
    [Fact]
    public void An_argument_starting_with_at_is_a_name_not_a_response_file()
    {
        var (code, output, err) = Run("predict", "--model", "@/etc/passwd", "d.png");
        (code, output, err.TrimEnd()).Should().Be((1, "", "error: @/etc/passwd: model file not found."));
        (code, _, err) = Run("train", "@/etc/passwd");
        (code, err.TrimEnd()).Should().Be((2, "error: unexpected argument '@/etc/passwd': train takes no positional arguments (see train --help)"));
        (code, _, err) = Run("@/etc/passwd");
        (code, err.TrimEnd()).Should().Be((2, "error: unknown command '@/etc/passwd' (see --help)"));
        (code, _, err) = Run("train", "--epochs", "@/etc/passwd");
        (code, err.TrimEnd()).Should().Be((2, "error: --epochs expects an integer from 1 to 10000, got '@/etc/passwd' (see train --help)"));

        (code, _, err) = Run("predict", "--model", "@no-such.model", "@d.png");
        (code, err.TrimEnd()).Should().Be((1, "error: @no-such.model: model file not found."));
    }

    [Fact]
    public void Missing_model_gives_one_line_and_exit_code_1()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}.model");
        var (code, _, err) = Run("eval", "--model", missing);
        code.Should().Be(1);
        err.TrimEnd().Should().Be($"error: {missing}: model file not found.");
    }

    [Fact]
    public void Missing_data_gives_one_line_and_exit_code_1()
    {
        string empty = Directory.CreateTempSubdirectory("lenetsharp-empty-").FullName;
        try
        {
            var (code, _, err) = Run("train", "--data", empty);
            code.Should().Be(1);
            err.Should().StartWith($"error: {empty}: no MNIST IDX files (train-images-idx3-ubyte, … or .gz").And.Contain("no image folder (one sub-folder of pictures per class");
            err.TrimEnd().Should().NotContain("\n");

            File.WriteAllBytes(Path.Combine(empty, "t10k-labels-idx1-ubyte"), []); // one of MNIST's files: MNIST's own error
            (code, _, err) = Run("train", "--data", empty);
            code.Should().Be(1);
            err.Should().StartWith("error: ").And.Contain("train-images-idx3-ubyte (or .gz): file not found");
            err.TrimEnd().Should().NotContain("\n");
        }
        finally
        {
            Directory.Delete(empty, true);
        }
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    public void Help_lists_the_commands_and_the_main_jobs_options(string flag)
    {
        var (code, output, err) = Run(flag);
        code.Should().Be(0);
        err.Should().BeEmpty();
        foreach (var command in new[] { "fetch", "train", "eval", "export", "predict", "bench", "help" }) output.Should().MatchRegex($"(?m)^  {command} ");
        output.Should().Contain("--epochs <N>").And.Contain("[default: 2]");
    }

    /// <summary>Each command's help lists exactly its own options, with their defaults; nothing of the others.</summary>
    [Theory]
    [InlineData("fetch", "--data <DIR>|MNIST folder [default: data/mnist]")]
    [InlineData("train", "--data <DIR>|[default: data/mnist]", "--size <HxW>|", "--channels <N>|[default: 1]", "--model <PATH>|[default: lenet.model]", "--net <NAME>|[default: lenet]", "--arch <FILE>|", "--epochs <N>|[default: 2]",
        "--batch <N>|[default: 3]", "--optimizer <NAME>|[default: sgd]", "--lr <X>|[default: 0.01]", "--momentum <X>|[default: 0]", "--weight-decay <X>|for adamw 0.01",
        "--schedule <NAME>|[default: tutorial]", "--decay <X>|[default: 0.95]", "--step-size <N>|[default: 1]", "--gamma <X>|[default: 0.7]", "--warmup <N>|[default: 0]",
        "--seed <N>|[default: 1]", "--limit <N>|", "--val-split <F>|", "--early-stop <PATIENCE>|", "--augment|", "--flip|",
        "--threads <N>|[default: 1]", "--backend, --gemm <NAME>|", "--infer-batch <N>|[default: 16]", "--checkpoint <DIR>|", "--checkpoint-every <N>|[default: 0]",
        "--resume <DIR>|", "--report <DIR>|")]
    [InlineData("eval", "--data <DIR>|[default: data/mnist]", "--size <HxW>|", "--channels <N>|[default: 1]", "--model <PATH>|[default: lenet.model]", "--infer-batch <N>|[default: 16]",
        "--threads <N>|[default: 1]", "--backend, --gemm <NAME>|", "--report <DIR>|")]
    [InlineData("export", "--model <PATH>|[default: lenet.model]", "--to <PATH>|(REQUIRED)")]
    [InlineData("predict", "--model <PATH>|[default: lenet.model]", "--json|")]
    [InlineData("bench", "--data <DIR>|[default: data/mnist]", "--arch <FILE>|", "--net <NAME>|[default: lenet]", "--batch <N>|[default: 3]",
        "--optimizer <NAME>|[default: sgd]", "--momentum <X>|[default: 0]", "--seed <N>|[default: 1]", "--steps <N>|[default: 20000]",
        "--infer-batch <N>|[default: 16]", "--threads <N>|[default: 1]", "--backend, --gemm <NAME>|")]
    public void Each_commands_help_lists_only_its_own_options_with_defaults(string command, params string[] expected)
    {
        foreach (var args in new[] { new[] { command, "--help" }, new[] { "help", command } })
        {
            var (code, output, err) = Run(args);
            code.Should().Be(0);
            err.Should().BeEmpty();
            output.Should().MatchRegex($@"Usage:\s+\S+ {command} (<FILE>\.\.\. )?\[options\]"); // the executable's name: testhost here
            var listed = output.Split('\n').Select(line => line.Trim()).Where(line => line.StartsWith("--", StringComparison.Ordinal)).ToList();
            listed.Select(line => line.Split(' ')[0]).Should().BeEquivalentTo(expected.Select(e => e.Split(' ', '|')[0]));
            foreach (var entry in expected)
            {
                var (name, suffix) = (entry.Split('|')[0], entry.Split('|')[1]);
                listed.Should().Contain(line => line.StartsWith(name + " ", StringComparison.Ordinal) && line.Contains(suffix, StringComparison.Ordinal),
                    $"{command} --help should list {name} showing '{suffix}'");
            }
        }
    }

    [Fact]
    public void Help_says_which_output_folders_are_created()
    {
        static string Folded(params string[] args) => string.Join(" ", Run(args).Out.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));
        Folded("export", "--help").Should().Contain("else a model file); its folder must exist");
        Folded("train", "--help").Should().Contain("when written, its folder must exist").And.Contain("metrics.json into DIR (created if missing)");
    }

    [Fact]
    public void Backend_names_ignore_case_and_a_width_this_cpu_lacks_is_a_usage_error()
    {
        Run("bench", "--backend", "SIMD128", "--help").Code.Should().Be(0);
        Run("bench", "--gemm", "MathNet", "--help").Code.Should().Be(0, "--gemm and mathnet are the names the option had");
        string? lacking = !System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "simd512"
            : !System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "simd256" : null;
        if (lacking is null) return; // every width runs here: none to refuse
        var (code, output, err) = Run("bench", "--backend", lacking.ToUpperInvariant());
        code.Should().Be(2);
        output.Should().BeEmpty();
        err.TrimEnd().Should().StartWith($"error: --backend {lacking}: this CPU has no hardware-accelerated {lacking[4..]}-bit vectors; it takes simd, ")
            .And.EndWith(", reference (see bench --help)").And.NotContain(lacking + ",").And.NotContain("\n");
    }

    [Fact]
    public void Export_help_lists_to_which_used_to_be_missing()
    {
        var (_, output, _) = Run("export", "--help");
        output.Should().Contain("--to <PATH>");
        output.Should().NotContain("--epochs").And.NotContain("--data");
    }

    [Fact]
    public void Suggest_directive_completes_commands_options_and_values()
    {
        Run("[suggest:2]", "tr").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Should().Equal("train");
        Run("[suggest:9]", "train --e").Out.Should().Contain("--epochs");
        Run("[suggest:16]", "bench --backend ").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Should().BeEquivalentTo("reference", "simd", "simd128", "simd256", "simd512");
    }

    /// <summary>samples/LeNetSharp.Trainer/completion.bash, sourced in bash as a user would, completes through the trainer's directive.</summary>
    [Fact]
    public void The_bash_completion_script_completes_commands_options_and_values()
    {
        if (OperatingSystem.IsWindows()) return;
        string root = Path.GetDirectoryName(Path.GetDirectoryName(TestData.MnistDirectory()))!;
        string script = Path.Combine(root, "samples", "LeNetSharp.Trainer", "completion.bash");
        string[] Complete(string line)
        {
            var start = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { "-c", "source \"$0\"; COMP_LINE=$1; COMP_POINT=${#1}; COMP_WORDS=(lenet); _lenet_complete; complete -p lenet; printf '%s\\n' \"${COMPREPLY[@]}\"", script, line })
            {
                start.ArgumentList.Add(a);
            }

            start.Environment["LENET_DLL"] = typeof(Program).Assembly.Location;
            using var bash = System.Diagnostics.Process.Start(start)!;
            string output = bash.StandardOutput.ReadToEnd();
            bash.WaitForExit();
            bash.ExitCode.Should().Be(0, bash.StandardError.ReadToEnd());
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            lines[0].Should().Be("complete -o default -F _lenet_complete lenet", "file names are bash's to complete where the trainer offers nothing");
            return lines[1..];
        }

        Complete("lenet tr").Should().Equal("train");
        Complete("lenet train --ep").Should().Equal("--epochs");
        Complete("lenet train --schedule ").Should().BeEquivalentTo("constant", "cosine", "onecycle", "step", "tutorial");
        Complete("lenet predict @").Should().BeEmpty("a picture's name is a file name, with or without '@'");
    }

    [Fact]
    public void Training_outside_a_terminal_prints_a_plain_line_every_tenth_of_an_epoch()
    {
        string model = Path.Combine(Path.GetTempPath(), $"lenetsharp-{Guid.NewGuid():N}.model");
        try
        {
            var (code, output, err) = Run("train", "--data", TestData.MnistDirectory(), "--limit", "600", "--epochs", "2", "--model", model);
            code.Should().Be(0, err);
            var lines = output.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            for (int epoch = 1; epoch <= 2; epoch++)
            {
                var ticks = lines.Where(l => l.StartsWith($"epoch {epoch}/2 ", StringComparison.Ordinal) && l.Contains("% (")).ToList();
                ticks.Should().HaveCount(9);
                ticks[0].Should().MatchRegex(@"^epoch \d/2   10% \(20/200 batches\)  loss \d\.\d{4}  acc \d+\.\d\d%  [\d,]+ img/s  ETA \d+:\d\d$");
                ticks[^1].Should().Contain("90% (180/200 batches)");
                lines.Should().ContainMatch($"epoch {epoch}/2  loss *  train acc *%  lr *  * s  * img/s");
            }

            lines.Should().NotContain(l => l.Contains('\u001b'), "no escape codes when the output is not a terminal");
            lines[^1].Should().MatchRegex(@"^test accuracy: \d+\.\d\d% \(\d+/10000\)$");
        }
        finally
        {
            File.Delete(model);
        }
    }

    [Theory]
    [InlineData("trian", "train", 1)]
    [InlineData("--epoch", "--epochs", 1)]
    [InlineData("tarin", "train", 1)]
    [InlineData("fetch", "bench", 2)]
    public void Distance_counts_edits_and_swaps(string a, string b, int expected) => Cli.Distance(a, b).Should().Be(expected);
}
