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

    /// <summary>
    /// Throws <see cref="InvalidDataException"/> naming <paramref name="path"/>, the layer, the figure and the ceiling when
    /// one (<paramref name="height"/>, <paramref name="width"/>, <paramref name="channels"/>) image would hold or cost more
    /// than the library allows (a model file records no input size, so its loader cannot check this). Call it before
    /// running the network; a network that does not take such images is left to the caller's shape check.
    /// </summary>
    public static void RequireWithinCeilings(Sequential<float> network, string path, int height, int width, int channels)
    {
        try
        {
            network.OutputShapes([1, height, width, channels]);
        }
        catch (ArgumentException)
        {
            return; // reported by the caller, naming both shapes
        }

        NetworkLimits.Check(network.Layers, [height, width, channels], problem => new InvalidDataException($"{path}: {problem}"));
    }

    /// <summary>
    /// The (height, width, channels) of the images <paramref name="network"/>, read from <paramref name="path"/>, takes:
    /// its recorded <see cref="Sequential{T}.InputShape"/> (a model trained on an image folder), else MNIST's 28x28x1.
    /// </summary>
    /// <exception cref="InvalidDataException">The model records no input size and its network does not take 28x28x1 images.</exception>
    public static (int Height, int Width, int Channels) InputShape(Sequential<float> network, string path)
    {
        var shape = network.ImageShape(0, 0, 0); // the recorded shape, else 28x28x1
        if (network.InputShape is not null) return shape;
        try
        {
            network.OutputShapes([1, shape.Height, shape.Width, shape.Channels]);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException(
                $"{path}: the model records no input size, and its network does not take MNIST's 28x28x1 images ({e.Message.Split(" (Parameter", 2)[0].TrimEnd('.')}).", e);
        }

        return shape;
    }

    /// <summary>
    /// Writes <paramref name="network"/> to <paramref name="path"/> in the format its extension says; an ONNX graph
    /// takes the network's recorded input shape (else 28x28x1).
    /// </summary>
    public static void Save(Sequential<float> network, string path)
    {
        if (IsNpz(path))
        {
            TutorialWeights.Export(network, path);
        }
        else if (IsOnnx(path))
        {
            OnnxModel.Export(network, path); // at the recorded input shape, else 28x28x1
        }
        else
        {
            ModelFile.Save(network, path);
        }
    }
}
