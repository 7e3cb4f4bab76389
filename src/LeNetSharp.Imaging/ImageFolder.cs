using System.Runtime.ExceptionServices;
using LeNetSharp.Data;
using LeNetSharp.Persistence;

namespace LeNetSharp.Imaging;

/// <summary>
/// How <see cref="ImageFolder"/> loads a folder: the size and colour of the images, the classes expected, limits and
/// threads. The defaults take grey images at the first image's size, with the classes the sub-folders name.
/// </summary>
public sealed record ImageFolderOptions
{
    /// <summary>
    /// The (height, width) every image is resized to (bilinear, antialiased when shrinking), typically the network's
    /// input; null (the default) keeps the first image's size and requires every other image to have it.
    /// </summary>
    public (int Height, int Width)? Size { get; init; }

    /// <summary>1 (the default) for grey images, 3 for RGB (NHWC, R then G then B).</summary>
    public int Channels { get; init; } = 1;

    /// <summary>
    /// The classes expected, in label order (e.g. a trained model's <c>ClassNames</c>, or a training set's for its test
    /// set); every sub-folder must be one of them, and a class may have no folder. Null (the default): the classes are
    /// the sub-folders, sorted ordinally.
    /// </summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>The largest image accepted, in pixels (width·height, checked from the file's header before decoding; default <see cref="ImageDecoder.MaxPixels"/>).</summary>
    public long MaxPixels { get; init; } = ImageDecoder.MaxPixels;

    /// <summary>Threads decoding at once (default 0: one per processor). The result does not depend on it.</summary>
    public int Threads { get; init; }
}

/// <summary>
/// Loads a folder of pictures sorted into one sub-folder per class, as torchvision's <c>ImageFolder</c> and Keras's
/// <c>image_dataset_from_directory</c> do, into an <see cref="ImageDataset"/> with <see cref="ImageDataset.ClassNames"/>:
/// <code>
/// DIR/cat/001.png          DIR/train/cat/001.png     (LoadSplits: train and test,
/// DIR/cat/002.jpg          DIR/train/dog/…            with the same classes)
/// DIR/dog/…                DIR/test/cat/…
/// </code>
/// The classes are the sub-folders' names sorted ordinally (label 0 is the first); the images are the files ending
/// in .png, .jpg, .jpeg or .bmp (any case), taken in ordinal order of their names, class after class, so a folder
/// always loads in the same order. Names starting with '.' (hidden files such as .DS_Store) are skipped, and files
/// beside the class folders are ignored; anything else in a class folder (another file, a folder, a broken link) is an
/// error, as are an empty class folder, an unreadable or oversized image, and, without <see cref="ImageFolderOptions.Size"/>,
/// an image whose size differs from the first's. Every error is one <see cref="InvalidDataException"/> (or, for a
/// missing folder, <see cref="DirectoryNotFoundException"/>) naming the file and what was expected and found; when
/// several files are bad, the first in that order is named. Images are decoded in parallel, each into its own place.
/// </summary>
/// <example>
/// <code>
/// var (train, test) = ImageFolder.LoadSplits("flowers", new ImageFolderOptions { Size = (32, 32), Channels = 3 });
/// var net = LeNet.ForImages&lt;float&gt;(seed: 1, 32, 32, channels: 3, classes: train.Classes);
/// net.ClassNames = train.ClassNames;        // saved with the model; predictions can be named
/// </code>
/// </example>
public static class ImageFolder
{
    /// <summary>The file name endings taken as images (compared ignoring case).</summary>
    public static IReadOnlyList<string> Extensions { get; } = Array.AsReadOnly([".png", ".jpg", ".jpeg", ".bmp"]);

    /// <summary>The sub-folder holding the training images in the split layout (<see cref="LoadSplits"/>): "train".</summary>
    public const string TrainFolder = "train";

    /// <summary>The sub-folder holding the test images in the split layout: "test".</summary>
    public const string TestFolder = "test";

    /// <summary>The most classes a folder may have: 256 (a dataset's labels are bytes).</summary>
    public const int MaxClasses = 256;

    private static string ExtensionList => string.Join(", ", Extensions.SkipLast(1)) + " or " + Extensions[^1];

