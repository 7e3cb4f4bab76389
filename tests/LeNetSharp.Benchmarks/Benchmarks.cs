using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using LeNetSharp.Compute;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Benchmarks;

public static class Program
{
    /// <summary>Runs the benchmarks chosen on the command line (e.g. --filter '*Gemm*'); see README.md beside this file.</summary>
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}

/// <summary>Random MNIST-shaped data, so the benchmarks need no download.</summary>
internal static class Synthetic
{
    public static ImageDataset Images(int count)
    {
        var random = new Random(1);
        var pixels = new byte[count * 784];
        random.NextBytes(pixels);
        return new ImageDataset(pixels, Enumerable.Range(0, count).Select(i => (byte)(i % 10)).ToArray(), 28, 28, 1, 10);
    }
}

/// <summary>Every GEMM of a LeNet training step at batch 3, MathNet's provider against the SIMD one.</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private float[] _a = [], _b = [], _c = [];

    [ParamsAllValues]
    public GemmShape Shape { get; set; }

    [Params("mathnet", "simd")]
    public string Provider { get; set; } = "simd";

    public enum GemmShape { Conv1Forward, Conv1WeightGrad, Conv2Forward, Conv2WeightGrad, Conv2InputGrad, LinearForward }

    private (bool TransA, bool TransB, int M, int N, int K) Dims => Shape switch
    {
        GemmShape.Conv1Forward => (true, false, 1728, 6, 25),   // single channel: Conv keeps P transposed
        GemmShape.Conv1WeightGrad => (false, false, 25, 6, 1728),
        GemmShape.Conv2Forward => (false, false, 192, 16, 150),
        GemmShape.Conv2WeightGrad => (true, false, 150, 16, 192),
        GemmShape.Conv2InputGrad => (false, true, 192, 150, 16),
        _ => (false, false, 3, 10, 256),
    };

    [GlobalSetup]
    public void Setup()
    {
        var (_, _, m, n, k) = Dims;
        var random = new Random(1);
        _a = Enumerable.Range(0, m * k).Select(_ => random.NextSingle()).ToArray();
        _b = Enumerable.Range(0, k * n).Select(_ => random.NextSingle()).ToArray();
        _c = new float[m * n];
    }

    [Benchmark]
    public void Multiply()
    {
        var (ta, tb, m, n, k) = Dims;
        GemmProvider.FromName(Provider).Multiply(ta, tb, m, n, k, 1f, _a, _b, 0f, _c);
    }
}

/// <summary>Forward and backward of each LeNet layer at batch 3 (SIMD GEMM).</summary>
[MemoryDiagnoser]
public class LayerBenchmarks
{
    private Sequential<float> _net = null!;
    private readonly Tensor<float>[] _inputs = new Tensor<float>[8];
    private readonly Tensor<float>[] _gradients = new Tensor<float>[8];

    [Params(0, 1, 2, 3, 4, 5, 7)]
    public int Layer { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _net = LeNet.Create<float>(1);
        _net.Backend = ComputeBackend.Simd;
        var x = new Tensor<float>(3, 28, 28, 1);
        var random = new Random(2);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.NextSingle();
        for (int l = 0; l < _net.Layers.Count; l++)
        {
            _inputs[l] = x.Clone();
            x = _net.Layers[l].Forward(x);
            _gradients[l] = x.Clone();
        }
    }

    [Benchmark]
    public Tensor<float> Forward() => _net.Layers[Layer].Forward(_inputs[Layer]);

    [Benchmark]
    public Tensor<float> ForwardBackward()
    {
        _net.Layers[Layer].Forward(_inputs[Layer]);
        return _net.Layers[Layer].Backward(_gradients[Layer]);
    }
}

/// <summary>One SGD step at batch 3 and 64, and inference of 1000 images, on synthetic MNIST-shaped data.</summary>
[MemoryDiagnoser]
public class StepBenchmarks
{
    private ImageDataset _data = null!;
    private Trainer<float> _trainer = null!;
    private Sequential<float> _net = null!;
    private int[] _indices = [];

    [Params(3, 64)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = Synthetic.Images(1000);
        _net = LeNet.Create<float>(1);
        _net.Backend = ComputeBackend.Simd;
        _trainer = new Trainer<float>(_net, new TrainingOptions { BatchSize = Batch });
        _indices = Enumerable.Range(0, Batch).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup() => _trainer.Dispose();

    [Benchmark]
    public double TrainingStep() => _trainer.Step(_data, _indices).Loss;

    [Benchmark]
    public double Inference1000() => Evaluator.Evaluate(_net, _data).Accuracy;
}

/// <summary>Inference over 10,000 MNIST-shaped images at batch 16, on one and on two threads.</summary>
[MemoryDiagnoser]
public class InferenceBenchmarks
{
    private ImageDataset _data = null!;
    private Sequential<float> _net = null!;

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = Synthetic.Images(10_000);
        _net = LeNet.Create<float>(1);
        _net.Backend = ComputeBackend.Simd;
    }

    [Benchmark]
    public double Inference10000() => Evaluator.Evaluate(_net, _data, batchSize: 16, threads: Threads).Accuracy;
}
