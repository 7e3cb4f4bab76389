using System.Buffers.Binary;
using System.Globalization;
using Google.Protobuf;
using LeNetSharp.Layers;
using LeNetSharp.Onnx.Protobuf;
using DataType = LeNetSharp.Onnx.Protobuf.TensorProto.Types.DataType;

namespace LeNetSharp.Onnx;

/// <summary>
/// Turns a chain-shaped ONNX graph into an NHWC <see cref="Sequential{T}"/> (see <see cref="OnnxModel"/>).
/// The graph is walked as one chain from the image input; the tensor on the chain is tracked by its physical axis
/// order (which of N, H, W, C each axis holds) so Transposes, NCHW convolutions and pools, and the flatten order can be
/// mapped onto the library's NHWC layers. A Pad is held back and folded into the padding of the Conv or pool after it.
/// </summary>
internal sealed class OnnxImporter
{
    private const int MinOpset = 7, MaxOpset = 23;
    private const string Supported = "LeNetSharp imports Conv, Relu, LeakyRelu, Tanh, Sigmoid, MaxPool, AveragePool, GlobalAveragePool, "
        + "BatchNormalization and Dropout (inference forms), a Pad before a Conv or pool, Flatten, constant Reshape, Gemm, MatMul + Add, "
        + "Transpose, Identity and a final Softmax";

    /// <summary>The largest kernel, stride or padding a Conv or pool may declare (bounds the arithmetic on sizes).</summary>
    private const long MaxWindow = 1024;

    /// <summary>
    /// The most float elements all weights, biases and statistics of one import may add up to (16 M, 64 MiB): one
    /// initialiser can feed any number of nodes, so the per-tensor ceiling alone does not bound what the layers hold.
    /// </summary>
    internal const long MaxTotalElements = 4 * OnnxModel.MaxTensorElements;

    // Logical axes of a rank-4 tensor.
    private const int N = 0, H = 1, W = 2, C = 3;

    private readonly string _path;
    private readonly Dictionary<string, TensorProto> _constants = new(StringComparer.Ordinal);
    private readonly HashSet<TensorProto> _constantNodeValues = new(ReferenceEqualityComparer.Instance); // tensors of Constant nodes, not initialisers
    private readonly List<ILayer<float>> _layers = [];
    private readonly Random _dummy = new(0); // layer constructors draw weights; all are overwritten

    // The tensor on the chain.
    private string _current = "";
    private string _inputName = "";
    private int _rank;
    private int[] _axes = [N, C, H, W];      // rank 4: logical axis held by each physical axis
    private int _height, _width, _channels;  // rank 4: logical sizes
    private int _features;                   // rank 2: features per row
    private int[]? _featureOrder;            // rank 2 just after a flatten: library feature f is the graph's feature _featureOrder[f]
    private Linear<float>? _openLinear;      // the Linear made by the previous node (MatMul/Gemm), for a following bias Add
    private bool _squeezed;                  // rank 4 (N, C, 1, 1) in the graph after GlobalAveragePool; the library's tensor is (N, C)
    private PendingPad? _pad;                // a Pad waiting for the Conv or pool it pads
    private HashSet<string> _consumed = []; // every name a node reads or the graph returns
    private long _totalElements;             // float elements read from tensors so far
    private (int Height, int Width, int Channels) _inputShape;
    private NodeProto? _node;                // the node being read, for messages
    private NetworkTally? _tally;            // the network's layers, parameters and per-image cost so far

    /// <summary>A Pad node's padding (logical top, left, bottom, right), zeros or −∞, not yet folded into a layer.</summary>
    private sealed record PendingPad(NodeProto Node, int Top, int Left, int Bottom, int Right, bool NegativeInfinity);

    private OnnxImporter(string path) => _path = path;

    public static Sequential<float> Import(byte[] bytes, string path, out (int Height, int Width, int Channels) inputShape)
    {
        if (bytes.Length == 0) throw new OnnxFormatException(path, "the file is empty (0 bytes); expected an ONNX model.");
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxFormatException(path, $"not a readable ONNX protobuf (damaged or truncated): {e.Message}", e);
        }

