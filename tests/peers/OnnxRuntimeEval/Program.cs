// Runs a LeNetSharp model and its ONNX export side by side on the MNIST test set: LeNetSharp's forward pass
// against ONNX Runtime's, one batch of all images.
// usage: dotnet run -c Release --project tests/peers/OnnxRuntimeEval -- lenet.model lenet.onnx [data/mnist]
using LeNetSharp.Data;
using LeNetSharp.Onnx;
using LeNetSharp.Persistence;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

if (args.Length is < 2 or > 3)
{
    Console.Error.WriteLine("usage: OnnxRuntimeEval MODEL ONNX [MNIST_DIR]");
    return 2;
}

var net = ModelFile.Load<float>(args[0]);
var test = Mnist.Load(args.Length > 2 ? args[2] : Path.Combine("data", "mnist"), MnistSplit.Test);
int n = test.Count, classes = test.Classes;
var x = new LeNetSharp.Tensors.Tensor<float>(n, test.Height, test.Width, test.Channels);
var labels = new int[n];
test.FillBatch(Enumerable.Range(0, n).ToArray(), x, labels);
float[] ours = net.Forward(x).Data.ToArray();

using var session = new InferenceSession(args[1]);
var input = new DenseTensor<float>(x.Data, [n, test.Height, test.Width, test.Channels]);
using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxModel.InputName, input)]);
float[] theirs = results.Single(r => r.Name == OnnxModel.LogitsName).AsEnumerable<float>().ToArray();

float worst = 0, largest = 0;
for (int i = 0; i < ours.Length; i++)
{
    worst = Math.Max(worst, Math.Abs(ours[i] - theirs[i]));
    largest = Math.Max(largest, Math.Abs(ours[i]));
}

int agree = 0, correctOurs = 0, correctOrt = 0;
for (int r = 0; r < n; r++)
{
    int a = ArgMax(ours, r), b = ArgMax(theirs, r);
    agree += a == b ? 1 : 0;
    correctOurs += a == labels[r] ? 1 : 0;
    correctOrt += b == labels[r] ? 1 : 0;
}

Console.WriteLine($"{n} images: largest |Δ logit| {worst:G3} (largest |logit| {largest:F1}); argmax agrees on {agree}/{n}; "
    + $"correct: LeNetSharp {correctOurs}, ONNX Runtime {correctOrt}");
return 0;

int ArgMax(float[] rows, int r)
{
    int best = 0;
    for (int j = 1; j < classes; j++) if (rows[r * classes + j] > rows[r * classes + best]) best = j;
    return best;
}
