using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;

namespace LeNetSharp;

/// <summary>
/// Model files by extension, shared by the trainer and the web sample (linked into both): a .npz path is the
/// tutorial's weight arrays, .onnx an ONNX model, anything else a LeNetSharp model file.
/// </summary>
internal static class ModelFiles
{
    /// <summary>The formats <see cref="Load"/> reads, for usage texts.</summary>
    public const string Formats = "a LeNetSharp model file, the tutorial's .npz weights or an .onnx LeNet";

    public static bool IsNpz(string path) => path.EndsWith(".npz", StringComparison.OrdinalIgnoreCase);

    public static bool IsOnnx(string path) => path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads the network at <paramref name="path"/>, picking the format by its extension.</summary>
    public static Sequential<float> Load(string path) =>
        IsNpz(path) ? TutorialWeights.Import<float>(path) : IsOnnx(path) ? OnnxModel.Import(path) : ModelFile.Load<float>(path);

    /// <summary>Writes <paramref name="network"/> to <paramref name="path"/> in the format its extension says.</summary>
    public static void Save(Sequential<float> network, string path)
    {
        if (IsNpz(path)) TutorialWeights.Export(network, path);
        else if (IsOnnx(path)) OnnxModel.Export(network, path);
        else ModelFile.Save(network, path);
    }
}
