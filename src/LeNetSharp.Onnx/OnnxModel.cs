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
/// (−1, features), Gemm or MatMul + Add — and the files <see cref="Export(Sequential{float}, string, int, int, int)"/> writes (Transpose, a trailing Softmax).
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
    /// The largest file <see cref="Import(string)"/> (or stream <see cref="Import(Stream, string)"/>) reads: 16 MiB (a LeNet is about 22 KB). Larger files are refused before
    /// any parsing. Parsing allocates only for data the file really holds: at worst about 8× the file size (packed
    /// one-byte varints become 8-byte integers), so about 128 MiB.
    /// </summary>
    internal const long MaxFileBytes = 16L << 20;

    /// <summary>The most elements <see cref="Import(string)"/> accepts in one tensor (4 M, i.e. 16 MiB of float32).</summary>
    internal const long MaxTensorElements = 1L << 22;

    // Export and Import take a path or a stream, each with its optional settings: the overloads differ in a required
    // parameter's type, so no call is ambiguous.
#pragma warning disable RS0026, RS0027
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
    /// <param name="height">H of the input images (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">W of the input images (default 0: see height).</param>
    /// <param name="channels">C of the input images (default 0: the InputShape's, else 1).</param>
    /// <exception cref="NotSupportedException">The network has a layer type ONNX export does not know, or a setting float32 cannot hold (a LeakyRelu slope beyond its range, a BatchNorm eps that rounds to 0, a Dropout p that rounds to 1).</exception>
    /// <exception cref="ArgumentException">
    /// The network does not accept (N, <paramref name="height"/>, <paramref name="width"/>, <paramref name="channels"/>)
    /// input, or one such image would need more activations or multiply-adds than the library's ceilings allow (see the
    /// import ceilings in the package README), so the file would not import.
    /// </exception>
    /// <exception cref="InvalidOperationException">A weight or running statistic is not a finite number, or a running variance is negative, so the file would not import (nothing is written).</exception>
    /// <exception cref="IOException">The file could not be written; the previous file, if any, is intact.</exception>
    public static void Export(Sequential<float> network, string path, int height = 0, int width = 0, int channels = 0)
    {
        ArgumentNullException.ThrowIfNull(network);
        (height, width, channels) = network.ImageShape(height, width, channels);
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
    /// <exception cref="OnnxFormatException">Not a regular file (directory, FIFO, device, loop of symbolic links; refused before opening), damaged or truncated protobuf, a file over the size ceiling, inconsistent tensors, a graph onnx.checker would refuse (a name assigned twice, nodes out of topological order, the wrong number of inputs or outputs, a tensor with two data fields), a weight or float attribute that is not finite, a network over the library's ceilings (1,024 layers, 67 M parameters, 33.5 M elements held or 4.3 G multiply-adds per input image), or an unsupported graph.</exception>
    public static Sequential<float> Import(string path) => Import(path, out _);

    /// <summary>Reads an ONNX model like <see cref="Import(string)"/> and also reports the input image shape it expects.</summary>
    /// <param name="path">The .onnx file, at most 16 MiB.</param>
    /// <param name="inputShape">(H, W, C) of one input image, as the graph declares it.</param>
    /// <returns>A float network taking (N, H, W, C) input and returning the graph's logits (a trailing Softmax is dropped), in evaluation mode.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="OnnxFormatException">Not a regular file (directory, FIFO, device, loop of symbolic links; refused before opening), damaged or truncated protobuf, a file over the size ceiling, inconsistent tensors, a graph onnx.checker would refuse (a name assigned twice, nodes out of topological order, the wrong number of inputs or outputs, a tensor with two data fields), a weight or float attribute that is not finite, a network over the library's ceilings (1,024 layers, 67 M parameters, 33.5 M elements held or 4.3 G multiply-adds per input image), or an unsupported graph.</exception>
    public static Sequential<float> Import(string path, out (int Height, int Width, int Channels) inputShape)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Checked before opening (a FIFO would block, a device or a link to one would be read without end); then read
        // as any stream is.
        using var file = Persistence.SafeFile.OpenRead(path, problem => new OnnxFormatException(path, problem), $"{path}: model file not found.");
        return Import(file, out inputShape, path);
    }

    /// <summary>
    /// Writes <paramref name="network"/> as an ONNX model to <paramref name="stream"/>: the bytes
    /// <see cref="Export(Sequential{float}, string, int, int, int)"/> writes to a file (a blob, an HTTP response, a
    /// <see cref="MemoryStream"/>). The stream is flushed and left open, positioned after the model.
    /// </summary>
    /// <param name="network">Any of the built-in layers (see <see cref="Export(Sequential{float}, string, int, int, int)"/>).</param>
    /// <param name="stream">A writable stream; seeking is not needed.</param>
    /// <param name="height">H of the input images (default 0, with width: the network's <see cref="Sequential{T}.InputShape"/>, else 28x28x1).</param>
    /// <param name="width">W of the input images (default 0: see height).</param>
    /// <param name="channels">C of the input images (default 0: the InputShape's, else 1).</param>
    /// <exception cref="ArgumentException">
    /// <paramref name="stream"/> cannot be written, or the network does not accept (N, <paramref name="height"/>,
    /// <paramref name="width"/>, <paramref name="channels"/>) input (nothing is written).
    /// </exception>
    /// <exception cref="NotSupportedException">A layer or setting ONNX export cannot write, as for a file (nothing is written).</exception>
    /// <exception cref="IOException">The stream failed while being written.</exception>
    public static void Export(Sequential<float> network, Stream stream, int height = 0, int width = 0, int channels = 0)
    {
        ArgumentNullException.ThrowIfNull(network);
        (height, width, channels) = network.ImageShape(height, width, channels);
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("The stream cannot be written.", nameof(stream));
        var model = OnnxExporter.Build(network, height, width, channels); // every check before the first byte
        model.WriteTo(stream);
        stream.Flush();
    }

    /// <summary>
    /// Reads an ONNX model from <paramref name="stream"/> (an embedded resource, a blob, an HTTP body) with the checks
    /// and messages of <see cref="Import(string)"/>, the messages naming <paramref name="name"/> where they name the
    /// file. The model is the rest of the stream: it is read from where it stands to its end, as bytes arrive (a stream
    /// that cannot seek, or returns a few bytes a read, is fine), and left open, positioned after the last byte read.
    /// </summary>
    /// <param name="stream">A readable stream, seekable or not, of at most 16 MiB.</param>
    /// <param name="name">What messages call the stream (a resource or blob name); null: "the stream".</param>
    /// <returns>A float network taking (N, H, W, C) input and returning the graph's logits (a trailing Softmax is dropped), in evaluation mode.</returns>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="OnnxFormatException">
    /// More than 16 MiB (a seekable stream whose length says so is refused before anything is read; any other stream once
    /// the 16 MiB + 1st byte arrives, whatever it announced), damaged or truncated protobuf, inconsistent tensors, or an
    /// unsupported graph. <see cref="OnnxFormatException.FilePath"/> is <paramref name="name"/>.
    /// </exception>
    /// <exception cref="IOException">The stream failed while being read.</exception>
    public static Sequential<float> Import(Stream stream, string? name = null) => Import(stream, out _, name);

    /// <summary>Reads an ONNX model from a stream like <see cref="Import(Stream, string)"/> and also reports the input image shape it expects.</summary>
    /// <param name="stream">A readable stream, seekable or not, of at most 16 MiB.</param>
    /// <param name="inputShape">(H, W, C) of one input image, as the graph declares it.</param>
    /// <param name="name">What messages call the stream (a resource or blob name); null: "the stream".</param>
    /// <returns>A float network taking (N, H, W, C) input and returning the graph's logits (a trailing Softmax is dropped), in evaluation mode.</returns>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="OnnxFormatException">As for <see cref="Import(Stream, string)"/>.</exception>
    /// <exception cref="IOException">The stream failed while being read.</exception>
    public static Sequential<float> Import(Stream stream, out (int Height, int Width, int Channels) inputShape, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("The stream cannot be read.", nameof(stream));
        string shown = string.IsNullOrEmpty(name) ? "the stream" : name;
        // A length that says too much is refused before reading; whatever it says, the read stops one byte past the ceiling.
        byte[] bytes = Persistence.SafeFile.ReadStream(stream, [], MaxFileBytes,
            size => new OnnxFormatException(shown, $"is {size}, more than the {MaxFileBytes:N0} an ONNX import accepts."));
        return OnnxImporter.Import(bytes, shown, out inputShape);
    }
#pragma warning restore RS0026, RS0027
}
