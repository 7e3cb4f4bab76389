using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Imaging;
using LeNetSharp.Layers;

namespace LeNetSharp.Trainer;

/// <summary>
/// What <c>--data DIR</c> names: MNIST's IDX files, or an image folder, one sub-folder of pictures per class
/// (<c>DIR/CLASS/…</c>) or a training and a test folder of them (<c>DIR/train/CLASS/…</c>, <c>DIR/test/CLASS/…</c>).
/// A folder holding any IDX file is MNIST's (and its errors are MNIST's); one holding none but a sub-folder is an image
/// folder. The network trained on an image folder carries its class names and input size into the model file, so
/// <c>eval</c> and <c>predict</c> read pictures as training did.
/// </summary>
internal static class DataSource
{
    /// <summary>
    /// Whether <paramref name="directory"/> is an image folder rather than MNIST's (see the class summary): decided from
    /// the file names alone, so a damaged MNIST folder still gets MNIST's own errors.
    /// </summary>
    public static bool IsImageFolder(string directory) =>
        !Mnist.Files.Any(f => File.Exists(Path.Combine(directory, f.Name)) || File.Exists(Path.Combine(directory, f.Name + ".gz")))
        && ImageFolder.HasSubfolders(directory);

    /// <summary>
    /// Refuses a folder that holds neither MNIST's files nor a sub-folder (an empty folder, say), naming both kinds of
    /// data it could hold, where MNIST's loader alone would report only its own missing files. A missing folder, and any
    /// folder with something in it, is left to the loaders.
    /// </summary>
    /// <exception cref="IOException">The folder holds no IDX file and no sub-folder.</exception>
    public static void RequireData(string directory)
    {
        if (!Directory.Exists(directory) || IsImageFolder(directory)) return;
        if (Mnist.Files.Any(f => File.Exists(Path.Combine(directory, f.Name)) || File.Exists(Path.Combine(directory, f.Name + ".gz")))) return;
        throw new IOException($"{directory}: no MNIST IDX files ({Mnist.Files[0].Name}, … or .gz; the fetch command downloads them) "
            + $"and no image folder (one sub-folder of pictures per class, or {ImageFolder.TrainFolder}/ and {ImageFolder.TestFolder}/ holding them).");
    }

    /// <summary>
    /// The training images and the test images (null when the folder has no test split) of an image folder, after
    /// printing the "data: …" line.
    /// </summary>
    public static (ImageDataset Train, ImageDataset? Test) ForTraining(Options o, TextWriter stdout)
    {
        if (o.Report is not null) throw new ArgumentException($"--report draws MNIST's digits; it does not take an image folder ({o.Data}).");
        var options = new ImageFolderOptions { Size = o.Size, Channels = o.Channels };
        if (ImageFolder.HasSplits(o.Data))
        {
            var (train, test) = ImageFolder.LoadSplits(o.Data, options);
            stdout.WriteLine($"data: image folder {o.Data}: {Classes(train)}; {train.Count:N0} training images in {ImageFolder.TrainFolder}, "
                + $"{test.Count:N0} test images in {ImageFolder.TestFolder}, {Shape(train)}");
            return (train, test);
        }

        var all = ImageFolder.Load(o.Data, options);
        stdout.WriteLine($"data: image folder {o.Data}: {Classes(all)}; {all.Count:N0} images, {Shape(all)} "
            + $"(no {ImageFolder.TrainFolder} and {ImageFolder.TestFolder} sub-folders: training on all of them{(o.ValSplit is null ? "" : " but the --val-split share")})");
        return (all, null);
    }

    /// <summary>
    /// The images <c>eval</c> measures <paramref name="network"/> on: the folder's test split, or the whole folder, read at
    /// the network's recorded input size and channels (else <c>--size</c> and <c>--channels</c>) with its class names.
    /// </summary>
    /// <exception cref="ArgumentException">--size or --channels contradicts what the model records.</exception>
    public static (ImageDataset Data, string Split) ForEvaluation(Options o, Sequential<float> network, TextWriter stdout)
    {
        if (o.Report is not null) throw new ArgumentException($"--report draws MNIST's digits; it does not take an image folder ({o.Data}).");
        var options = new ImageFolderOptions { Size = o.Size, Channels = o.Channels, ClassNames = network.ClassNames };
        if (network.InputShape is var (h, w, c))
        {
            if (o.Given.Contains("--size") && o.Size != (h, w))
            {
                throw new ArgumentException($"--size {o.Size!.Value.Height}x{o.Size.Value.Width}: {o.Model} was trained on {h}x{w} images; leave --size out to use the model's.");
            }

            if (o.Given.Contains("--channels") && o.Channels != c)
            {
                throw new ArgumentException($"--channels {o.Channels}: {o.Model} was trained on {c}-channel images; leave --channels out to use the model's.");
            }

            options = options with { Size = (h, w), Channels = c };
        }

        bool split = ImageFolder.HasSplits(o.Data);
        string folder = split ? Path.Combine(o.Data, ImageFolder.TestFolder) : o.Data;
        var data = ImageFolder.Load(folder, options);
        stdout.WriteLine($"data: image folder {folder}: {Classes(data)}; {data.Count:N0} images, {Shape(data)}");
        Recipe.CheckFits(o.Model, network, data);
        return (data, split ? "test" : "");
    }

