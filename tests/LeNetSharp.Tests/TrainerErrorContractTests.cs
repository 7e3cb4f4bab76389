using System.Diagnostics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Trainer;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// The trainer's error contract end to end: exit 2 for usage, 1 for everything else, exactly one "error: …" line on
/// stderr and no stack trace, nothing written unless the command succeeded; 130 and one line when interrupted.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class TrainerErrorContractTests : TempDirectoryTest
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Asserts the failure contract: the exit code, one "error: " line matching <paramref name="pattern"/>, no stack trace.</summary>
    private static string Fails(int expectedCode, string pattern, params string[] args)
    {
        var (code, output, err) = Run(args);
        code.Should().Be(expectedCode, $"stdout: {output} stderr: {err}");
        string[] lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().ContainSingle($"exactly one line on stderr, got: {err}");
        lines[0].Should().StartWith("error: ").And.Match(pattern).And.NotContain("   at ");
        return output;
    }

    /// <summary>Synthetic 28x28 IDX files (not MNIST): <paramref name="train"/> training and <paramref name="test"/> test images, labels 0-9.</summary>
    private string SyntheticData(int train = 64, int test = 32) => TestData.SyntheticIdx(Path.Combine(Dir, "data"), train, test);

    private string ExistingModel()
    {
        string model = Path.Combine(Dir, "keep.model");
        ModelFile.Save(LeNet.Create<float>(9), model);
        return model;
    }

    [Theory]
    [InlineData("error: option '--to' is required*", "export", "--model", "x.model")]
    [InlineData("error: unexpected argument 'extra': train takes no positional arguments (see train --help)", "train", "extra")]
    [InlineData("error: --batch expects an integer from 1 to 4096, got '100000000' (see train --help)", "train", "--batch", "100000000")]
    [InlineData("error: --batch expects an integer from 1 to 4096, got '100000' (see bench --help)", "bench", "--batch", "100000")]
    [InlineData("error: --threads expects an integer from 1 to 64, got '100000' (see train --help)", "train", "--threads", "100000")]
    [InlineData("error: --data expects a path, got an empty string (see train --help)", "train", "--data", "")]
    [InlineData("error: --model expects a path, got an empty string (see eval --help)", "eval", "--model", "")]
    public void Usage_errors_exit_2_with_one_line(string pattern, params string[] args) => Fails(2, pattern, args);

    [Fact]
    public void A_fifo_as_onnx_model_is_one_error_line_at_once()
    {
        string fifo = Path.Combine(Dir, "ff.onnx");
        using (var p = Process.Start("mkfifo", [fifo])) p.WaitForExit();
        string expected = $"error: {fifo}: expected a regular file, found a FIFO (named pipe); nothing was read.";
        Fails(1, expected, "eval", "--model", fifo, "--data", SyntheticData());
        Fails(1, expected, "export", "--model", fifo, "--to", Path.Combine(Dir, "out.model"));
        File.Exists(Path.Combine(Dir, "out.model")).Should().BeFalse();
    }

    [Fact]
    public void Training_on_an_empty_split_fails_and_keeps_the_existing_model()
    {
        string data = SyntheticData(train: 0);
        string model = ExistingModel();
        byte[] before = File.ReadAllBytes(model);

        Fails(1, $"error: {Path.Combine(data, "train-images-idx3-ubyte")}: holds no images (its count is 0).", "train", "--data", data, "--model", model);

        File.ReadAllBytes(model).Should().Equal(before);
    }

    [Fact]
    public void A_nan_loss_stops_training_fails_with_the_batch_and_keeps_the_existing_model()
    {
        string data = SyntheticData();
        string model = ExistingModel();
        byte[] before = File.ReadAllBytes(model);
        // Weights so large that the logits overflow float: the first batch's loss is not a number.
        var linear = new Linear<float>(784, 10, new Random(1));
        linear.Weight.Value.Span.Fill(float.MaxValue / 100);
        string arch = Path.Combine(Dir, "huge.model");
        ModelFile.Save(new Sequential<float>(new Flatten<float>(), linear), arch);

        Fails(1, "error: training diverged: the loss became * at epoch 1, batch 1/22 (learning rate 0.01); lower the learning rate.",
            "train", "--data", data, "--model", model, "--arch", arch, "--epochs", "1");

        File.ReadAllBytes(model).Should().Equal(before);
    }

    /// <summary>The most epochs --epochs takes run to the end: a run holds nothing per epoch it has not trained yet.</summary>
    [Fact]
    public void The_most_epochs_train_to_the_end()
    {
        string model = Path.Combine(Dir, "m.model");
        var (code, output, err) = Run("train", "--data", SyntheticData(), "--limit", "3", "--epochs", "10000", "--schedule", "constant", "--model", model);
        code.Should().Be(0, err);
        output.Should().Contain("\nepoch 10000/10000  loss ").And.Contain($"saved {model}");
    }

    [Fact]
    public void Output_paths_are_checked_before_training()
    {
        string data = SyntheticData();
        string folder = Path.Combine(Dir, "folder.model");
        Directory.CreateDirectory(folder);

        Fails(1, $"error: {folder}: is a directory, not a regular file; refusing to replace it.", "train", "--data", data, "--model", folder)
            .Should().NotContain("epoch", "nothing is trained when the result could not be saved");
        Fails(1, "error: /dev/null: is a character device, not a regular file; refusing to replace it.", "train", "--data", data, "--model", "/dev/null");
        SafeFile.KindOf("/dev/null").Should().Be(FileKind.CharacterDevice);
        Fails(1, "error: /: is a directory*", "train", "--data", data, "--model", "/");
        Fails(1, "error: /proc/no-such-folder/x.model: cannot be written: folder /proc/no-such-folder does not exist.", "train", "--data", data, "--model", "/proc/no-such-folder/x.model");
        string file = Path.Combine(Dir, "a-file");
        File.WriteAllText(file, "x");
        Fails(1, $"error: {file}/checkpoint.lnsc: cannot be written: {file} is a regular file, not a folder.",
            "train", "--data", data, "--model", Path.Combine(Dir, "m.model"), "--checkpoint", file);
        Fails(1, "error: /dev/full: is a character device*", "export", "--model", ExistingModel(), "--to", "/dev/full");
    }

    [Fact]
    public void A_report_file_that_cannot_be_written_fails_before_training_and_writes_nothing()
    {
        string data = SyntheticData(train: 300);
        string model = ExistingModel();
        byte[] before = File.ReadAllBytes(model);
        string report = Path.Combine(Dir, "rep3");
        Directory.CreateDirectory(Path.Combine(report, "confusion.png"));

        foreach (var command in new[] { "train", "eval" })
        {
            string[] args = command == "train"
                ? ["train", "--data", data, "--epochs", "1", "--limit", "300", "--model", model, "--report", report]
                : ["eval", "--data", data, "--model", model, "--report", report];
            Fails(1, $"error: {report}/confusion.png: is a directory, not a regular file; refusing to replace it.", args)
                .Should().NotContain("saved").And.NotContain("report:").And.NotContain("epoch");
            File.ReadAllBytes(model).Should().Equal(before, $"{command} must not replace the model when the report cannot be written");
            Directory.EnumerateFileSystemEntries(report).Should().Equal([Path.Combine(report, "confusion.png")], "no report file is left behind");
        }
    }

    [Fact]
    public void A_missing_folder_for_model_or_to_is_refused_not_created()
    {
        string data = SyntheticData();
        string missing = Path.Combine(Dir, "no-such-folder");
        Fails(1, $"error: {missing}/x.model: cannot be written: folder {missing} does not exist.", "train", "--data", data, "--model", Path.Combine(missing, "x.model"))
            .Should().NotContain("epoch");
        Fails(1, $"error: {missing}/x.onnx: cannot be written: folder {missing} does not exist.", "export", "--model", ExistingModel(), "--to", Path.Combine(missing, "x.onnx"));
        Directory.Exists(missing).Should().BeFalse();
    }

    [Fact]
    public void Ignored_options_are_named()
    {
        string data = SyntheticData();
        var (code, output, _) = Run("train", "--data", data, "--model", Path.Combine(Dir, "a.model"), "--epochs", "1", "--checkpoint-every", "5");
        code.Should().Be(0);
        output.Should().Contain("note: --checkpoint-every is ignored without --checkpoint");

        string ckpt = Path.Combine(Dir, "ckpt");
        Run("train", "--data", data, "--model", Path.Combine(Dir, "b.model"), "--epochs", "1", "--checkpoint", ckpt).Code.Should().Be(0);
        (code, output, _) = Run("train", "--data", data, "--model", Path.Combine(Dir, "b.model"), "--epochs", "2", "--resume", ckpt, "--lr", "0.5");
        code.Should().Be(0);
        output.Should().Contain("note: --lr is ignored when resuming: the learning rate comes from the checkpoint");
    }

    [Fact]
    public void The_first_line_says_which_dataset_the_files_are()
    {
        string data = SyntheticData();
        string model = Path.Combine(Dir, "m.model");
        var (code, output, _) = Run("train", "--data", data, "--model", model, "--epochs", "1");
        code.Should().Be(0);
        output.Split('\n')[0].Should().Be($"data: unrecognised IDX dataset in {data}");
        Run("eval", "--data", data, "--model", model).Out.Split('\n')[0].Should().Be($"data: unrecognised IDX dataset in {data}");

        string mnist = TestData.MnistDirectory();
        string? labels = new[] { "t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz" }.Select(n => Path.Combine(mnist, n)).FirstOrDefault(File.Exists);
        if (labels is null || !File.Exists(Path.Combine(mnist, "t10k-images-idx3-ubyte")) && !File.Exists(Path.Combine(mnist, "t10k-images-idx3-ubyte.gz"))) return;
        Run("eval", "--data", mnist, "--model", model).Out.Split('\n')[0].Should().Be($"data: MNIST (2 files, SHA-256 verified) in {mnist}");

        // A half-replaced MNIST: its test labels beside other images.
        File.Delete(Path.Combine(data, "t10k-labels-idx1-ubyte"));
        File.Copy(labels, Path.Combine(data, Path.GetFileName(labels)));
        Fails(1, "error: *t10k-images-idx3-ubyte: matches no known dataset while *t10k-labels-idx1-ubyte* is MNIST's*", "eval", "--data", data, "--model", model);
    }

    [Fact]
    public void Eval_of_a_model_with_the_wrong_class_count_or_shape_is_one_error_line()
    {
        string data = SyntheticData();
        var random = new Random(1);
        string five = Path.Combine(Dir, "five.model");
        ModelFile.Save(new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 5, random)), five);
        Fails(1, "error: *", "eval", "--data", data, "--model", five);

        string relu = Path.Combine(Dir, "relu.model");
        ModelFile.Save(new Sequential<float>(new Relu<float>()), relu);
        Fails(1, "error: *", "eval", "--data", data, "--model", relu);
    }

    [Fact]
    public void Unexpected_exceptions_become_one_line_naming_their_type()
    {
        Program.ErrorLine(new IndexOutOfRangeException("Index was outside the bounds of the array.")).Should()
            .Be("unexpected IndexOutOfRangeException: Index was outside the bounds of the array.");
        Program.ErrorLine(new AggregateException(new ArgumentOutOfRangeException("batchSize", 0, "Too small."))).Should()
            .Be("Too small. Actual value was 0.");
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task A_signal_stops_training_at_the_next_batch_saves_a_checkpoint_and_keeps_the_model(string signal)
    {
        string data = SyntheticData(train: 3000, test: 10);
        string model = ExistingModel();
        byte[] before = File.ReadAllBytes(model);
        string ckpt = Path.Combine(Dir, "ckpt");
        // A shell that starts this test run in the background ignores SIGINT, and an ignored signal stays ignored across
        // exec: GNU env's --default-signal gives the child the default disposition, so the trainer's handler is installed.
        var start = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("--default-signal=INT,TERM");
        start.ArgumentList.Add("dotnet");
        start.ArgumentList.Add(typeof(Program).Assembly.Location);
        foreach (string a in new[] { "train", "--data", data, "--model", model, "--epochs", "100", "--checkpoint", ckpt }) start.ArgumentList.Add(a);
        using var child = Process.Start(start)!;
        var stderr = child.StandardError.ReadToEndAsync();
        var output = new List<string>();
        while (child.StandardOutput.ReadLine() is { } line)
        {
            output.Add(line);
            if (line.StartsWith("training LeNet", StringComparison.Ordinal)) break;
        }

        Thread.Sleep(500);
        using (var kill = Process.Start("kill", [$"-{signal}", child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
        output.AddRange(child.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        child.WaitForExit(60_000).Should().BeTrue("training stops at the next batch");

        string err = await stderr;
        child.ExitCode.Should().Be(130, string.Join("\n", output) + err);
        err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Should().ContainSingle()
            .Which.Should().Match($"interrupted: checkpoint saved in {ckpt} at epoch *, batch * ({model} not written); continue with the same options and --resume {ckpt}");
        File.ReadAllBytes(model).Should().Equal(before, "the previous model is kept");
        File.Exists(Path.Combine(ckpt, TrainingCheckpoint.FileName)).Should().BeTrue();

        // The checkpoint resumes (one more epoch on the same data) and only then writes the model.
        var resumed = Run("train", "--data", data, "--model", model, "--epochs", "1", "--resume", ckpt);
        resumed.Err.Should().BeEmpty();
        resumed.Code.Should().Be(0);
    }
}
