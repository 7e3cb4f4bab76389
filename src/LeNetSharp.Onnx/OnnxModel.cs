using Google.Protobuf;
using LeNetSharp.Layers;

namespace LeNetSharp.Onnx;

/// <summary>
/// Converts LeNetSharp networks to and from ONNX (the protobuf schema of ONNX 1.12, compiled from ONNX's own onnx.proto).
/// <para>
/// <b>Export</b> writes opset 13 with a float input <see cref="InputName"/> of shape (N, H, W, C) — NHWC like the
/// library, N symbolic — and two outputs: <see cref="LogitsName"/> (N, classes) and <see cref="ProbabilitiesName"/>
/// (Softmax of the logits over the last axis). Standard ONNX Conv, the pools and BatchNormalization are defined on
/// NCHW only, so the graph converts inside: it starts with a Transpose (0,3,1,2), stores Conv weights OIHW, and
/// transposes (0,2,3,1) back to NHWC before Flatten, so the Linear weights and the flatten order (h, w, c) stay the
/// library's. Every layer becomes its ONNX op in its inference form: BatchNorm is BatchNormalization with the running
/// statistics (without affine, γ = 1 and β = 0 from Constant nodes, as PyTorch writes them), Dropout a Dropout node
/// without training_mode (the identity; ratio and seed kept), MaxPool2d/AvgPool2d MaxPool/AveragePool with their pads
/// (count_include_pad 1), GlobalAvgPool2d GlobalAveragePool + Flatten. Weights and statistics are initialisers
/// (float32, raw little-endian data); settings ONNX holds as float32 (epsilon, alpha, ratio, momentum) are rounded to it.
/// </para>
/// <para>
/// <b>Import</b> reads chain-shaped graphs as <c>torch.onnx.export</c> writes them — NCHW input, Conv (OIHW weights,
/// equal strides, symmetric padding, group 1, no dilation), Relu, LeakyRelu, Tanh, Sigmoid, MaxPool and AveragePool
/// (square kernel, equal strides, the same padding on every side up to kernel/2, count_include_pad 1 when padded),
/// GlobalAveragePool, BatchNormalization and Dropout in their inference forms, a constant Pad right before a Conv or
/// AveragePool (zeros) or a MaxPool (−∞) folded into that layer's padding, Flatten or a constant Reshape to
/// (−1, features), Gemm or MatMul + Add — and the files <see cref="Export"/> writes (Transpose, a trailing Softmax).
/// The result is the equivalent NHWC network, in evaluation mode: it takes (N, H, W, C) images; kernels are permuted
/// OIHW → (KH, KW, C, OC), and a BatchNorm1d's statistics and the first Linear's rows are permuted from the graph's
/// flatten order (c, h, w) to the library's (h, w, c). A BatchNormalization's scale and bias from initialisers are
/// the layer's learnable γ and β, whatever their values (a fresh layer's 1 and 0 too); 1 and 0 from Constant nodes
/// make a BatchNorm without affine. Anything else is refused with an
/// <see cref="OnnxFormatException"/> naming the first unsupported node and its op type.
/// </para>
/// <para>
/// ONNX files carry no checksum: a flipped bit inside a weight cannot be detected (LeNetSharp's own model file has
/// SHA-256). Structural damage — bad protobuf, truncation, tensor sizes that disagree with their dimensions — is.
/// </para>
/// </summary>
public static class OnnxModel
{
    /// <summary>The opset (default domain) of exported files.</summary>
    public const int ExportOpset = 13;

    /// <summary>Name of the exported graph's input, (N, H, W, C) float32.</summary>
    public const string InputName = "input";

    /// <summary>Name of the exported graph's logits output, (N, classes) float32.</summary>
    public const string LogitsName = "logits";

    /// <summary>Name of the exported graph's probabilities output, Softmax of the logits over the last axis.</summary>
    public const string ProbabilitiesName = "probabilities";

    /// <summary>
    /// The largest file <see cref="Import(string)"/> reads: 16 MiB (a LeNet is about 22 KB). Larger files are refused before
    /// any parsing. Parsing allocates only for data the file really holds: at worst about 8× the file size (packed
    /// one-byte varints become 8-byte integers), so about 128 MiB.
    /// </summary>
    internal const long MaxFileBytes = 16L << 20;