    /// <summary>Whether <paramref name="directory"/> has the split layout: both a <c>train</c> and a <c>test</c> sub-folder.</summary>
    /// <param name="directory">The folder.</param>
    /// <returns>True when both sub-folders exist (following symbolic links).</returns>
    public static bool HasSplits(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        return SafeFile.KindOf(Path.Combine(directory, TrainFolder)) == FileKind.Directory
            && SafeFile.KindOf(Path.Combine(directory, TestFolder)) == FileKind.Directory;
    }

    /// <summary>Whether <paramref name="directory"/> is a folder with at least one sub-folder (not hidden): a candidate image folder.</summary>
    /// <param name="directory">The folder.</param>
    /// <returns>True when it is a folder and has a visible sub-folder.</returns>
    public static bool HasSubfolders(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (SafeFile.KindOf(directory) != FileKind.Directory) return false;
        try
        {
            return Directory.EnumerateFileSystemEntries(directory)
                .Any(e => !Path.GetFileName(e).StartsWith('.') && SafeFile.KindOf(e) == FileKind.Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Loads <paramref name="directory"/>/train and <paramref name="directory"/>/test: the training images with the
    /// options given, the test images at the training images' size with the training set's classes (a test folder may
    /// lack a class, not add one).
    /// </summary>
    /// <param name="directory">The folder holding <c>train</c> and <c>test</c>.</param>
    /// <param name="options">How to load (null: the defaults).</param>
    /// <returns>The two datasets, with the same <see cref="ImageDataset.ClassNames"/>, size and channels.</returns>
    /// <exception cref="DirectoryNotFoundException">A folder is missing.</exception>
    /// <exception cref="InvalidDataException">See <see cref="Load"/>; or the test folder has a class the training folder has not.</exception>
    public static (ImageDataset Train, ImageDataset Test) LoadSplits(string directory, ImageFolderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new ImageFolderOptions();
        var train = Load(Path.Combine(directory, TrainFolder), options);
        var test = Load(Path.Combine(directory, TestFolder), options with { Size = (train.Height, train.Width), ClassNames = train.ClassNames });
        return (train, test);
    }

    /// <summary>Loads the class sub-folders of <paramref name="directory"/> (see the class summary for the rules).</summary>
    /// <param name="directory">The folder holding one sub-folder per class.</param>
    /// <param name="options">How to load (null: the defaults).</param>
    /// <returns>
    /// The images, (H, W, C) bytes each, labelled by class, with <see cref="ImageDataset.ClassNames"/>; class after
    /// class, each in its files' order.
    /// </returns>
    /// <exception cref="DirectoryNotFoundException"><paramref name="directory"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">
    /// <paramref name="directory"/> is not a folder or has no class sub-folder, has a train or a test sub-folder of class folders without the other, or fewer than 2 or more than
    /// <see cref="MaxClasses"/> classes; a class folder is empty or holds something that is not an image file; an image
    /// is unreadable, corrupt, larger than <see cref="ImageFolderOptions.MaxPixels"/> or <see cref="ImageDecoder.MaxBytes"/>,
    /// or (without a size) not the first image's size; a sub-folder is not among <see cref="ImageFolderOptions.ClassNames"/>;
    /// the images would not fit one dataset (2 GB).
    /// </exception>
    /// <exception cref="IOException">A file or folder cannot be read (permission denied).</exception>
    /// <exception cref="ArgumentException">An option is out of range (a size below 1, channels other than 1 or 3, a class name list that breaks the dataset's rules).</exception>
    public static ImageDataset Load(string directory, ImageFolderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new ImageFolderOptions();
        CheckOptions(options);
        var (classNames, files) = Index(directory, options.ClassNames);

        // The first image fixes the size when none is given; then each image is decoded into its own slot, in parallel.
        var (first, firstWidth, firstHeight) = ImageDecoder.Decode(ImageDecoder.ReadFile(files[0].Path), files[0].Path, options.Channels, options.MaxPixels);
        var (height, width) = options.Size ?? (firstHeight, firstWidth);
        long size = (long)height * width * options.Channels, total = size * files.Count;
        if (total > Array.MaxLength)
        {
            throw new InvalidDataException(
                $"{directory}: {files.Count:N0} images of {height}x{width}x{options.Channels} need {total:N0} bytes, more than the {Array.MaxLength:N0} one dataset holds; load smaller images (a size) or fewer.");
        }

        var pixels = new byte[total];
        var labels = new byte[files.Count];
        Resampler.Resize(first, firstWidth, firstHeight, options.Channels, width, height).CopyTo(pixels, 0);
        labels[0] = files[0].Label;
        var errors = new Exception?[files.Count];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = options.Threads > 0 ? options.Threads : Environment.ProcessorCount };
        Parallel.For(1, files.Count, parallel, (i, loop) =>
        {
            try
            {
                string path = files[i].Path;
                var (image, w, h) = ImageDecoder.Decode(ImageDecoder.ReadFile(path), path, options.Channels, options.MaxPixels);
                if (options.Size is null && (w, h) != (firstWidth, firstHeight))
                {
                    throw new InvalidDataException(
                        $"{path}: {w} pixels wide and {h} high, but the first image, {files[0].Path}, is {firstWidth} wide and {firstHeight} high; give a size to resize them all to (ImageFolderOptions.Size; the trainer's --size).");
                }

                Resampler.Resize(image, w, h, options.Channels, width, height).CopyTo(pixels, i * size);
                labels[i] = files[i].Label;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                errors[i] = e;
                loop.Break(); // every earlier image is still decoded, so the first bad file in order is the one reported
            }
        });
        if (Array.Find(errors, e => e is not null) is { } error) ExceptionDispatchInfo.Capture(error).Throw();
        return new ImageDataset(pixels, labels, height, width, options.Channels, classNames.Count).WithClassNames(classNames);
    }

    /// <summary>
    /// One picture as <see cref="Load"/> puts it in a dataset: decoded (grey or RGB) and resized to
    /// <paramref name="height"/>×<paramref name="width"/>; for predicting with a network trained on an image folder.
    /// </summary>
    /// <param name="path">The picture (any format <see cref="ImageDecoder"/> reads).</param>
    /// <param name="height">Height to resize to.</param>
    /// <param name="width">Width to resize to.</param>
    /// <param name="channels">1 (grey) or 3 (RGB).</param>
    /// <param name="maxPixels">The largest picture accepted, in pixels.</param>
    /// <returns>height·width·channels bytes, (H, W, C) order.</returns>
    /// <exception cref="InvalidDataException">Not a readable picture, or too large; the message starts with the path.</exception>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size below 1, or channels other than 1 or 3.</exception>
    public static byte[] ReadImage(string path, int height, int width, int channels = 1, long maxPixels = ImageDecoder.MaxPixels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        var (pixels, w, h) = ImageDecoder.DecodeFile(path, channels, maxPixels);
        return Resampler.Resize(pixels, w, h, channels, width, height);
    }

    private static void CheckOptions(ImageFolderOptions options)
    {
        if (options.Size is var (h, w) && (h < 1 || w < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Size, "ImageFolderOptions.Size: the height and width must be at least 1.");
        }

        if (options.Channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(options), options.Channels, "ImageFolderOptions.Channels must be 1 (grey) or 3 (RGB).");
        if (options.MaxPixels < 1) throw new ArgumentOutOfRangeException(nameof(options), options.MaxPixels, "ImageFolderOptions.MaxPixels must be at least 1.");
        if (options.Threads < 0) throw new ArgumentOutOfRangeException(nameof(options), options.Threads, "ImageFolderOptions.Threads must be 0 (one per processor) or more.");
        if (options.ClassNames is { } names)
        {
            Data.ClassNames.Checked(names, nameof(options));
            if (names.Count is < 2 or > MaxClasses) throw new ArgumentOutOfRangeException(nameof(options), names.Count, $"ImageFolderOptions.ClassNames: expected 2 to {MaxClasses} classes.");
        }
    }

    /// <summary>The classes (label order) and every image file with its label, in load order; refuses what <see cref="Load"/> refuses before decoding.</summary>
    private static (IReadOnlyList<string> Classes, List<(string Path, byte Label)> Files) Index(string directory, IReadOnlyList<string>? expected)
    {
        RequireFolder(directory, "a folder with one sub-folder per class");
        var folders = new List<(string Name, string Path)>();
        bool imagesAtTop = false;
        foreach (var (name, path) in Entries(directory))
        {
            var kind = SafeFile.KindOf(path);
            if (kind == FileKind.Directory) folders.Add((name, path));
            else if (kind is FileKind.LinkLoop or FileKind.Inaccessible) throw new InvalidDataException($"{path}: expected a class folder or a file, found {SafeFile.Describe(kind)}.");
            else imagesAtTop |= IsImageName(name);
        }

        // One split without the other: the folder is neither layout, and reading "train" as a class would mislead.
        var splits = folders.Where(f => f.Name is TrainFolder or TestFolder).ToList();
        if (splits is [var (split, splitPath)] && HasSubfolders(splitPath))
        {
            string other = split == TrainFolder ? TestFolder : TrainFolder;
            throw new InvalidDataException($"{directory} has {split}/ but no {other}/: give both, or put the class folders directly in {directory}.");
        }

        if (folders.Count == 0)
        {
            throw new InvalidDataException(imagesAtTop
                ? $"{directory}: no class folders, only pictures: put each class's pictures in a sub-folder named after the class ({directory}/CLASS/*.png)."
                : $"{directory}: no class folders: expected one sub-folder per class holding its pictures ({ExtensionList}).");
        }

        foreach (var (name, path) in folders)
        {
            try
            {
                Data.ClassNames.Checked([name], "class");
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{path}: the folder's name cannot name a class ({e.Message.Replace(" (Parameter 'class')", "", StringComparison.Ordinal)}).", e);
            }
        }

        IReadOnlyList<string> classes;
        if (expected is null)
        {
            if (folders.Count < 2) throw new InvalidDataException($"{directory}: one class folder ({folders[0].Name}); a classifier needs at least 2.");
            if (folders.Count > MaxClasses) throw new InvalidDataException($"{directory}: {folders.Count:N0} class folders; at most {MaxClasses} classes are supported.");
            classes = folders.Select(f => f.Name).ToArray();
        }
        else
        {
            classes = expected;
            if (folders.FirstOrDefault(f => !expected.Contains(f.Name, StringComparer.Ordinal)) is { Path: not null } extra)
            {
                throw new InvalidDataException($"{extra.Path}: class '{extra.Name}' is not among the {expected.Count} expected ({string.Join(", ", expected.Take(12))}{(expected.Count > 12 ? ", …" : "")}).");
            }
        }

        var files = new List<(string Path, byte Label)>();
        foreach (var (name, folder) in folders)
        {
            byte label = (byte)IndexOf(classes, name);
            int before = files.Count;
            foreach (var (file, path) in Entries(folder))
            {
                if (IsImageName(file))
                {
                    files.Add((path, label));
                    continue;
                }

                var kind = SafeFile.KindOf(path);
                throw new InvalidDataException(kind switch
                {
                    FileKind.Directory => $"{path}: a folder inside class folder '{name}'; pictures must sit directly in their class folder.",
                    FileKind.Regular => $"{path}: not a picture file name (expected {ExtensionList}); move it out of class folder '{name}'.",
                    _ => $"{path}: expected a picture file ({ExtensionList}), found {SafeFile.Describe(kind)}.",
                });
            }

            if (files.Count == before) throw new InvalidDataException($"{folder}: class folder '{name}' holds no pictures ({ExtensionList}).");
        }

        return (classes, files);
    }

    private static int IndexOf(IReadOnlyList<string> names, string name)
    {
        for (int i = 0; i < names.Count; i++)
        {
            if (string.Equals(names[i], name, StringComparison.Ordinal)) return i;
        }

        return -1;
    }

    private static bool IsImageName(string name) => Extensions.Any(e => name.EndsWith(e, StringComparison.OrdinalIgnoreCase) && name.Length > e.Length);

    private static void RequireFolder(string directory, string expected)
    {
        var kind = SafeFile.KindOf(directory);
        if (kind == FileKind.Directory) return;
        if (kind == FileKind.Missing) throw new DirectoryNotFoundException($"{directory}: folder not found.");
        throw new InvalidDataException($"{directory}: expected {expected}, found {SafeFile.Describe(kind)}.");
    }

    /// <summary>The visible entries of a folder (names not starting with '.'), sorted ordinally by name.</summary>
    private static List<(string Name, string Path)> Entries(string directory)
    {
        try
        {
            var entries = Directory.EnumerateFileSystemEntries(directory)
                .Select(path => (Name: Path.GetFileName(path), Path: path))
                .Where(e => !e.Name.StartsWith('.'))
                .ToList();
            entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            return entries;
        }
        catch (UnauthorizedAccessException)
        {
            throw new IOException($"{directory}: cannot be listed (permission denied).");
        }
    }
}
