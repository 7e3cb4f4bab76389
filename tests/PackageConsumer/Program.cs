// Uses LeNetSharp.Core, LeNetSharp.Onnx and LeNetSharp.Imaging as a package user would; .ci/run packs the library, restores it here and runs this.
// README.md's "Use it in your project" shows the first part of this code: keep the two the same.
using LeNetSharp.Data;
using LeNetSharp.Imaging;
using LeNetSharp.Layers;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

// 30 random 8x8 grey images in 3 classes: a set only memorising can fit, so the loss must fall.
var random = new Random(1);
var pixels = new byte[30 * 8 * 8];
random.NextBytes(pixels);
var labels = Enumerable.Range(0, 30).Select(i => (byte)(i % 3)).ToArray();
var data = new ImageDataset(pixels, labels, height: 8, width: 8, channels: 1, classes: 3);

// Conv 3x3 1→4 → Relu → MaxPool2x2 → Flatten → Linear 36→3, weights from a seed.
var init = new Random(42);
var net = new Sequential<float>(
    new Conv<float>(inChannels: 1, outChannels: 4, kernelHeight: 3, kernelWidth: 3, init),
    new Relu<float>(),
    new MaxPool2x2<float>(),
    new Flatten<float>(),
    new Linear<float>(inFeatures: 36, outFeatures: 3, init));

var options = new TrainingOptions { Epochs = 150, BatchSize = 5, LearningRate = 0.01, Momentum = 0.9, Decay = 1 };
IReadOnlyList<TrainingProgress> epochs;
using (var trainer = new Trainer<float>(net, options))
{
    epochs = trainer.Train(data, new SynchronousProgress<TrainingProgress>(_ => { }));
}

Console.WriteLine($"loss {epochs[0].Loss:F3} → {epochs[^1].Loss:F3}, {Evaluator.Evaluate(net, data)}, backend {net.Backend.Name}");

string path = Path.Combine(Path.GetTempPath(), $"consumer-{Guid.NewGuid():N}.model");
ModelFile.Save(net, path);
var reloaded = ModelFile.Load<float>(path);
File.Delete(path);

var x = new Tensor<float>(4, 8, 8, 1);
data.FillBatch([0, 1, 2, 3], x, new int[4]);
float[] before = net.Forward(x).Data.ToArray(), after = reloaded.Forward(x).Data.ToArray();

// ONNX out and back in: the same network, so the same logits.
string onnxPath = Path.ChangeExtension(path, ".onnx");
OnnxModel.Export(net, onnxPath, height: 8, width: 8, channels: 1);
var fromOnnx = OnnxModel.Import(onnxPath);
File.Delete(onnxPath);
float[] viaOnnx = fromOnnx.Forward(x).Data.ToArray();

// A layer of the consumer's own (public API only): registered once, it trains on two threads, saves, loads and clones.
LayerRegistry.Register<float>("Negate", _ => new Negate());
var custom = new Sequential<float>(
    new Conv<float>(1, 4, 3, 3, new Random(7)), new Relu<float>(), new MaxPool2x2<float>(), new Flatten<float>(),
    new Negate(), new Linear<float>(36, 3, new Random(8)));
using (var trainer = new Trainer<float>(custom, new TrainingOptions { Epochs = 2, BatchSize = 16, Threads = 2, Seed = 3 }))
{
    trainer.Train(data);
}

string customPath = Path.ChangeExtension(path, ".custom.model");
ModelFile.Save(custom, customPath);
var customReloaded = ModelFile.Load<float>(customPath);
File.Delete(customPath);
float[] customBefore = custom.Forward(x).Data.ToArray();
float[] customAfter = customReloaded.Forward(x).Data.ToArray(), customClone = custom.Clone().Forward(x).Data.ToArray();

// Beyond the tutorial: every newer layer, AdamW with clipping, a warm-up then cosine schedule, a validation split
// with early stopping and augmentation; saved, reloaded, cloned and sent through ONNX to the same logits in evaluation mode.
var (trainPart, validationPart) = data.Split(0.2, seed: 5);
var modern = new Sequential<float>(
    new Conv<float>(1, 4, 3, 3, new Random(9), padding: 1), new BatchNorm2d<float>(4), new LeakyRelu<float>(0.1),
    new MaxPool2d<float>(2), new Conv<float>(4, 6, 3, 3, new Random(10), padding: 1), new Tanh<float>(),
    new AvgPool2d<float>(2), new GlobalAvgPool2d<float>(), new Dropout<float>(0.2, seed: 3), new Linear<float>(6, 6, new Random(11)),
    new BatchNorm1d<float>(6), new Sigmoid<float>(), new Linear<float>(6, 3, new Random(12)));
var modernOptions = new TrainingOptions
{
    Epochs = 6, BatchSize = 4, Optimizer = OptimizerKind.AdamW, LearningRate = 0.01, WeightDecay = 0.01, MaxGradientNorm = 5,
    Schedule = new LinearWarmupSchedule(new CosineAnnealingSchedule(5), 1), ValidationData = validationPart,
    EarlyStopping = new EarlyStopping { Patience = 3 }, Augmentation = new ImageAugmentation(),
};
TrainingResult modernResult;
using (var trainer = new Trainer<float>(modern, modernOptions))
{
    modernResult = trainer.Train(trainPart);
}

