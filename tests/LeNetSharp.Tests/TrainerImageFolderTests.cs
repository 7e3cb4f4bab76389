using System.Globalization;
using System.Text.RegularExpressions;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Trainer;

namespace LeNetSharp.Tests;

/// <summary>The trainer's train, eval and predict on an image folder (the MNIST tree of <see cref="MnistTree"/>).</summary>
public class TrainerImageFolderTests(MnistTree tree) : TempDirectoryTest, IClassFixture<MnistTree>
{
    private static (int Code, string Out, string Err) Run(params string[] args) => TrainerCliTests.Run(args);

    private static readonly string[] Recipe = ["--epochs", "10", "--optimizer", "adam", "--lr", "0.001", "--batch", "4"];

    [Fact]
    public void Train_eval_and_predict_on_a_folder_with_train_and_test_name_the_classes()
    {
        string model = Path.Combine(Dir, "digits.model");
        var (code, output, err) = Run(["train", "--data", tree.Root, "--model", model, .. Recipe]);
        err.Should().BeEmpty();
        code.Should().Be(0);
        output.Should().StartWith($"data: image folder {tree.Root}: 3 classes (one, two, zero); 60 training images in train, 30 test images in test, 28x28x1\n");
        output.Should().Contain("training LeNet for 28x28x1 images, 3 classes (");
        string accuracy = output.TrimEnd().Split('\n')[^1];
        accuracy.Should().MatchRegex(@"^test accuracy: \d+\.\d\d% \(\d+/30\)$");
        double.Parse(Regex.Match(accuracy, @"(\d+\.\d\d)%").Groups[1].Value, CultureInfo.InvariantCulture).Should().BeGreaterThan(85);

        var saved = ModelFile.Load<float>(model);
        saved.ClassNames.Should().Equal("one", "two", "zero");
        saved.InputShape.Should().Be((28, 28, 1));

        (code, output, err) = Run("eval", "--data", tree.Root, "--model", model);
        (code, err).Should().Be((0, ""));
        output.Should().Be($"data: image folder {Path.Combine(tree.Root, "test")}: 3 classes (one, two, zero); 30 images, 28x28x1\n{accuracy}\n");

        string zero = Directory.GetFiles(Path.Combine(tree.Test, "zero")).Order(StringComparer.Ordinal).First();
        (code, output, err) = Run("predict", zero, "--model", model);
        (code, err).Should().Be((0, ""));
        output.Should().MatchRegex($"^{Regex.Escape(zero)}: zero \\(\\d+\\.\\d%\\), runner-up (one|two) \\(\\d+\\.\\d%\\)\n$");
        (code, output, _) = Run("predict", zero, "--model", model, "--json");
        code.Should().Be(0);
        output.Should().Contain("\"label\":2,\"class\":\"zero\",\"probabilities\":[");
    }

    [Fact]
    public void A_folder_of_class_folders_alone_trains_on_all_of_it_or_holds_out_the_val_split()
    {
        string model = Path.Combine(Dir, "m.model");
        var (code, output, err) = Run(["train", "--data", tree.Train, "--model", model, "--epochs", "1"]);
        (code, err).Should().Be((0, ""));
        output.Should().StartWith($"data: image folder {tree.Train}: 3 classes (one, two, zero); 60 images, 28x28x1 (no train and test sub-folders: training on all of them)\n");
        output.TrimEnd().Split('\n')[^1].Should().MatchRegex(@"^training accuracy: .*\(\d+/60\)$");

        (code, output, err) = Run(["train", "--data", tree.Train, "--model", model, "--epochs", "1", "--val-split", "0.2"]);
        (code, err).Should().Be((0, ""));
        output.Should().Contain("training on all of them but the --val-split share)");
        output.Should().Contain("validation: 12 of the 60 training images held out");
        output.TrimEnd().Split('\n')[^1].Should().MatchRegex(@"^validation accuracy: .*\(\d+/12\)$");

        (code, output, err) = Run("eval", "--data", tree.Train, "--model", model);
        (code, err).Should().Be((0, ""));
        output.TrimEnd().Split('\n')[^1].Should().MatchRegex(@"^accuracy: .*\(\d+/60\)$");

        // The main job (no command) trains on an image folder without fetching MNIST into it.
        var before = Directory.GetFileSystemEntries(tree.Train);
        (code, output, err) = Run(["--data", tree.Train, "--model", model, "--epochs", "1"]);
        (code, err).Should().Be((0, ""));
        output.Should().StartWith($"data: image folder {tree.Train}:");
        Directory.GetFileSystemEntries(tree.Train).Should().BeEquivalentTo(before);
    }

