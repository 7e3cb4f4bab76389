using System.Buffers.Binary;
using System.Globalization;
using System.Reflection;
using Google.Protobuf;
using LeNetSharp.Layers;
using LeNetSharp.Onnx.Protobuf;

namespace LeNetSharp.Onnx;

/// <summary>Builds the ONNX graph of a network (see <see cref="OnnxModel"/> for its layout).</summary>
internal static class OnnxExporter
{
    /// <summary>ONNX IR version 7 is the one that goes with opset 13.</summary>
    private const long IrVersion = 7;

    private static readonly long[] ToNchw = [0, 3, 1, 2];
    private static readonly long[] ToNhwc = [0, 2, 3, 1];

    public static ModelProto Build(Sequential<float> network, int height, int width, int channels)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        var shapes = network.OutputShapes([1, height, width, channels]); // throws ArgumentException on a mismatch
        NetworkLimits.Check(network.Layers, [height, width, channels], problem =>
            new ArgumentException($"The network is over the library's ceilings for ({height}, {width}, {channels}) images, so the file would not import: {problem}"));
        for (int i = 0; i < network.Layers.Count; i++)
        {
            if (NetworkLimits.ValueProblem(network.Layers[i]) is { } problem)
            {
                throw new InvalidOperationException($"ONNX export cannot store {NetworkLimits.Describe(i, network.Layers[i])}: {problem} A file holding it would not import.");
            }
        }

        var graph = new GraphProto { Name = "LeNetSharp" };
        graph.Input.Add(ValueInfo(OnnxModel.InputName, [height, width, channels]));
        string current = OnnxModel.InputName;
        bool nchw = false; // the layout of `current` when it has rank 4
        int rank = 4;

        string Emit(string op, string[] inputs, params AttributeProto[] attributes)
        {
            string name = $"{graph.Node.Count}_{op}";
            var node = new NodeProto { Name = name, OpType = op, Domain = "" };
            node.Input.Add(inputs);
            node.Output.Add(name);
            node.Attribute.Add(attributes);
            graph.Node.Add(node);
            return current = name;
        }

        void Layout(bool wantNchw)
        {
            if (rank == 4 && nchw != wantNchw) Emit("Transpose", [current], Ints("perm", wantNchw ? ToNchw : ToNhwc));
            nchw = wantNchw;
        }