string modernPath = Path.ChangeExtension(path, ".modern.model");
ModelFile.Save(modern, modernPath);
var modernReloaded = ModelFile.Load<float>(modernPath);
File.Delete(modernPath);
modern.Training = modernReloaded.Training = false;
float[] modernBefore = modern.Forward(x).Data.ToArray();
float[] modernAfter = modernReloaded.Forward(x).Data.ToArray(), modernClone = modern.Clone().Forward(x).Data.ToArray();
string modernOnnx = Path.ChangeExtension(path, ".modern.onnx");
OnnxModel.Export(modern, modernOnnx, height: 8, width: 8, channels: 1);
float[] modernViaOnnx = OnnxModel.Import(modernOnnx).Forward(x).Data.ToArray(); // an imported network starts in evaluation mode
File.Delete(modernOnnx);
Console.WriteLine($"modern network: {modernResult}");

// Pictures: the training images as PNGs in a tiny image folder (a class folder per label), decoded and loaded back;
// a network that names its classes keeps the names through its model file.
string folder = Path.Combine(Path.GetTempPath(), $"consumer-{Guid.NewGuid():N}");
string[] names = ["circle", "square", "triangle"];
for (int i = 0; i < 9; i++)
{
    Directory.CreateDirectory(Path.Combine(folder, names[data.Label(i)]));
    File.WriteAllBytes(Path.Combine(folder, names[data.Label(i)], $"{i}.png"), GreyPng(data.Pixels(i), 8, 8));
}

var (decoded, decodedWidth, decodedHeight) = ImageDecoder.DecodeFile(Path.Combine(folder, names[data.Label(0)], "0.png"));
var fromFolder = ImageFolder.Load(folder);
var expectedOrder = Enumerable.Range(0, 9).OrderBy(i => data.Label(i)).ThenBy(i => $"{i}.png", StringComparer.Ordinal).ToArray();
bool folderRight = fromFolder.Count == 9 && fromFolder.ClassNames!.SequenceEqual(names)
    && expectedOrder.Select((stored, i) => fromFolder.Pixels(i).SequenceEqual(data.Pixels(stored)) && fromFolder.Label(i) == data.Label(stored)).All(ok => ok);
net.ClassNames = fromFolder.ClassNames;
net.InputShape = (8, 8, 1);
ModelFile.Save(net, path);
var named = ModelFile.Load<float>(path);
File.Delete(path);
Directory.Delete(folder, recursive: true);
Console.WriteLine($"image folder: {fromFolder.Count} images of {fromFolder.Height}x{fromFolder.Width}, classes {string.Join(", ", fromFolder.ClassNames!)}");

var failures = new List<string>();
if (!decoded.SequenceEqual(data.Pixels(0).ToArray()) || (decodedWidth, decodedHeight) != (8, 8)) failures.Add("a PNG did not decode to the pixels written");
if (!folderRight) failures.Add("the image folder did not load the pictures written, in order, with their classes");
if (named.ClassNames is null || !named.ClassNames.SequenceEqual(names) || named.InputShape != (8, 8, 1)) failures.Add("the model file lost the class names or the input shape");
if (!modernBefore.SequenceEqual(modernAfter) || !modernBefore.SequenceEqual(modernClone) || modernBefore.Any(float.IsNaN))
{
    failures.Add("the network of newer layers did not reload or clone to the same logits");
}

if (!modernBefore.SequenceEqual(modernViaOnnx)) failures.Add("the network of newer layers exported to ONNX and imported back gives different logits");

if (customReloaded.Layers[4] is not Negate || !customBefore.SequenceEqual(customAfter) || !customBefore.SequenceEqual(customClone))
{
    failures.Add("the network with a layer of the consumer's own did not reload or clone to the same logits");
}

if (!(epochs[^1].Loss < 0.5 * epochs[0].Loss)) failures.Add($"loss did not fall enough: {epochs[0].Loss} → {epochs[^1].Loss}");
if (!before.SequenceEqual(after)) failures.Add("the reloaded model gives different logits");
if (!before.SequenceEqual(viaOnnx)) failures.Add("the model exported to ONNX and imported back gives different logits");
foreach (var f in failures) Console.Error.WriteLine($"consumer: FAILED: {f}");
Console.WriteLine(failures.Count == 0 ? "consumer: OK" : "consumer: FAILED");
return failures.Count == 0 ? 0 : 1;

// 8-bit grey pixels as a PNG, with SkiaSharp (which LeNetSharp.Imaging brings).
static byte[] GreyPng(ReadOnlySpan<byte> grey, int width, int height)
{
    using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(width, height, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque));
    grey.CopyTo(bitmap.GetPixelSpan());
    using var png = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
    return png.ToArray();
}

/// <summary>y = −x: a layer with no weights, written against the public base class.</summary>
internal sealed class Negate : Layer<float>
{
    private Tensor<float>? _output, _inputGrad;

    public override string Name => "Negate";

    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    public override LayerDescription Describe() => new("Negate");

    protected override Tensor<float> ForwardCore(Tensor<float> input) => Negated(input, ref _output);

    protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => Negated(outputGradient, ref _inputGrad);

    private static Tensor<float> Negated(Tensor<float> x, ref Tensor<float>? buffer)
    {
        if (buffer is null || !buffer.HasShape(x.Shape)) buffer = new Tensor<float>(x.Shape.ToArray());
        for (int i = 0; i < x.Length; i++) buffer.Data[i] = -x.Data[i];
        return buffer;
    }
}