    [Fact]
    public void Colour_and_another_size_build_LeNet_for_them_and_predict_reads_pictures_the_same_way()
    {
        string model = Path.Combine(Dir, "colour.model");
        var (code, output, err) = Run("train", "--data", tree.Root, "--model", model, "--epochs", "1", "--size", "20x24", "--channels", "3");
        (code, err).Should().Be((0, ""));
        output.Should().Contain("3 classes (one, two, zero); 60 training images in train, 30 test images in test, 20x24x3");
        output.Should().Contain("training LeNet for 20x24x3 images, 3 classes (");
        ModelFile.Load<float>(model).InputShape.Should().Be((20, 24, 3));

        (code, output, err) = Run("eval", "--data", tree.Root, "--model", model);
        (code, err).Should().Be((0, ""));
        output.Should().Contain("30 images, 20x24x3");
        (code, _, err) = Run("predict", Directory.GetFiles(Path.Combine(tree.Test, "one"))[0], "--model", model);
        (code, err).Should().Be((0, ""));
    }

    [Theory]
    [InlineData("8", "LeNet takes images of at least 16x16 pixels (two 5x5 convolutions, each followed by a 2x2 pool), got 8x8. Resize the pictures with --size (16 to 268 a side for LeNet), or train a network of your own with --arch FILE.")]
    [InlineData("300", "LeNet on 300x300 images would end in a Linear layer of 82,944 inputs, above the 65,536 a model file stores: use smaller images or a network with more pooling. Resize the pictures with --size (16 to 268 a side for LeNet), or train a network of your own with --arch FILE.")]
    public void Images_LeNet_cannot_take_are_refused_with_a_hint(string size, string message)
    {
        string model = Path.Combine(Dir, "m.model");
        var (code, output, err) = Run("train", "--data", tree.Root, "--model", model, "--size", size);
        code.Should().Be(1);
        err.Should().Be($"error: {message}\n");
        File.Exists(model).Should().BeFalse();
        output.Should().StartWith("data: image folder");
    }

    [Fact]
    public void Options_that_do_not_fit_the_data_are_refused_in_one_line()
    {
        string model = Path.Combine(Dir, "m.model");
        Run(["train", "--data", tree.Root, "--model", model, "--epochs", "1"]).Code.Should().Be(0);

        Run("eval", "--data", tree.Root, "--model", model, "--size", "32").Should()
            .Be((1, "", $"error: --size 32x32: {model} was trained on 28x28 images; leave --size out to use the model's.\n"));
        Run("eval", "--data", tree.Root, "--model", model, "--channels", "3").Should()
            .Be((1, "", $"error: --channels 3: {model} was trained on 1-channel images; leave --channels out to use the model's.\n"));
        Run("train", "--data", tree.Root, "--model", model, "--report", Path.Combine(Dir, "r")).Should()
            .Be((1, "", $"error: --report draws MNIST's digits; it does not take an image folder ({tree.Root}).\n"));
        string mnist = TestData.MnistDirectory();
        Run("train", "--data", mnist, "--model", model, "--size", "32").Should()
            .Be((1, "", $"error: --size applies to an image folder; {mnist} holds MNIST's IDX files (28x28, grey).\n"));
        Run("train", "--size", "0x3").Should().Be((2, "", "error: --size expects N or HxW, each from 1 to 8,192 (e.g. 32 or 32x48), got '0x3' (see train --help)\n"));
        Run("train", "--channels", "2").Code.Should().Be(2);
    }

    [Fact]
    public void A_model_without_class_names_is_measured_on_a_folder_only_when_its_outputs_match_the_classes()
    {
        string model = Path.Combine(Dir, "tutorial.model");
        ModelFile.Save(LeNetSharp.Layers.LeNet.Create<float>(1), model);
        var (code, output, err) = Run("eval", "--data", tree.Root, "--model", model);
        code.Should().Be(1);
        output.Should().StartWith("data: image folder");
        err.Should().Be($"error: {model}: the network gives 10 outputs per image, but the data has 3 classes.\n");
    }