        // The graph starts with the Transpose to NCHW whatever the first layer is: an importer reads the input as NHWC
        // only when a Transpose (0,3,1,2) takes it first (see OnnxImporter.Transpose).
        Layout(wantNchw: true);
        for (int i = 0; i < network.Layers.Count; i++)
        {
            string layer = $"layer{i}";
            switch (network.Layers[i])
            {
                case Conv<float> c:
                    Layout(wantNchw: true);
                    string w = Initializer(graph, $"{layer}.weight", OihwFromNhwcKernel(c), c.OutChannels, c.InChannels, c.KernelHeight, c.KernelWidth);
                    string b = Initializer(graph, $"{layer}.bias", c.Bias.Value.Span.ToArray(), c.OutChannels);
                    Emit("Conv", [current, w, b],
                        Ints("kernel_shape", c.KernelHeight, c.KernelWidth), Ints("strides", c.Stride, c.Stride),
                        Ints("pads", c.Padding, c.Padding, c.Padding, c.Padding), Ints("dilations", 1, 1), Int("group", 1));
                    break;
                case Relu<float>:
                    Emit("Relu", [current]);
                    break;
                case MaxPool2x2<float>:
                    Layout(wantNchw: true);
                    Emit("MaxPool", [current], Ints("kernel_shape", 2, 2), Ints("strides", 2, 2));
                    break;
                case MaxPool2d<float> mp:
                    Layout(wantNchw: true); // ONNX MaxPool's padding is never the maximum: MaxPool2d's −∞
                    Emit("MaxPool", [current], Ints("kernel_shape", mp.Kernel, mp.Kernel), Ints("strides", mp.Stride, mp.Stride),
                        Ints("pads", mp.Padding, mp.Padding, mp.Padding, mp.Padding));
                    break;
                case AvgPool2d<float> ap:
                    Layout(wantNchw: true);
                    Emit("AveragePool", [current], Ints("kernel_shape", ap.Kernel, ap.Kernel), Ints("strides", ap.Stride, ap.Stride),
                        Ints("pads", ap.Padding, ap.Padding, ap.Padding, ap.Padding), Int("count_include_pad", 1));
                    break;
                case GlobalAvgPool2d<float>:
                    Layout(wantNchw: true);
                    Emit("GlobalAveragePool", [current]); // (N, C, 1, 1)
                    Emit("Flatten", [current], Int("axis", 1)); // the layer's (N, C)
                    break;
                case Tanh<float>:
                    Emit("Tanh", [current]);
                    break;
                case Sigmoid<float>:
                    Emit("Sigmoid", [current]);
                    break;
                case LeakyRelu<float> lr:
                    Emit("LeakyRelu", [current], Float("alpha", AsFloat(network.Layers[i], "slope", lr.Slope)));
                    break;
                case Dropout<float> d:
                    // The inference form: training_mode is left out (false), so the node is the identity. The ratio and
                    // the seed are kept for an importer; ONNX Runtime does not use them at inference.
                    float ratio = AsFloat(network.Layers[i], "p", d.P);
                    if (ratio >= 1) throw new NotSupportedException($"ONNX export cannot write layer '{d.Name}': p {d.P.ToString(CultureInfo.InvariantCulture)} rounds to 1 as float32.");
                    Emit("Dropout", [current, Initializer(graph, $"{layer}.ratio", [ratio])], Int("seed", d.Seed));
                    break;
                case BatchNorm<float> bn:
                    if (rank == 4) Layout(wantNchw: true); // BatchNorm2d: ONNX normalises axis 1
                    Emit("BatchNormalization", [current, .. BatchNormInputs(graph, bn, layer)], BatchNormAttributes(bn));
                    break;
                case Flatten<float>:
                    Layout(wantNchw: false); // the library flattens (h, w, c)
                    Emit("Flatten", [current], Int("axis", 1));
                    break;
                case Linear<float> l:
                    string lw = Initializer(graph, $"{layer}.weight", l.Weight.Value.Span.ToArray(), l.InFeatures, l.OutFeatures);
                    string lb = Initializer(graph, $"{layer}.bias", l.Bias.Value.Span.ToArray(), l.OutFeatures);
                    Emit("Gemm", [current, lw, lb]); // Y = A·B + C with B (in, out): the library's own layout
                    break;
                default:
                    throw new NotSupportedException($"ONNX export cannot write layer '{network.Layers[i].Name}' ({network.Layers[i].GetType().Name}).");
            }

            rank = shapes[i].Length;
        }

        Layout(wantNchw: false); // a 4-D result leaves in the library's NHWC
        graph.Node[^1].Output[0] = OnnxModel.LogitsName;
        current = OnnxModel.LogitsName;
        var softmax = new NodeProto { Name = $"{graph.Node.Count}_Softmax", OpType = "Softmax", Domain = "" };
        softmax.Input.Add(OnnxModel.LogitsName);
        softmax.Output.Add(OnnxModel.ProbabilitiesName);
        softmax.Attribute.Add(Int("axis", -1));
        graph.Node.Add(softmax);