        try
        {
            return new OnnxImporter(path).Convert(model, out inputShape);
        }
        catch (Exception e) when (e is ArgumentException or OverflowException or InvalidOperationException)
        {
            throw new OnnxFormatException(path, $"inconsistent model: {e.Message}", e);
        }
    }

    private Sequential<float> Convert(ModelProto model, out (int Height, int Width, int Channels) inputShape)
    {
        var graph = model.Graph ?? throw Fail("the model has no graph (truncated file?).");
        long opset = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).DefaultIfEmpty(-1).Max();
        if (opset < MinOpset || opset > MaxOpset)
        {
            throw Fail(opset < 0
                ? "the model imports no default-domain opset (truncated file?)."
                : $"expected opset {MinOpset} to {MaxOpset} of the default domain, found {opset}.");
        }

        OnnxGraphCheck.Check(graph, opset, _path); // the checker's rules, before any node is read
        foreach (var t in graph.Initializer) AddConstant(t, "initializer");
        if (graph.SparseInitializer.Count > 0) throw Fail("sparse initialisers are not supported.");

        var inputs = graph.Input.Where(i => !_constants.ContainsKey(i.Name)).ToList();
        if (inputs.Count != 1)
        {
            throw Fail($"expected one image input, found {inputs.Count} ({string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}).");
        }

        ReadInput(inputs[0]);
        if (graph.Output.Count == 0) throw Fail("the graph has no output (truncated file?).");
        var outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        _consumed = graph.Node.SelectMany(n => n.Input).Concat(outputs).ToHashSet(StringComparer.Ordinal);

        string? logits = null, probabilities = null; // set by a final Softmax
        foreach (var node in graph.Node)
        {
            _node = node;
            if (node.OpType == "Constant" && IsDefaultDomain(node))
            {
                AddConstantNode(node);
                continue;
            }

            if (node.OpType == "Identity" && IsDefaultDomain(node) && node.Input.Count == 1 && node.Output.Count == 1
                && _constants.TryGetValue(node.Input[0], out var aliased))
            {
                // torch.onnx.export writes equal parameters once and the others as Identity of it (e.g. a fresh
                // BatchNorm's running_var and weight, both ones). The alias shares the tensor: nothing is copied.
                if (!_constants.TryAdd(node.Output[0], aliased)) throw Fail($"Identity node '{node.Name}': the name '{node.Output[0]}' is defined twice.");
                continue;
            }

            if (logits is not null) throw Unsupported(node, "nodes after Softmax are not supported");
            if (!IsDefaultDomain(node)) throw Unsupported(node, $"domain '{node.Domain}' is not supported");
            if (node.OpType == "Add" && node.Input.Count == 2 && node.Input[1] == _current)
            {
                (node.Input[0], node.Input[1]) = (node.Input[1], node.Input[0]); // Add(bias, x) is Add(x, bias)
            }

            if (node.Input.Count == 0 || node.Input[0] != _current)
            {
                throw Unsupported(node, $"it does not continue the chain from the input (its first input is '{(node.Input.Count > 0 ? node.Input[0] : "")}', the chain is at '{_current}')");
            }

            if (node.Output.Count < 1) throw Unsupported(node, "it has no output");
            if (_pad is { } pending && node.OpType is not ("Conv" or "MaxPool" or "AveragePool"))
            {
                throw Unsupported(pending.Node, $"only a Pad right before a Conv, AveragePool or MaxPool folds into that layer's padding, and '{node.Name}' (op {node.OpType}) follows it");
            }

            var linear = _openLinear;
            _openLinear = null;
            switch (node.OpType)
            {
                case "Conv": Conv(node); break;
                case "Relu": Expect(node, 1); AddLayer(new Relu<float>()); break;
                case "Tanh": Expect(node, 1); AddLayer(new Tanh<float>()); break;
                case "Sigmoid": Expect(node, 1); AddLayer(new Sigmoid<float>()); break;
                case "LeakyRelu": LeakyRelu(node); break;
                case "Dropout": Dropout(node, opset); break;
                case "BatchNormalization": BatchNormalization(node); break;
                case "MaxPool": MaxPool(node); break;
                case "AveragePool": AveragePool(node); break;
                case "GlobalAveragePool": GlobalAveragePool(node); break;
                case "Pad": Pad(node, opset); break;
                case "Flatten": Flatten(node); break;
                case "Reshape": Reshape(node); break;
                case "Gemm": Gemm(node); break;
                case "MatMul": MatMul(node); break;
                case "Add": AddBias(node, linear); break;
                case "Transpose": Transpose(node); break;
                case "Identity": Expect(node, 1); break;
                case "Softmax":
                    Expect(node, 1);
                    long axis = IntAttr(node, "axis", opset >= 13 ? -1 : 1);
                    if (_rank != 2 || axis is not (-1 or 1)) throw Unsupported(node, $"only a Softmax over the classes of (N, classes) logits is supported, found axis {axis} on rank {_rank}");
                    logits = _current;
                    probabilities = node.Output[0];
                    break;
                default:
                    throw Unsupported(node, Supported);
            }

            if (node.OpType != "Softmax") _current = node.Output[0];
        }

        if (_pad is not null) throw Unsupported(_pad.Node, "only a Pad right before a Conv, AveragePool or MaxPool folds into that layer's padding, and the graph ends after it");
        if (_layers.Count == 0) throw Fail("the graph has no layers LeNetSharp can import.");
        if (!outputs.Contains(_current) && (probabilities is null || !outputs.Contains(probabilities)))
        {
            throw Fail($"the chain ends at '{_current}', which is not a graph output ({string.Join(", ", outputs.Select(o => $"'{o}'"))}).");
        }

        if (_featureOrder is not null) throw Fail("the graph flattens but no Gemm/MatMul follows; the library cannot reproduce the graph's (c, h, w) feature order.");
        for (int i = 0; i < _layers.Count; i++)
        {
            // Each tensor was finite (FloatTensor); a product of finite values (Gemm's alpha or beta times B or C) may not be.
            if (NetworkLimits.NonFiniteValue(_layers[i]) is { } problem)
            {
                throw Fail($"{NetworkLimits.Describe(i, _layers[i])}: {problem} A product of the graph's values (Gemm's alpha or beta times its weights) overflows float32.");
            }
        }

        inputShape = _inputShape;
        // An ONNX graph is an inference graph: the network starts in evaluation mode (BatchNorm uses the imported
        // running statistics, Dropout passes its input through). A Trainer turns training on for its steps.
        return new Sequential<float>([.. _layers]) { Training = false };
    }

    /// <summary>
    /// Appends the layer the current node makes, within the library's ceilings (<see cref="NetworkLimits"/>): layers,
    /// parameters, and what one input image holds and costs, checked before anything runs.
    /// </summary>
    private void AddLayer(ILayer<float> layer)
    {
        int index = _layers.Count;
        string what = $"node '{_node!.Name}' (op {_node.OpType}) as {NetworkLimits.Describe(index, layer)}";
        _tally ??= new NetworkTally([_inputShape.Height, _inputShape.Width, _inputShape.Channels], Fail);
        _tally.Reserve(index, what, NetworkLimits.StoredElements(layer));
        _tally.Run(layer, what);
        _layers.Add(layer);
    }

    private static bool IsDefaultDomain(NodeProto node) => node.Domain is "" or "ai.onnx";

    private void ReadInput(ValueInfoProto input)
    {
        var tensor = input.Type?.TensorType;
        if (tensor is null || tensor.ElemType != (int)DataType.Float)
        {
            throw Fail($"input '{input.Name}': expected a float32 tensor, found {(tensor is null ? "no tensor type" : ((DataType)tensor.ElemType).ToString())}.");
        }

        var dims = tensor.Shape?.Dim ?? throw Fail($"input '{input.Name}': the shape is not declared; a fixed (N, C, H, W) is needed.");
        if (dims.Count != 4) throw Fail($"input '{input.Name}': expected rank 4 images (N, C, H, W), found rank {dims.Count}.");
        var size = new int[4];
        for (int i = 1; i < 4; i++)
        {
            var d = dims[i];
            if (d.ValueCase != TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue)
            {
                throw Fail($"input '{input.Name}': dimension {i} is dynamic ('{d.DimParam}'); a fixed size is needed to build the layers.");
            }

            if (d.DimValue is < 1 or > 1 << 16) throw Fail($"input '{input.Name}': dimension {i} is {d.DimValue}, expected 1 to 65536.");
            size[i] = (int)d.DimValue;
        }

        // Physical (N, C, H, W) as PyTorch writes it; a Transpose right after the input re-labels it (see Transpose).
        _current = _inputName = input.Name;
        _rank = 4;
        _axes = [N, C, H, W];
        _channels = size[1];
        _height = size[2];
        _width = size[3];
        _inputShape = (_height, _width, _channels);
        if (checked((long)_channels * _height * _width) > OnnxModel.MaxTensorElements) throw Fail($"input '{input.Name}': {_channels}x{_height}x{_width} elements per image is more than {OnnxModel.MaxTensorElements:N0}.");
    }

    /// <summary>The physical axis order (N, C, H, W) PyTorch's input, Conv and the pools use.</summary>
    private bool IsNchw => _rank == 4 && !_squeezed && _axes.SequenceEqual([N, C, H, W]);

    private void Transpose(NodeProto node)
    {
        Expect(node, 1);
        long[] perm = IntsAttr(node, "perm") ?? [];
        if (_rank != 4 || perm.Length != 4 || perm.Order().Select((p, i) => p == i).Any(ok => !ok) || perm[0] != 0)
        {
            throw Unsupported(node, $"only a rank-4 Transpose that keeps the batch axis first is supported, found perm [{string.Join(", ", perm)}] on rank {_rank}");
        }

        if (_current == _inputName && perm.SequenceEqual([0L, 3, 1, 2]))
        {
            // The first node turns the input NHWC → NCHW: the declared input was (N, H, W, C) (as Export writes it).
            (_channels, _height, _width) = (_width, _channels, _height);
            _inputShape = (_height, _width, _channels);
            return;
        }

        _axes = perm.Select(p => _axes[p]).ToArray();
    }

    private void Conv(NodeProto node)
    {
        Expect(node, 1);
        RequireNchw(node);
        if (node.Input.Count is < 2 or > 3) throw Unsupported(node, $"expected inputs (X, W[, B]), found {node.Input.Count}");
        var (wDims, w) = FloatTensor(node, node.Input[1]);
        if (wDims.Length != 4) throw Unsupported(node, $"expected a rank-4 OIHW weight, found rank {wDims.Length}");
        int oc = wDims[0], ic = wDims[1], kh = wDims[2], kw = wDims[3];
        if (ic != _channels) throw Unsupported(node, $"the weight expects {ic} input channels, the tensor has {_channels}");
        float[] bias = new float[oc];
        if (node.Input.Count == 3 && node.Input[2].Length > 0)
        {
            var (bDims, b) = FloatTensor(node, node.Input[2]);
            if (bDims.Length != 1 || bDims[0] != oc) throw Unsupported(node, $"expected bias ({oc}), found {Shape(bDims)}");
            bias = b;
        }

        if (IntAttr(node, "group", 1) != 1) throw Unsupported(node, $"group {IntAttr(node, "group", 1)} (only group 1)");
        RequireAll(node, "dilations", 1);
        RequireNoAutoPad(node);
        long[] ks = IntsAttr(node, "kernel_shape") ?? [kh, kw];
        if (!ks.SequenceEqual([(long)kh, kw])) throw Unsupported(node, $"kernel_shape [{string.Join(", ", ks)}] differs from the weight's {kh}x{kw}");
        long[] strides = IntsAttr(node, "strides") ?? [1, 1];
        if (strides.Length != 2 || strides[0] != strides[1] || strides[0] is < 1 or > 1024)
        {
            throw Unsupported(node, $"strides [{string.Join(", ", strides)}]: only equal strides in both directions are supported");
        }

        int pad = SquarePadding(node, negativeInfinity: false);
        int stride = (int)strides[0];
        int oh = (_height + 2 * pad - kh) / stride + 1, ow = (_width + 2 * pad - kw) / stride + 1;
        if (_height + 2 * pad < kh || _width + 2 * pad < kw) throw Unsupported(node, $"a {kh}x{kw} kernel does not fit the padded {_height}x{_width} input");

        var conv = new Conv<float>(ic, oc, kh, kw, _dummy, stride, pad);
        Span<float> k = conv.Weight.Value.Span;
        for (int o = 0; o < oc; o++)
        for (int i = 0; i < ic; i++)
        for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++)
        {
            k[((y * kw + x) * ic + i) * oc + o] = w[((o * ic + i) * kh + y) * kw + x];
        }

        bias.CopyTo(conv.Bias.Value.Span);
        AddLayer(conv);
        (_height, _width, _channels) = (oh, ow, oc);
    }

    private void MaxPool(NodeProto node)
    {
        if (node.Output.Count > 1 && node.Output[1].Length > 0) throw Unsupported(node, "the Indices output is not supported");
        if (IntAttr(node, "storage_order", 0) != 0) throw Unsupported(node, "storage_order 1");
        var (kernel, stride, padding) = PoolSettings(node, negativeInfinity: true);
        // The tutorial's 2x2 pool keeps its own layer, which the compute backends fuse with the Conv and Relu before it.
        AddLayer(kernel == 2 && stride == 2 && padding == 0 ? new MaxPool2x2<float>() : new MaxPool2d<float>(kernel, stride, padding));
        PoolOutput(kernel, stride, padding);
    }

    private void AveragePool(NodeProto node)
    {
        Expect(node, 1);
        long[] own = IntsAttr(node, "pads") ?? [];
        var (kernel, stride, padding) = PoolSettings(node, negativeInfinity: false);
        if (own.Any(p => p != 0) && IntAttr(node, "count_include_pad", 0) == 0)
        {
            throw Unsupported(node, "count_include_pad 0 with pads (LeNetSharp's AvgPool2d counts the padding in the average: count_include_pad 1)");
        }

        AddLayer(new AvgPool2d<float>(kernel, stride, padding));
        PoolOutput(kernel, stride, padding);
    }

    private void GlobalAveragePool(NodeProto node)
    {
        Expect(node, 1);
        RequireNchw(node);
        AddLayer(new GlobalAvgPool2d<float>());
        (_height, _width) = (1, 1);
        _squeezed = true; // the graph's (N, C, 1, 1) is the library's (N, C): a Flatten or Reshape after it adds no layer
    }

    /// <summary>
    /// A MaxPool's or AveragePool's square kernel, equal strides and same padding on every side (with a Pad before it
    /// folded in), checked against the library's pools and the input.
    /// </summary>
    private (int Kernel, int Stride, int Padding) PoolSettings(NodeProto node, bool negativeInfinity)
    {
        RequireNchw(node);
        long[] kernel = IntsAttr(node, "kernel_shape") ?? [];
        if (kernel.Length != 2 || kernel[0] != kernel[1] || kernel[0] is < 1 or > MaxWindow)
        {
            throw Unsupported(node, $"kernel_shape [{string.Join(", ", kernel)}]: only a square kernel of 1 to {MaxWindow} is supported");
        }

        long[] strides = IntsAttr(node, "strides") ?? [1, 1];
        if (strides.Length != 2 || strides[0] != strides[1] || strides[0] is < 1 or > MaxWindow)
        {
            throw Unsupported(node, $"strides [{string.Join(", ", strides)}]: only equal strides in both directions are supported");
        }

        RequireAll(node, "dilations", 1);
        RequireNoAutoPad(node);
        if (IntAttr(node, "ceil_mode", 0) != 0) throw Unsupported(node, "ceil_mode 1 (the library floors)");
        int k = (int)kernel[0], padding = SquarePadding(node, negativeInfinity);
        if (padding > k / 2)
        {
            throw Unsupported(node, $"padding {padding} is more than half the {k}x{k} kernel (LeNetSharp's pools, like PyTorch's, pad at most kernel/2)");
        }

        if (_height + 2 * padding < k || _width + 2 * padding < k)
        {
            throw Unsupported(node, $"a {k}x{k} pool does not fit the {_height}x{_width} input" + (padding > 0 ? $" padded by {padding}" : ""));
        }

        return (k, (int)strides[0], padding);
    }

    private void PoolOutput(int kernel, int stride, int padding) =>
        (_height, _width) = ((_height + 2 * padding - kernel) / stride + 1, (_width + 2 * padding - kernel) / stride + 1);

    /// <summary>
    /// The padding of a Conv or pool: its pads attribute plus a Pad right before it (zeros, or −∞ before a MaxPool),
    /// which must come to the same amount on every side.
    /// </summary>
    private int SquarePadding(NodeProto node, bool negativeInfinity)
    {
        long[] pads = IntsAttr(node, "pads") ?? [0, 0, 0, 0];
        if (pads.Length != 4 || pads.Any(p => p != pads[0]) && _pad is null || pads.Any(p => p is < 0 or > MaxWindow))
        {
            throw Unsupported(node, $"pads [{string.Join(", ", pads)}]: only the same padding on every side is supported");
        }

        if (_pad is not { } pad) return (int)pads[0];
        _pad = null;
        if (pad.NegativeInfinity != negativeInfinity)
        {
            throw Unsupported(pad.Node, pad.NegativeInfinity
                ? $"it pads with −∞, which only a following MaxPool can take as padding, and '{node.Name}' (op {node.OpType}) follows it"
                : $"it pads with zeros and '{node.Name}' (op MaxPool) follows it, but LeNetSharp's MaxPool2d pads with −∞");
        }

        long[] total = [pads[0] + pad.Top, pads[1] + pad.Left, pads[2] + pad.Bottom, pads[3] + pad.Right];
        if (total.Any(p => p != total[0]) || total[0] > MaxWindow)
        {
            throw Unsupported(node, $"pads [{string.Join(", ", total)}] (its own [{string.Join(", ", pads)}] and the Pad '{pad.Node.Name}' before it): "
                + "only the same padding on every side is supported");
        }

        return (int)total[0];
    }

    /// <summary>
    /// A constant Pad of a rank-4 image's height and width. Held back until the next node, a Conv or pool, takes it as
    /// padding; a Pad of nothing is passed over.
    /// </summary>
    private void Pad(NodeProto node, long opset)
    {
        Expect(node, 1);
        if (_rank != 4 || _squeezed) throw Unsupported(node, "only a Pad of (N, C, H, W) images before a Conv or pool is supported");
        string mode = StringAttr(node, "mode", "constant");
        if (mode != "constant") throw Unsupported(node, $"mode '{mode}' (only constant padding folds into a layer)");
        long[] pads;
        float value;
        if (opset >= 11)
        {
            if (node.Input.Count is < 2 or > 4) throw Unsupported(node, $"expected inputs (data, pads[, constant_value]), found {node.Input.Count}");
            if (node.Input.Count == 4 && node.Input[3].Length > 0) throw Unsupported(node, "the axes input is not supported (give pads for every axis)");
            if (!_constants.TryGetValue(node.Input[1], out var padsTensor)) throw Unsupported(node, $"its pads '{node.Input[1]}' are computed at run time; constant pads are needed");
            pads = Int64Tensor(node, padsTensor);
            value = node.Input.Count >= 3 && node.Input[2].Length > 0 ? FloatScalar(node, node.Input[2], "constant_value", anyValue: true) : 0;
        }
        else
        {
            pads = IntsAttr(node, "pads") ?? throw Unsupported(node, "it has no pads");
            value = FloatAttr(node, "value", 0);
        }

        if (pads.Length != 8) throw Unsupported(node, $"expected 8 pads for a rank-4 tensor, found {pads.Length}");
        if (pads.Any(p => p is < 0 or > MaxWindow)) throw Unsupported(node, $"pads [{string.Join(", ", pads)}]: only 0 to {MaxWindow} on each side is supported (no cropping)");
        var begin = new long[4];
        var end = new long[4];
        for (int i = 0; i < 4; i++)
        {
            begin[_axes[i]] = pads[i]; // pads hold the physical axes' beginnings, then their ends
            end[_axes[i]] = pads[4 + i];
        }

        if (begin[N] != 0 || end[N] != 0 || begin[C] != 0 || end[C] != 0) throw Unsupported(node, $"pads [{string.Join(", ", pads)}] pad the batch or channel axis");
        if (pads.All(p => p == 0)) return; // pads nothing: the identity
        bool negativeInfinity = float.IsNegativeInfinity(value);
        if (value != 0 && !negativeInfinity)
        {
            throw Unsupported(node, $"it pads with {value.ToString(CultureInfo.InvariantCulture)}; only zeros (before a Conv or AveragePool) or −∞ (before a MaxPool) fold into a layer's padding");
        }

        _pad = new PendingPad(node, (int)begin[H], (int)begin[W], (int)end[H], (int)end[W], negativeInfinity);
    }

    private void LeakyRelu(NodeProto node)
    {
        Expect(node, 1);
        float alpha = FloatAttr(node, "alpha", 0.01f);
        if (!float.IsFinite(alpha)) throw Unsupported(node, $"alpha {alpha.ToString(CultureInfo.InvariantCulture)} (a finite slope is needed)");
        AddLayer(new LeakyRelu<float>(SettingFromFloat(alpha)));
    }

    /// <summary>Dropout in its inference form, the identity: ratio from the input (opset 12 on) or the attribute, training_mode absent or false.</summary>
    private void Dropout(NodeProto node, long opset)
    {
        if (node.Output.Count > 2) throw Unsupported(node, $"expected outputs (output[, mask]), found {node.Output.Count}");
        if (node.Output.Count == 2 && node.Output[1].Length > 0 && _consumed.Contains(node.Output[1]))
        {
            throw Unsupported(node, $"its mask '{node.Output[1]}' is used; only the inference form (output = input) is supported");
        }

        float ratio = 0.5f;
        if (opset >= 12)
        {
            if (node.Input.Count > 3) throw Unsupported(node, $"expected inputs (data[, ratio[, training_mode]]), found {node.Input.Count}");
            if (node.Input.Count >= 2 && node.Input[1].Length > 0) ratio = FloatScalar(node, node.Input[1], "ratio");
            if (node.Input.Count == 3 && node.Input[2].Length > 0 && BoolScalar(node, node.Input[2], "training_mode"))
            {
                throw Unsupported(node, "training_mode is true; only the inference form (training_mode absent or false) is supported");
            }
        }
        else
        {
            if (node.Input.Count != 1) throw Unsupported(node, $"expected one input, found {node.Input.Count}");
            ratio = FloatAttr(node, "ratio", 0.5f);
        }

        if (!(ratio >= 0 && ratio < 1)) throw Unsupported(node, $"ratio {ratio.ToString(CultureInfo.InvariantCulture)} (expected 0 to below 1)");
        long seed = IntAttr(node, "seed", 0);
        if (seed is < int.MinValue or > int.MaxValue) throw Unsupported(node, $"seed {seed} does not fit a 32-bit integer");
        AddLayer(new Dropout<float>(SettingFromFloat(ratio), (int)seed));
    }

    /// <summary>
    /// BatchNormalization in its inference form (one output): BatchNorm2d on (N, C, H, W) images, BatchNorm1d on
    /// (N, F) or after a global pool. Scale and bias from initialisers import as the layer's learnable γ and β, whatever
    /// their values; scale 1 and bias 0 from Constant nodes import as a BatchNorm without affine.
    /// </summary>
    private void BatchNormalization(NodeProto node)
    {
        if (node.Output.Skip(1).Any(o => o.Length > 0))
        {
            throw Unsupported(node, "the training form (with running-statistics outputs) is not supported; export the model in evaluation mode");
        }

        if (IntAttr(node, "training_mode", 0) != 0) throw Unsupported(node, "training_mode 1 (only the inference form is supported)");
        if (IntAttr(node, "spatial", 1) != 1) throw Unsupported(node, "spatial 0 (only statistics per channel are supported)");
        if (node.Input.Count != 5) throw Unsupported(node, $"expected inputs (X, scale, B, mean, var), found {node.Input.Count}");
        bool image = _rank == 4 && !_squeezed;
        if (image) RequireNchw(node);
        int channels = _rank == 4 ? _channels : _features;
        float[] scale = ChannelVector(node, 1, channels), bias = ChannelVector(node, 2, channels),
            mean = ChannelVector(node, 3, channels), variance = ChannelVector(node, 4, channels);
        float epsilon = FloatAttr(node, "epsilon", 1e-5f), momentum = FloatAttr(node, "momentum", 0.9f);
        if (!(epsilon > 0 && float.IsFinite(epsilon))) throw Unsupported(node, $"epsilon {epsilon.ToString(CultureInfo.InvariantCulture)} (expected positive and finite)");
        if (!(momentum >= 0 && momentum <= 1)) throw Unsupported(node, $"momentum {momentum.ToString(CultureInfo.InvariantCulture)} (expected 0 to 1)");
        for (int c = 0; c < channels; c++)
        {
            if (!float.IsFinite(mean[c])) throw Unsupported(node, $"mean[{c}] is {mean[c].ToString(CultureInfo.InvariantCulture)}, expected a finite number");
            if (!(variance[c] >= 0 && float.IsFinite(variance[c]))) throw Unsupported(node, $"var[{c}] is {variance[c].ToString(CultureInfo.InvariantCulture)}, expected a finite number ≥ 0");
        }

        if (_rank == 2 && _featureOrder is { } order)
        {
            // After a Flatten the library's feature f is the graph's feature order[f] (see FlattenToFeatures).
            scale = order.Select(g => scale[g]).ToArray();
            bias = order.Select(g => bias[g]).ToArray();
            mean = order.Select(g => mean[g]).ToArray();
            variance = order.Select(g => variance[g]).ToArray();
        }

        // Learnable γ and β are initialisers (PyTorch's and LeNetSharp's exports alike, even a fresh layer's 1 and 0);
        // a layer without them has its 1 and 0 written as Constant nodes (PyTorch's affine=False, LeNetSharp's export).
        bool fixedOnesAndZeros = IsConstantNodeValue(node.Input[1]) && IsConstantNodeValue(node.Input[2])
            && scale.All(v => v == 1) && bias.All(v => v == 0);
        bool affine = !fixedOnesAndZeros;
        double eps = SettingFromFloat(epsilon), libraryMomentum = SettingFromFloat((float)(1 - SettingFromFloat(momentum))); // ONNX keeps 1 − PyTorch's momentum
        BatchNorm<float> layer = image
            ? new BatchNorm2d<float>(channels, eps, libraryMomentum, affine)
            : new BatchNorm1d<float>(channels, eps, libraryMomentum, affine);
        if (affine)
        {
            scale.CopyTo(layer.Weight!.Value.Span);
            bias.CopyTo(layer.Bias!.Value.Span);
        }

        mean.CopyTo(layer.RunningMean.Value.Span);
        variance.CopyTo(layer.RunningVar.Value.Span);
        AddLayer(layer);
    }

    /// <summary>The constant input <paramref name="index"/> of <paramref name="node"/> as a vector of <paramref name="channels"/> floats.</summary>
    private float[] ChannelVector(NodeProto node, int index, int channels)
    {
        var (dims, values) = FloatTensor(node, node.Input[index]);
        if (dims.Length != 1 || dims[0] != channels) throw Unsupported(node, $"expected '{node.Input[index]}' of shape ({channels}), found {Shape(dims)}");
        return values;
    }

    /// <summary>A constant float32 holding one value (shape () or (1)).</summary>
    private float FloatScalar(NodeProto node, string name, string what, bool anyValue = false)
    {
        if (!_constants.ContainsKey(name)) throw Unsupported(node, $"its {what} '{name}' is computed at run time; a constant is needed");
        var (dims, values) = FloatTensor(node, name, anyValue);
        if (values.Length != 1 || dims.Length > 1) throw Unsupported(node, $"its {what} '{name}' has shape {Shape(dims)}, expected one value");
        return values[0];
    }

    /// <summary>A constant bool holding one value (shape () or (1)).</summary>
    private bool BoolScalar(NodeProto node, string name, string what)
    {
        if (!_constants.TryGetValue(name, out var t)) throw Unsupported(node, $"its {what} '{name}' is computed at run time; a constant is needed");
        int[] dims = Dims(t);
        if (t.DataType != (int)DataType.Bool || dims.Length > 1 || dims.Aggregate(1L, (a, d) => a * d) != 1)
        {
            throw Unsupported(node, $"its {what} '{name}' is {(DataType)t.DataType} {Shape(dims)}, expected one bool");
        }

        return t.RawData.Length > 0 ? t.RawData[0] != 0 : t.Int32Data[0] != 0;
    }

    /// <summary>
    /// The double a float setting (ONNX stores them as float32) stands for: its shortest decimal, so 0.1f gives 0.1 and
    /// a LeNetSharp setting with up to about 7 significant digits survives export and import unchanged.
    /// </summary>
    internal static double SettingFromFloat(float value) => double.Parse(value.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    private void Flatten(NodeProto node)
    {
        Expect(node, 1);
        long axis = IntAttr(node, "axis", 1);
        if (axis != 1) throw Unsupported(node, $"axis {axis} (only 1: keep the batch)");
        if (_rank == 2) return; // already (N, features)
        if (_squeezed) Unsqueeze();
        else FlattenToFeatures();
    }

    private void Reshape(NodeProto node)
    {
        Expect(node, 1);
        if (node.Input.Count != 2) throw Unsupported(node, $"expected inputs (data, shape), found {node.Input.Count}");
        if (!_constants.TryGetValue(node.Input[1], out var shapeTensor))
        {
            throw Unsupported(node, $"its shape '{node.Input[1]}' is computed at run time; a fixed (−1, features) is needed");
        }

        long[] shape = Int64Tensor(node, shapeTensor);
        long features = _rank == 4 ? (long)_height * _width * _channels : _features;
        bool batchKept = shape.Length == 2 && shape[0] is -1 or 0 && (shape[1] == features || shape[1] == -1 && shape[0] == 0);
        if (!batchKept) throw Unsupported(node, $"only a reshape to (−1, {features}) is supported, found ({string.Join(", ", shape)})");
        if (_squeezed) Unsqueeze();
        else if (_rank == 4) FlattenToFeatures();
    }

    /// <summary>(N, C, 1, 1) after a global pool → (N, C): the library's tensor already is.</summary>
    private void Unsqueeze()
    {
        _squeezed = false;
        _rank = 2;
        _features = _channels;
    }

    /// <summary>(N, …) rank 4 → (N, H·W·C); the library flattens (h, w, c), the graph in its physical axis order.</summary>
    private void FlattenToFeatures()
    {
        int[] size = new int[4];
        size[N] = 1;
        size[H] = _height;
        size[W] = _width;
        size[C] = _channels;
        long features = (long)_height * _width * _channels;
        if (features > OnnxModel.MaxTensorElements)
        {
            throw Fail($"flattening {_channels}x{_height}x{_width} gives {features:N0} features, more than {OnnxModel.MaxTensorElements:N0}.");
        }

        _features = (int)features;
        _featureOrder = new int[_features];
        int[] index = new int[4];
        for (int h = 0; h < _height; h++)
        for (int w = 0; w < _width; w++)
        for (int c = 0; c < _channels; c++)
        {
            index[H] = h;
            index[W] = w;
            index[C] = c;
            int graphFeature = (index[_axes[1]] * size[_axes[2]] + index[_axes[2]]) * size[_axes[3]] + index[_axes[3]];
            _featureOrder[(h * _width + w) * _channels + c] = graphFeature;
        }

        if (_featureOrder.Select((g, f) => g == f).All(same => same)) _featureOrder = null; // already (h, w, c)
        AddLayer(new Flatten<float>());
        _rank = 2;
    }

    private void Gemm(NodeProto node)
    {
        Expect(node, 1);
        if (node.Input.Count is < 2 or > 3) throw Unsupported(node, $"expected inputs (A, B[, C]), found {node.Input.Count}");
        if (IntAttr(node, "transA", 0) != 0) throw Unsupported(node, "transA 1");
        float alpha = FloatAttr(node, "alpha", 1), beta = FloatAttr(node, "beta", 1);
        var linear = MakeLinear(node, node.Input[1], transposed: IntAttr(node, "transB", 0) != 0, alpha);
        if (node.Input.Count == 3 && node.Input[2].Length > 0) AddBiasFrom(node, linear, node.Input[2], beta);
    }

    private void MatMul(NodeProto node)
    {
        Expect(node, 1);
        if (node.Input.Count != 2) throw Unsupported(node, $"expected inputs (A, B), found {node.Input.Count}");
        _openLinear = MakeLinear(node, node.Input[1], transposed: false, 1);
    }

    private void AddBias(NodeProto node, Linear<float>? linear)
    {
        Expect(node, 1);
        if (linear is null) throw Unsupported(node, "only an Add of a constant bias right after MatMul is supported");
        if (node.Input.Count != 2) throw Unsupported(node, $"expected 2 inputs, found {node.Input.Count}");
        AddBiasFrom(node, linear, node.Input[1], 1);
    }

    private Linear<float> MakeLinear(NodeProto node, string weightName, bool transposed, float alpha)
    {
        if (_rank != 2) throw Unsupported(node, $"expected (N, features) input, found rank {_rank}; flatten first");
        var (dims, b) = FloatTensor(node, weightName);
        if (dims.Length != 2) throw Unsupported(node, $"expected a rank-2 weight, found {Shape(dims)}");
        int inF = transposed ? dims[1] : dims[0], outF = transposed ? dims[0] : dims[1];
        if (inF != _features) throw Unsupported(node, $"the weight {Shape(dims)} takes {inF} features, the tensor has {_features}");
        var linear = new Linear<float>(inF, outF, _dummy);
        Span<float> weight = linear.Weight.Value.Span; // (in, out)
        for (int f = 0; f < inF; f++)
        {
            int g = _featureOrder is null ? f : _featureOrder[f];
            for (int o = 0; o < outF; o++) weight[f * outF + o] = alpha * (transposed ? b[o * inF + g] : b[g * outF + o]);
        }

        _featureOrder = null;
        AddLayer(linear);
        _features = outF;
        return linear;
    }

    private void AddBiasFrom(NodeProto node, Linear<float> linear, string name, float beta)
    {
        if (!_constants.ContainsKey(name)) throw Unsupported(node, $"its bias '{name}' is not a constant");
        var (dims, b) = FloatTensor(node, name);
        int outF = linear.OutFeatures;
        if (b.Length != outF || dims.Length is < 1 or > 2 || dims[^1] != outF)
        {
            throw Unsupported(node, $"expected a bias ({outF}) or (1, {outF}), found {Shape(dims)}");
        }

        Span<float> bias = linear.Bias.Value.Span;
        for (int o = 0; o < outF; o++) bias[o] += beta * b[o];
    }

    private void RequireNchw(NodeProto node)
    {
        if (!IsNchw)
        {
            throw Unsupported(node, _squeezed
                ? "it follows a GlobalAveragePool, whose (N, C, 1, 1) LeNetSharp holds as (N, C)"
                : _rank == 4
                    ? "its input is not in NCHW order (ONNX Conv and the pools are NCHW)"
                    : $"expected a rank-4 (N, C, H, W) input, found rank {_rank}");
        }
    }

    private void RequireAll(NodeProto node, string name, long value)
    {
        long[]? values = IntsAttr(node, name);
        if (values is not null && values.Any(v => v != value)) throw Unsupported(node, $"{name} [{string.Join(", ", values)}] (only {value})");
    }

    private void RequireNoAutoPad(NodeProto node)
    {
        var a = node.Attribute.FirstOrDefault(a => a.Name == "auto_pad");
        string mode = a is null ? "NOTSET" : a.S.ToStringUtf8();
        if (mode is not ("NOTSET" or "")) throw Unsupported(node, $"auto_pad {mode} (give explicit pads)");
    }

    private void Expect(NodeProto node, int outputs)
    {
        if (node.Output.Count != outputs) throw Unsupported(node, $"expected {outputs} output, found {node.Output.Count}");
    }

    private static long IntAttr(NodeProto node, string name, long fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.I : fallback;

    private static float FloatAttr(NodeProto node, string name, float fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.F : fallback;

    private static long[]? IntsAttr(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.Ints.ToArray();

    private static string StringAttr(NodeProto node, string name, string fallback) => node.Attribute.FirstOrDefault(a => a.Name == name) is { } a ? a.S.ToStringUtf8() : fallback;

    private void AddConstantNode(NodeProto node)
    {
        var value = node.Attribute.FirstOrDefault(a => a.Name == "value");
        if (node.Output.Count != 1 || value?.T is null || node.Attribute.Count != 1) throw Unsupported(node, "only a Constant with a tensor 'value' is supported");
        var tensor = value.T.Clone();
        tensor.Name = node.Output[0];
        AddConstant(tensor, $"Constant node '{node.Name}'");
        _constantNodeValues.Add(tensor);
    }

    /// <summary>Whether the constant <paramref name="name"/> is a Constant node's value (directly or through an Identity), not an initialiser.</summary>
    private bool IsConstantNodeValue(string name) => _constants.TryGetValue(name, out var t) && _constantNodeValues.Contains(t);

    private void AddConstant(TensorProto tensor, string what)
    {
        if (!_constants.TryAdd(tensor.Name, tensor)) throw Fail($"{what}: the name '{tensor.Name}' is defined twice.");
    }

    /// <summary>
    /// The constant <paramref name="name"/> as float32, its values finite unless <paramref name="anyValue"/>. Its dims and
    /// data length were checked with the graph (<see cref="OnnxGraphCheck"/>); the weights of the whole import are
    /// counted against <see cref="MaxTotalElements"/> before they are copied.
    /// </summary>
    private (int[] Dims, float[] Values) FloatTensor(NodeProto node, string name, bool anyValue = false)
    {
        if (!_constants.TryGetValue(name, out var t)) throw Unsupported(node, $"its weight '{name}' is not an initialiser or constant (computed weights are not supported)");
        int[] dims = Dims(t);
        if (t.DataType != (int)DataType.Float) throw Fail($"tensor '{name}': expected float32, found {(DataType)t.DataType}.");
        long count = dims.Aggregate(1L, (a, d) => a * d);
        _totalElements += count;
        if (_totalElements > MaxTotalElements)
        {
            throw Fail($"the graph's weights add up to more than {MaxTotalElements:N0} elements (tensor '{name}' {Shape(dims)} is used past that); an initialiser used by many nodes counts each time.");
        }

        float[] values;
        if (t.RawData.Length > 0)
        {
            values = new float[count];
            ReadOnlySpan<byte> raw = t.RawData.Span;
            for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * sizeof(float)));
        }
        else
        {
            values = t.FloatData.ToArray();
        }

        int bad = anyValue ? -1 : Array.FindIndex(values, v => !float.IsFinite(v));
        if (bad >= 0)
        {
            throw Fail($"tensor '{name}' {Shape(dims)}, read by node '{node.Name}' (op {node.OpType}): element {bad} is {values[bad].ToString(CultureInfo.InvariantCulture)}, expected a finite number.");
        }

        return (dims, values);
    }

    private long[] Int64Tensor(NodeProto node, TensorProto t)
    {
        int[] dims = Dims(t);
        if (t.DataType != (int)DataType.Int64 || dims.Length != 1 || dims[0] > 8) throw Unsupported(node, $"expected an int64 shape vector, found {(DataType)t.DataType} {Shape(dims)}");
        if (t.RawData.Length == 0) return t.Int64Data.ToArray();
        var values = new long[dims[0]];
        for (int i = 0; i < values.Length; i++) values[i] = BinaryPrimitives.ReadInt64LittleEndian(t.RawData.Span.Slice(i * sizeof(long)));
        return values;
    }

    /// <summary>A tensor's dims, each within <see cref="OnnxModel.MaxTensorElements"/> (checked with the graph).</summary>
    private static int[] Dims(TensorProto t) => t.Dims.Select(d => (int)d).ToArray();

    private static string Shape(int[] dims) => $"({string.Join(", ", dims)})";

    private OnnxFormatException Fail(string problem) => new(_path, problem);

    private OnnxFormatException Unsupported(NodeProto node, string why) =>
        new(_path, $"unsupported node '{node.Name}' (op {node.OpType}): {why}.");
}
