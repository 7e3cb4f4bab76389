using System.Diagnostics;
using Xunit.Abstractions;
using Google.Protobuf;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Onnx.Protobuf;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;
using Microsoft.ML.OnnxRuntime;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace LeNetSharp.Tests;

/// <summary>Export checked by ONNX Runtime (and onnx.checker); import checked against PyTorch's own exports and logits.</summary>
public class OnnxExportTests(ITestOutputHelper output) : TempDirectoryTest
{
    private const float Tolerance = 1e-5f;

    [Fact]
    public void Exported_LeNet_runs_in_OnnxRuntime_with_the_same_logits_on_1000_MNIST_images()
    {
        var net = LeNet.Create<float>(5);
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 16, LearningRate = 0.05, Seed = 5 }))
        {
            trainer.Train(Mnist.Load(TestData.MnistDirectory(), MnistSplit.Train).Take(3000), new InlineProgress<TrainingProgress>(_ => { }));
        }

        string path = Path.Combine(Dir, "lenet.onnx");
        OnnxModel.Export(net, path);
        var test = Mnist.Load(TestData.MnistDirectory(), MnistSplit.Test).Take(1000);
        var x = new Tensor<float>(1000, 28, 28, 1);
        test.FillBatch(Enumerable.Range(0, 1000).ToArray(), x, new int[1000]);

        float[] expected = net.Forward(x).Data.ToArray();
        var (logits, probabilities) = RunOnnxRuntime(path, x);

        float worst = AssertClose(logits, expected, 10);
        ArgMax(logits, 10).Should().Equal(ArgMax(expected, 10), "every prediction must agree");
        output.WriteLine($"ONNX Runtime vs LeNetSharp, 1,000 MNIST test images: max |Δ logit| {worst:G3}, argmax agrees on all 1,000");
        for (int i = 0; i < 1000; i++)
        {
            var row = expected.AsSpan(i * 10, 10).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            probabilities.AsSpan(i * 10, 10).ToArray().Should().Equal(row.Select(v => Math.Exp(v - max) / sum),
                (a, b) => Math.Abs(a - b) <= Tolerance);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void Strided_padded_network_on_non_square_colour_images_matches_OnnxRuntime(int batch)
    {
        // Conv stride 2 pad 1 → (5, 6, 4); Conv stride 1 pad 2 → (7, 8, 8); pool → (3, 4, 8); 96 features.
        // H ≠ W and C = 3 make any mix-up of the NHWC/NCHW axes or of the flatten order visible.
        var random = new Random(3);
        var net = new Sequential<float>(
            new Conv<float>(3, 4, 3, 3, random, stride: 2, padding: 1), new Relu<float>(),
            new Conv<float>(4, 8, 3, 3, random, stride: 1, padding: 2), new Relu<float>(), new MaxPool2x2<float>(),
            new Flatten<float>(), new Linear<float>(96, 12, random), new Relu<float>(), new Linear<float>(12, 5, random));
        RandomiseBiases(net, random);
        string path = Path.Combine(Dir, "strided.onnx");
        OnnxModel.Export(net, path, height: 10, width: 12, channels: 3);

        var x = RandomImages(batch, 10, 12, 3, seed: batch);
        float[] expected = net.Forward(x).Data.ToArray();
        var (logits, _) = RunOnnxRuntime(path, x);
        AssertClose(logits, expected, 5);

        // And back: the imported network is the same network, bit for bit.
        var imported = OnnxModel.Import(path, out var shape);
        shape.Should().Be((10, 12, 3));
        imported.Layers.Select(l => l.Name).Should().Equal(net.Layers.Select(l => l.Name));
        imported.Forward(x).Data.Should().Equal(expected);
    }

    [Fact]
    public void A_network_ending_in_a_4d_tensor_leaves_in_NHWC()
    {
        var random = new Random(4);
        var net = new Sequential<float>(new Conv<float>(2, 3, 3, 3, random, padding: 1), new Relu<float>(), new MaxPool2x2<float>());
        RandomiseBiases(net, random);
        string path = Path.Combine(Dir, "fcn.onnx");
        OnnxModel.Export(net, path, 6, 8, 2);
        var x = RandomImages(2, 6, 8, 2, seed: 9);
        var (logits, _) = RunOnnxRuntime(path, x);
        AssertClose(logits, net.Forward(x).Data.ToArray(), 3);
    }

    [Fact]
    public void Export_records_the_input_outputs_opset_producer_and_initialisers()
    {
        string path = Path.Combine(Dir, "lenet.onnx");
        var net = LeNet.Create<float>(1);
        OnnxModel.Export(net, path);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));

        model.OpsetImport.Should().ContainSingle(o => o.Domain == "" && o.Version == 13);
        model.ProducerName.Should().Be("LeNetSharp");
        model.ProducerVersion.Should().MatchRegex(@"^\d+\.\d+\.\d+");
        var input = model.Graph.Input.Should().ContainSingle().Subject;
        input.Name.Should().Be("input");
        input.Type.TensorType.ElemType.Should().Be((int)TensorProto.Types.DataType.Float);
        input.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()).Should().Equal("N", "28", "28", "1");
        model.Graph.Output.Select(o => o.Name).Should().Equal("logits", "probabilities");
        model.Graph.Initializer.Sum(t => t.RawData.Length / 4).Should().Be(net.ParameterCount);
        model.Graph.Node.Select(n => n.OpType).Should().Equal(
            "Transpose", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Transpose", "Flatten", "Gemm", "Softmax");
    }

    [Fact]
    public void Conv_kernels_are_exported_as_OIHW()
    {
        var conv = new Conv<float>(2, 3, 4, 5, new Random(1));
        float[] oihw = OnnxExporter.OihwFromNhwcKernel(conv);
        var k = conv.Weight.Value;
        // K[kh=3, kw=1, c=1, o=2] lands at W[o=2, c=1, kh=3, kw=1]
        oihw[((2 * 2 + 1) * 4 + 3) * 5 + 1].Should().Be(k.Span[((3 * 5 + 1) * 2 + 1) * 3 + 2]);
        oihw.Order().Should().Equal(k.Span.ToArray().Order());
    }

    [Fact]
    public void Export_writes_atomically_and_refuses_a_mismatched_input_shape()
    {
        string path = Path.Combine(Dir, "m.onnx");
        File.WriteAllText(path, "previous");
        var act = () => OnnxModel.Export(LeNet.Create<float>(1), path, height: 20, width: 20);
        act.Should().Throw<ArgumentException>();
        File.ReadAllText(path).Should().Be("previous");
        Directory.GetFiles(Dir).Should().ContainSingle();
    }

    [SkippableOnnxCheckerFact]
    public void Exported_files_pass_onnx_checker()
    {
        string lenet = Path.Combine(Dir, "lenet.onnx"), strided = Path.Combine(Dir, "strided.onnx");
        OnnxModel.Export(LeNet.Create<float>(1), lenet);
        var random = new Random(2);
        OnnxModel.Export(new Sequential<float>(new Conv<float>(3, 4, 3, 3, random, 2, 1), new Relu<float>(), new Flatten<float>(),
            new Linear<float>(5 * 6 * 4, 2, random)), strided, 10, 12, 3);
        foreach (string file in new[] { lenet, strided })
        {
            var (code, output) = OnnxChecker.Check(file);
            code.Should().Be(0, output);
        }
    }

    internal static (float[] Logits, float[] Probabilities) RunOnnxRuntime(string path, Tensor<float> x)
    {
        using var session = new InferenceSession(path);
        var input = new DenseTensor(x.Data.AsMemory(0, x.Length), x.Shape.ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxModel.InputName, input)]);
        return (results.Single(r => r.Name == "logits").AsEnumerable<float>().ToArray(),
            results.Single(r => r.Name == "probabilities").AsEnumerable<float>().ToArray());
    }

    /// <summary>Asserts every |actual − expected| ≤ 1e-5 and returns the largest.</summary>
    internal static float AssertClose(float[] actual, float[] expected, int columns)
    {
        actual.Should().HaveCount(expected.Length);
        float worst = 0, scale = 1;
        for (int i = 0; i < actual.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }

        // Float32 sums in another order: the difference grows with the logits' size (Tolerance for logits up to 1).
        worst.Should().BeLessThanOrEqualTo(Tolerance * scale, $"logits ({actual.Length / columns} rows, largest {scale:G3}) must agree to {Tolerance} of the largest");
        return worst;
    }

    internal static int[] ArgMax(float[] rows, int columns) =>
        Enumerable.Range(0, rows.Length / columns).Select(r =>
        {
            var row = rows.AsSpan(r * columns, columns);
            int best = 0;
            for (int j = 1; j < columns; j++) if (row[j] > row[best]) best = j;
            return best;
        }).ToArray();

    internal static Tensor<float> RandomImages(int n, int h, int w, int c, int seed)
    {
        var random = new Random(seed);
        var x = new Tensor<float>(n, h, w, c);
        for (int i = 0; i < x.Length; i++) x.Span[i] = random.NextSingle();
        return x;
    }

    internal static void RandomiseBiases(Sequential<float> net, Random random)
    {
        foreach (var p in net.Parameters.Where(p => p.Name == "bias"))
        {
            for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] = random.NextSingle() - 0.5f;
        }
    }
}

