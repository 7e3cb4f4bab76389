using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Web;

/// <summary>One layer of the served network, as <c>GET /api/model</c> lists it.</summary>
/// <param name="Name">The layer's own description, e.g. "Conv 5x5 1→6 stride 1 pad 0".</param>
/// <param name="OutputShape">Its output for one image (height, width, channels or features).</param>
/// <param name="Parameters">Trainable scalars in the layer.</param>
internal sealed record LayerInfo(string Name, int[] OutputShape, int Parameters);

/// <summary>What <c>GET /api/model</c> returns.</summary>
/// <param name="Model">The model file's name.</param>
/// <param name="InputShape">Height, width, channels of one input image.</param>
/// <param name="Classes">Number of outputs.</param>
/// <param name="ParameterCount">Trainable scalars in the whole network.</param>
/// <param name="Layers">The layers in order.</param>
/// <param name="TestAccuracy">Accuracy on the MNIST test images measured at startup, or null when MNIST was not found.</param>
/// <param name="TestAccuracySource">How <paramref name="TestAccuracy"/> was measured, or why it is missing.</param>
internal sealed record ModelInfo(
    string Model, int[] InputShape, int Classes, int ParameterCount, IReadOnlyList<LayerInfo> Layers, double? TestAccuracy, string TestAccuracySource);

/// <summary>
/// The served network: loaded once, its accuracy measured once on MNIST's test images when they are there, then
/// shared by every request through the library's thread-safe <see cref="Predictor"/> (a pool of network copies).
/// </summary>
internal sealed class DigitModel : IDisposable
{
    public const int Size = LeNet.ImageSize;

    public DigitModel(DigitAppSettings settings, ILogger<DigitModel> log)
    {
        var network = ModelFiles.Load(settings.ModelPath); // by extension, as the trainer reads it
        if (ModelFiles.InputShape(network, settings.ModelPath) is var (h, w, c) && (h, w, c) != (Size, Size, 1))
        {
            throw new InvalidDataException(
                $"{settings.ModelPath}: the model takes {h}x{w}x{c} images; this sample serves drawn digits as 28x28x1 images (use the trainer's predict for this model).");
        }

        ModelFiles.RequireWithinCeilings(network, settings.ModelPath, Size, Size, 1);
        var shapes = network.OutputShapes([1, Size, Size, 1]); // throws, naming both shapes, if the input does not fit
        if (shapes[^1] is not [1, LeNet.Classes])
        {
            throw new InvalidDataException(
                $"{settings.ModelPath}: expected a network with {LeNet.Classes} outputs for 28x28 grey images, got output shape ({string.Join(", ", shapes[^1])}).");
        }

        if (network.Layers[0] is not Conv<float> { OutChannels: var maps } || shapes[0] is not [1, _, _, _])
        {
            throw new InvalidDataException($"{settings.ModelPath}: expected a convolution as the first layer, got {network.Layers[0].Name}.");
        }

        FeatureMapCount = maps;
        FeatureMapHeight = shapes[0][1];
        FeatureMapWidth = shapes[0][2];
        var layers = network.Layers.Select((layer, i) => new LayerInfo(layer.Name, shapes[i][1..], layer.Parameters.Sum(p => p.Value.Length))).ToArray();
        var (accuracy, source) = MeasureAccuracy(network, settings.DataDirectory, log);
        Info = new ModelInfo(Path.GetFileName(settings.ModelPath), [Size, Size, 1], LeNet.Classes, network.ParameterCount, layers, accuracy, source);
        Predictor = new Predictor(network, Size, Size, 1, settings.Concurrency);
        int decoders = Predictor.Concurrency;
        DecodeGate = new SemaphoreSlim(decoders, decoders);
        log.LogInformation("Serving {Model}: {Parameters} parameters, {Accuracy}", settings.ModelPath, network.ParameterCount,
            accuracy is double a ? string.Create(CultureInfo.InvariantCulture, $"test accuracy {100 * a:F2}%") : source);
    }

    /// <summary>Thread-safe inference: a pool of network copies.</summary>
    public Predictor Predictor { get; }

    /// <summary>Image decodes allowed at once (as many as network copies): bounds the decoders' memory under load.</summary>
    public SemaphoreSlim DecodeGate { get; }

    public ModelInfo Info { get; }

    /// <summary>Channels, height and width of the first convolution's output (6, 24, 24 for LeNet).</summary>
    public int FeatureMapCount { get; }

    public int FeatureMapHeight { get; }

    public int FeatureMapWidth { get; }

    /// <summary>The first convolution's output for one preprocessed image, channel by channel: [c][y][x].</summary>
    public float[][][] FeatureMaps(ReadOnlySpan<float> pixels)
    {
        Tensor<float> conv1 = Predictor.Activations(pixels)[0]; // (1, H, W, C), NHWC
        int c = FeatureMapCount, h = FeatureMapHeight, w = FeatureMapWidth;
        var maps = new float[c][][];
        for (int k = 0; k < c; k++)
        {
            maps[k] = new float[h][];
            for (int y = 0; y < h; y++)
            {
                var row = maps[k][y] = new float[w];
                for (int x = 0; x < w; x++) row[x] = conv1.Data[((y * w) + x) * c + k];
            }
        }

        return maps;
    }

    public void Dispose()
    {
        Predictor.Dispose();
        DecodeGate.Dispose();
    }

    private static (double? Accuracy, string Source) MeasureAccuracy(Sequential<float> network, string dataDirectory, ILogger log)
    {
        ImageDataset test;
        try
        {
            test = Mnist.Load(dataDirectory, MnistSplit.Test);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            log.LogInformation("No test accuracy: {Reason}", e.Message);
            return (null, $"unknown: no MNIST test set in {dataDirectory}");
        }

        var result = Evaluator.Evaluate(network, test);
        return (result.Accuracy, $"measured at startup on the {result.Total:N0} MNIST test images in {dataDirectory}");
    }
}
