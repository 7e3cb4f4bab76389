using Google.Protobuf;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Onnx.Protobuf;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using DenseTensor = Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>;

namespace LeNetSharp.Tests;

/// <summary>
/// ONNX export and import of the layers beyond the tutorial's (BatchNorm, Dropout, the pools, the activations, and a
/// Pad folded into the layer after it): LeNetSharp's networks against ONNX Runtime and back, PyTorch's exports
/// (Fixtures/make_onnx_layer_fixtures.py) against PyTorch's logits, and the refusals.
/// </summary>
public class OnnxLayerTests(ITestOutputHelper output) : TempDirectoryTest
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    private static string TypeName(ILayer<float> layer) => layer.GetType().Name.Split('`')[0];

    // ---- LeNetSharp → ONNX Runtime → LeNetSharp ----

    /// <summary>Every new layer, on non-square 3-channel images (12 x 10 x 3), ending in a global pool.</summary>
    internal static Sequential<float> GlobalPoolNetwork(int seed)
    {
        var random = new Random(seed);
        var net = new Sequential<float>(
            new Conv<float>(3, 6, 3, 3, random, padding: 1),                 // (12, 10, 6)
            new BatchNorm2d<float>(6),
            new LeakyRelu<float>(0.1),
            new MaxPool2d<float>(3, stride: 2, padding: 1),                  // (6, 5, 6)
            new Dropout<float>(0.3, seed: 7),
            new Conv<float>(6, 8, 3, 3, random, padding: 1),                 // (6, 5, 8)
            new BatchNorm2d<float>(8, eps: 1e-3, momentum: 0.2, affine: false),
            new Tanh<float>(),
            new AvgPool2d<float>(3, stride: 1, padding: 1),                  // (6, 5, 8)
            new Sigmoid<float>(),
            new AvgPool2d<float>(2),                                         // (3, 2, 8)
            new MaxPool2d<float>(2, stride: 1),                              // (2, 1, 8)
            new GlobalAvgPool2d<float>(),                                    // (8)
            new Linear<float>(8, 10, random),
            new BatchNorm1d<float>(10, momentum: 0.05),
            new Tanh<float>(),
            new Dropout<float>(0.5, seed: -3),
            new Linear<float>(10, 4, random));
        Randomise(net, random);
        return net;
    }

    /// <summary>An element-wise layer first, and a BatchNorm1d after a Flatten of (5 x 4 x 4)... images 9 x 7 x 2.</summary>
    internal static Sequential<float> FlattenNetwork(int seed)
    {
        var random = new Random(seed);
        var net = new Sequential<float>(
            new Tanh<float>(),
            new Conv<float>(2, 4, 3, 3, random, stride: 2, padding: 1),      // (5, 4, 4)
            new BatchNorm2d<float>(4),
            new Relu<float>(),
            new AvgPool2d<float>(2, stride: 1),                              // (4, 3, 4)
            new Flatten<float>(),                                            // 48 in (h, w, c) order
            new BatchNorm1d<float>(48, eps: 1e-4),
            new LeakyRelu<float>(0.2),
            new Dropout<float>(0.25),
            new Linear<float>(48, 3, random));
        Randomise(net, random);
        return net;
    }

    /// <summary>Random biases, γ, β and running statistics (variance 0.3 to 2), so that no BatchNorm is the identity.</summary>
    internal static void Randomise(Sequential<float> net, Random random)
    {
        foreach (var layer in net.Layers)
        {
            if (layer is BatchNorm<float> bn)
            {
                for (int c = 0; c < bn.Channels; c++)
                {
                    bn.RunningMean.Value.Span[c] = (random.NextSingle() - 0.5f) * 2;
                    bn.RunningVar.Value.Span[c] = random.NextSingle() * 1.7f + 0.3f;
                    if (bn.Affine)
                    {
                        bn.Weight!.Value.Span[c] = random.NextSingle() + 0.5f;
                        bn.Bias!.Value.Span[c] = random.NextSingle() - 0.5f;
                    }
                }
            }
            else
            {
                foreach (var p in layer.Parameters.Where(p => p.Name == "bias"))
                {
                    for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] = random.NextSingle() - 0.5f;
                }
            }
        }
    }

    public static TheoryData<string, int, int, int, int> Networks => new()
    {
        { "global pool", 12, 10, 3, 1 },
        { "global pool", 12, 10, 3, 5 },
        { "flatten", 9, 7, 2, 1 },
        { "flatten", 9, 7, 2, 6 },
        { "modern", 28, 28, 1, 3 },
    };

    private static Sequential<float> Network(string name) => name switch
    {
        "global pool" => GlobalPoolNetwork(31),
        "flatten" => FlattenNetwork(32),
        _ => ModernNetwork(33),
    };

    /// <summary>The trainer's --net modern (<see cref="ModernCnn"/>) with random biases and batch-norm statistics.</summary>
    private static Sequential<float> ModernNetwork(int seed)
    {
        var net = ModernCnn.Create<float>(seed);
        Randomise(net, new Random(seed));
        return net;
    }

    [Theory]
    [MemberData(nameof(Networks))]
    public void Every_new_layer_exports_to_OnnxRuntimes_outputs_and_imports_back_to_the_same_bits(string name, int h, int w, int c, int batch)
    {
        var net = Network(name);
        string path = Path.Combine(Dir, "layers.onnx");
        OnnxModel.Export(net, path, h, w, c);

        var x = OnnxExportTests.RandomImages(batch, h, w, c, seed: batch + 40);
        for (int i = 0; i < x.Length; i++) x.Span[i] = x.Span[i] * 4 - 2; // negative inputs too: the −∞ padding matters
        net.Training = false;
        float[] expected = net.Forward(x).Data.ToArray();
        var (logits, _) = OnnxExportTests.RunOnnxRuntime(path, x);
        int classes = expected.Length / batch;
        float worst = OnnxExportTests.AssertClose(logits, expected, classes);
        output.WriteLine($"{name}, batch {batch}: ONNX Runtime vs LeNetSharp max |Δ| {worst:G3}");

        var imported = OnnxModel.Import(path, out var shape);
        shape.Should().Be((h, w, c));
        imported.Training.Should().BeFalse("an ONNX graph is an inference graph");
        imported.Layers.Select(l => l.Describe().ToString()).Should().Equal(net.Layers.Select(l => l.Describe().ToString()));
        imported.Layers.Select(l => l.Name).Should().Equal(net.Layers.Select(l => l.Name));
        imported.Parameters.Select(p => p.Value.Data.ToArray()).Should().BeEquivalentTo(net.Parameters.Select(p => p.Value.Data.ToArray()), o => o.WithStrictOrdering());
        imported.State.Select(s => s.Value.Data.ToArray()).Should().BeEquivalentTo(net.State.Select(s => s.Value.Data.ToArray()), o => o.WithStrictOrdering());
        imported.Forward(x).Data.ToArray().Should().Equal(expected);
    }

    [Fact]
    public void Export_writes_each_new_layer_as_its_ONNX_op()
    {
        string path = Path.Combine(Dir, "gap.onnx");
        var net = GlobalPoolNetwork(1);
        OnnxModel.Export(net, path, 12, 10, 3);
        var graph = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph;
        graph.Node.Select(n => n.OpType).Should().Equal(
            "Transpose", "Conv", "BatchNormalization", "LeakyRelu", "MaxPool", "Dropout", "Conv", "Constant", "Constant", "BatchNormalization", "Tanh",
            "AveragePool", "Sigmoid", "AveragePool", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm", "BatchNormalization", "Tanh",
            "Dropout", "Gemm", "Softmax");

        NodeProto Node(string op, int k = 0) => graph.Node.Where(n => n.OpType == op).ElementAt(k);
        long[] Ints(NodeProto n, string a) => n.Attribute.Single(x => x.Name == a).Ints.ToArray();
        float F(NodeProto n, string a) => n.Attribute.Single(x => x.Name == a).F;
        TensorProto Init(string name) => graph.Initializer.Single(t => t.Name == name);

        var pool = Node("MaxPool");
        Ints(pool, "kernel_shape").Should().Equal(3, 3);
        Ints(pool, "strides").Should().Equal(2, 2);
        Ints(pool, "pads").Should().Equal(1, 1, 1, 1);
        var average = Node("AveragePool");
        Ints(average, "pads").Should().Equal(1, 1, 1, 1);
        average.Attribute.Single(a => a.Name == "count_include_pad").I.Should().Be(1);
        F(Node("LeakyRelu"), "alpha").Should().Be(0.1f);

        var dropout = Node("Dropout");
        dropout.Input.Should().HaveCount(2, "data and ratio; training_mode is left out, so it is false");
        Init(dropout.Input[1]).Dims.Should().BeEmpty();
        BitConverter.ToSingle(Init(dropout.Input[1]).RawData.Span).Should().Be(0.3f);
        dropout.Attribute.Single(a => a.Name == "seed").I.Should().Be(7);
        dropout.Output.Should().ContainSingle();

        var plain = Node("BatchNormalization", 1); // affine false: γ = 1, β = 0
        plain.Output.Should().ContainSingle("the inference form");
        F(plain, "epsilon").Should().Be(1e-3f);
        F(plain, "momentum").Should().Be(0.8f, "ONNX's momentum is the running statistics' own weight");
        TensorProto Constant(string name) => graph.Node.Single(n => n.OpType == "Constant" && n.Output[0] == name).Attribute.Single(a => a.Name == "value").T;
        graph.Initializer.Should().NotContain(t => t.Name == plain.Input[1] || t.Name == plain.Input[2], "fixed γ and β are not learnable: Constant nodes, as PyTorch writes them");
        Constant(plain.Input[1]).RawData.ToByteArray().Should().Equal(Enumerable.Repeat(BitConverter.GetBytes(1f), 8).SelectMany(b => b));
        Constant(plain.Input[2]).RawData.ToByteArray().Should().OnlyContain(b => b == 0);
        var bn = (BatchNorm2d<float>)net.Layers[1];
        Init(Node("BatchNormalization").Input[4]).RawData.ToByteArray().Should().Equal(bn.RunningVar.Value.Data.SelectMany(v => BitConverter.GetBytes(v)));
        Node("GlobalAveragePool").Input[0].Should().Be(Node("MaxPool", 1).Output[0], "the global pool reads the last MaxPool's NCHW output");
        graph.Initializer.Sum(t => t.RawData.Length / 4).Should().Be(net.ParameterCount + net.NonTrainableParameterCount + 2,
            "parameters, running statistics and two dropout ratios");
    }

    [Fact]
    public void A_network_that_starts_with_Flatten_or_an_activation_still_reads_its_input_as_NHWC()
    {
        var random = new Random(5);
        foreach (var net in new[]
        {
            new Sequential<float>(new Flatten<float>(), new Linear<float>(40, 3, random)),
            new Sequential<float>(new Dropout<float>(0.2), new Sigmoid<float>(), new Flatten<float>(), new Linear<float>(40, 3, random)),
        })
        {
            OnnxExportTests.RandomiseBiases(net, random);
            string path = Path.Combine(Dir, "mlp.onnx");
            OnnxModel.Export(net, path, height: 4, width: 5, channels: 2);
            var x = OnnxExportTests.RandomImages(3, 4, 5, 2, seed: 6);
            net.Training = false;
            float[] expected = net.Forward(x).Data.ToArray();
            OnnxExportTests.AssertClose(OnnxExportTests.RunOnnxRuntime(path, x).Logits, expected, 3);
            var imported = OnnxModel.Import(path, out var shape);
            shape.Should().Be((4, 5, 2));
            imported.Forward(x).Data.ToArray().Should().Equal(expected);
        }
    }

    [SkippableOnnxCheckerFact]
    public void Exported_new_layers_pass_onnx_checker()
    {
        string gap = Path.Combine(Dir, "gap.onnx"), flatten = Path.Combine(Dir, "flatten.onnx");
        OnnxModel.Export(GlobalPoolNetwork(2), gap, 12, 10, 3);
        OnnxModel.Export(FlattenNetwork(3), flatten, 9, 7, 2);
        foreach (string file in new[] { gap, flatten })
        {
            var (code, text) = OnnxChecker.Check(file);
            code.Should().Be(0, text);
        }
    }

    [Fact]
    public void Settings_ONNX_cannot_hold_as_float32_are_refused_by_export()
    {
        string path = Path.Combine(Dir, "x.onnx");
        // A float LeakyRelu cannot hold a slope beyond float32 in the first place (its constructor refuses it).
        var slope = () => OnnxModel.Export(new Sequential<float>(new LeakyRelu<float>(1e300), new Flatten<float>()), path, 2, 2, 1);
        slope.Should().Throw<ArgumentOutOfRangeException>().WithMessage("LeakyRelu: slope 1E+300 is beyond the range of Single*");
        var eps = () => OnnxModel.Export(new Sequential<float>(new BatchNorm2d<float>(1, eps: 1e-60), new Flatten<float>()), path, 2, 2, 1);
        eps.Should().Throw<NotSupportedException>().WithMessage("*eps 1E-60 rounds to 0 as float32.");
        File.Exists(path).Should().BeFalse();
    }

    // ---- PyTorch → LeNetSharp ----

    [Theory]
    [InlineData("layers_gap", 5, new[] { "Conv", "BatchNorm2d", "LeakyRelu", "MaxPool2d", "Conv", "BatchNorm2d", "Tanh", "AvgPool2d", "Sigmoid",
        "AvgPool2d", "MaxPool2d", "GlobalAvgPool2d", "Linear", "BatchNorm1d", "Tanh", "Linear" })]
    [InlineData("layers_flatten", 3, new[] { "Conv", "BatchNorm2d", "Relu", "AvgPool2d", "Flatten", "BatchNorm1d", "LeakyRelu", "Linear", "Sigmoid", "Linear" })]
    public void PyTorch_network_with_the_new_layers_reproduces_PyTorchs_logits(string name, int classes, string[] layers)
    {
        var net = OnnxModel.Import(Fixture($"{name}.onnx"), out var shape);
        net.Layers.Select(TypeName).Should().Equal(layers);
        net.Training.Should().BeFalse();

        var inputs = Npy.Read(Fixture($"{name}_inputs.npy")); // NHWC
        shape.Should().Be((inputs.Shape[1], inputs.Shape[2], inputs.Shape[3]));
        var x = new Tensor<float>(inputs.Values.Select(v => (float)v).ToArray(), inputs.Shape);
        float[] expected = Npy.Read(Fixture($"{name}_logits.npy")).Values.Select(v => (float)v).ToArray();
        float[] logits = net.Forward(x).Data.ToArray();
        float worst = OnnxExportTests.AssertClose(logits, expected, classes);
        output.WriteLine($"{name}.onnx imported vs PyTorch, {inputs.Shape[0]} random inputs: max |Δ logit| {worst:G3}");
    }

    [Fact]
    public void PyTorch_settings_arrive_as_PyTorch_wrote_them()
    {
        var net = OnnxModel.Import(Fixture("layers_gap.onnx"));
        net.Layers.Select(l => l.Name).Should().Equal(
            "Conv 3x3 3→8 stride 1 pad 1", "BatchNorm2d 8 eps 1E-05 momentum 0.1", "LeakyRelu slope 0.1", "MaxPool2d 3x3 stride 2 pad 1",
            "Conv 3x3 8→12 stride 1 pad 1", "BatchNorm2d 12 eps 0.001 momentum 0.2 without affine", "Tanh",
            "AvgPool2d 3x3 stride 1 pad 1", "Sigmoid", "AvgPool2d 2x2 stride 2 pad 0", "MaxPool2d 2x2 stride 1 pad 0", "GlobalAvgPool2d",
            "Linear 12→16", "BatchNorm1d 16 eps 1E-05 momentum 0.1", "Tanh", "Linear 16→5");
    }

    [Fact]
    public void PyTorchs_training_export_is_refused_naming_the_first_training_node()
    {
        string path = Fixture("layers_gap_training.onnx");
        Refusal(path).Should().Be($"{path}: unsupported node '/1/BatchNormalization' (op BatchNormalization): the training form (with "
            + "running-statistics outputs) is not supported; export the model in evaluation mode.");
    }

    [Fact]
    public void PyTorchs_Dropout_with_training_mode_false_and_an_unused_mask_is_the_identity()
    {
        // PyTorch writes Dropout nodes only in training mode (ratio and training_mode from Constant nodes, a mask output).
        // With training_mode turned false and the BatchNorms' statistics outputs dropped, the graph is an inference one.
        string path = Rewrite(Fixture("layers_gap_training.onnx"), m =>
        {
            foreach (var bn in m.Graph.Node.Where(n => n.OpType == "BatchNormalization"))
            {
                while (bn.Output.Count > 1) bn.Output.RemoveAt(1);
            }

            foreach (var dropout in m.Graph.Node.Where(n => n.OpType == "Dropout"))
            {
                dropout.Output.Should().HaveCount(2);
                var mode = m.Graph.Node.Single(n => n.Output.Contains(dropout.Input[2]));
                mode.Attribute.Single().T.RawData = ByteString.CopyFrom(new byte[] { 0 });
            }
        });

        var net = OnnxModel.Import(path, out var shape);
        net.Layers.OfType<Dropout<float>>().Select(d => d.P).Should().Equal(0.3, 0.5);
        var x = OnnxExportTests.RandomImages(4, shape.Height, shape.Width, shape.Channels, seed: 8);
        float[] ort = RunNchw(path, x);
        OnnxExportTests.AssertClose(net.Forward(x).Data.ToArray(), ort, 5);
    }

    [Fact]
    public void A_fresh_PyTorch_BatchNorm_written_as_Identity_of_an_equal_parameter_imports()
    {
        // torch.onnx.export stores equal parameters once: a fresh BatchNorm's running_var (ones) becomes Identity(weight).
        string source = Path.Combine(Dir, "fresh.onnx");
        var net = new Sequential<float>(new Conv<float>(1, 2, 3, 3, new Random(1)), new BatchNorm2d<float>(2), new Flatten<float>());
        ((BatchNorm2d<float>)net.Layers[1]).Weight!.Value.Span.Fill(1.5f);
        ((BatchNorm2d<float>)net.Layers[1]).RunningVar.Value.Span.Fill(1.5f);
        OnnxModel.Export(net, source, 5, 5, 1);
        string path = Rewrite(source, m =>
        {
            var bn = m.Graph.Node.Single(n => n.OpType == "BatchNormalization");
            var identity = new NodeProto { Name = "Identity_0", OpType = "Identity", Input = { bn.Input[1] }, Output = { "running_var_alias" } };
            m.Graph.Initializer.Remove(m.Graph.Initializer.Single(t => t.Name == bn.Input[4]));
            bn.Input[4] = "running_var_alias";
            m.Graph.Node.Insert(0, identity);
        });
        var x = OnnxExportTests.RandomImages(2, 5, 5, 1, seed: 3);
        net.Training = false;
        OnnxModel.Import(path).Forward(x).Data.ToArray().Should().Equal(net.Forward(x).Data.ToArray());
    }

    [Fact]
    public void A_fresh_BatchNorm_with_affine_keeps_its_learnable_gamma_and_beta_through_export_and_import()
    {
        // γ = 1 and β = 0 are what every new affine BatchNorm holds: in initialisers they are learnable parameters
        // (PyTorch's and LeNetSharp's exports alike), and a network imported to be trained must train them.
        var random = new Random(4);
        var net = new Sequential<float>(
            new Conv<float>(1, 3, 3, 3, random), new BatchNorm2d<float>(3), new Relu<float>(), new GlobalAvgPool2d<float>(),
            new BatchNorm1d<float>(3), new Linear<float>(3, 2, random), new BatchNorm1d<float>(2, affine: false));
        string path = Path.Combine(Dir, "fresh.onnx");
        OnnxModel.Export(net, path, 6, 6, 1);

        var imported = OnnxModel.Import(path);
        imported.Layers.OfType<BatchNorm<float>>().Select(b => b.Affine).Should().Equal(true, true, false);
        imported.ParameterCount.Should().Be(net.ParameterCount);
        imported.Layers.Select(l => l.Name).Should().Equal(net.Layers.Select(l => l.Name));
    }

    [Theory]
    [InlineData(1f, 0f, false)] // PyTorch's affine=False: a BatchNorm without affine
    [InlineData(2f, 0f, true)]  // fixed values other than 1 and 0: imported as γ and β, so the outputs are the graph's
    [InlineData(1f, 0.5f, true)]
    public void Scale_and_bias_from_Constant_nodes_import_without_affine_only_when_they_are_1_and_0(float scale, float bias, bool affine)
    {
        var net = new Sequential<float>(new Conv<float>(1, 2, 3, 3, new Random(2)), new BatchNorm2d<float>(2, affine: false), new Flatten<float>());
        string source = Path.Combine(Dir, "plain.onnx");
        OnnxModel.Export(net, source, 5, 5, 1);
        string path = Rewrite(source, m =>
        {
            var bn = m.Graph.Node.Single(n => n.OpType == "BatchNormalization");
            foreach (var (input, value) in new[] { (bn.Input[1], scale), (bn.Input[2], bias) })
            {
                // Through an Identity too, as torch.onnx.export aliases equal tensors.
                var constant = m.Graph.Node.Single(n => n.OpType == "Constant" && n.Output[0] == input);
                constant.Attribute.Single().T.RawData = ByteString.CopyFrom(Enumerable.Repeat(BitConverter.GetBytes(value), 2).SelectMany(b => b).ToArray());
                constant.Output[0] = input + ".source";
                m.Graph.Node.Insert(m.Graph.Node.IndexOf(constant) + 1,
                    new NodeProto { Name = input + "_Identity", OpType = "Identity", Input = { input + ".source" }, Output = { input } });
            }
        });

        var bn = OnnxModel.Import(path).Layers.OfType<BatchNorm2d<float>>().Single();
        bn.Affine.Should().Be(affine);
        if (affine)
        {
            bn.Weight!.Value.Data.ToArray().Should().OnlyContain(v => v == scale);
            bn.Bias!.Value.Data.ToArray().Should().OnlyContain(v => v == bias);
        }
    }

    // ---- Pad ----

    [Fact]
    public void A_zero_Pad_before_a_Conv_folds_into_its_padding_even_when_each_alone_is_lopsided()
    {
        string source = Path.Combine(Dir, "conv.onnx");
        var random = new Random(9);
        var net = new Sequential<float>(new Conv<float>(2, 3, 3, 3, random, padding: 2), new Relu<float>(), new Flatten<float>(), new Linear<float>(8 * 9 * 3, 2, random));
        OnnxExportTests.RandomiseBiases(net, random);
        OnnxModel.Export(net, source, 6, 7, 2);
        // Pad top 1, left 2, bottom 2, right 0 (NCHW pads: begins N, C, H, W, then ends) + the Conv's own [1, 0, 0, 2].
        string path = Rewrite(source, m => InsertPad(m, "Conv", [0, 0, 1, 2, 0, 0, 2, 0], conv => SetInts(conv, "pads", 1, 0, 0, 2)));
        var imported = OnnxModel.Import(path);
        ((Conv<float>)imported.Layers[0]).Padding.Should().Be(2);
        var x = OnnxExportTests.RandomImages(2, 6, 7, 2, seed: 10);
        imported.Forward(x).Data.ToArray().Should().Equal(net.Forward(x).Data.ToArray());
        OnnxExportTests.AssertClose(imported.Forward(x).Data.ToArray(), RunExported(path, x), 2);
    }

    [Fact]
    public void A_minus_infinity_Pad_before_a_MaxPool_folds_into_its_padding()
    {
        string source = Path.Combine(Dir, "pool.onnx");
        var net = new Sequential<float>(new MaxPool2d<float>(3, stride: 2, padding: 1), new Flatten<float>());
        OnnxModel.Export(net, source, 7, 6, 2);
        string path = Rewrite(source, m => InsertPad(m, "MaxPool", [0, 0, 1, 1, 0, 0, 1, 1], pool => SetInts(pool, "pads", 0, 0, 0, 0), float.NegativeInfinity));
        var imported = OnnxModel.Import(path);
        imported.Layers[0].Name.Should().Be("MaxPool2d 3x3 stride 2 pad 1");
        var x = OnnxExportTests.RandomImages(2, 7, 6, 2, seed: 11);
        for (int i = 0; i < x.Length; i++) x.Span[i] -= 2; // all negative: zero padding would show
        imported.Forward(x).Data.ToArray().Should().Equal(net.Forward(x).Data.ToArray());
        OnnxExportTests.AssertClose(imported.Forward(x).Data.ToArray(), RunExported(path, x), 6);
    }

    [Fact]
    public void A_Pad_of_nothing_is_passed_over_wherever_it_stands()
    {
        string source = Path.Combine(Dir, "relu.onnx");
        var net = new Sequential<float>(new Relu<float>(), new Flatten<float>());
        OnnxModel.Export(net, source, 3, 3, 1);
        string path = Rewrite(source, m => InsertPad(m, "Relu", [0, 0, 0, 0, 0, 0, 0, 0], _ => { }, value: 5));
        OnnxModel.Import(path).Layers.Select(TypeName).Should().Equal("Relu", "Flatten");
    }

    [Theory]
    [InlineData("Relu", new long[] { 0, 0, 1, 1, 0, 0, 1, 1 }, 0f, "constant",
        "only a Pad right before a Conv, AveragePool or MaxPool folds into that layer's padding, and '1_Relu' (op Relu) follows it")]
    [InlineData("MaxPool", new long[] { 0, 0, 1, 1, 0, 0, 1, 1 }, 0f, "constant",
        "it pads with zeros and '1_MaxPool' (op MaxPool) follows it, but LeNetSharp's MaxPool2d pads with −∞")]
    [InlineData("Conv", new long[] { 0, 0, 1, 1, 0, 0, 1, 1 }, float.NegativeInfinity, "constant",
        "it pads with −∞, which only a following MaxPool can take as padding, and '1_Conv' (op Conv) follows it")]
    [InlineData("Conv", new long[] { 0, 0, 1, 1, 0, 0, 1, 1 }, 1.5f, "constant",
        "it pads with 1.5; only zeros (before a Conv or AveragePool) or −∞ (before a MaxPool) fold into a layer's padding")]
    [InlineData("Conv", new long[] { 0, 0, 1, 1, 0, 0, 1, 1 }, 0f, "reflect", "mode 'reflect' (only constant padding folds into a layer)")]
    [InlineData("Conv", new long[] { 0, 1, 0, 0, 0, 0, 0, 0 }, 0f, "constant", "pads [0, 1, 0, 0, 0, 0, 0, 0] pad the batch or channel axis")]
    [InlineData("Conv", new long[] { 0, 0, -1, 0, 0, 0, 0, 0 }, 0f, "constant",
        "pads [0, 0, -1, 0, 0, 0, 0, 0]: only 0 to 1024 on each side is supported (no cropping)")]
    [InlineData("Conv", new long[] { 0, 0, 1, 1 }, 0f, "constant", "expected 8 pads for a rank-4 tensor, found 4")]
    public void Other_Pads_are_refused_naming_the_Pad_node(string before, long[] pads, float value, string mode, string why)
    {
        string source = Path.Combine(Dir, "net.onnx");
        var random = new Random(1);
        ILayer<float> layer = before switch
        {
            "Relu" => new Relu<float>(),
            "MaxPool" => new MaxPool2d<float>(3, 1, 1),
            _ => new Conv<float>(1, 2, 3, 3, random),
        };
        OnnxModel.Export(new Sequential<float>(layer, new Flatten<float>()), source, 5, 5, 1);
        string path = Rewrite(source, m => InsertPad(m, before, pads, _ => { }, value, mode));
        Refusal(path).Should().Be($"{path}: unsupported node 'pad' (op Pad): {why}.");
    }

    [Fact]
    public void A_Pad_that_ends_the_graph_or_takes_a_pool_past_half_its_kernel_is_refused()
    {
        string source = Path.Combine(Dir, "pool.onnx");
        OnnxModel.Export(new Sequential<float>(new AvgPool2d<float>(3, 1, 1), new Flatten<float>()), source, 5, 5, 1);
        string wide = Rewrite(source, m => InsertPad(m, "AveragePool", [0, 0, 1, 1, 0, 0, 1, 1], _ => { }));
        Refusal(wide).Should().Be($"{wide}: unsupported node '1_AveragePool' (op AveragePool): padding 2 is more than half the 3x3 kernel "
            + "(LeNetSharp's pools, like PyTorch's, pad at most kernel/2).");

        string image = Path.Combine(Dir, "image.onnx");
        OnnxModel.Export(new Sequential<float>(new AvgPool2d<float>(3, 1, 1)), image, 5, 5, 1); // ends in (N, 5, 5, 1)
        string last = Rewrite(image, m =>
        {
            m.Graph.Node.Remove(m.Graph.Node.Single(n => n.OpType == "Softmax"));
            m.Graph.Output.RemoveAt(1);
            m.Graph.Node.Single(n => n.Output[0] == "logits").Output[0] = "pooled";
            var pad = PadNode(m, "pooled", [0, 1, 0, 0, 0, 0, 0, 0], 0, "constant"); // NHWC here: one row on top
            pad.Output[0] = "logits";
            m.Graph.Node.Add(pad);
        });
        Refusal(last).Should().Be($"{last}: unsupported node 'pad' (op Pad): only a Pad right before a Conv, AveragePool or MaxPool folds into that "
            + "layer's padding, and the graph ends after it.");
    }

    [Fact]
    public void An_AveragePool_that_leaves_its_padding_out_of_the_average_is_refused()
    {
        string source = Path.Combine(Dir, "pool.onnx");
        OnnxModel.Export(new Sequential<float>(new AvgPool2d<float>(3, 1, 1), new Flatten<float>()), source, 5, 5, 1);
        string path = Rewrite(source, m => m.Graph.Node.Single(n => n.OpType == "AveragePool").Attribute.Single(a => a.Name == "count_include_pad").I = 0);
        Refusal(path).Should().Be($"{path}: unsupported node '1_AveragePool' (op AveragePool): count_include_pad 0 with pads "
            + "(LeNetSharp's AvgPool2d counts the padding in the average: count_include_pad 1).");
    }

    [Fact]
    public void MaxPool_with_other_windows_imports_as_MaxPool2d_and_matches_OnnxRuntime()
    {
        // The LeNet fixture's first pool made 3x3 stride 1 pad 1; the second stays the tutorial's 2x2 layer.
        string path = Rewrite(Fixture("lenet_trained.onnx"), m =>
        {
            var pool = m.Graph.Node.First(n => n.OpType == "MaxPool");
            SetInts(pool, "kernel_shape", 3, 3);
            SetInts(pool, "strides", 1, 1);
            SetInts(pool, "pads", 1, 1, 1, 1);
            var fc = m.Graph.Initializer.Single(t => t.Name == "fc.weight"); // 16 x 10 x 10 = 1600 features now
            fc.Dims[1] = 1600;
            var random = new Random(13);
            fc.RawData = ByteString.CopyFrom(Enumerable.Range(0, 10 * 1600).SelectMany(_ => BitConverter.GetBytes(random.NextSingle() * 0.1f - 0.05f)).ToArray());
        });
        var net = OnnxModel.Import(path);
        net.Layers.Select(l => l.Name).Should().Contain("MaxPool2d 3x3 stride 1 pad 1").And.Contain("MaxPool2x2");
        var x = OnnxExportTests.RandomImages(2, 28, 28, 1, seed: 12);
        OnnxExportTests.AssertClose(net.Forward(x).Data.ToArray(), RunNchw(path, x), 10);
    }

    // ---- BatchNormalization and Dropout refusals ----

    [Theory]
    [InlineData("epsilon", 0f, "epsilon 0 (expected positive and finite)")]
    [InlineData("momentum", 1.5f, "momentum 1.5 (expected 0 to 1)")]
    [InlineData("running_var", -1f, "var[1] is -1, expected a finite number ≥ 0")]
    [InlineData("running_var", float.PositiveInfinity, "tensor '*running_var' (2), read by node '1_BatchNormalization' (op BatchNormalization): element 1 is Infinity, expected a finite number")]
    [InlineData("running_mean", float.NaN, "tensor '*running_mean' (2), read by node '1_BatchNormalization' (op BatchNormalization): element 1 is NaN, expected a finite number")]
    [InlineData("training_mode", 1f, "training_mode 1 (only the inference form is supported)")]
    [InlineData("spatial", 0f, "spatial 0 (only statistics per channel are supported)")]
    public void BatchNormalization_settings_and_statistics_outside_the_layer_are_refused(string what, float value, string why)
    {
        string source = Path.Combine(Dir, "bn.onnx");
        OnnxModel.Export(new Sequential<float>(new BatchNorm2d<float>(2), new Flatten<float>()), source, 3, 3, 2);
        string path = Rewrite(source, m =>
        {
            var bn = m.Graph.Node.Single(n => n.OpType == "BatchNormalization");
            switch (what)
            {
                case "epsilon" or "momentum":
                    bn.Attribute.Single(a => a.Name == what).F = value;
                    break;
                case "training_mode" or "spatial":
                    bn.Attribute.Add(new AttributeProto { Name = what, Type = AttributeProto.Types.AttributeType.Int, I = (long)value });
                    break;
                default:
                    var t = m.Graph.Initializer.Single(t => t.Name == bn.Input[what == "running_mean" ? 3 : 4]);
                    byte[] raw = t.RawData.ToByteArray();
                    BitConverter.GetBytes(value).CopyTo(raw, 4);
                    t.RawData = ByteString.CopyFrom(raw);
                    break;
            }
        });
        Refusal(path).Should().Match(why.StartsWith("tensor", StringComparison.Ordinal) // non-finite values are refused as the tensor is read
            ? $"{path}: {why}."
            : $"{path}: unsupported node '1_BatchNormalization' (op BatchNormalization): {why}.");
    }

    [Fact]
    public void A_BatchNormalization_whose_statistics_do_not_fit_the_channels_is_refused()
    {
        string source = Path.Combine(Dir, "bn.onnx");
        OnnxModel.Export(new Sequential<float>(new BatchNorm2d<float>(2), new Flatten<float>()), source, 3, 3, 2);
        string path = Rewrite(source, m =>
        {
            var bn = m.Graph.Node.Single(n => n.OpType == "BatchNormalization");
            var mean = m.Graph.Initializer.Single(t => t.Name == bn.Input[3]);
            mean.Dims[0] = 3;
            mean.RawData = ByteString.CopyFrom(new byte[12]);
        });
        Refusal(path).Should().Be($"{path}: unsupported node '1_BatchNormalization' (op BatchNormalization): expected 'layer0.running_mean' of shape (2), found (3).");
    }

    [Fact]
    public void Dropout_forms_import_and_training_ones_are_refused()
    {
        string source = Path.Combine(Dir, "dropout.onnx");
        OnnxModel.Export(new Sequential<float>(new Dropout<float>(0.4, seed: 12), new Flatten<float>()), source, 2, 2, 1);
        var layer = OnnxModel.Import(source).Layers.OfType<Dropout<float>>().Single();
        (layer.P, layer.Seed).Should().Be((0.4, 12));

        string noRatio = Rewrite(source, m => m.Graph.Node.Single(n => n.OpType == "Dropout").Input.RemoveAt(1));
        OnnxModel.Import(noRatio).Layers.OfType<Dropout<float>>().Single().P.Should().Be(0.5, "ONNX's default ratio");

        string modeFalse = Rewrite(source, m => AddTrainingMode(m, false));
        OnnxModel.Import(modeFalse).Layers.OfType<Dropout<float>>().Single().P.Should().Be(0.4);

        string modeTrue = Rewrite(source, m => AddTrainingMode(m, true));
        Refusal(modeTrue).Should().Be($"{modeTrue}: unsupported node '1_Dropout' (op Dropout): training_mode is true; only the inference form "
            + "(training_mode absent or false) is supported.");

        string maskUsed = Rewrite(source, m =>
        {
            m.Graph.Node.Single(n => n.OpType == "Dropout").Output.Add("mask");
            m.Graph.Output.Add(new ValueInfoProto { Name = "mask" });
        });
        Refusal(maskUsed).Should().Be($"{maskUsed}: unsupported node '1_Dropout' (op Dropout): its mask 'mask' is used; only the inference form (output = input) is supported.");

        string opset11 = Rewrite(source, m =>
        {
            m.OpsetImport.Single().Version = 11;
            var dropout = m.Graph.Node.Single(n => n.OpType == "Dropout");
            dropout.Input.RemoveAt(1);
            dropout.Attribute.Clear();
            dropout.Attribute.Add(new AttributeProto { Name = "ratio", Type = AttributeProto.Types.AttributeType.Float, F = 0.2f });
        });
        OnnxModel.Import(opset11).Layers.OfType<Dropout<float>>().Single().P.Should().Be(0.2);

        string ratioOne = Rewrite(source, m => m.Graph.Initializer.Single(t => t.Name == "layer0.ratio").RawData = ByteString.CopyFrom(BitConverter.GetBytes(1f)));
        Refusal(ratioOne).Should().Be($"{ratioOne}: unsupported node '1_Dropout' (op Dropout): ratio 1 (expected 0 to below 1).");
    }

    [Fact]
    public void A_Conv_or_pool_after_a_GlobalAveragePool_is_refused_naming_it()
    {
        string source = Path.Combine(Dir, "gap.onnx");
        OnnxModel.Export(new Sequential<float>(new GlobalAvgPool2d<float>(), new Linear<float>(2, 2, new Random(1))), source, 3, 3, 2);
        string path = Rewrite(source, m =>
        {
            var gap = m.Graph.Node.Single(n => n.OpType == "GlobalAveragePool");
            var pool = new NodeProto { Name = "late_pool", OpType = "MaxPool", Input = { gap.Output[0] }, Output = { "late" } };
            pool.Attribute.Add(new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1 } });
            m.Graph.Node.Single(n => n.OpType == "Flatten").Input[0] = "late";
            m.Graph.Node.Insert(m.Graph.Node.IndexOf(gap) + 1, pool);
        });
        Refusal(path).Should().Be($"{path}: unsupported node 'late_pool' (op MaxPool): it follows a GlobalAveragePool, whose (N, C, 1, 1) LeNetSharp holds as (N, C).");
    }

    [Fact]
    public void An_initialiser_fed_to_many_nodes_cannot_add_up_past_the_total_ceiling()
    {
        // One 1448 x 1448 weight (8 MB, under the file and tensor ceilings) used by nine Gemms: 18.9 M elements to convert.
        string source = Path.Combine(Dir, "wide.onnx");
        var net = new Sequential<float>(new Flatten<float>(), new Linear<float>(1448, 1448, new Random(1)));
        OnnxModel.Export(net, source, 1448, 1, 1);
        string path = Rewrite(source, m =>
        {
            var gemm = m.Graph.Node.Single(n => n.OpType == "Gemm");
            var softmax = m.Graph.Node.Single(n => n.OpType == "Softmax");
            string previous = gemm.Output[0] = "g0";
            for (int k = 1; k < 9; k++)
            {
                var next = gemm.Clone();
                next.Name = $"gemm{k}";
                next.Input[0] = previous;
                next.Output[0] = previous = k == 8 ? "logits" : $"g{k}";
                m.Graph.Node.Insert(m.Graph.Node.IndexOf(softmax), next);
            }
        });
        new FileInfo(path).Length.Should().BeLessThan(OnnxModel.MaxFileBytes);
        Refusal(path).Should().Be($"{path}: the graph's weights add up to more than 16,777,216 elements (tensor 'layer1.weight' (1448, 1448) is used past "
            + "that); an initialiser used by many nodes counts each time.");
    }

    [Fact]
    public void A_BatchNormalization_right_after_GlobalAveragePool_normalises_the_pooled_vector()
    {
        // PyTorch's BatchNorm2d after AdaptiveAvgPool2d(1) normalises (N, C, 1, 1): the library's (N, C), so BatchNorm1d.
        string source = Path.Combine(Dir, "gap.onnx");
        var random = new Random(14);
        var net = new Sequential<float>(new GlobalAvgPool2d<float>(), new BatchNorm1d<float>(3), new Linear<float>(3, 2, random));
        Randomise(net, random);
        OnnxModel.Export(net, source, 4, 5, 3);
        string path = Rewrite(source, m =>
        {
            var flatten = m.Graph.Node.Single(n => n.OpType == "Flatten");
            var bn = m.Graph.Node.Single(n => n.OpType == "BatchNormalization");
            // GlobalAveragePool → Flatten → BatchNormalization → Gemm becomes GlobalAveragePool → BatchNormalization → Flatten → Gemm.
            bn.Input[0] = flatten.Input[0];
            flatten.Output[0] = bn.Output[0];
            bn.Output[0] = flatten.Input[0] = "normalised";
            m.Graph.Node.Remove(bn);
            m.Graph.Node.Insert(m.Graph.Node.IndexOf(flatten), bn);
        });
        var imported = OnnxModel.Import(path);
        imported.Layers.Select(TypeName).Should().Equal("GlobalAvgPool2d", "BatchNorm1d", "Linear");
        var x = OnnxExportTests.RandomImages(3, 4, 5, 3, seed: 15);
        net.Training = false;
        imported.Forward(x).Data.ToArray().Should().Equal(net.Forward(x).Data.ToArray());
        OnnxExportTests.AssertClose(imported.Forward(x).Data.ToArray(), RunExported(path, x), 2);
    }

    [Fact]
    public void Random_byte_damage_to_a_file_with_every_new_op_gives_a_network_or_one_OnnxFormatException()
    {
        OnnxImportTests.ByteDamage(Fixture("layers_gap.onnx"), Path.Combine(Dir, "fuzz.onnx"), seed: 16, cases: 400);
    }

    // ---- helpers ----

    private static void AddTrainingMode(ModelProto m, bool value)
    {
        var t = new TensorProto { Name = "training_mode", DataType = (int)TensorProto.Types.DataType.Bool, RawData = ByteString.CopyFrom(value ? (byte)1 : (byte)0) };
        m.Graph.Initializer.Add(t);
        m.Graph.Node.Single(n => n.OpType == "Dropout").Input.Add("training_mode");
    }

    /// <summary>Inserts a Pad named "pad" before the first node of <paramref name="op"/> and lets <paramref name="change"/> edit that node.</summary>
    private static void InsertPad(ModelProto m, string op, long[] pads, Action<NodeProto> change, float value = 0, string mode = "constant")
    {
        var target = m.Graph.Node.First(n => n.OpType == op);
        var pad = PadNode(m, target.Input[0], pads, value, mode);
        target.Input[0] = pad.Output[0];
        change(target);
        m.Graph.Node.Insert(m.Graph.Node.IndexOf(target), pad);
    }

    private static NodeProto PadNode(ModelProto m, string input, long[] pads, float value, string mode)
    {
        var padsTensor = new TensorProto { Name = "pad.pads", DataType = (int)TensorProto.Types.DataType.Int64, Dims = { pads.Length } };
        padsTensor.Int64Data.Add(pads);
        var valueTensor = new TensorProto { Name = "pad.value", DataType = (int)TensorProto.Types.DataType.Float, FloatData = { value } };
        m.Graph.Initializer.Add(padsTensor);
        m.Graph.Initializer.Add(valueTensor);
        var pad = new NodeProto { Name = "pad", OpType = "Pad", Input = { input, "pad.pads", "pad.value" }, Output = { "pad.out" } };
        pad.Attribute.Add(new AttributeProto { Name = "mode", Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(mode) });
        return pad;
    }

    private static void SetInts(NodeProto node, string name, params long[] values)
    {
        var existing = node.Attribute.FirstOrDefault(a => a.Name == name);
        if (existing is not null) node.Attribute.Remove(existing);
        node.Attribute.Add(new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints, Ints = { values } });
    }

    /// <summary>ONNX Runtime's logits for a file with an NHWC input (as Export writes).</summary>
    private static float[] RunExported(string path, Tensor<float> x) => Run(path, x.Data.ToArray(), x.Shape.ToArray());

    /// <summary>ONNX Runtime's logits for a file with an NCHW input (as PyTorch writes), given NHWC images.</summary>
    private static float[] RunNchw(string path, Tensor<float> x)
    {
        int n = x.Dim(0), h = x.Dim(1), w = x.Dim(2), c = x.Dim(3);
        var nchw = new float[x.Length];
        for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++)
        for (int k = 0; k < c; k++)
        {
            nchw[((b * c + k) * h + y) * w + i] = x.Span[((b * h + y) * w + i) * c + k];
        }

        return Run(path, nchw, [n, c, h, w]);
    }

    private static float[] Run(string path, float[] data, int[] shape)
    {
        using var session = new InferenceSession(path);
        string input = session.InputMetadata.Keys.Single();
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, new DenseTensor(data, shape))]);
        return results.First(r => r.Name == "logits").AsEnumerable<float>().ToArray();
    }

    private string Rewrite(string source, Action<ModelProto> change)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(source));
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