/// <summary>Runs python3-onnx's onnx.checker.check_model(full_check=True) on a file.</summary>
internal static class OnnxChecker
{
    private static readonly Lazy<string?> Python = new(() =>
        new[] { "/usr/bin/python3", "python3" }.FirstOrDefault(p => Run(p, "-c", "import onnx").Code == 0));

    public static string? MissingReason => Python.Value is null ? "python3-onnx is not installed (apt-get install python3-onnx)" : null;

    public static (int Code, string Output) Check(string path) =>
        Run(Python.Value!, "-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path);

    private static (int Code, string Output) Run(string exe, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}

/// <summary>A fact skipped, with the reason, where python3-onnx is missing.</summary>
public sealed class SkippableOnnxCheckerFactAttribute : FactAttribute
{
    public SkippableOnnxCheckerFactAttribute()
    {
        if (OnnxChecker.MissingReason is { } reason) Skip = reason;
    }
}

/// <summary>PyTorch's own exports (Fixtures/make_onnx_fixtures.py) imported, and hostile files refused.</summary>
public class OnnxImportTests(ITestOutputHelper output) : TempDirectoryTest
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Theory]
    [InlineData("lenet_random")]  // Reshape + MatMul + Add
    [InlineData("lenet_trained")] // Flatten + Gemm(transB)
    public void PyTorch_LeNet_reproduces_PyTorchs_logits(string name)
    {
        var net = OnnxModel.Import(Fixture($"{name}.onnx"), out var shape);
        shape.Should().Be((28, 28, 1));
        net.Layers.Select(l => l.GetType().Name.Split('`')[0]).Should().Equal(
            "Conv", "Relu", "MaxPool2x2", "Conv", "Relu", "MaxPool2x2", "Flatten", "Linear");

        var inputs = Npy.Read(Fixture("onnx_inputs.npy"));      // (8, 28, 28): C = 1, so NCHW and NHWC agree
        var x = new Tensor<float>(inputs.Values.Select(v => (float)v).ToArray(), [8, 28, 28, 1]);
        float[] expected = Npy.Read(Fixture($"{name}_logits.npy")).Values.Select(v => (float)v).ToArray();
        float[] logits = net.Forward(x).Data.ToArray();
        float worst = OnnxExportTests.AssertClose(logits, expected, 10);
        output.WriteLine($"{name}.onnx imported vs PyTorch, 8 MNIST test images: max |Δ logit| {worst:G3}");
        OnnxExportTests.ArgMax(logits, 10).Should().Equal(OnnxExportTests.ArgMax(expected, 10));
    }

