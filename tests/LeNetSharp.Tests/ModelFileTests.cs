using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

public sealed class ModelFileTests : TempDirectoryTest
{
    private string Saved(out Sequential<float> net)
    {
        net = LeNet.Create<float>(3);
        foreach (var p in net.Parameters.Where(p => p.Name == "bias"))
            for (int i = 0; i < p.Value.Length; i++) p.Value.Data[i] = 0.01f * (i + 1);
        string path = Path.Combine(Dir, "lenet.model");
        ModelFile.Save(net, path);
        return path;
    }

    [Fact]
    public void Round_trip_gives_bit_identical_logits()
    {
        string path = Saved(out var net);
        var x = new Tensor<float>(4, 28, 28, 1);
        var random = new Random(1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.NextSingle();

        float[] before = net.Forward(x).Data.ToArray();
        var loaded = ModelFile.Load<float>(path);
        float[] after = loaded.Forward(x).Data.ToArray();

        after.Should().Equal(before);
        loaded.Layers.Select(l => l.Name).Should().Equal(net.Layers.Select(l => l.Name));
    }

    [Fact]
    public void A_flipped_byte_is_caught_by_the_checksum()
    {
        string path = Saved(out _);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(path, bytes);

        var act = () => ModelFile.Load<float>(path);

        act.Should().Throw<ModelFormatException>().WithMessage($"{path}: checksum mismatch: *");
    }

    [Fact]
    public void A_truncated_file_is_reported()
    {
        string path = Saved(out _);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..100]);
        var act = () => ModelFile.Load<float>(path);
        act.Should().Throw<ModelFormatException>().WithMessage($"{path}: checksum mismatch*");

        File.WriteAllBytes(path, [(byte)'L', (byte)'N']);
        act.Should().Throw<ModelFormatException>().WithMessage($"{path}: truncated: 2 bytes, a model file has at least *");
    }

    [Fact]
    public void Wrong_magic_and_version_are_reported()
    {
        string path = Saved(out _);
        byte[] bytes = File.ReadAllBytes(path);
        bytes[4] = 9;
        File.WriteAllBytes(path, bytes);
        FluentActions.Invoking(() => ModelFile.Load<float>(path))
            .Should().Throw<ModelFormatException>().WithMessage($"{path}: expected format version 1 to 3, found 9.");

        bytes[0] = (byte)'X';
        File.WriteAllBytes(path, bytes);
        FluentActions.Invoking(() => ModelFile.Load<float>(path))
            .Should().Throw<ModelFormatException>().WithMessage($"{path}: expected magic \"LNSM\", found \"XNSM\"*");
    }

    [Fact]
    public void A_failed_save_keeps_the_previous_model()
    {
        string path = Saved(out _);
        byte[] before = File.ReadAllBytes(path);
        var unsupported = new Sequential<float>(new UnknownLayer());

        var act = () => ModelFile.Save(unsupported, path);

        act.Should().Throw<NotSupportedException>().WithMessage("*cannot store layer 'Unknown'*");
        File.ReadAllBytes(path).Should().Equal(before);
    }

    [Fact]
    public void Double_model_loads_as_float()
    {
        var net = LeNet.Create<double>(2);
        string path = Path.Combine(Dir, "d.model");
        ModelFile.Save(net, path);

        var loaded = ModelFile.Load<float>(path);

        loaded.Parameters[0].Value.Data[5].Should().Be((float)net.Parameters[0].Value.Data[5]);
    }

    private sealed class UnknownLayer : ILayer<float>
    {
        public string Name => "Unknown";
        public IReadOnlyList<Parameter<float>> Parameters => [];
        public int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();
        public Tensor<float> Forward(Tensor<float> input) => input;
        public Tensor<float> Backward(Tensor<float> outputGradient) => outputGradient;
        public LayerDescription Describe() => new("Unknown"); // never registered
        public ILayer<float> Clone() => throw new NotSupportedException("Unknown cannot be copied.");
    }
}

public sealed class ModelFileFormatTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"lenetsharp-{Guid.NewGuid():N}.model");

    public void Dispose() => File.Delete(_path);

    /// <summary>Writes a model file by hand from the documented format: one Linear(3→2) layer, its weight of the given shape.</summary>
    private void WriteLinearModel(int[] weightShape)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write("LNSM"u8);
            w.Write((ushort)1);
            w.Write((byte)4);
            w.Write(1);                  // layers
            w.Write((byte)5);            // Linear
            w.Write(3);
            w.Write(2);
            w.Write((byte)2);            // tensors
            foreach (var (name, shape) in new[] { ("weight", weightShape), ("bias", new[] { 2 }) })
            {
                w.Write((byte)name.Length);
                w.Write(System.Text.Encoding.UTF8.GetBytes(name));
                w.Write((byte)shape.Length);
                foreach (int d in shape) w.Write(d);
                for (int i = 0; i < shape.Aggregate(1, (a, d) => a * d); i++) w.Write(0.5f * i);
            }
        }

        ms.Write(System.Security.Cryptography.SHA256.HashData(ms.ToArray()));
        File.WriteAllBytes(_path, ms.ToArray());
    }

    [Fact]
    public void A_hand_written_file_in_the_documented_format_loads()
    {
        WriteLinearModel([3, 2]);
        var net = ModelFile.Load<float>(_path);
        var linear = net.Layers.Should().ContainSingle().Which.Should().BeOfType<LeNetSharp.Layers.Linear<float>>().Subject;
        linear.Weight.Value.Data.Should().Equal(0f, 0.5f, 1f, 1.5f, 2f, 2.5f);
    }

    [Fact]
    public void A_shape_mismatch_names_the_layer_tensor_and_both_shapes()
    {
        WriteLinearModel([3, 3]);
        FluentActions.Invoking(() => ModelFile.Load<float>(_path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{_path}: layer 0: expected tensor 'weight' (3, 2), found 'weight' (3, 3).");
    }
}