    [Fact]
    public void Export_takes_the_input_shape_the_model_records()
    {
        string model = Path.Combine(Dir, "img.model"), onnx = Path.Combine(Dir, "img.onnx"), npz = Path.Combine(Dir, "img.npz");
        var network = LeNet.ForImages<float>(1, 16, 16, 1, 3);
        network.ClassNames = ["a", "b", "c"];
        network.InputShape = (16, 16, 1);
        ModelFile.Save(network, model);

        var (code, output, err) = Run("export", "--model", model, "--to", onnx);
        (code, err).Should().Be((0, ""));
        output.Should().Be($"exported {model} to {onnx}\n");
        OnnxModel.Import(onnx).OutputShapes([1, 16, 16, 1])[^1].Should().Equal(1, 3);

        (code, _, err) = Run("export", "--model", model, "--to", npz);
        code.Should().Be(1);
        err.Should().Be($"error: {npz}: the tutorial's weight file holds only LeNet's weights for 28x28x1 images and 10 classes; "
            + "the network has Linear 16→3 as layer 7 where LeNet has Linear 256→10 (it takes 16x16x1 images, 3 classes).\n");
        File.Exists(npz).Should().BeFalse();

        string bare = Path.Combine(Dir, "bare.model"); // the same layers, no recorded size: 28x28x1 is tried, and does not fit
        ModelFile.Save(LeNet.ForImages<float>(1, 16, 16, 1, 3), bare);
        (code, _, err) = Run("export", "--model", bare, "--to", Path.Combine(Dir, "bare.onnx"));
        code.Should().Be(1);
        err.Should().Be($"error: {bare}: the model records no input size, and its network does not take MNIST's 28x28x1 images (Linear 16→3: expected input (N, 16), got (1, 256)).\n");
        File.Exists(Path.Combine(Dir, "bare.onnx")).Should().BeFalse();
    }

    [Theory]
    [InlineData("train", "test")]
    [InlineData("test", "train")]
    public void One_split_without_the_other_is_named_not_read_as_one_class(string present, string missing)
    {
        string data = Path.Combine(Dir, "half");
        MnistTree.Copy(tree.Train, Path.Combine(data, present));
        var (code, _, err) = Run("train", "--data", data, "--model", Path.Combine(Dir, "m.model"));
        code.Should().Be(1);
        err.Should().Be($"error: {data} has {present}/ but no {missing}/: give both, or put the class folders directly in {data}.\n");
    }

    [Theory]
    [InlineData("train")]
    [InlineData("eval")]
    public void An_empty_data_folder_names_both_kinds_of_data(string command)
    {
        string empty = Path.Combine(Dir, "empty");
        Directory.CreateDirectory(empty);
        var (code, _, err) = Run(command, "--data", empty, "--model", Path.Combine(Dir, "m.model"));
        code.Should().Be(1);
        err.Should().Be($"error: {empty}: no MNIST IDX files (train-images-idx3-ubyte, … or .gz; the fetch command downloads them) "
            + "and no image folder (one sub-folder of pictures per class, or train/ and test/ holding them).\n");
    }

    [Fact]
    public void Terminal_escapes_in_file_names_reach_the_error_line_escaped()
    {
        string data = Path.Combine(Dir, "esc");
        MnistTree.Copy(tree.Train, data);
        string corrupt = Path.Combine(data, "one", "\u001B]0;pwned\u0007x.png");
        File.WriteAllText(corrupt, "not a picture");
        var (code, _, err) = Run("train", "--data", data, "--model", Path.Combine(Dir, "m.model"));
        code.Should().Be(1);
        err.Should().StartWith($"error: {Path.Combine(data, "one")}/\\u001B]0;pwned\\u0007x.png: ");
        err.TrimEnd('\n').Should().NotContain("\n").And.Match(e => !e.Any(char.IsControl));

        File.Delete(corrupt);
        Directory.CreateDirectory(Path.Combine(data, "\u001B[31mred\u009B"));
        (code, _, err) = Run("train", "--data", data, "--model", Path.Combine(Dir, "m.model"));
        code.Should().Be(1);
        err.Should().StartWith($"error: {data}/\\u001B[31mred\\u009B: ");
        err.TrimEnd('\n').Should().Match(e => !e.Any(char.IsControl));
        Program.Printable("a\u007Fb\rc\td").Should().Be("a\\u007Fb\\u000Dc\\u0009d");
    }

    [Fact]
    public void A_corrupt_picture_fails_train_with_one_line_naming_it_and_nothing_written()
    {
        string root = Path.Combine(Dir, "tree");
        MnistTree.Copy(tree.Root, root);
        string bad = Directory.GetFiles(Path.Combine(root, "train", "two")).Order(StringComparer.Ordinal).ElementAt(4);
        File.WriteAllBytes(bad, [0x89, (byte)'P', (byte)'N', (byte)'G', 0, 0, 0]);
        string model = Path.Combine(Dir, "m.model");
        var (code, output, err) = Run("train", "--data", root, "--model", model);
        code.Should().Be(1);
        output.Should().BeEmpty();
        err.Should().StartWith($"error: {bad}: ").And.EndWith("\n");
        err.TrimEnd().Should().NotContain("\n");
        File.Exists(model).Should().BeFalse();
    }
}
