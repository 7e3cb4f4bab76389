using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>Against files written by real NumPy (Fixtures/make_fixtures.py).</summary>
public sealed class NumpyInteropTests : TempDirectoryTest
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void Reads_float32_and_float64_arrays_and_scalars()
    {
        var f32 = Npy.Read(Fixture("f32_2x3.npy"));
        f32.DType.Should().Be(NpyDType.Float32);
        f32.Shape.Should().Equal(2, 3);
        f32.Values.Should().Equal(0, 0.25, 0.5, 0.75, 1, 1.25);

        var f64 = Npy.Read(Fixture("f64_vec.npy"));
        f64.DType.Should().Be(NpyDType.Float64);
        f64.Shape.Should().Equal(4);
        f64.Values.Should().Equal(1.5, -2.25, 3e-300, 1e300);

        var scalar = Npy.Read(Fixture("scalar.npy"));
        scalar.Shape.Should().BeEmpty();
        scalar.Values.Should().Equal(7.5);
    }

    [Theory]
    [InlineData("v2.npy")]
    [InlineData("v3.npy")]
    public void Reads_format_versions_2_and_3(string file)
    {
        var a = Npy.Read(Fixture(file));
        a.Shape.Should().Equal(3, 4);
        a.Values[0].Should().Be(-1);
        a.Values[11].Should().Be(1);
    }

    [Theory]
    [InlineData("fortran.npy", "*fortran.npy: Fortran-order arrays are not supported*")]
    [InlineData("int32.npy", "*int32.npy: unsupported dtype '<i4'; expected '<f4' (float32) or '<f8' (float64), little-endian.")]
    [InlineData("bigendian.npy", "*bigendian.npy: unsupported dtype '>f8'*")]
    public void Refuses_what_it_cannot_read_with_a_clear_message(string file, string message)
    {
        FluentActions.Invoking(() => Npy.Read(Fixture(file))).Should().Throw<ModelFormatException>().WithMessage(message);
    }

    [Fact]
    public void Truncated_npy_is_reported()
    {
        string path = Path.Combine(Dir, "short.npy");
        File.WriteAllBytes(path, File.ReadAllBytes(Fixture("f64_vec.npy"))[..^3]);
        FluentActions.Invoking(() => Npy.Read(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: truncated: shape (4) of '<f8' needs 32 data bytes, the file has 29.");
        File.WriteAllBytes(path, "not numpy"u8.ToArray());
        FluentActions.Invoking(() => Npy.Read(path)).Should().Throw<ModelFormatException>().WithMessage("*not a .npy file*");
    }

    [Theory]
    [InlineData(NpyDType.Float32)]
    [InlineData(NpyDType.Float64)]
    public void Write_then_read_round_trips_and_matches_numpy_layout(NpyDType dtype)
    {
        string path = Path.Combine(Dir, "x.npy");
        var original = new NpyArray([2, 3], [0, 0.25, 0.5, 0.75, 1, 1.25], dtype);

        Npy.Write(path, original);
        var back = Npy.Read(path);

        back.Shape.Should().Equal(2, 3);
        back.Values.Should().Equal(original.Values);
        back.DType.Should().Be(dtype);
        if (dtype == NpyDType.Float32) File.ReadAllBytes(path).Should().Equal(File.ReadAllBytes(Fixture("f32_2x3.npy")), "byte for byte what np.save wrote");
    }

    [Theory]
    [InlineData("tutorial.npz")]
    [InlineData("tutorial_compressed.npz")]
    public void Imported_tutorial_weights_reproduce_numpys_logits(string file)
    {
        var net = TutorialWeights.Import<double>(Fixture(file));
        var inputs = Npy.Read(Fixture("inputs.npy")).ToTensor<double>();
        var expected = Npy.Read(Fixture("logits.npy"));

        var logits = net.Forward(inputs);

        logits.Shape.ToArray().Should().Equal(expected.Shape);
        for (int i = 0; i < expected.Values.Length; i++) logits.Data[i].Should().BeApproximately(expected.Values[i], 1e-5);
    }

    [Fact]
    public void Float_network_from_tutorial_weights_matches_too()
    {
        var net = TutorialWeights.Import<float>(Fixture("tutorial.npz"));
        var logits = net.Forward(Npy.Read(Fixture("inputs.npy")).ToTensor<float>());
        var expected = Npy.Read(Fixture("logits.npy")).Values;
        for (int i = 0; i < expected.Length; i++) ((double)logits.Data[i]).Should().BeApproximately(expected[i], 1e-4);
    }

    [Fact]
    public void Export_writes_the_tutorial_layout_and_reimports_exactly()
    {
        var net = LeNet.Create<float>(4);
        string path = Path.Combine(Dir, "export.npz");

        TutorialWeights.Export(net, path);
        var arrays = Npy.ReadNpz(path);
        var back = TutorialWeights.Import<float>(path);

        arrays.Keys.Should().BeEquivalentTo("k1", "b1", "k2", "b2", "w3", "b3");
        arrays["k2"].Shape.Should().Equal(5, 5, 6, 16);
        arrays["w3"].DType.Should().Be(NpyDType.Float64);
        back.Parameters.SelectMany(p => p.Value.Data).Should().Equal(net.Parameters.SelectMany(p => p.Value.Data));
    }

    [Fact]
    public void Import_names_a_missing_key_or_a_wrong_shape()
    {
        string path = Path.Combine(Dir, "bad.npz");
        var arrays = Npy.ReadNpz(Fixture("tutorial.npz")).ToDictionary();
        arrays.Remove("b2");
        Npy.WriteNpz(path, arrays);
        FluentActions.Invoking(() => TutorialWeights.Import<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage("*missing array 'b2'*");

        arrays["b2"] = new NpyArray([17], new double[17]);
        Npy.WriteNpz(path, arrays, compressed: true);
        FluentActions.Invoking(() => TutorialWeights.Import<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage("*array 'b2' should be (16), found (17).");
    }

    [Fact]
    public void A_zip_that_is_not_npz_is_reported()
    {
        string path = Path.Combine(Dir, "junk.npz");
        File.WriteAllText(path, "not a zip");
        FluentActions.Invoking(() => Npy.ReadNpz(path)).Should().Throw<ModelFormatException>().WithMessage("*not a valid .npz (zip) archive*");
    }
}