    [Fact]
    public void Eval_of_the_PyTorch_trained_LeNet_gives_PyTorchs_test_count()
    {
        int pytorchCount = int.Parse(File.ReadAllText(Fixture("lenet_trained_count.txt")).Trim());
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Trainer.Program.Run(["eval", "--model", Fixture("lenet_trained.onnx"), "--data", TestData.MnistDirectory()], stdout, stderr);
        code.Should().Be(0, stderr.ToString());
        stdout.ToString().TrimEnd().Split('\n')[^1].Should().EndWith($"({pytorchCount}/10000)");
    }

    [Fact]
    public void Trainer_exports_to_onnx_and_evaluates_it_to_the_same_accuracy()
    {
        string model = Path.Combine(Dir, "lenet.model"), onnx = Path.Combine(Dir, "lenet.onnx");
        ModelFile.Save(LeNet.Create<float>(7), model);
        string data = TestData.MnistDirectory();
        var outModel = new StringWriter();
        var outOnnx = new StringWriter();
        Trainer.Program.Run(["export", "--model", model, "--to", onnx], new StringWriter(), new StringWriter()).Should().Be(0);
        Trainer.Program.Run(["eval", "--model", model, "--data", data], outModel, new StringWriter()).Should().Be(0);
        Trainer.Program.Run(["eval", "--model", onnx, "--data", data], outOnnx, new StringWriter()).Should().Be(0);
        outOnnx.ToString().Should().Contain("test accuracy:").And.Be(outModel.ToString());
    }

