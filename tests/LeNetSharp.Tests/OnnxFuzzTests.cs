using System.Diagnostics;
using Google.Protobuf;
using LeNetSharp.Compute;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Onnx.Protobuf;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;
using Xunit.Abstractions;
using AttributeType = LeNetSharp.Onnx.Protobuf.AttributeProto.Types.AttributeType;
using DataType = LeNetSharp.Onnx.Protobuf.TensorProto.Types.DataType;

namespace LeNetSharp.Tests;

/// <summary>
/// Hostile ONNX files, built here with the protobuf classes: small files that would cost gigabytes or minutes to run,
/// weights and settings that are not finite, graphs <c>onnx.checker</c> refuses; then seeded random mutations of a
/// valid export, of its bytes and of its protobuf fields. Every case must import or end in one
/// <see cref="OnnxFormatException"/> line naming the file, quickly and with bounded allocation, and a network that
/// imports must be within the library's ceilings (<see cref="NetworkLimits"/>) with finite weights. Also the same
/// ceilings and finiteness in the model file, the tutorial's .npz, <see cref="Sequential{T}"/> and the exporters.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class OnnxFuzzTests(ITestOutputHelper output) : TempDirectoryTest
{
    /// <summary>What one refused crafted case may allocate (the 100,000-node file parses to about 150 MB of messages).</summary>
    private const long CraftedAllocationCeiling = 256L << 20;

    public static TheoryData<string> CraftedCases => new(Crafted.Keys);

    /// <summary>Each crafted case and a piece of the one-line refusal it must get.</summary>
    private static readonly Dictionary<string, (Func<ModelProto> Build, string Refusal)> Crafted = new()
    {
        ["Conv pads 1024 followed by pools (a 1.3 KB file)"] = (PaddedByPools,
            "node 'conv1' (op Conv) as layer 0 (Conv 5x5 1→6 stride 1 pad 1024) brings what one (28, 28, 1) image holds to 133,088,704 elements (layer outputs and convolution patches), more than the 33,554,432 a network may use."),
        ["1x1 Conv with 60,000 output channels"] = (Wide,
            "node 'wide' (op Conv) as layer 0 (Conv 1x1 1→60000 stride 1 pad 0) brings what one (28, 28, 1) image holds to 47,040,784 elements"),
        ["100,000 Relu nodes"] = (() => Relus(100_000),
            "node 'relu1023' (op Relu) as layer 1024 (Relu): a network may have at most 1,024 layers."),
        ["8 wide Convs sharing one weight"] = (SharedWideConvs,
            "node 'conv7' (op Conv) as layer 7 (Conv 3x3 256→256 stride 1 pad 1) brings the work for one (32, 32, 256) image to 4,831,838,208 multiply-adds, more than the 4,294,967,296 a network may take."),
        ["a NaN weight"] = (() => LeNetLike(w => w.Initializer[0].RawData = Raw(Weights(150, 1, nanAt: 56))),
            "tensor 'w1' (6, 1, 5, 5), read by node 'conv1' (op Conv): element 56 is NaN, expected a finite number."),
        ["an infinite bias"] = (() => LeNetLike(w => w.Initializer[3].RawData = Raw([0, 0, 0, float.NegativeInfinity, 0, 0, 0, 0, 0, 0])),
            "tensor 'b3' (10), read by node 'fc' (op Gemm): element 3 is -Infinity, expected a finite number."),
        ["Gemm alpha = inf"] = (() => LeNetLike(g => Node(g, "fc").Attribute.Add(Float("alpha", float.PositiveInfinity))),
            "invalid node 'fc' (op Gemm): attribute 'alpha' is Infinity, expected a finite number."),
        ["Gemm beta = NaN"] = (() => LeNetLike(g => Node(g, "fc").Attribute.Add(Float("beta", float.NaN))),
            "invalid node 'fc' (op Gemm): attribute 'beta' is NaN, expected a finite number."),
        ["Gemm alpha that overflows the weights"] = (() => LeNetLike(g =>
            {
                Node(g, "fc").Attribute.Add(Float("alpha", 1e38f));
                g.Initializer[2].RawData = Raw(Enumerable.Repeat(8f, 8640).ToArray());
            }),
            "layer 4 (Linear 864→10): weight[0] is Infinity, expected a finite number. A product of the graph's values (Gemm's alpha or beta times its weights) overflows float32."),
        ["LeakyRelu alpha = −inf"] = (() => LeNetLike(g => { Node(g, "relu1").OpType = "LeakyRelu"; Node(g, "relu1").Attribute.Add(Float("alpha", float.NegativeInfinity)); }),
            "invalid node 'relu1' (op LeakyRelu): attribute 'alpha' is -Infinity, expected a finite number."),
        ["a node whose output is its own input"] = (() => LeNetLike(g => Node(g, "relu1").Input[0] = "r1"),
            "invalid node 'relu1' (op Relu): its input 'r1' is its own output (a cycle)."),
        ["a node that redefines the graph input"] = (() => LeNetLike(g => { Node(g, "relu1").Output[0] = "x"; Node(g, "pool1").Input[0] = "x"; }),
            "invalid node 'relu1' (op Relu): its output 'x' redefines the graph input 'x'; every name is assigned once."),
        ["a node that redefines an initializer"] = (() => LeNetLike(g => { Node(g, "relu1").Output[0] = "w3"; Node(g, "pool1").Input[0] = "w3"; }),
            "invalid node 'relu1' (op Relu): its output 'w3' redefines the initializer 'w3'; every name is assigned once."),
        ["two nodes with one output name"] = (() => LeNetLike(g => Node(g, "pool1").Output[0] = "r1"),
            "invalid node 'pool1' (op MaxPool): its output 'r1' redefines the output of node 'relu1' (op Relu); every name is assigned once."),
        ["nodes out of topological order"] = (() => LeNetLike(g => { var relu = Node(g, "relu1"); g.Node.Remove(relu); g.Node.Insert(0, relu); }),
            "invalid node 'relu1' (op Relu): its input 'c1' is not defined before it (nodes must be in topological order, without cycles)."),
        ["a Relu with two inputs"] = (() => LeNetLike(g => Node(g, "relu1").Input.Add("c1")),
            "invalid node 'relu1' (op Relu): expected 1 input, found 2."),
        ["a Conv with one input"] = (() => LeNetLike(g => { Node(g, "conv1").Input.RemoveAt(2); Node(g, "conv1").Input.RemoveAt(1); }),
            "invalid node 'conv1' (op Conv): expected 2 to 3 inputs, found 1."),
        ["a Gemm with an empty required input"] = (() => LeNetLike(g => Node(g, "fc").Input[1] = ""),
            "invalid node 'fc' (op Gemm): its required input 1 is empty."),
        ["a tensor with raw_data and float_data"] = (() => LeNetLike(g => g.Initializer[1].FloatData.Add(new float[6])),
            "tensor 'b1': both float_data and raw_data hold data; a tensor has exactly one data field."),
        ["a tensor with fewer values than its dims"] = (() => LeNetLike(g =>
            {
                g.Initializer[1].ClearRawData();
                g.Initializer[1].FloatData.Add(new float[5]);
            }),
            "tensor 'b1' (6): expected 6 values, found 5."),
        ["a tensor without data"] = (() => LeNetLike(g => g.Initializer[1].ClearRawData()),
            "tensor 'b1': no data (6 elements of Float expected)."),
        ["float values in int64_data"] = (() => LeNetLike(g =>
            {
                g.Initializer[1].ClearRawData();
                g.Initializer[1].Int64Data.Add(new long[6]);
            }),
            "tensor 'b1': Float values belong in float_data, found int64_data."),
        ["an attribute given twice"] = (() => LeNetLike(g => Node(g, "pool1").Attribute.Add(Ints("strides", 2, 2))),
            "invalid node 'pool1' (op MaxPool): attribute 'strides' appears twice."),
        ["a graph output no node computes"] = (() => LeNetLike(g => g.Output[0].Name = "z"),
            "the graph output 'z' is computed by no node."),
    };

    [Theory]
    [MemberData(nameof(CraftedCases))]
    public void A_crafted_hostile_file_is_refused_quickly_in_one_line(string name)
    {
        var (build, refusal) = Crafted[name];
        string path = Path.Combine(Dir, "hostile.onnx");
        File.WriteAllBytes(path, build().ToByteArray());
        var clock = Stopwatch.StartNew();
        var (error, allocated) = HostileInputTests.Measure(() => OnnxModel.Import(path));
        output.WriteLine($"{name}: {new FileInfo(path).Length:N0} bytes, refused in {clock.ElapsedMilliseconds} ms, {allocated / 1e6:F1} MB allocated: {error?.Message}");
        error.Should().BeOfType<OnnxFormatException>();
        error!.Message.Should().Match($"{path}: *{refusal}*").And.NotContainAny("\n", "\r");
        allocated.Should().BeLessThan(CraftedAllocationCeiling);
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void The_valid_crafted_network_imports_with_a_finite_answer()
    {
        string path = Path.Combine(Dir, "valid.onnx");
        File.WriteAllBytes(path, LeNetLike(_ => { }).ToByteArray());
        var net = OnnxModel.Import(path);
        net.Predict(new float[28 * 28]).Probabilities.Should().OnlyContain(p => float.IsFinite(p));
        File.WriteAllBytes(path, Relus(NetworkLimits.MaxLayers - 2).ToByteArray()); // Flatten, 1,022 Relus and Linear: the most layers a network has
        OnnxModel.Import(path).Layers.Should().HaveCount(NetworkLimits.MaxLayers);
    }

    [Fact]
    public void Random_byte_damage_of_a_valid_export()
    {
        byte[] valid = ValidExport();
        var random = new Random(31);
        RunCases("bytes", 400, i =>
        {
            byte[] bytes = (byte[])valid.Clone();
            switch (random.Next(4))
            {
                case 0:
                    for (int f = random.Next(1, 9); f > 0; f--) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                    return (bytes, $"case {i}: bit flips");
                case 1:
                    int start = random.Next(bytes.Length);
                    bytes.AsSpan(start, Math.Min(random.Next(1, 33), bytes.Length - start)).Fill((byte)random.Next(256));
                    return (bytes, $"case {i}: byte run at {start}");
                case 2:
                    int keep = random.Next(bytes.Length);
                    return (bytes[..keep], $"case {i}: truncated to {keep}");
                default:
                    var extra = new byte[random.Next(1, 512)];
                    random.NextBytes(extra);
                    return ([.. bytes, .. extra], $"case {i}: {extra.Length} bytes appended");
            }
        });
    }

    [Fact]
    public void Random_field_mutations_of_a_valid_export()
    {
        byte[] valid = ValidExport();
        var random = new Random(32);
        long[] huge = [0, 1, -1, 3, 1024, 1025, 1 << 16, 1 << 22, int.MaxValue, long.MaxValue, long.MinValue];
        float[] odd = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -1e30f, 0, 1e-45f];
        RunCases("fields", 600, i =>
        {
            var model = ModelProto.Parser.ParseFrom(valid);
            var g = model.Graph;
            var node = g.Node[random.Next(g.Node.Count)];
            var names = g.Node.SelectMany(n => n.Input.Concat(n.Output)).Concat(g.Initializer.Select(t => t.Name)).Append("").Distinct().ToArray();
            var tensor = g.Initializer[random.Next(g.Initializer.Count)];
            string what;
            switch (random.Next(13))
            {
                case 0:
                    if (tensor.Dims.Count > 0) tensor.Dims[random.Next(tensor.Dims.Count)] = huge[random.Next(huge.Length)];
                    what = $"dims of '{tensor.Name}'";
                    break;
                case 1:
                    byte[] raw = tensor.RawData.ToByteArray();
                    tensor.RawData = ByteString.CopyFrom(raw.AsSpan(0, random.Next(raw.Length + 1)).ToArray().Concat(new byte[random.Next(2) * 4]).ToArray());
                    if (random.Next(3) == 0) tensor.FloatData.Add(1f);
                    what = $"data of '{tensor.Name}'";
                    break;
                case 2:
                    byte[] data = tensor.RawData.ToByteArray();
                    if (data.Length >= 4) BitConverter.GetBytes(odd[random.Next(odd.Length)]).CopyTo(data, 4 * random.Next(data.Length / 4));
                    tensor.RawData = ByteString.CopyFrom(data);
                    what = $"a value of '{tensor.Name}'";
                    break;
                case 3:
                    if (node.Input.Count > 0) node.Input[random.Next(node.Input.Count)] = names[random.Next(names.Length)];
                    what = $"an input of '{node.Name}'";
                    break;
                case 4:
                    node.Output[random.Next(node.Output.Count)] = names[random.Next(names.Length)];
                    what = $"an output of '{node.Name}'";
                    break;
                case 5:
                    int a = random.Next(g.Node.Count), b = random.Next(g.Node.Count);
                    (g.Node[a], g.Node[b]) = (g.Node[b], g.Node[a]);
                    what = $"nodes {a} and {b} swapped";
                    break;
                case 6:
                    g.Node.Insert(random.Next(g.Node.Count + 1), node.Clone());
                    what = $"'{node.Name}' twice";
                    break;
                case 7:
                    g.Node.Remove(node);
                    what = $"'{node.Name}' removed";
                    break;
                case 8:
                    var ints = node.Attribute.Where(x => x.Type is AttributeType.Int or AttributeType.Ints).ToArray();
                    if (ints.Length > 0)
                    {
                        var attribute = ints[random.Next(ints.Length)];
                        if (attribute.Ints.Count > 0) attribute.Ints[random.Next(attribute.Ints.Count)] = huge[random.Next(huge.Length)];
                        else attribute.I = huge[random.Next(huge.Length)];
                    }

                    what = $"an int attribute of '{node.Name}'";
                    break;
                case 9:
                    node.Attribute.Add(Float(random.Next(2) == 0 ? "alpha" : "epsilon", odd[random.Next(odd.Length)]));
                    what = $"a float attribute of '{node.Name}'";
                    break;
                case 10:
                    string[] ops = ["Conv", "Relu", "MaxPool", "AveragePool", "Gemm", "Flatten", "BatchNormalization", "Identity", "Pad", "Add", "Softmax", "Transpose"];
                    node.OpType = ops[random.Next(ops.Length)];
                    what = $"'{node.Name}' as {node.OpType}";
                    break;
                case 11:
                    var dim = g.Input[0].Type.TensorType.Shape.Dim[random.Next(1, 4)];
                    dim.DimValue = huge[random.Next(huge.Length)];
                    what = "an input dimension";
                    break;
                default:
                    tensor.DataType = random.Next(0, 20);
                    what = $"the data type of '{tensor.Name}'";
                    break;
            }

            return (model.ToByteArray(), $"case {i}: {what}");
        });
    }

    /// <summary>A LeNet export with a BatchNorm and biases: what the mutations start from.</summary>
    private static byte[] ValidExport()
    {
        var random = new Random(5);
        var net = new Sequential<float>(new Conv<float>(1, 4, 5, 5, random), new BatchNorm2d<float>(4), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(4, 6, 3, 3, random, padding: 1), new Relu<float>(), new MaxPool2d<float>(3, 2, 1), new Flatten<float>(),
            new Linear<float>(6 * 6 * 6, 10, random));
        return ExportedBytes(net, 28, 28, 1);
    }

    internal static byte[] ExportedBytes(Sequential<float> net, int height, int width, int channels)
    {
        string path = Path.Combine(Path.GetTempPath(), $"lenetsharp-{Guid.NewGuid():N}.onnx");
        try
        {
            OnnxModel.Export(net, path, height, width, channels);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Imports <paramref name="cases"/> files: each must import as a network within the ceilings, with finite weights and
    /// a finite-or-not answer that runs, or be one <see cref="OnnxFormatException"/> line naming the file; none may
    /// allocate more than 8 × the file + 64 MB or take over 2 s.
    /// </summary>
    private void RunCases(string kind, int cases, Func<int, (byte[] Bytes, string What)> make)
    {
        string path = Path.Combine(Dir, "case.onnx");
        var failures = new List<string>();
        int loaded = 0, refused = 0;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < cases; i++)
        {
            var (bytes, what) = make(i);
            File.WriteAllBytes(path, bytes);
            var one = Stopwatch.StartNew();
            Sequential<float>? net = null;
            (int Height, int Width, int Channels) shape = default;
            var (error, allocated) = HostileInputTests.Measure(() => net = OnnxModel.Import(path, out shape));
            if (one.Elapsed > TimeSpan.FromSeconds(2)) failures.Add($"{what}: took {one.Elapsed.TotalSeconds:F1} s");
            if (allocated > 8L * bytes.Length + (64 << 20)) failures.Add($"{what}: allocated {allocated:N0} bytes for a {bytes.Length:N0}-byte file");
            if (error is null)
            {
                loaded++;
                var problem = Within(net!, shape);
                if (problem is not null) failures.Add($"{what}: imported, but {problem}");
            }
            else if (error is not OnnxFormatException || !error.Message.StartsWith(path + ": ", StringComparison.Ordinal) || error.Message.Contains('\n'))
            {
                failures.Add($"{what}: {error.GetType().Name}: {error.Message}");
            }
            else
            {
                refused++;
            }
        }

        string summary = $"onnx {kind}: {cases} cases, {loaded} imported, {refused} refused cleanly, {failures.Count} failures, {clock.Elapsed.TotalSeconds:F1} s";
        output.WriteLine(summary);
        failures.Should().BeEmpty(summary + ":\n" + string.Join("\n", failures.Take(20)));
        refused.Should().BeGreaterThan(cases / 4);
    }

    /// <summary>Null when the imported network is within the ceilings, finite, and runs one image; else what is wrong.</summary>
    private static string? Within(Sequential<float> net, (int Height, int Width, int Channels) shape)
    {
        try
        {
            NetworkLimits.Check(net.Layers, [shape.Height, shape.Width, shape.Channels], problem => new InvalidOperationException(problem));
            for (int i = 0; i < net.Layers.Count; i++)
            {
                if (NetworkLimits.ValueProblem(net.Layers[i]) is { } problem) return $"layer {i}: {problem}";
            }

            net.Backend = ComputeBackend.Reference; // no width calibration per case
            net.Forward(new Tensor<float>([1, shape.Height, shape.Width, shape.Channels]));
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }

    // ---- The same ceilings and finiteness in the other loaders, the savers and Sequential ----

    [Fact]
    public void A_model_file_that_would_cost_too_much_per_image_loads_but_is_refused_before_it_runs()
    {
        // The attack's file as a model file: valid checksum, a few hundred bytes. It records no input size, so the loader
        // cannot price it; everything that runs it can, before allocating.
        string path = Path.Combine(Dir, "padded.model");
        var random = new Random(1);
        ModelFile.Save(new Sequential<float>(new Conv<float>(1, 6, 5, 5, random, padding: 1024), new Relu<float>(), new MaxPool2x2<float>(),
            new MaxPool2d<float>(1024, 1024), new Flatten<float>(), new Linear<float>(6, 10, random)), path);
        var net = ModelFile.Load<float>(path);
        string refusal = "*layer 0 (Conv 5x5 1→6 stride 1 pad 1024) brings what one (28, 28, 1) image holds to 133,088,704 elements*";
        FluentActions.Invoking(() => net.Predict(new float[28 * 28])).Should().Throw<ArgumentException>().WithMessage(refusal);
        FluentActions.Invoking(() => net.Forward(new Tensor<float>([1, 28, 28, 1]))).Should().Throw<ArgumentException>().WithMessage(refusal);
        FluentActions.Invoking(() => new Predictor(net, 28, 28, 1)).Should().Throw<ArgumentException>().WithMessage(refusal);
        FluentActions.Invoking(() => Evaluator.Evaluate(net, new Data.ImageDataset(new byte[4 * 784], new byte[4], 28, 28, 1, 10))).Should().Throw<ArgumentException>().WithMessage(refusal);
        FluentActions.Invoking(() => OnnxModel.Export(net, Path.Combine(Dir, "padded.onnx"))).Should().Throw<ArgumentException>().WithMessage(refusal);

        var stderr = new StringWriter();
        var clock = Stopwatch.StartNew();
        Trainer.Program.Run(["predict", "--model", path, Path.Combine(Dir, "absent.png")], new StringWriter(), stderr).Should().Be(1);
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        stderr.ToString().TrimEnd().Should().Match($"error: {path}: {refusal}").And.NotContain("\n");

        // The web sample refuses it at start-up, before serving anything.
        stderr = new StringWriter();
        global::LeNetSharp.Web.Program.Run(["--model", path, "--data", "/nonexistent", "--urls", "http://127.0.0.1:0"], new StringWriter(), stderr)
            .Should().Be(1);
        stderr.ToString().TrimEnd().Should().Match($"error: {path}: {refusal}").And.NotContain("\n");
    }

    [Fact]
    public void Model_files_refuse_weights_that_are_not_finite_on_save_and_on_load()
    {
        string path = Path.Combine(Dir, "nan.model");
        var net = LeNet.Create<float>(1);
        net.Layers[3].Parameters[0].Value.Data[7] = float.NaN;
        FluentActions.Invoking(() => ModelFile.Save(net, path)).Should().Throw<InvalidOperationException>()
            .WithMessage("The model format cannot store layer 3 (Conv 5x5 6→16 stride 1 pad 0): weight[7] is NaN, expected a finite number. A model file holding it would not load back.");
        File.Exists(path).Should().BeFalse();

        // A file written by something else: the loader names the file, the layer, the tensor and the element.
        byte[] bytes = ModelFile.Serialize(LeNet.Create<float>(1));
        BitConverter.GetBytes(float.PositiveInfinity).CopyTo(bytes, bytes.Length - 32 - 10 * 4 + 2 * 4); // the last Linear's bias[2], before the SHA-256
        System.Security.Cryptography.SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32), bytes.AsSpan(bytes.Length - 32));
        File.WriteAllBytes(path, bytes);
        FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: layer 7 (Linear 256→10): bias[2] is Infinity, expected a finite number.");

        // A float64 value float32 cannot hold becomes infinite when read as float: refused too.
        var wide = LeNet.Create<double>(1);
        wide.Layers[0].Parameters[0].Value.Data[0] = 1e300;
        ModelFile.Save(wide, path);
        FluentActions.Invoking(() => ModelFile.Load<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: layer 0 (Conv 5x5 1→6 stride 1 pad 0): weight[0] is Infinity, expected a finite number.");
        ModelFile.Load<double>(path).Layers[0].Parameters[0].Value.Data[0].Should().Be(1e300);
    }

    [Fact]
    public void Tutorial_weights_refuse_values_that_are_not_finite_on_export_and_on_import()
    {
        string path = Path.Combine(Dir, "weights.npz");
        var net = LeNet.Create<double>(1);
        net.Layers[7].Parameters[0].Value.Data[5] = double.NegativeInfinity;
        FluentActions.Invoking(() => TutorialWeights.Export(net, path)).Should().Throw<InvalidOperationException>()
            .WithMessage("The tutorial's weight file cannot store layer 7 (Linear 256→10): weight[5] is -Infinity, expected a finite number.*");
        File.Exists(path).Should().BeFalse();

        var arrays = new Dictionary<string, NpyArray>();
        foreach (var (key, layer, index) in new[] { ("k1", 0, 0), ("b1", 0, 1), ("k2", 3, 0), ("b2", 3, 1), ("w3", 7, 0), ("b3", 7, 1) })
        {
            arrays[key] = NpyArray.FromTensor(LeNet.Create<double>(1).Layers[layer].Parameters[index].Value);
        }

        arrays["b2"].Values[4] = double.NaN;
        Npy.WriteNpz(path, arrays);
        FluentActions.Invoking(() => TutorialWeights.Import<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: array 'b2' element 4 is NaN, expected a finite number.");
        arrays["b2"].Values[4] = 1e300;
        Npy.WriteNpz(path, arrays);
        FluentActions.Invoking(() => TutorialWeights.Import<float>(path)).Should().Throw<ModelFormatException>()
            .WithMessage($"{path}: array 'b2' element 4 is 1E+300, beyond the range of Single, expected a finite number.");
        TutorialWeights.Import<double>(path).Layers[3].Parameters[1].Value.Data[4].Should().Be(1e300);
    }

    [Fact]
    public void Onnx_export_refuses_what_import_would_refuse()
    {
        var net = LeNet.Create<float>(1);
        net.Layers[0].Parameters[1].Value.Data[2] = float.NaN;
        FluentActions.Invoking(() => OnnxModel.Export(net, Path.Combine(Dir, "nan.onnx"))).Should().Throw<InvalidOperationException>()
            .WithMessage("ONNX export cannot store layer 0 (Conv 5x5 1→6 stride 1 pad 0): bias[2] is NaN, expected a finite number. A file holding it would not import.");
        File.Exists(Path.Combine(Dir, "nan.onnx")).Should().BeFalse();
    }

    [Fact]
    public void Sequential_and_the_model_file_share_the_layer_ceiling()
    {
        var relus = Enumerable.Range(0, NetworkLimits.MaxLayers + 1).Select(_ => (ILayer<float>)new Relu<float>()).ToArray();
        FluentActions.Invoking(() => new Sequential<float>(relus)).Should().Throw<ArgumentException>()
            .WithMessage("The network is over the library's ceilings: layer 1024 (Relu): a network may have at most 1,024 layers.*");
        new Sequential<float>(relus[..NetworkLimits.MaxLayers]).Layers.Should().HaveCount(NetworkLimits.MaxLayers);
    }

    [Fact]
    public void The_parameter_ceiling_is_counted_before_a_layer_is_built()
    {
        var tally = new NetworkTally([], problem => new InvalidDataException(problem));
        tally.Reserve(0, "layer 0 (Linear 4096→8192)", 4096L * 8192 + 8192);
        FluentActions.Invoking(() => tally.Reserve(1, "layer 1 (Linear 8192→8192)", 8192L * 8192 + 8192)).Should().Throw<InvalidDataException>()
            .WithMessage("layer 1 (Linear 8192→8192) brings the parameters (weights and statistics) to 100,679,680, more than the 67,108,864 a network may hold.");
    }

    [Fact]
    public void The_ceilings_leave_room_for_a_medium_network_on_256x256_colour_images()
    {
        var random = new Random(1);
        var net = new Sequential<float>(
            new Conv<float>(3, 32, 3, 3, random, padding: 1), new BatchNorm2d<float>(32), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(32, 64, 3, 3, random, padding: 1), new BatchNorm2d<float>(64), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(64, 128, 3, 3, random, padding: 1), new BatchNorm2d<float>(128), new Relu<float>(), new MaxPool2x2<float>(),
            new Conv<float>(128, 256, 3, 3, random, padding: 1), new Relu<float>(), new GlobalAvgPool2d<float>(), new Linear<float>(256, 1000, random));
        FluentActions.Invoking(() => NetworkLimits.Check(net.Layers, [256, 256, 3], problem => new InvalidDataException(problem))).Should().NotThrow();
    }

    // ---- Building hostile graphs ----

    private static NodeProto Node(GraphProto g, string name) => g.Node.Single(n => n.Name == name);

    private static NodeProto Make(string op, string name, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        node.Attribute.Add(attributes);
        return node;
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    private static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeType.Float, F = value };

    private static ByteString Raw(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return ByteString.CopyFrom(bytes);
    }

    private static float[] Weights(int count, int seed, int nanAt = -1)
    {
        var random = new Random(seed);
        var w = Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        if (nanAt >= 0) w[nanAt] = float.NaN;
        return w;
    }

    private static TensorProto Initializer(string name, float[] values, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Float, RawData = Raw(values) };
        t.Dims.Add(dims);
        return t;
    }

    private static ModelProto Model(IEnumerable<NodeProto> nodes, IEnumerable<TensorProto> initializers, string output, long channels = 1, long size = 28)
    {
        var g = new GraphProto { Name = "hostile" };
        g.Node.Add(nodes);
        g.Initializer.Add(initializers);
        g.Input.Add(ValueInfo("x", 1, channels, size, size));
        g.Output.Add(ValueInfo(output, 1, 10));
        var model = new ModelProto { IrVersion = 8, Graph = g };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return model;
    }

    private static ValueInfoProto ValueInfo(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(dims.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)DataType.Float, Shape = shape } } };
    }

    /// <summary>Conv 5x5 1→6, Relu, MaxPool 2x2, Flatten, Gemm 864→10 on 28x28 grey images, changed by <paramref name="change"/>.</summary>
    private static ModelProto LeNetLike(Action<GraphProto> change)
    {
        var model = Model(
            [
                Make("Conv", "conv1", ["x", "w1", "b1"], ["c1"]), Make("Relu", "relu1", ["c1"], ["r1"]),
                Make("MaxPool", "pool1", ["r1"], ["p1"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)),
                Make("Flatten", "flat", ["p1"], ["f"]), Make("Gemm", "fc", ["f", "w3", "b3"], ["y"], new AttributeProto { Name = "transB", Type = AttributeType.Int, I = 1 }),
            ],
            [Initializer("w1", Weights(150, 1), 6, 1, 5, 5), Initializer("b1", new float[6], 6), Initializer("w3", Weights(8640, 2), 10, 864), Initializer("b3", new float[10], 10)],
            "y");
        change(model.Graph);
        return model;
    }

    /// <summary>The attack's 1.3 KB file: a Conv padded by 1,024 on every side, then pools that bring it back to 1x1.</summary>
    private static ModelProto PaddedByPools() => Model(
        [
            Make("Conv", "conv1", ["x", "w1", "b1"], ["c1"], Ints("pads", 1024, 1024, 1024, 1024)), Make("Relu", "relu1", ["c1"], ["r1"]),
            Make("MaxPool", "pool1", ["r1"], ["p1"], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2)),
            Make("MaxPool", "pool2", ["p1"], ["p2"], Ints("kernel_shape", 1024, 1024), Ints("strides", 1024, 1024)),
            Make("Flatten", "flat", ["p2"], ["f"]), Make("Gemm", "fc", ["f", "w3", "b3"], ["y"], new AttributeProto { Name = "transB", Type = AttributeType.Int, I = 1 }),
        ],
        [Initializer("w1", Weights(150, 1), 6, 1, 5, 5), Initializer("b1", new float[6], 6), Initializer("w3", Weights(60, 2), 10, 6), Initializer("b3", new float[10], 10)],
        "y");

    private static ModelProto Wide() => Model(
        [
            Make("Conv", "wide", ["x", "w1", "b1"], ["c1"]), Make("GlobalAveragePool", "gap", ["c1"], ["g"]), Make("Flatten", "flat", ["g"], ["f"]),
            Make("Gemm", "fc", ["f", "w3", "b3"], ["y"], new AttributeProto { Name = "transB", Type = AttributeType.Int, I = 1 }),
        ],
        [Initializer("w1", new float[60_000], 60_000, 1, 1, 1), Initializer("b1", new float[60_000], 60_000), Initializer("w3", new float[600_000], 10, 60_000),
            Initializer("b3", new float[10], 10)],
        "y");

    /// <summary>Flatten, <paramref name="count"/> Relus, Gemm 784→10.</summary>
    private static ModelProto Relus(int count) => Model(
        [
            Make("Flatten", "flat", ["x"], ["a0"]),
            .. Enumerable.Range(0, count).Select(i => Make("Relu", $"relu{i}", [$"a{i}"], [$"a{i + 1}"])),
            Make("Gemm", "fc", [$"a{count}", "w3", "b3"], ["y"], new AttributeProto { Name = "transB", Type = AttributeType.Int, I = 1 }),
        ],
        [Initializer("w3", Weights(7840, 3), 10, 784), Initializer("b3", new float[10], 10)],
        "y");

    /// <summary>8 Convs 3x3 256→256 padded by 1 on 32x32x256 images, all sharing one weight (2.4 MB): 604 M multiply-adds each.</summary>
    private static ModelProto SharedWideConvs() => Model(
        [
            .. Enumerable.Range(0, 8).Select(i => Make("Conv", $"conv{i}", [i == 0 ? "x" : $"c{i}", "w", "b"], [$"c{i + 1}"], Ints("pads", 1, 1, 1, 1))),
            Make("GlobalAveragePool", "gap", ["c8"], ["g"]), Make("Flatten", "flat", ["g"], ["f"]),
            Make("Gemm", "fc", ["f", "w3", "b3"], ["y"], new AttributeProto { Name = "transB", Type = AttributeType.Int, I = 1 }),
        ],
        [Initializer("w", new float[256 * 256 * 9], 256, 256, 3, 3), Initializer("b", new float[256], 256), Initializer("w3", new float[2560], 10, 256),
            Initializer("b3", new float[10], 10)],
        "y", channels: 256, size: 32);
}