        int[] outputShape = shapes[^1][1..];
        graph.Output.Add(ValueInfo(OnnxModel.LogitsName, outputShape));
        graph.Output.Add(ValueInfo(OnnxModel.ProbabilitiesName, outputShape));

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "LeNetSharp",
            ProducerVersion = ProducerVersion(),
            DocString = $"LeNetSharp network, NHWC input ({height}x{width}x{channels}): {string.Join(" → ", network.Layers.Select(l => l.Name))}",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxModel.ExportOpset });
        return model;
    }

    /// <summary>LeNetSharp.Onnx's version without the source-revision suffix, e.g. "0.1.0".</summary>
    private static string ProducerVersion()
    {
        string? v = typeof(OnnxExporter).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        return v is null ? "0.0.0" : v.Split('+')[0];
    }

    /// <summary>
    /// BatchNorm1d on (N, F) or BatchNorm2d on NCHW as ONNX's BatchNormalization in its inference form (one output):
    /// scale γ, bias β, mean and var the running statistics. Learnable γ and β are initialisers; without affine, the
    /// fixed γ = 1 and β = 0 are Constant nodes, as PyTorch writes them (so an importer can tell the two apart even
    /// when a learnable γ is still 1 and β 0). ONNX's momentum is the running statistics' own weight, 1 − the layer's.
    /// </summary>
    private static string[] BatchNormInputs(GraphProto graph, BatchNorm<float> bn, string layer)
    {
        int c = bn.Channels;
        return
        [
            bn.Affine ? Initializer(graph, $"{layer}.weight", bn.Weight!.Value.Span.ToArray(), c) : ConstantNode(graph, $"{layer}.scale_ones", Enumerable.Repeat(1f, c).ToArray(), c),
            bn.Affine ? Initializer(graph, $"{layer}.bias", bn.Bias!.Value.Span.ToArray(), c) : ConstantNode(graph, $"{layer}.bias_zeros", new float[c], c),
            Initializer(graph, $"{layer}.running_mean", bn.RunningMean.Value.Span.ToArray(), c),
            Initializer(graph, $"{layer}.running_var", bn.RunningVar.Value.Span.ToArray(), c),
        ];
    }

    /// <summary>epsilon and momentum (1 − the layer's) of a BatchNormalization.</summary>
    private static AttributeProto[] BatchNormAttributes(BatchNorm<float> bn)
    {
        float eps = AsFloat(bn, "eps", bn.Eps);
        if (eps <= 0) throw new NotSupportedException($"ONNX export cannot write layer '{bn.Name}': eps {bn.Eps.ToString(CultureInfo.InvariantCulture)} rounds to 0 as float32.");
        return [Float("epsilon", eps), Float("momentum", (float)(1 - bn.Momentum))];
    }

    /// <summary>A layer's setting as the float32 ONNX stores; one that is not finite as float32 cannot be written.</summary>
    private static float AsFloat(ILayer<float> layer, string setting, double value)
    {
        float f = (float)value;
        if (!float.IsFinite(f)) throw new NotSupportedException($"ONNX export cannot write layer '{layer.Name}': its {setting} {value.ToString(CultureInfo.InvariantCulture)} is out of float32's range.");
        return f;
    }

    /// <summary>The kernel (KH, KW, C, OC) re-laid out as ONNX's (OC, C, KH, KW).</summary>
    internal static float[] OihwFromNhwcKernel(Conv<float> c)
    {
        int kh = c.KernelHeight, kw = c.KernelWidth, ci = c.InChannels, co = c.OutChannels;
        ReadOnlySpan<float> k = c.Weight.Value.Span;
        var oihw = new float[k.Length];
        for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++)
        for (int i = 0; i < ci; i++)
        for (int o = 0; o < co; o++)
        {
            oihw[((o * ci + i) * kh + y) * kw + x] = k[((y * kw + x) * ci + i) * co + o];
        }

        return oihw;
    }

    private static string Initializer(GraphProto graph, string name, float[] values, params int[] dims)
    {
        graph.Initializer.Add(FloatTensor(name, values, dims));
        return name;
    }

    /// <summary>A Constant node whose output <paramref name="name"/> holds <paramref name="values"/>.</summary>
    private static string ConstantNode(GraphProto graph, string name, float[] values, params int[] dims)
    {
        var node = new NodeProto { Name = $"{graph.Node.Count}_Constant", OpType = "Constant", Domain = "" };
        node.Output.Add(name);
        node.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = FloatTensor("", values, dims) });
        graph.Node.Add(node);
        return name;
    }

    private static TensorProto FloatTensor(string name, float[] values, int[] dims)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.Add(dims.Select(d => (long)d));
        return tensor;
    }

    /// <summary>A float tensor (N, dims…) with a symbolic batch dimension N.</summary>
    private static ValueInfoProto ValueInfo(string name, int[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "N" });
        foreach (int d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.Add(values);
        return a;
    }

    private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };
}