    [Fact]
    public void Trainer_eval_of_a_damaged_onnx_file_is_one_error_line_and_exit_code_1()
    {
        string path = Path.Combine(Dir, "cut.onnx");
        File.WriteAllBytes(path, File.ReadAllBytes(Fixture("lenet_trained.onnx"))[..5000]);
        var stderr = new StringWriter();
        Trainer.Program.Run(["eval", "--model", path, "--data", TestData.MnistDirectory()], new StringWriter(), stderr).Should().Be(1);
        stderr.ToString().TrimEnd().Should().StartWith($"error: {path}: not a readable ONNX protobuf").And.NotContain("\n");
    }

    [Fact]
    public void A_bias_Add_with_its_operands_swapped_imports_the_same_network()
    {
        string path = Rewrite("lenet_random.onnx", m =>
        {
            var add = m.Graph.Node.First(n => n.OpType == "Add");
            (add.Input[0], add.Input[1]) = (add.Input[1], add.Input[0]);
        });
        var x = new Tensor<float>(Npy.Read(Fixture("onnx_inputs.npy")).Values.Select(v => (float)v).ToArray(), [8, 28, 28, 1]);
        OnnxModel.Import(path).Forward(x).Data.Should().Equal(OnnxModel.Import(Fixture("lenet_random.onnx")).Forward(x).Data);
    }

    [Fact]
    public void An_unsupported_op_is_refused_naming_the_node_and_op()
    {
        string path = Rewrite("lenet_trained.onnx", m => m.Graph.Node.First(n => n.OpType == "Relu").OpType = "Elu");
        Refusal(path).Should().Be($"{path}: unsupported node '/features/features.1/Relu' (op Elu): LeNetSharp imports Conv, Relu, LeakyRelu, "
            + "Tanh, Sigmoid, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization and Dropout (inference forms), a Pad before a Conv "
            + "or pool, Flatten, constant Reshape, Gemm, MatMul + Add, Transpose, Identity and a final Softmax.");
    }

