using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>A test class that gets a fresh temporary folder, deleted afterwards.</summary>
public abstract class TempDirectoryTest : IDisposable
{
    protected string Dir { get; } = Directory.CreateTempSubdirectory("lenetsharp-test-").FullName;

    public void Dispose()
    {
        Directory.Delete(Dir, recursive: true);
        GC.SuppressFinalize(this);
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls back synchronously.</summary>
internal sealed class InlineProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}

internal static class TestData
{
    /// <summary>Random 8x8 grey images with random labels among 3 classes: only memorising can fit them.</summary>
    public static ImageDataset RandomImages(int count, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[count * 64];
        random.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(_ => (byte)random.Next(3)).ToArray();
        return new ImageDataset(pixels, labels, 8, 8, 1, 3);
    }

    /// <summary>A small convnet for 8x8 images: Conv 3x3 1→4, Relu, MaxPool2x2, Flatten, Linear 36→3.</summary>
    public static Sequential<T> SmallNet<T>(int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        return new Sequential<T>(
            new Conv<T>(1, 4, 3, 3, random), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(), new Linear<T>(36, 3, random));
    }

    /// <summary><see cref="SmallNet{T}"/> with a Dropout (p 0.3) before its Linear layer.</summary>
    public static Sequential<T> SmallDropoutNet<T>(int seed) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var random = new Random(seed);
        return new Sequential<T>(
            new Conv<T>(1, 4, 3, 3, random), new Relu<T>(), new MaxPool2x2<T>(), new Flatten<T>(), new Dropout<T>(0.3, seed),
            new Linear<T>(36, 3, random));
    }

    /// <summary>The repository's data/mnist folder (found by walking up to LeNetSharp.sln).</summary>
    public static string MnistDirectory() => RepositoryPath("data", "mnist");

    /// <summary>A path inside the repository (its root found by walking up to LeNetSharp.sln).</summary>
    public static string RepositoryPath(params string[] parts)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "LeNetSharp.sln"))) return Path.Combine([dir.FullName, .. parts]);
        }

        throw new InvalidOperationException($"No LeNetSharp.sln above {AppContext.BaseDirectory}.");
    }

    /// <summary>
    /// Synthetic 28x28 IDX files (not MNIST) in <paramref name="dir"/>: <paramref name="train"/> training and
    /// <paramref name="test"/> test images of random bytes (seed 5), labels 0-9 in turn.
    /// </summary>
    /// <returns><paramref name="dir"/>.</returns>
    public static string SyntheticIdx(string dir, int train, int test)
    {
        var random = new Random(5);
        foreach (var (prefix, count) in new[] { ("train", train), ("t10k", test) })
        {
            var pixels = new byte[count * 784];
            random.NextBytes(pixels);
            IdxFile.Write(Path.Combine(dir, $"{prefix}-images-idx3-ubyte"), [count, 28, 28], pixels);
            IdxFile.Write(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"), [count], Enumerable.Range(0, count).Select(i => (byte)(i % 10)).ToArray());
        }

        return dir;
    }
}

/// <summary>What the execution plan of a network's last forward ran.</summary>
internal static class PlanInspection
{
    /// <summary>
    /// How many fused Conv → Relu → MaxPool2x2 passes the last forward ran (other kernels standing in for several layers,
    /// such as Relu → MaxPool2x2 as one pass, are not counted).
    /// </summary>
    public static int FusedPassesInLastForward<T>(this Sequential<T> network) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        network.Runner.LastPlan?.Steps.Count(s => s is LeNetSharp.Kernels.FusedConvReluPoolStep<T>) ?? 0;
}

/// <summary>A pass-through layer that, when armed, signals it is inside Forward and waits to be released.</summary>
internal sealed class GateLayer : Layer<float>
{
    public ManualResetEventSlim Entered { get; } = new();

    public ManualResetEventSlim Release { get; } = new();

    public bool Armed { get; set; }

    public override string Name => "gate";

    public override LayerDescription Describe() => new("Gate");

    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    protected override Tensor<float> ForwardCore(Tensor<float> input)
    {
        if (Armed)
        {
            Entered.Set();
            Release.Wait(TimeSpan.FromSeconds(30));
        }

        return input;
    }

    protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
}
