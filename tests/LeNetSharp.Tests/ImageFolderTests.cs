using System.Diagnostics;
using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// A small image folder written once per test class from MNIST: the digits 0, 1 and 2 as classes "zero", "one" and
/// "two", 20 PNGs each in train/ (MNIST training images) and 10 each in test/ (MNIST test images), 28x28 grey.
/// </summary>
public sealed class MnistTree : IDisposable
{
    public static readonly string[] Names = ["zero", "one", "two"];

    public MnistTree()
    {
        Root = Directory.CreateTempSubdirectory("lenetsharp-tree-").FullName;
        string mnist = TestData.MnistDirectory();
        Mnist.EnsureAsync(mnist).GetAwaiter().GetResult();
        Write(Mnist.Load(mnist, MnistSplit.Train), "train", 20);
        Write(Mnist.Load(mnist, MnistSplit.Test), "test", 10);
    }

    public string Root { get; }

    /// <summary>The MNIST pixels of each file written, by path.</summary>
    public Dictionary<string, byte[]> Pixels { get; } = [];

    public string Train => Path.Combine(Root, "train");

    public string Test => Path.Combine(Root, "test");

    /// <summary>Copies <paramref name="folder"/> (with its class folders) to <paramref name="destination"/>, for tests that change a tree.</summary>
    public static void Copy(string folder, string destination)
    {
        foreach (string dir in Directory.GetDirectories(folder, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(dir.Replace(folder, destination));
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.GetFiles(folder, "*", SearchOption.AllDirectories)) File.Copy(file, file.Replace(folder, destination));
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    private void Write(ImageDataset data, string split, int perClass)
    {
        for (int digit = 0; digit < Names.Length; digit++)
        {
            string folder = Path.Combine(Root, split, Names[digit]);
            Directory.CreateDirectory(folder);
            int written = 0;
            for (int i = 0; written < perClass; i++)
            {
                if (data.Label(i) != digit) continue;
                string path = Path.Combine(folder, $"{i:D5}.png");
                var pixels = data.Pixels(i).ToArray();
                File.WriteAllBytes(path, Pictures.Encode(Pictures.Rgba(pixels), 28, 28));
                Pixels[path] = pixels;
                written++;
            }
        }
    }
}

public class ImageFolderTests(MnistTree tree) : TempDirectoryTest, IClassFixture<MnistTree>
{
    [Fact]
    public void A_folder_of_class_folders_loads_sorted_with_the_folder_names_as_classes()
    {
        var data = ImageFolder.Load(tree.Train);

        data.ClassNames.Should().Equal("one", "two", "zero"); // ordinal order of the folder names
        (data.Count, data.Height, data.Width, data.Channels, data.Classes).Should().Be((60, 28, 28, 1, 3));
        var expected = MnistTree.Names.Order(StringComparer.Ordinal)
            .SelectMany(name => Directory.GetFiles(Path.Combine(tree.Train, name)).Order(StringComparer.Ordinal)).ToArray();
        for (int i = 0; i < data.Count; i++)
        {
            data.Pixels(i).ToArray().Should().Equal(tree.Pixels[expected[i]], "PNG is lossless and the grey pixels go in unchanged");
            data.ClassNames![data.Label(i)].Should().Be(Path.GetFileName(Path.GetDirectoryName(expected[i])));
        }
    }

    [Fact]
    public void Loading_is_deterministic_whatever_the_thread_count()
    {
        var one = ImageFolder.Load(tree.Train, new ImageFolderOptions { Threads = 1, Size = (20, 24) });
        var four = ImageFolder.Load(tree.Train, new ImageFolderOptions { Threads = 4, Size = (20, 24) });
        for (int i = 0; i < one.Count; i++)
        {
            four.Pixels(i).ToArray().Should().Equal(one.Pixels(i).ToArray());
            four.Label(i).Should().Be(one.Label(i));
        }
    }

    [Fact]
    public void The_split_layout_gives_train_and_test_with_the_same_classes_and_size()
    {
        ImageFolder.HasSplits(tree.Root).Should().BeTrue();
        ImageFolder.HasSplits(tree.Train).Should().BeFalse();
        var (train, test) = ImageFolder.LoadSplits(tree.Root, new ImageFolderOptions { Size = (16, 16), Channels = 3 });
        (train.Count, test.Count).Should().Be((60, 30));
        test.ClassNames.Should().Equal(train.ClassNames);
        (test.Height, test.Width, test.Channels).Should().Be((16, 16, 3));
        // A grey picture read as colour has R = G = B.
        var pixel = train.Pixels(0)[..3].ToArray();
        pixel.Should().OnlyContain(v => v == pixel[0]);
    }

    [Fact]
    public void A_test_folder_may_lack_a_class_but_not_add_one()
    {
        string root = Path.Combine(Dir, "tree");
        MnistTree.Copy(tree.Root, root);
        Directory.Delete(Path.Combine(root, "test", "two"), recursive: true);
        var (train, test) = ImageFolder.LoadSplits(root);
        test.Classes.Should().Be(3);
        test.Count.Should().Be(20);
        Enumerable.Range(0, test.Count).Select(test.Label).Distinct().Select(l => test.ClassNames![l]).Should().BeEquivalentTo("one", "zero");

        MnistTree.Copy(Path.Combine(root, "test", "one"), Path.Combine(root, "test", "three"));
        FluentActions.Invoking(() => ImageFolder.LoadSplits(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{Path.Combine(root, "test", "three")}: class 'three' is not among the 3 expected (one, two, zero).");
    }

    [Fact]
    public void Pictures_are_resized_to_the_size_given_and_mixed_sizes_without_one_are_refused()
    {
        string root = Path.Combine(Dir, "mixed");
        Directory.CreateDirectory(Path.Combine(root, "a"));
        Directory.CreateDirectory(Path.Combine(root, "b"));
        File.WriteAllBytes(Path.Combine(root, "a", "1.png"), Pictures.Encode(Pictures.Rgba(Enumerable.Repeat((byte)200, 6 * 4).ToArray()), 6, 4));
        File.WriteAllBytes(Path.Combine(root, "b", "1.BMP"), Pictures.Encode(Pictures.Rgba(Enumerable.Repeat((byte)40, 3 * 3).ToArray()), 3, 3, SkiaSharp.SKEncodedImageFormat.Bmp));

        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>().WithMessage(
            $"{Path.Combine(root, "b", "1.BMP")}: 3 pixels wide and 3 high, but the first image, {Path.Combine(root, "a", "1.png")}, is 6 wide and 4 high; give a size to resize them all to (ImageFolderOptions.Size; the trainer's --size).");
        var data = ImageFolder.Load(root, new ImageFolderOptions { Size = (5, 7) });
        (data.Height, data.Width).Should().Be((5, 7));
        data.Pixels(0).ToArray().Should().OnlyContain(v => v == 200, "a flat picture stays flat");
        data.Pixels(1).ToArray().Should().OnlyContain(v => v == 40);
    }

    [Fact]
    public void Resizing_is_bilinear_and_antialiased_when_shrinking()
    {
        // Shrinking [0, 255] to one pixel weighs both equally: 127.5, rounded away from zero.
        Resampler.Resize([0, 255], 2, 1, 1, 1, 1).Should().Equal(128);
        // Enlarging 1x2 to 1x4: outputs at 0.25, 0.75, 1.25, 1.75 of the source; the outer ones clamp to the edge pixel's weight.
        Resampler.Resize([0, 200], 2, 1, 1, 4, 1).Should().Equal(0, 50, 150, 200);
        var same = new byte[] { 1, 2, 3 };
        Resampler.Resize(same, 3, 1, 1, 3, 1).Should().BeSameAs(same);
        // Channels stay apart: red and blue halves of an RGB row.
        Resampler.Resize([255, 0, 0, 0, 0, 255], 2, 1, 3, 1, 1).Should().Equal(128, 0, 128);
    }

    [Fact]
    public void Hidden_files_and_files_beside_the_class_folders_are_ignored()
    {
        string root = Path.Combine(Dir, "tidy");
        MnistTree.Copy(tree.Train, root);
        File.WriteAllText(Path.Combine(root, "README.txt"), "about this set");
        File.WriteAllText(Path.Combine(root, "one", ".DS_Store"), "finder");
        Directory.CreateDirectory(Path.Combine(root, ".cache"));
        ImageFolder.Load(root).Count.Should().Be(60);
    }

    [Fact]
    public void A_missing_folder_a_file_and_a_folder_without_class_folders_are_refused_by_name()
    {
        string missing = Path.Combine(Dir, "missing");
        FluentActions.Invoking(() => ImageFolder.Load(missing)).Should().Throw<DirectoryNotFoundException>().WithMessage($"{missing}: folder not found.");
        string file = Path.Combine(Dir, "file");
        File.WriteAllText(file, "x");
        FluentActions.Invoking(() => ImageFolder.Load(file)).Should().Throw<InvalidDataException>()
            .WithMessage($"{file}: expected a folder with one sub-folder per class, found a regular file.");

        string empty = Path.Combine(Dir, "empty");
        Directory.CreateDirectory(empty);
        FluentActions.Invoking(() => ImageFolder.Load(empty)).Should().Throw<InvalidDataException>()
            .WithMessage($"{empty}: no class folders: expected one sub-folder per class holding its pictures (.png, .jpg, .jpeg or .bmp).");
        File.Copy(tree.Pixels.Keys.First(), Path.Combine(empty, "a.png"));
        FluentActions.Invoking(() => ImageFolder.Load(empty)).Should().Throw<InvalidDataException>()
            .WithMessage($"{empty}: no class folders, only pictures: put each class's pictures in a sub-folder named after the class*");

        string single = Path.Combine(Dir, "single");
        MnistTree.Copy(Path.Combine(tree.Train, "one"), Path.Combine(single, "one"));
        FluentActions.Invoking(() => ImageFolder.Load(single)).Should().Throw<InvalidDataException>()
            .WithMessage($"{single}: one class folder (one); a classifier needs at least 2.");
    }

    [Fact]
    public void An_empty_class_folder_is_refused_by_name()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        Directory.CreateDirectory(Path.Combine(root, "nothing"));
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{Path.Combine(root, "nothing")}: class folder 'nothing' holds no pictures (.png, .jpg, .jpeg or .bmp).");
    }

    [Fact]
    public void A_file_that_is_not_a_picture_by_name_or_a_folder_inside_a_class_folder_is_refused_by_name()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        string notes = Path.Combine(root, "one", "notes.txt");
        File.WriteAllText(notes, "hello");
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{notes}: not a picture file name (expected .png, .jpg, .jpeg or .bmp); move it out of class folder 'one'.");
        File.Delete(notes);

        string inner = Path.Combine(root, "two", "more");
        Directory.CreateDirectory(inner);
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{inner}: a folder inside class folder 'two'; pictures must sit directly in their class folder.");
    }

    [Fact]
    public void A_corrupt_or_fake_picture_is_refused_naming_the_first_bad_file_in_order()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        var files = Directory.GetFiles(Path.Combine(root, "two")).Order(StringComparer.Ordinal).ToArray();
        byte[] png = File.ReadAllBytes(files[3]);
        File.WriteAllBytes(files[3], png[..(png.Length / 2)]);                  // truncated
        File.WriteAllText(files[7], "not a picture at all");                   // a text file named .png
        File.WriteAllBytes(Path.Combine(root, "zero", "zz.jpg"), [0xFF, 0xD8]); // a later class: never reported first

        for (int run = 0; run < 3; run++)
        {
            FluentActions.Invoking(() => ImageFolder.Load(root, new ImageFolderOptions { Threads = 4 })).Should().Throw<InvalidDataException>()
                .WithMessage($"{files[3]}: *");
        }

        File.WriteAllBytes(files[3], png);
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{files[7]}: not a PNG, JPEG, BMP, GIF or WebP image that can be read*");
    }

    [Fact]
    public void Loops_of_symbolic_links_are_refused_by_name_and_never_followed_forever()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        string loop = Path.Combine(root, "one", "loop.png");
        File.CreateSymbolicLink(loop, loop);
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{loop}: expected a regular file, found a loop of symbolic links; nothing was read.");
        File.Delete(loop);

        // A link back up the tree is a folder inside a class folder: the loader never descends into it.
        string up = Path.Combine(root, "one", "up");
        Directory.CreateSymbolicLink(up, root);
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{up}: a folder inside class folder 'one'; pictures must sit directly in their class folder.");
        File.Delete(up);

        string top = Path.Combine(root, "self");
        File.CreateSymbolicLink(top, top);
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{top}: expected a class folder or a file, found a loop of symbolic links.");
    }