    /// <summary>The most elements <see cref="Import(string)"/> accepts in one tensor (4 M, i.e. 16 MiB of float32).</summary>
    internal const long MaxTensorElements = 1L << 22;

    /// <summary>
    /// Writes <paramref name="network"/> as an ONNX model (see the class remarks for the graph), atomically: a crash
    /// mid-write leaves the previous file intact.
    /// </summary>
    /// <param name="network">
    /// Any of the built-in layers: Conv (any stride/padding), Relu, LeakyRelu, Tanh, Sigmoid, MaxPool2x2, MaxPool2d,
    /// AvgPool2d, GlobalAvgPool2d, BatchNorm1d, BatchNorm2d, Dropout, Flatten and Linear. It is written in its inference
    /// form whatever its <see cref="Sequential{T}.Training"/> mode.
    /// </param>
    /// <param name="path">Destination file (conventionally <c>.onnx</c>).</param>
    /// <param name="height">H of the input images (default 28).</param>
    /// <param name="width">W of the input images (default 28).</param>
    /// <param name="channels">C of the input images (default 1).</param>
    /// <exception cref="NotSupportedException">The network has a layer type ONNX export does not know, or a setting float32 cannot hold (a LeakyRelu slope beyond its range, a BatchNorm eps that rounds to 0, a Dropout p that rounds to 1).</exception>
    /// <exception cref="ArgumentException">The network does not accept (N, <paramref name="height"/>, <paramref name="width"/>, <paramref name="channels"/>) input.</exception>
    /// <exception cref="IOException">The file could not be written; the previous file, if any, is intact.</exception>
    public static void Export(Sequential<float> network, string path, int height = 28, int width = 28, int channels = 1)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentException.ThrowIfNullOrEmpty(path);
        var model = OnnxExporter.Build(network, height, width, channels);
        Persistence.AtomicFile.Write(path, s => model.WriteTo(s));
    }

    /// <summary>Reads an ONNX model of the supported ops (see the class remarks) as the equivalent NHWC network.</summary>
    /// <param name="path">The .onnx file, at most 16 MiB.</param>
    /// <returns>
    /// A float network taking (N, H, W, C) input and returning the graph's logits (a trailing Softmax is dropped), in
    /// evaluation mode (<see cref="Sequential{T}.Training"/> false), as the graph computes: BatchNorm uses the imported
    /// running statistics and Dropout is the identity. A <see cref="Training.Trainer{T}"/> turns training on for its steps.
    /// </returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxFormatException">Not a regular file (directory, FIFO, device, loop of symbolic links; refused before opening), damaged or truncated protobuf, a file over the size ceiling, inconsistent tensors, or an unsupported graph.</exception>
    public static Sequential<float> Import(string path) => Import(path, out _);

    /// <summary>Reads an ONNX model like <see cref="Import(string)"/> and also reports the input image shape it expects.</summary>
    /// <param name="path">The .onnx file, at most 16 MiB.</param>
    /// <param name="inputShape">(H, W, C) of one input image, as the graph declares it.</param>
    /// <returns>A float network taking (N, H, W, C) input and returning the graph's logits (a trailing Softmax is dropped), in evaluation mode.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxFormatException">Not a regular file (directory, FIFO, device, loop of symbolic links; refused before opening), damaged or truncated protobuf, a file over the size ceiling, inconsistent tensors, or an unsupported graph.</exception>
    public static Sequential<float> Import(string path, out (int Height, int Width, int Channels) inputShape)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Checked before opening (a FIFO would block, a device or a link to one would be read without end), and the
        // read itself stops one byte past the ceiling whatever the length says.
        Exception Refuse(string problem) => new OnnxFormatException(path, problem);
        byte[] bytes;
        using (var file = Persistence.SafeFile.OpenRead(path, Refuse, $"{path}: model file not found."))
        {
            long length = file.Length;
            if (length > MaxFileBytes) throw Refuse(TooLarge(length));
            bytes = Persistence.SafeFile.ReadUpTo(file, MaxFileBytes + 1, initialCapacity: length + 1);
        }

        if (bytes.Length > MaxFileBytes) throw Refuse(TooLarge(bytes.Length)); // grew since the check

        return OnnxImporter.Import(bytes, path, out inputShape);
    }

    private static string TooLarge(long bytes) => $"file is {bytes:N0} bytes, more than the {MaxFileBytes:N0} an ONNX import accepts.";
}