    [Fact]
    public void Unsupported_attributes_are_refused_naming_the_node()
    {
        string pool = Rewrite("lenet_trained.onnx", m => m.Graph.Node.First(n => n.OpType == "MaxPool").Attribute.First(a => a.Name == "kernel_shape").Ints[0] = 3);
        Refusal(pool).Should().Contain("unsupported node '/features/features.2/MaxPool' (op MaxPool): kernel_shape [3, 2]: only a square kernel");
        string group = Rewrite("lenet_trained.onnx", m => m.Graph.Node.First(n => n.OpType == "Conv").Attribute.First(a => a.Name == "group").I = 2);
        Refusal(group).Should().Contain("unsupported node '/features/features.0/Conv' (op Conv): group 2");
    }

    [Theory]
    [InlineData("Conv", "dilations", new long[] { 2, 2 }, "dilations [2, 2] (only 1)")]
    [InlineData("Conv", "pads", new long[] { 1, 1, 2, 2 }, "pads [1, 1, 2, 2]: only the same padding on every side is supported")]
    [InlineData("Conv", "pads", new long[] { 0, 0, 1 }, "pads [0, 0, 1]: only the same padding on every side is supported")]
    [InlineData("Conv", "strides", new long[] { 1, 2 }, "strides [1, 2]: only equal strides in both directions are supported")]
    [InlineData("Conv", "strides", new long[] { 0, 0 }, "strides [0, 0]: only equal strides in both directions are supported")]
    [InlineData("MaxPool", "strides", new long[] { 2, 1 }, "strides [2, 1]: only equal strides in both directions are supported")]
    [InlineData("MaxPool", "strides", new long[] { 0, 0 }, "strides [0, 0]: only equal strides in both directions are supported")]
    [InlineData("MaxPool", "kernel_shape", new long[] { 2, 3 }, "kernel_shape [2, 3]: only a square kernel of 1 to 1024 is supported")]
    [InlineData("MaxPool", "kernel_shape", new long[] { 2 }, "kernel_shape [2]: only a square kernel of 1 to 1024 is supported")]
    [InlineData("MaxPool", "pads", new long[] { 1, 0, 1, 0 }, "pads [1, 0, 1, 0]: only the same padding on every side is supported")]
    [InlineData("MaxPool", "pads", new long[] { 2, 2, 2, 2 }, "padding 2 is more than half the 2x2 kernel (LeNetSharp's pools, like PyTorch's, pad at most kernel/2)")]
    [InlineData("MaxPool", "dilations", new long[] { 2, 2 }, "dilations [2, 2] (only 1)")]
    public void Conv_and_MaxPool_attributes_outside_the_layers_are_refused_naming_node_and_attribute(string op, string name, long[] values, string why)
    {
        string path = Rewrite("lenet_trained.onnx", m => SetAttribute(m.Graph.Node.First(n => n.OpType == op), name, values));
        string node = op == "Conv" ? "/features/features.0/Conv" : "/features/features.2/MaxPool";
        Refusal(path).Should().Be($"{path}: unsupported node '{node}' (op {op}): {why}.");
    }

    [Fact]
    public void MaxPool_ceil_mode_is_refused_naming_node_and_attribute()
    {
        string path = Rewrite("lenet_trained.onnx", m => SetAttribute(m.Graph.Node.First(n => n.OpType == "MaxPool"), "ceil_mode", 1));
        Refusal(path).Should().Be($"{path}: unsupported node '/features/features.2/MaxPool' (op MaxPool): ceil_mode 1 (the library floors).");
    }

