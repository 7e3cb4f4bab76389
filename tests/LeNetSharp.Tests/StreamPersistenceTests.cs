using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// <see cref="ModelFile"/> and <see cref="OnnxModel"/> over streams: the bytes the path overloads write, round trips
/// through a <see cref="MemoryStream"/> and through a stream that cannot seek and returns 1 to 7 bytes a read, the file
/// checks and messages (naming the stream), the size ceilings on streams whose length is unknown or wrong, and the
/// caller's stream left open where the model ends.
/// </summary>
public sealed class StreamPersistenceTests : TempDirectoryTest
{
    private static Sequential<float> Network(int version)
    {
        if (version == 1) return LeNet.Create<float>(3);
        var random = new Random(4);
        return new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 16, random), new BatchNorm1d<float>(16), new Tanh<float>(),
            new Dropout<float>(0.25, seed: 2), new Linear<float>(16, 10, random));
    }

    private static float[] Logits(Sequential<float> network)
    {
        var x = new Tensor<float>(3, 28, 28, 1);
        var random = new Random(1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.NextSingle();
        network.Training = false;
        return network.Forward(x).Data.ToArray();
    }

    /// <summary>What a file path or a stream of the same bytes gives: the network's logits, or the exception's type and message with the path as "NAME".</summary>
    private static string Outcome(Func<Sequential<float>> load, string name)
    {
        try
        {
            return string.Join(",", Logits(load()));
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message.Replace(name, "NAME", StringComparison.Ordinal)}";
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_model_written_to_a_stream_has_the_files_bytes_and_reads_back_from_any_stream(int version)
    {
        var network = Network(version);
        string path = Path.Combine(Dir, "net.model");
        ModelFile.Save(network, path);
        byte[] file = File.ReadAllBytes(path);

        using var memory = new MemoryStream();
        memory.Write("header"u8);
        ModelFile.Save(network, memory);
        memory.ToArray()[6..].Should().Equal(file, "the stream gets the file's bytes, after what the stream already held");
        var sink = new SinkStream();
        ModelFile.Save(network, sink);
        (sink.Flushed, sink.Closed).Should().Be((true, false));
        sink.ToArray().Should().Equal(file);

        memory.Position = 6; // the model starts where the stream stands
        Logits(ModelFile.Load<float>(memory)).Should().Equal(Logits(network));
        memory.Position.Should().Be(memory.Length);
        memory.CanRead.Should().BeTrue("the caller's stream is left open");
        var trickle = new TrickleStream(file);
        Logits(ModelFile.Load<float>(trickle)).Should().Equal(Logits(network));
        (trickle.BytesRead, trickle.Closed).Should().Be((file.Length, false));
    }

    [Fact]
    public void An_onnx_model_written_to_a_stream_has_the_files_bytes_and_reads_back_from_any_stream()
    {
        var network = Network(2);
        string path = Path.Combine(Dir, "net.onnx");
        OnnxModel.Export(network, path);
        byte[] file = File.ReadAllBytes(path);
        var fromFile = OnnxModel.Import(path, out var fileShape);

        using var memory = new MemoryStream();
        OnnxModel.Export(network, memory);
        memory.ToArray().Should().Equal(file);
        var sink = new SinkStream();
        OnnxModel.Export(network, sink);
        (sink.Flushed, sink.Closed).Should().Be((true, false));
        sink.ToArray().Should().Equal(file);
        var any = new Sequential<float>(new Conv<float>(3, 4, 3, 3, new Random(2)), new Relu<float>(), new GlobalAvgPool2d<float>(), new Linear<float>(4, 10, new Random(3)));
        var wide = new SinkStream();
        OnnxModel.Export(any, wide, 32, 40, 3);
        OnnxModel.Export(any, path, 32, 40, 3);
        wide.ToArray().Should().Equal(File.ReadAllBytes(path), "the input shape is passed on");

        memory.Position = 0;
        Logits(OnnxModel.Import(memory, out var shape)).Should().Equal(Logits(fromFile));
        shape.Should().Be(fileShape);
        (memory.Position, memory.CanRead).Should().Be((memory.Length, true));
        var trickle = new TrickleStream(file);
        Logits(OnnxModel.Import(trickle)).Should().Equal(Logits(fromFile));
        (trickle.BytesRead, trickle.Closed).Should().Be((file.Length, false));
    }

    /// <summary>Damaged content: from a stream, seekable or not, the exception and message a file of the same bytes gives, the stream named instead of the path.</summary>
    [Fact]
    public void Damaged_model_streams_give_the_files_exceptions_and_messages()
    {
        string path = Path.Combine(Dir, "net.model");
        ModelFile.Save(Network(2), path);
        byte[] good = File.ReadAllBytes(path);
        byte[] flipped = (byte[])good.Clone();
        flipped[good.Length / 2] ^= 0x10;
        byte[] version = (byte[])good.Clone();
        version[4] = 9;
        byte[][] cases =
        [
            [], "LN"u8.ToArray(), "LNSM"u8.ToArray(), good[..100], good[..^1], flipped, version, [.. good, 0],
            "<html>not a model</html>"u8.ToArray(), [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3],
        ];
        foreach (byte[] bytes in cases)
        {
            File.WriteAllBytes(path, bytes);
            string expected = Outcome(() => ModelFile.Load<float>(path), path);
            expected.Should().StartWith(nameof(ModelFormatException));
            Outcome(() => ModelFile.Load<float>(new MemoryStream(bytes), "resource LeNet.model"), "resource LeNet.model").Should().Be(expected, $"{bytes.Length} bytes");
            var trickle = new TrickleStream(bytes);
            Outcome(() => ModelFile.Load<float>(trickle, "models/net.model"), "models/net.model").Should().Be(expected);
            trickle.Closed.Should().BeFalse();
        }

        var e = FluentActions.Invoking(() => ModelFile.Load<float>(new MemoryStream("XNSM and more"u8.ToArray()), "blob lenet/7")).Should().Throw<ModelFormatException>().Which;
        (e.FilePath, e.Message).Should().Be(("blob lenet/7", "blob lenet/7: expected magic \"LNSM\", found \"XNSM\" (not a LeNetSharp model)."));
        var trickled = new TrickleStream([.. "XNSM"u8, .. new byte[1000]]);
        FluentActions.Invoking(() => ModelFile.Load<float>(trickled)).Should().Throw<ModelFormatException>();
        trickled.BytesRead.Should().Be(4, "the magic is checked before the rest is read");
    }

    [Fact]
    public void Damaged_onnx_streams_give_the_files_exceptions_and_messages()
    {
        string path = Path.Combine(Dir, "net.onnx");
        OnnxModel.Export(Network(1), path);
        byte[] good = File.ReadAllBytes(path);
        byte[] damaged = (byte[])good.Clone();
        damaged[0] = 0x0F; // field 1 with wire type 7, which does not exist
        List<byte[]> cases = [[], damaged, "<html>not a model</html>"u8.ToArray(), new byte[100]];
        cases.AddRange(new[] { 1, 10, 100, good.Length / 2, good.Length - 1 }.Select(n => good[..n]));
        foreach (byte[] bytes in cases)
        {
            File.WriteAllBytes(path, bytes);
            string expected = Outcome(() => OnnxModel.Import(path), path);
            expected.Should().StartWith(nameof(OnnxFormatException));
            Outcome(() => OnnxModel.Import(new MemoryStream(bytes), "resource LeNet.onnx"), "resource LeNet.onnx").Should().Be(expected, $"{bytes.Length} bytes");
            var trickle = new TrickleStream(bytes);
            Outcome(() => OnnxModel.Import(trickle, out _, "https://example.org/net.onnx"), "https://example.org/net.onnx").Should().Be(expected);
            trickle.Closed.Should().BeFalse();
        }

        var e = FluentActions.Invoking(() => OnnxModel.Import(new MemoryStream(damaged))).Should().Throw<OnnxFormatException>().Which;
        e.FilePath.Should().Be("the stream");
        e.Message.Should().StartWith("the stream: not a readable ONNX protobuf (damaged or truncated):");
    }

    /// <summary>
    /// The ONNX ceiling (16 MiB): a seekable stream that says it holds more is refused before anything is read; one
    /// that cannot seek is read to one byte past the ceiling and refused, whatever it holds beyond.
    /// </summary>
    [Fact]
    public void An_onnx_stream_over_the_ceiling_is_refused_at_one_byte_past_it()
    {
        string path = Path.Combine(Dir, "big.onnx");
        using (var f = File.Create(path)) f.SetLength(OnnxModel.MaxFileBytes + 1);
        string file = Outcome(() => OnnxModel.Import(path), path);
        file.Should().Be("OnnxFormatException: NAME: is 16,777,217 bytes, more than the 16,777,216 an ONNX import accepts.");

        using var seekable = new MemoryStream(new byte[OnnxModel.MaxFileBytes + 1]);
        Outcome(() => OnnxModel.Import(seekable), "the stream").Should().Be(file);
        seekable.Position.Should().Be(0, "refused by its length, before reading");

        var endless = new TrickleStream([], length: long.MaxValue, maxRead: 1 << 16);
        Outcome(() => OnnxModel.Import(endless, "upload"), "upload")
            .Should().Be("OnnxFormatException: NAME: is at least 16,777,217 bytes, more than the 16,777,216 an ONNX import accepts.");
        endless.BytesRead.Should().Be(OnnxModel.MaxFileBytes + 1);
        endless.Closed.Should().BeFalse();
    }

    /// <summary>
    /// The model-file ceiling (1 GiB) on streams: a seekable stream that says it holds more is refused after the
    /// magic, before the rest is read; the read of any stream stops one byte past the ceiling (shown with a small
    /// ceiling: the same code reads both formats), whatever its length said.
    /// </summary>
    [Fact]
    public void A_model_stream_over_the_ceiling_is_refused_and_a_length_is_never_trusted()
    {
        var huge = new TrickleStream("LNSM"u8.ToArray(), length: ModelFile.MaxFileBytes + 1, seekable: true);
        Outcome(() => ModelFile.Load<float>(huge), "the stream")
            .Should().Be("ModelFormatException: NAME: is 1,073,741,825 bytes, above the 1,073,741,824 this format accepts.");
        huge.BytesRead.Should().Be(4);

        static Exception TooLarge(string size) => new InvalidDataException(size);
        var endless = new TrickleStream([], length: long.MaxValue);
        FluentActions.Invoking(() => SafeFile.ReadStream(endless, "ab"u8, 1000, TooLarge)).Should().Throw<InvalidDataException>().WithMessage("at least 1,001 bytes");
        endless.BytesRead.Should().Be(999, "the head counts: 2 + 999 bytes is one past the ceiling");

        var lying = new TrickleStream([], length: 5000, seekable: true, claimedLength: 10);
        FluentActions.Invoking(() => SafeFile.ReadStream(lying, [], 1000, TooLarge)).Should().Throw<InvalidDataException>().WithMessage("at least 1,001 bytes");
        lying.BytesRead.Should().Be(1001);

        var shortOne = new TrickleStream(new byte[300], seekable: true, claimedLength: 1 << 30);
        FluentActions.Invoking(() => SafeFile.ReadStream(shortOne, [], 1000, TooLarge)).Should().Throw<InvalidDataException>()
            .WithMessage("1,073,741,824 bytes", "a seekable stream's length above the ceiling is refused before reading");
        SafeFile.ReadStream(new TrickleStream(new byte[300]), "xy"u8, 1000, TooLarge).Should().HaveCount(302);
        SafeFile.ReadStream(new TrickleStream(new byte[998]), "xy"u8, 1000, TooLarge).Should().HaveCount(1000, "the ceiling itself is accepted");
    }

    [Fact]
    public void Streams_that_cannot_be_read_or_written_are_argument_errors_and_a_failed_save_writes_nothing()
    {
        var network = Network(1);
        var readOnly = new MemoryStream(new byte[10], writable: false);
        FluentActions.Invoking(() => ModelFile.Save(network, readOnly)).Should().Throw<ArgumentException>().WithMessage("The stream cannot be written.*");
        FluentActions.Invoking(() => OnnxModel.Export(network, readOnly)).Should().Throw<ArgumentException>().WithMessage("The stream cannot be written.*");
        var writeOnly = new SinkStream();
        FluentActions.Invoking(() => ModelFile.Load<float>(writeOnly)).Should().Throw<ArgumentException>().WithMessage("The stream cannot be read.*");
        FluentActions.Invoking(() => OnnxModel.Import(writeOnly)).Should().Throw<ArgumentException>().WithMessage("The stream cannot be read.*");
        FluentActions.Invoking(() => ModelFile.Load<float>((Stream)null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => OnnxModel.Import((Stream)null!)).Should().Throw<ArgumentNullException>();

        var sink = new SinkStream();
        FluentActions.Invoking(() => ModelFile.Save(new Sequential<float>(new Unregistered()), sink)).Should().Throw<NotSupportedException>();
        FluentActions.Invoking(() => OnnxModel.Export(new Sequential<float>(new Unregistered()), sink)).Should().Throw<NotSupportedException>();
        FluentActions.Invoking(() => OnnxModel.Export(network, sink, 5, 5, 1)).Should().Throw<ArgumentException>();
        sink.ToArray().Should().BeEmpty("every check comes before the first byte");
    }

    private sealed class Unregistered : ILayer<float>
    {
        public string Name => "Unregistered";
        public IReadOnlyList<Parameter<float>> Parameters => [];
        public int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();
        public Tensor<float> Forward(Tensor<float> input) => input;
        public Tensor<float> Backward(Tensor<float> outputGradient) => outputGradient;
        public LayerDescription Describe() => new("Unregistered");
        public ILayer<float> Clone() => new Unregistered();
    }
}

/// <summary>
/// A read-only stream of <paramref name="head"/> then zeros up to <paramref name="length"/> bytes, returning 1 to
/// <paramref name="maxRead"/> bytes a read (seeded). It cannot seek unless <paramref name="seekable"/>; then its Length
/// is <paramref name="claimedLength"/> when given (a stream that misreports it). It records what was read and whether
/// it was closed.
/// </summary>
internal sealed class TrickleStream(byte[] head, long length = -1, bool seekable = false, long? claimedLength = null, int maxRead = 7) : Stream
{
    private readonly Random _random = new(7);
    private readonly long _length = length < 0 ? head.Length : length;

    public long BytesRead { get; private set; }

    public bool Closed { get; private set; }

    public override bool CanRead => !Closed;

    public override bool CanSeek => seekable && !Closed;

    public override bool CanWrite => false;

    public override long Length => seekable ? claimedLength ?? _length : throw new NotSupportedException();

    public override long Position
    {
        get => seekable ? BytesRead : throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(Closed, this);
        int n = (int)Math.Min(Math.Min(buffer.Length, _random.Next(1, maxRead + 1)), _length - BytesRead);
        if (n <= 0) return 0;
        buffer[..n].Clear();
        if (BytesRead < head.Length)
        {
            int copied = (int)Math.Min(n, head.Length - BytesRead);
            head.AsSpan((int)BytesRead, copied).CopyTo(buffer);
        }

        BytesRead += n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Closed = true;
        base.Dispose(disposing);
    }
}

/// <summary>A write-only stream that cannot seek: it keeps what was written and records whether it was flushed or closed.</summary>
internal sealed class SinkStream : Stream
{
    private readonly MemoryStream _written = new();

    public bool Flushed { get; private set; }

    public bool Closed { get; private set; }

    public byte[] ToArray() => _written.ToArray();

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => !Closed;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(Closed, this);
        _written.Write(buffer);
        Flushed = false;
    }

    public override void Flush() => Flushed = true;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        Closed = true;
        base.Dispose(disposing);
    }
}
