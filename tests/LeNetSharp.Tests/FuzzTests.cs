using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;
using Xunit.Abstractions;

namespace LeNetSharp.Tests;

/// <summary>
/// Seeded random mutations of valid files of every format the library reads: bit flips, overwritten byte runs,
/// truncations, appended bytes, and huge integers written at every offset of the header (both byte orders). Each
/// case is loaded in-process; it must either load or end in the format's documented exception with a message that
/// names the file, and allocate at most <see cref="AllocationCeiling"/>. Formats with a checksum (model, checkpoint)
/// get half their cases with the checksum recomputed, so the mutation reaches the parser behind it; .npz and .gz get
/// half their cases mutated inside (the .npy or IDX content) and re-packed with valid CRCs.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class FuzzTests(ITestOutputHelper output) : TempDirectoryTest
{
    /// <summary>Random cases per format, besides the systematic header cases.</summary>
    private const int RandomCases = 1200;

    /// <summary>A case may allocate at most this: 8 times the file, plus 2 MB for the runtime's own buffers.</summary>
    private static long AllocationCeiling(long fileLength) => 8 * fileLength + (2 << 20);

    private static readonly uint[] HugeValues = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x0000B3B0 /* 46000 */, 0xFFFF, 0];

    [Fact]
    public void Idx_raw() => Fuzz("idx", ValidIdx(), IdxRead, typeof(IdxFormatException), headerLength: 16, seed: 1);

    [Fact]
    public void Idx_gzip()
    {
        byte[] content = ValidIdx();
        Fuzz("idx.gz", HostileInputTests.Gzip(content), IdxRead, typeof(IdxFormatException), headerLength: 24, seed: 2,
            inner: (content, HostileInputTests.Gzip, 16));
    }

    [Fact]
    public void Model() =>
        Fuzz("model", ModelFile.Serialize(LeNet.Create<float>(1)), path => ModelFile.Load<float>(path), typeof(ModelFormatException),
            headerLength: 64, seed: 3, fixChecksum: true);

    [Fact]
    public void Checkpoint()
    {
        string source = Path.Combine(Dir, "source");
        var options = new TrainingOptions { Epochs = 1, BatchSize = 4, Momentum = 0.9, CheckpointDirectory = source };
        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), options)) t.Train(TestData.RandomImages(8, 1));
        byte[] valid = File.ReadAllBytes(Path.Combine(source, TrainingCheckpoint.FileName));
        Fuzz("lnsc", valid, path =>
        {
            using var resumed = Trainer<float>.Resume(Path.GetDirectoryName(path)!, options);
        }, typeof(ModelFormatException), headerLength: 120, seed: 4, fixChecksum: true, fileName: TrainingCheckpoint.FileName);
    }

    [Fact]
    public void Checkpoint_of_adam_with_a_schedule()
    {
        string source = Path.Combine(Dir, "source");
        var options = new TrainingOptions
        {
            Epochs = 1, BatchSize = 4, Optimizer = OptimizerKind.AdamW, AmsGrad = true, MaxGradientNorm = 1, CheckpointDirectory = source,
            Schedule = new LinearWarmupSchedule(new OneCycleSchedule(10), 2),
        };
        using (var t = new Trainer<float>(TestData.SmallNet<float>(1), options)) t.Train(TestData.RandomImages(8, 1));
        byte[] valid = File.ReadAllBytes(Path.Combine(source, TrainingCheckpoint.FileName));
        Fuzz("lnsc", valid, path =>
        {
            using var resumed = Trainer<float>.Resume(Path.GetDirectoryName(path)!, options);
        }, typeof(ModelFormatException), headerLength: 128, seed: 8, fixChecksum: true, fileName: TrainingCheckpoint.FileName);
    }

    [Fact]
    public void Npy() => Fuzz("npy", ValidNpy(), path => Persistence.Npy.Read(path), typeof(ModelFormatException), headerLength: 128, seed: 5);

    [Fact]
    public void Npz_stored() =>
        Fuzz("npz", Zip(ValidNpy(), CompressionLevel.NoCompression), path => Persistence.Npy.ReadNpz(path), typeof(ModelFormatException),
            headerLength: 64, seed: 6, inner: (ValidNpy(), npy => Zip(npy, CompressionLevel.NoCompression), 128));

    [Fact]
    public void Npz_deflated() =>
        Fuzz("npz", Zip(ValidNpy(), CompressionLevel.Optimal), path => Persistence.Npy.ReadNpz(path), typeof(ModelFormatException),
            headerLength: 64, seed: 7, inner: (ValidNpy(), npy => Zip(npy, CompressionLevel.Optimal), 128));

    private static byte[] ValidIdx()
    {
        var content = new byte[16 + 10 * 784];
        BinaryPrimitives.WriteInt32BigEndian(content, IdxFile.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(4), 10);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(12), 28);
        new Random(9).NextBytes(content.AsSpan(16));
        return content;
    }

    private static byte[] ValidNpy() => HostileInputTests.NpyBytes("(6, 7)", 42);

    private static byte[] Zip(byte[] npy, CompressionLevel level)
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (string name in new[] { "k1.npy", "b1.npy" })
            {
                using var s = zip.CreateEntry(name, level).Open();
                s.Write(npy);
            }
        }

        return ms.ToArray();
    }

    private static void IdxRead(string path) => IdxFile.Read(path, IdxFile.ImagesMagic);

    private void Fuzz(string extension, byte[] valid, Action<string> load, Type documented, int headerLength, int seed,
        bool fixChecksum = false, (byte[] Content, Func<byte[], byte[]> Pack, int HeaderLength)? inner = null, string? fileName = null)
    {
        // Cases go to memory-backed /dev/shm where there is one: thousands of small writes, none of them to a shared disk.
        string dir = Directory.Exists("/dev/shm") ? Directory.CreateTempSubdirectory("lenetsharp-fuzz-").FullName : Path.Combine(Dir, "case");
        Directory.CreateDirectory(dir);
        try
        {
            FuzzIn(dir, extension, valid, load, documented, headerLength, seed, fixChecksum, inner, fileName);
        }
        finally
        {
            if (!dir.StartsWith(Dir, StringComparison.Ordinal)) Directory.Delete(dir, recursive: true);
        }
    }

    private void FuzzIn(string dir, string extension, byte[] valid, Action<string> load, Type documented, int headerLength, int seed,
        bool fixChecksum, (byte[] Content, Func<byte[], byte[]> Pack, int HeaderLength)? inner, string? fileName)
    {
        string path = Path.Combine(dir, fileName ?? $"case.{extension}");
        load.Invoking(l => { File.WriteAllBytes(path, valid); l(path); }).Should().NotThrow("the unmutated file is valid");

        var random = new Random(seed);
        var failures = new List<string>();
        int cases = 0, loaded = 0, refused = 0;
        long worstExcess = 0;
        var clock = Stopwatch.StartNew();

        void Run(byte[] bytes, string what)
        {
            cases++;
            File.WriteAllBytes(path, bytes);
            var (error, allocated) = HostileInputTests.Measure(() => load(path));
            worstExcess = Math.Max(worstExcess, allocated - 8L * bytes.Length);
            if (allocated > AllocationCeiling(bytes.Length))
            {
                failures.Add($"{what}: allocated {allocated:N0} bytes for a {bytes.Length:N0}-byte file");
            }

            if (error is null)
            {
                loaded++;
            }
            else if (error.GetType() != documented && !(error is FileNotFoundException))
            {
                failures.Add($"{what}: {error.GetType().Name}: {error.Message}");
            }
            else if (!error.Message.Contains(path, StringComparison.Ordinal) || error.Message.Contains('\n'))
            {
                failures.Add($"{what}: message does not name the file on one line: {error.Message}");
            }
            else
            {
                refused++;
            }
        }

        // Systematic: huge integers at every offset of the header, both byte orders (checksums fixed where there are any).
        foreach (var (content, pack, header) in Targets().Skip(fixChecksum ? 1 : 0)) // behind a checksum only once it is fixed
        {
            for (int offset = 0; offset + 4 <= Math.Min(header, content.Length); offset++)
            {
                foreach (uint value in HugeValues)
                {
                    foreach (bool bigEndian in new[] { false, true })
                    {
                        byte[] bytes = (byte[])content.Clone();
                        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset), value);
                        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(offset), value);
                        Run(pack(bytes), $"0x{value:X8} ({(bigEndian ? "BE" : "LE")}) at offset {offset}");
                    }
                }
            }
        }

        // Random: bit flips, byte runs, truncations, appended bytes; half on the inner content when there is one.
        for (int i = 0; i < RandomCases; i++)
        {
            var targets = Targets().ToArray();
            var (content, pack, header) = targets[i % targets.Length];
            byte[] bytes = (byte[])content.Clone();
            string what;
            switch (random.Next(4))
            {
                case 0:
                    int flips = random.Next(1, 9);
                    for (int f = 0; f < flips; f++)
                    {
                        int at = random.Next(random.Next(2) == 0 ? Math.Min(header, bytes.Length) : bytes.Length);
                        bytes[at] ^= (byte)(1 << random.Next(8));
                    }

                    what = $"case {i}: {flips} bit flips";
                    break;
                case 1:
                    int start = random.Next(bytes.Length), length = Math.Min(random.Next(1, 65), bytes.Length - start);
                    byte fill = (byte)(random.Next(3) switch { 0 => 0x00, 1 => 0xFF, _ => random.Next(256) });
                    bytes.AsSpan(start, length).Fill(fill);
                    what = $"case {i}: {length} bytes of 0x{fill:X2} at {start}";
                    break;
                case 2:
                    int keep = random.Next(bytes.Length);
                    bytes = bytes[..keep];
                    what = $"case {i}: truncated to {keep} bytes";
                    break;
                default:
                    var extra = new byte[random.Next(1, 4096)];
                    random.NextBytes(extra);
                    bytes = [.. bytes, .. extra];
                    what = $"case {i}: {extra.Length} bytes appended";
                    break;
            }

            Run(pack(bytes), what);
        }

        string summary = $"{extension}{(fileName is null ? "" : $" ({fileName})")}: {cases} cases, {loaded} loaded, {refused} refused cleanly, "
            + $"{failures.Count} failures, allocation at most 8 x file + {Math.Max(0, worstExcess) / 1024.0:F0} KB, {clock.Elapsed.TotalSeconds:F1} s";
        output.WriteLine(summary);
        Console.WriteLine($"fuzz {summary}");
        failures.Should().BeEmpty(summary + ":\n" + string.Join("\n", failures.Take(20)));

        IEnumerable<(byte[] Content, Func<byte[], byte[]> Pack, int HeaderLength)> Targets()
        {
            Func<byte[], byte[]> asIs = b => b;
            yield return (valid, asIs, headerLength);
            if (fixChecksum) yield return (valid, WithChecksum, headerLength);
            if (inner is { } i) yield return i;
        }
    }

    /// <summary>Recomputes the trailing SHA-256 so that the mutation reaches the parser behind the checksum.</summary>
    private static byte[] WithChecksum(byte[] bytes)
    {
        if (bytes.Length < 32) return bytes;
        SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32), bytes.AsSpan(bytes.Length - 32));
        return bytes;
    }
}