    [Fact]
    public void Symmetric_conv_pads_import_as_the_layers_padding_and_match_OnnxRuntime()
    {
        // The graph's pads attribute is the only place the importer can learn the padding from.
        var random = new Random(21);
        var net = new Sequential<float>(new Conv<float>(2, 3, 3, 3, random, padding: 2), new Relu<float>(),
            new Flatten<float>(), new Linear<float>(7 * 9 * 3, 4, random)); // (5 + 4 − 3 + 1) × (7 + 4 − 3 + 1) × 3
        OnnxExportTests.RandomiseBiases(net, random);
        string path = Path.Combine(Dir, "pads.onnx");
        OnnxModel.Export(net, path, height: 5, width: 7, channels: 2);
        var conv = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Node.Single(n => n.OpType == "Conv");
        conv.Attribute.Single(a => a.Name == "pads").Ints.Should().Equal(2, 2, 2, 2);

        var imported = OnnxModel.Import(path);
        ((Conv<float>)imported.Layers[0]).Padding.Should().Be(2);
        var x = OnnxExportTests.RandomImages(3, 5, 7, 2, seed: 22);
        var (ort, _) = OnnxExportTests.RunOnnxRuntime(path, x);
        OnnxExportTests.AssertClose(imported.Forward(x).Data.ToArray(), ort, 4);
    }

    private static void SetAttribute(NodeProto node, string name, params long[] values)
    {
        var existing = node.Attribute.FirstOrDefault(a => a.Name == name);
        if (existing is not null) node.Attribute.Remove(existing);
        var attribute = new AttributeProto { Name = name };
        if (name is "ceil_mode" or "group")
        {
            attribute.Type = AttributeProto.Types.AttributeType.Int;
            attribute.I = values[0];
        }
        else
        {
            attribute.Type = AttributeProto.Types.AttributeType.Ints;
            attribute.Ints.Add(values);
        }

        node.Attribute.Add(attribute);
    }

    [Fact]
    public void A_dynamic_image_size_is_refused()
    {
        string path = Rewrite("lenet_trained.onnx", m =>
            m.Graph.Input[0].Type.TensorType.Shape.Dim[2] = new TensorShapeProto.Types.Dimension { DimParam = "height" });
        Refusal(path).Should().Be($"{path}: input 'input': dimension 2 is dynamic ('height'); a fixed size is needed to build the layers.");
    }

