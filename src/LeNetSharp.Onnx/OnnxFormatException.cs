namespace LeNetSharp.Onnx;

/// <summary>
/// An ONNX file that cannot be imported: unreadable or damaged protobuf, larger than 16 MiB, inconsistent tensors
/// (over 4 M elements, weights over 16 M elements in all, data that disagrees with the dimensions, or values that are
/// not finite), a graph onnx.checker would refuse, a network over the library's ceilings, or a graph outside the
/// supported ops (the message then names the node and its op type). The message starts with the file's path (or the
/// name a stream was imported under).
/// </summary>
public sealed class OnnxFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The offending file, or the name of the offending stream.</param>
    /// <param name="problem">What was wrong, with the expected and the found values.</param>
    /// <param name="innerException">The underlying parser error, if any.</param>
    public OnnxFormatException(string path, string problem, Exception? innerException = null) : base($"{path}: {problem}", innerException)
    {
        FilePath = path;
    }

    /// <summary>The offending file; for a stream, the name given to <see cref="OnnxModel.Import(Stream, string)"/> ("the stream" without one).</summary>
    public string FilePath { get; }
}
