using System.Globalization;
using LeNetSharp.Onnx.Protobuf;
using DataType = LeNetSharp.Onnx.Protobuf.TensorProto.Types.DataType;

namespace LeNetSharp.Onnx;

/// <summary>
/// The structural rules <c>onnx.checker</c> applies to a graph, checked before the importer reads any node: every name
/// assigned once (no node output produced twice, none redefining a graph input or initialiser), every node input
/// defined before the node (topological order, hence no cycles), the declared number of inputs and outputs of each op
/// the importer knows, exactly one data field per tensor with as many values as its dims say, and, beyond the checker,
/// finite float attributes. Each problem is one <see cref="OnnxFormatException"/> naming the node (name and op) or the
/// tensor.
/// </summary>
internal static class OnnxGraphCheck
{
    /// <summary>Inputs and outputs each op may have: (fewest, most) from the ONNX operator specification, for the opsets the importer reads.</summary>
    private static (int MinIn, int MaxIn, int MinOut, int MaxOut)? Arity(string op, long opset) => op switch
    {
        "Relu" or "Tanh" or "Sigmoid" or "LeakyRelu" or "Identity" or "Softmax" or "Flatten" or "Transpose"
            or "GlobalAveragePool" or "AveragePool" => (1, 1, 1, 1),
        "MaxPool" => (1, 1, 1, 2),
        "Conv" => (2, 3, 1, 1),
        "Gemm" => (2, 3, 1, 1),
        "MatMul" or "Add" or "Reshape" => (2, 2, 1, 1),
        "BatchNormalization" => (5, 5, 1, 5),
        "Dropout" => opset >= 12 ? (1, 3, 1, 2) : (1, 1, 1, 2),
        "Pad" => opset >= 18 ? (2, 4, 1, 1) : opset >= 11 ? (2, 3, 1, 1) : (1, 1, 1, 1),
        "Constant" => (0, 0, 1, 1),
        _ => null, // refused by the importer as unsupported, naming it
    };

    /// <summary>Throws the first rule <paramref name="graph"/> breaks.</summary>
    public static void Check(GraphProto graph, long opset, string path)
    {
        OnnxFormatException Fail(string problem) => new(path, problem);
        var defined = new Dictionary<string, string>(StringComparer.Ordinal); // name → what assigns it, for messages
        foreach (var input in graph.Input)
        {
            if (input.Name.Length == 0) throw Fail("a graph input has no name.");
            if (!defined.TryAdd(input.Name, $"the graph input '{input.Name}'")) throw Fail($"the graph input '{input.Name}' is declared twice.");
        }

        var initializers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in graph.Initializer)
        {
            if (t.Name.Length == 0) throw Fail("an initializer has no name.");
            if (!initializers.Add(t.Name)) throw Fail($"initializer: the name '{t.Name}' is defined twice.");
            CheckTensor(t, $"tensor '{t.Name}'", Fail);
            defined.TryAdd(t.Name, $"the initializer '{t.Name}'"); // an input of the same name is that initialiser's default (IR 4 on)
        }

        foreach (var node in graph.Node)
        {
            string what = $"invalid node '{node.Name}' (op {node.OpType})";
            if ((node.Domain is "" or "ai.onnx") && Arity(node.OpType, opset) is var (minIn, maxIn, minOut, maxOut))
            {
                if (node.Input.Count < minIn || node.Input.Count > maxIn)
                {
                    throw Fail($"{what}: expected {Range(minIn, maxIn)} input{(maxIn == 1 ? "" : "s")}, found {node.Input.Count}.");
                }

                if (node.Output.Count < minOut || node.Output.Count > maxOut)
                {
                    throw Fail($"{what}: expected {Range(minOut, maxOut)} output{(maxOut == 1 ? "" : "s")}, found {node.Output.Count}.");
                }

                for (int i = 0; i < minIn; i++)
                {
                    if (node.Input[i].Length == 0) throw Fail($"{what}: its required input {i} is empty.");
                }

                if (node.Output[0].Length == 0) throw Fail($"{what}: its output 0 has no name.");
            }

            foreach (string input in node.Input)
            {
                if (input.Length == 0 || defined.ContainsKey(input)) continue;
                throw Fail(node.Output.Contains(input)
                    ? $"{what}: its input '{input}' is its own output (a cycle)."
                    : $"{what}: its input '{input}' is not defined before it (nodes must be in topological order, without cycles).");
            }

            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var a in node.Attribute)
            {
                if (!names.Add(a.Name)) throw Fail($"{what}: attribute '{a.Name}' appears twice.");
                CheckAttribute(node, a, what, Fail);
            }