    [Fact]
    public void A_reshape_to_a_shape_computed_at_run_time_is_refused()
    {
        // Make the Reshape's shape a second graph input instead of a constant.
        string path = Rewrite("lenet_random.onnx", m =>
        {
            var constant = m.Graph.Node.First(n => n.OpType == "Constant");
            m.Graph.Node.Remove(constant);
            m.Graph.Input.Add(new ValueInfoProto { Name = constant.Output[0], Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 7 } } });
        });
        Refusal(path).Should().Contain("expected one image input, found 2");
        string inline = Rewrite("lenet_random.onnx", m => m.Graph.Node.Remove(m.Graph.Node.First(n => n.OpType == "Constant")));
        Refusal(inline).Should().Contain("invalid node '/Reshape' (op Reshape): its input '/Constant_output_0' is not defined before it");
        string computed = Rewrite("lenet_random.onnx", m =>
        {
            var reshape = m.Graph.Node.First(n => n.OpType == "Reshape");
            reshape.Input[1] = reshape.Input[0]; // a shape the graph computes (here the data itself), not a constant
        });
        Refusal(computed).Should().MatchRegex("unsupported node '/Reshape' \\(op Reshape\\): its shape '[^']+' is computed at run time");
    }

    [Fact]
    public void Every_truncation_is_refused_with_one_error_naming_the_file()
    {
        byte[] bytes = File.ReadAllBytes(Fixture("lenet_trained.onnx"));
        string path = Path.Combine(Dir, "cut.onnx");
        for (int length = 0; length < bytes.Length; length += length < 64 ? 1 : 97)
        {
            File.WriteAllBytes(path, bytes[..length]);
            var act = () => OnnxModel.Import(path);
            act.Should().Throw<OnnxFormatException>($"a file cut to {length} of {bytes.Length} bytes").Which.Message.Should().StartWith(path + ": ");
        }
    }

    [Fact]
    public void Damaged_protobuf_structure_is_refused()
    {
        byte[] bytes = File.ReadAllBytes(Fixture("lenet_trained.onnx"));
        bytes[0].Should().Be(0x08, "field 1 (ir_version), varint");
        bytes[0] = 0x0F; // field 1 with wire type 7, which does not exist
        string path = Path.Combine(Dir, "damaged.onnx");
        File.WriteAllBytes(path, bytes);
        Refusal(path).Should().StartWith($"{path}: not a readable ONNX protobuf (damaged or truncated):");
    }

    [Fact]
    public void Tensor_data_that_disagrees_with_its_dims_is_refused_before_allocating()
    {
        string longer = Rewrite("lenet_trained.onnx", m => m.Graph.Initializer.First(t => t.Name == "fc.weight").Dims[1] = 257);
        Refusal(longer).Should().Be($"{longer}: tensor 'fc.weight' (10, 257): expected 10,280 bytes of data, found 10,240.");
        string huge = Rewrite("lenet_trained.onnx", m =>
        {
            var w = m.Graph.Initializer.First(t => t.Name == "fc.weight");
            w.Dims[0] = 1 << 20;
            w.Dims[1] = 1 << 20;
        });
        Refusal(huge).Should().Be($"{huge}: tensor 'fc.weight': more than 4,194,304 elements (1048576x1048576).");
    }

    [Fact]
    public void Padding_that_inflates_the_flatten_beyond_the_ceiling_is_refused_before_allocating()
    {
        // Padding 1000 on the second Conv of 12x12x6: 2008 x 2008 x (16 outputs + 150 patch elements) per image, from the sizes alone.
        string path = Rewrite("lenet_trained.onnx", m =>
        {
            var pads = m.Graph.Node.Last(n => n.OpType == "Conv").Attribute.First(a => a.Name == "pads");
            for (int i = 0; i < 4; i++) pads.Ints[i] = 1000;
        });
        Refusal(path).Should().Match($"{path}: node '*' (op Conv) as layer 3 (Conv 5x5 6→16 stride 1 pad 1000) brings what one (28, 28, 1) image holds to "
            + "669,344,800 elements (layer outputs and convolution patches), more than the 33,554,432 a network may use.");
    }

    [Fact]
    public void A_file_over_the_ceiling_is_refused_before_parsing()
    {
        string path = Path.Combine(Dir, "big.onnx");
        using (var f = File.Create(path)) f.SetLength(OnnxModel.MaxFileBytes + 1);
        Refusal(path).Should().Be($"{path}: is 16,777,217 bytes, more than the 16,777,216 an ONNX import accepts.");
    }

    [Fact]
    public void Random_byte_damage_gives_a_network_or_one_OnnxFormatException()
    {
        // ONNX has no checksum: a changed weight byte loads fine. Everything else must be one clear refusal.
        ByteDamage(Fixture("lenet_random.onnx"), Path.Combine(Dir, "fuzz.onnx"), seed: 11, cases: 300);
    }

    /// <summary>
    /// Damages 1–3 random bytes of <paramref name="fixture"/> <paramref name="cases"/> times: each import must give a
    /// network or one <see cref="OnnxFormatException"/> naming the file, and some must be refused.
    /// </summary>
    internal static void ByteDamage(string fixture, string path, int seed, int cases)
    {
        byte[] original = File.ReadAllBytes(fixture);
        var random = new Random(seed);
        int refused = 0;
        for (int i = 0; i < cases; i++)
        {
            byte[] bytes = (byte[])original.Clone();
            for (int k = random.Next(1, 4); k > 0; k--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            File.WriteAllBytes(path, bytes);
            try
            {
                OnnxModel.Import(path);
            }
            catch (OnnxFormatException e)
            {
                e.FilePath.Should().Be(path);
                refused++;
            }
        }

        refused.Should().BeGreaterThan(0);
    }

    private string Rewrite(string fixture, Action<ModelProto> change)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Fixture(fixture)));
        change(model);
        string path = Path.Combine(Dir, $"{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    private static string Refusal(string path)
    {
        var act = () => OnnxModel.Import(path);
        return act.Should().Throw<OnnxFormatException>().Which.Message;
    }
}