    [Fact]
    public async Task A_fifo_named_like_a_picture_is_refused_without_being_opened()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        string fifo = Path.Combine(root, "one", "pipe.png");
        using (var p = Process.Start("mkfifo", [fifo])) p.WaitForExit();
        var load = Task.Run(() => ImageFolder.Load(root));
        (await Task.WhenAny(load, Task.Delay(TimeSpan.FromSeconds(20)))).Should().BeSameAs(load, "a FIFO must be refused, not read");
        load.Exception!.InnerException.Should().BeOfType<InvalidDataException>()
            .Which.Message.Should().Be($"{fifo}: expected a regular file, found a FIFO (named pipe); nothing was read.");
    }

    [Fact]
    public void Pictures_over_the_size_limits_are_refused_before_decoding()
    {
        string root = Path.Combine(Dir, "t");
        MnistTree.Copy(tree.Train, root);
        string huge = Path.Combine(root, "one", "huge.png");
        File.WriteAllBytes(huge, ImageDecoderTests.PngHeader(10_000, 10_000));
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{huge}: 10000×10000 is 100,000,000 pixels; at most 50,000,000 pixels (50 megapixels) are accepted.");
        File.Delete(huge);

        FluentActions.Invoking(() => ImageFolder.Load(root, new ImageFolderOptions { MaxPixels = 500 })).Should().Throw<InvalidDataException>()
            .WithMessage("*: 28×28 is 784 pixels; at most 500 pixels (0 megapixels) are accepted.");

        string big = Path.Combine(root, "two", "big.jpg");
        using (var file = File.Create(big)) file.SetLength(ImageDecoder.MaxBytes + 1); // sparse: nothing is written
        FluentActions.Invoking(() => ImageFolder.Load(root)).Should().Throw<InvalidDataException>()
            .WithMessage($"{big}: the file is 100,000,001 bytes, above the 100,000,000 this format accepts.");
    }

    [Fact]
    public void Bad_options_are_refused()
    {
        FluentActions.Invoking(() => ImageFolder.Load(tree.Train, new ImageFolderOptions { Channels = 2 })).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => ImageFolder.Load(tree.Train, new ImageFolderOptions { Size = (0, 5) })).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => ImageFolder.Load(tree.Train, new ImageFolderOptions { ClassNames = ["a", "a"] })).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void A_network_trained_on_the_folder_through_the_api_reads_the_test_folder_and_keeps_the_class_names()
    {
        var (train, test) = ImageFolder.LoadSplits(tree.Root);
        var net = LeNet.ForImages<float>(seed: 1, train.Height, train.Width, train.Channels, train.Classes);
        net.ClassNames = train.ClassNames;
        net.InputShape = (train.Height, train.Width, train.Channels);
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 10, Optimizer = OptimizerKind.Adam, LearningRate = 0.001, BatchSize = 4 }))
        {
            trainer.Train(train);
        }

        var result = Evaluator.Evaluate(net, test);
        result.Accuracy.Should().BeGreaterThan(0.85, "zeros, ones and twos are easy to tell apart even from 20 examples each");

        string path = Path.Combine(Dir, "shapes.model");
        ModelFile.Save(net, path);
        var loaded = ModelFile.Load<float>(path);
        loaded.ClassNames.Should().Equal("one", "two", "zero");
        loaded.InputShape.Should().Be((28, 28, 1));
        string zero = Directory.GetFiles(Path.Combine(tree.Test, "zero")).Order(StringComparer.Ordinal).First();
        var p = loaded.Predict(ImageFolder.ReadImage(zero, 28, 28), 28, 28, 1);
        loaded.ClassNames![p.Label].Should().Be("zero");
    }
}