    /// <summary>Refuses --size and --channels with MNIST's IDX files, which have one size and one channel.</summary>
    public static void RefuseImageOptions(Options o)
    {
        string? given = o.Given.Contains("--size") ? "--size" : o.Given.Contains("--channels") ? "--channels" : null;
        if (given is not null) throw new ArgumentException($"{given} applies to an image folder; {o.Data} holds MNIST's IDX files (28x28, grey).");
    }

    /// <summary>
    /// A new network for the data: with --net modern, <see cref="ModernCnn"/> sized for the images and classes; else the
    /// tutorial's LeNet for 28x28 grey images of 10 classes, or the same layers sized for the images and classes
    /// (<see cref="LeNet.ForImages{T}"/>); refused with a hint when the images are too small or too large for it.
    /// </summary>
    /// <exception cref="ArgumentException">The network cannot take the images; the message suggests --size or --arch.</exception>
    public static Sequential<float> NewNetwork(Options o, ImageDataset data)
    {
        if (o.Net == "modern")
        {
            try
            {
                return ModernCnn.Create<float>(o.Seed, data.Height, data.Width, data.Channels, data.Classes);
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new ArgumentException($"the modern CNN takes pictures of at least 4x4 pixels with 1 to 64 channels, in 2 to 10,000 classes; "
                    + $"these are {Shape(data)} in {data.Classes} classes. Resize the pictures with --size, or train a network of your own with --arch FILE.", e);
            }
        }

        if ((data.Height, data.Width, data.Channels, data.Classes) == (LeNet.ImageSize, LeNet.ImageSize, 1, LeNet.Classes)) return LeNet.Create<float>(o.Seed);
        try
        {
            return LeNet.ForImages<float>(o.Seed, data.Height, data.Width, data.Channels, data.Classes);
        }
        catch (ArgumentOutOfRangeException e)
        {
            string message = e.Message.Split(" (Parameter", 2)[0];
            throw new ArgumentException($"{message} Resize the pictures with --size (16 to 268 a side for LeNet), or train a network of your own with --arch FILE.", e);
        }
    }

    /// <summary>
    /// "LeNet" or "the modern CNN" (--net), followed by " for 32x32x3 images, 5 classes" when it is sized for other data
    /// than MNIST's.
    /// </summary>
    public static string NetworkName(Options o, ImageDataset data)
    {
        string net = o.Net == "modern" ? "the modern CNN" : "LeNet";
        return (data.Height, data.Width, data.Channels, data.Classes) == (LeNet.ImageSize, LeNet.ImageSize, 1, LeNet.Classes)
            ? net
            : $"{net} for {Shape(data)} images, {data.Classes} classes";
    }

    /// <summary>
    /// Gives <paramref name="network"/> the data's class names and image size when the data names its classes (an image
    /// folder), and none otherwise (MNIST: the model file stays the tutorial's format).
    /// </summary>
    public static void Describe(Sequential<float> network, ImageDataset data)
    {
        network.ClassNames = data.ClassNames;
        network.InputShape = data.ClassNames is null ? null : (data.Height, data.Width, data.Channels);
    }

    /// <summary>"3 classes (circle, square, triangle)", at most 8 names shown.</summary>
    private static string Classes(ImageDataset data)
    {
        var names = data.ClassNames ?? [];
        string shown = string.Join(", ", names.Take(8)) + (names.Count > 8 ? ", …" : "");
        return string.Create(CultureInfo.InvariantCulture, $"{data.Classes} classes ({shown})");
    }

    /// <summary>"28x28x1" (H x W x C).</summary>
    private static string Shape(ImageDataset data) => $"{data.Height}x{data.Width}x{data.Channels}";
}