            foreach (string output in node.Output)
            {
                if (output.Length == 0) continue; // an optional output left out
                if (defined.TryGetValue(output, out string? earlier))
                {
                    throw Fail($"{what}: its output '{output}' redefines {earlier}; every name is assigned once.");
                }

                defined.Add(output, $"the output of node '{node.Name}' (op {node.OpType})");
            }
        }

        foreach (var output in graph.Output)
        {
            if (!defined.ContainsKey(output.Name)) throw Fail($"the graph output '{output.Name}' is computed by no node.");
        }
    }

    private static string Range(int min, int max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min} to {max}";

    private static void CheckAttribute(NodeProto node, AttributeProto a, string what, Func<string, OnnxFormatException> fail)
    {
        // A Pad's value may be −∞ (padding before a MaxPool); every other float setting must be a finite number.
        bool anyValue = node.OpType == "Pad" && a.Name == "value";
        if (!anyValue && (a.Type == AttributeProto.Types.AttributeType.Float || a.HasF) && !float.IsFinite(a.F))
        {
            throw fail($"{what}: attribute '{a.Name}' is {a.F.ToString(CultureInfo.InvariantCulture)}, expected a finite number.");
        }

        for (int i = 0; i < a.Floats.Count; i++)
        {
            if (!float.IsFinite(a.Floats[i])) throw fail($"{what}: attribute '{a.Name}'[{i}] is {a.Floats[i].ToString(CultureInfo.InvariantCulture)}, expected a finite number.");
        }

        if (a.T is not null) CheckTensor(a.T, $"{what}: attribute '{a.Name}'", fail);
        foreach (var t in a.Tensors) CheckTensor(t, $"{what}: attribute '{a.Name}'", fail);
    }

    /// <summary>
    /// One data field (or none for an empty tensor), of the kind the data type is stored in, holding exactly the
    /// elements the dims say: as <c>onnx.checker</c>'s check_tensor, plus the count it leaves to the runtime.
    /// </summary>
    private static void CheckTensor(TensorProto t, string what, Func<string, OnnxFormatException> fail)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External || t.ExternalData.Count > 0) throw fail($"{what}: external data is not supported.");
        if (t.Segment is not null) throw fail($"{what}: segmented tensors are not supported.");
        if (t.Dims.Count > 8) throw fail($"{what}: rank {t.Dims.Count} (at most 8).");
        long count = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0 || d > OnnxModel.MaxTensorElements) throw fail($"{what}: dimension {d} out of range 0 to {OnnxModel.MaxTensorElements:N0}.");
            count = Math.Min(count * d, OnnxModel.MaxTensorElements + 1); // ≤ 2^22 · 2^22 before the clamp: no overflow
        }

        if (count > OnnxModel.MaxTensorElements) throw fail($"{what}: more than {OnnxModel.MaxTensorElements:N0} elements ({string.Join("x", t.Dims)}).");
        var type = (DataType)t.DataType;
        // The typed field a data type is stored in, values per element there, bytes per element in raw_data.
        (string Field, int Values, int PerElement, int Size)? stored = type switch
        {
            DataType.Float => ("float_data", t.FloatData.Count, 1, 4),
            DataType.Complex64 => ("float_data", t.FloatData.Count, 2, 8),
            DataType.Int32 => ("int32_data", t.Int32Data.Count, 1, 4),
            DataType.Int16 or DataType.Uint16 or DataType.Float16 or DataType.Bfloat16 => ("int32_data", t.Int32Data.Count, 1, 2),
            DataType.Int8 or DataType.Uint8 or DataType.Bool => ("int32_data", t.Int32Data.Count, 1, 1),
            DataType.Int64 => ("int64_data", t.Int64Data.Count, 1, 8),
            DataType.String => ("string_data", t.StringData.Count, 1, 0),
            DataType.Double => ("double_data", t.DoubleData.Count, 1, 8),
            DataType.Complex128 => ("double_data", t.DoubleData.Count, 2, 16),
            DataType.Uint32 => ("uint64_data", t.Uint64Data.Count, 1, 4),
            DataType.Uint64 => ("uint64_data", t.Uint64Data.Count, 1, 8),
            _ => null,
        };
        if (stored is not var (field, values, perElement, size)) throw fail($"{what}: data type {t.DataType} is not one ONNX 1.12 defines.");

        var present = new List<string>(2);
        if (t.FloatData.Count > 0) present.Add("float_data");
        if (t.Int32Data.Count > 0) present.Add("int32_data");
        if (t.StringData.Count > 0) present.Add("string_data");
        if (t.Int64Data.Count > 0) present.Add("int64_data");
        if (t.RawData.Length > 0) present.Add("raw_data");
        if (t.DoubleData.Count > 0) present.Add("double_data");
        if (t.Uint64Data.Count > 0) present.Add("uint64_data");
        if (count == 0)
        {
            if (present.Count > 0) throw fail($"{what}: dims ({string.Join(", ", t.Dims)}) hold no elements, but it has {string.Join(" and ", present)}.");
            return;
        }

        if (present.Count != 1)
        {
            throw fail(present.Count == 0
                ? $"{what}: no data ({count:N0} elements of {type} expected)."
                : $"{what}: both {string.Join(" and ", present)} hold data; a tensor has exactly one data field.");
        }

        if (present[0] == "raw_data")
        {
            if (type == DataType.String) throw fail($"{what}: string data in raw_data (strings go in string_data).");
            if (t.RawData.Length != count * size) throw fail($"{what} ({string.Join(", ", t.Dims)}): expected {count * size:N0} bytes of data, found {t.RawData.Length:N0}.");
            return;
        }

        if (present[0] != field) throw fail($"{what}: {type} values belong in {field}, found {present[0]}.");
        if (values != count * perElement) throw fail($"{what} ({string.Join(", ", t.Dims)}): expected {count * perElement:N0} values, found {values:N0}.");
    }
}
