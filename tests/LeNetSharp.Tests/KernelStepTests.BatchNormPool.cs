using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using static LeNetSharp.Tests.BitAssert;

namespace LeNetSharp.Tests;

/// <summary>
/// BatchNormReluPoolStep (BatchNorm2d → Relu → MaxPool2x2 as one step) against the three layers run by their own code.
/// </summary>
public partial class KernelStepTests
{
    [Theory]
    [WidthData(nameof(Types), 128)]
    [WidthData(nameof(Types), 256)]
    [WidthData(nameof(Types), 512)]
    public void BatchNormReluPoolStep_gives_the_bits_of_BatchNorm2d_Relu_MaxPool2x2_in_training_and_evaluation(int bits, string type) =>
        ForType(type, () => BatchNormReluPoolMatches<float>(bits), () => BatchNormReluPoolMatches<double>(bits));

    /// <summary>Values from −1.5 to 1.5 in steps of ½: a window often holds equal maxima, and so does x̂ and y.</summary>
    private static Tensor<T> Ties<T>(Random random, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = T.CreateTruncating(random.Next(-3, 4) * 0.5);
        return t;
    }

    /// <summary>
    /// Forward, running statistics, ∂x, ∂γ and ∂β in training and evaluation, and the inference plan's output, on channel
    /// counts around the vectors (below 128 bits' worth the layers' other steps run), odd heights and widths (the pool
    /// drops a row or column), batches of 1 to 5, windows of ties and negative-only windows (γ = ±0, or β far below 0:
    /// the Relu gives 0 in all four), special values in x (then every x̂ of a channel is NaN, or for double an infinite
    /// Σ(x − μ)²: the sums over every element) and in ∂p. In evaluation the special values give a NaN in single elements
    /// of a window (the NaN-keeping maximum) beside windows without one (the CPU's maximum, with ±0 ties from γ = ±0).
    /// </summary>
    private static void BatchNormReluPoolMatches<T>(int bits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var random = new Random(52);
        (int N, int H, int W)[] images = [.. Images, (2, 10, 11), (3, 12, 8)];
        foreach (int channels in Channels<T>(bits).Concat([17, 32, 33, 64]).Distinct())
        {
            foreach (bool affine in new[] { true, false })
            {
                var kernelNorm = new BatchNorm2d<T>(channels, momentum: 0.3, affine: affine);
                var norm = new BatchNorm2d<T>(channels, momentum: 0.3, affine: affine);
                if (affine)
                {
                    var (gamma, beta) = (kernelNorm.Weight!.Value.Data, kernelNorm.Bias!.Value.Data);
                    for (int c = 0; c < channels; c++)
                    {
                        (gamma[c], beta[c]) = (c % 7) switch
                        {
                            1 => (T.Zero, T.NegativeZero),                                  // y = ±0: every window ties at 0, none passes ∂p
                            2 => (T.CreateTruncating(-0.75), T.NegativeZero),
                            3 => (T.CreateTruncating(0.25), T.CreateTruncating(-3)),       // negative-only windows
                            4 => (T.NegativeZero, T.Zero),
                            _ => (T.CreateTruncating(random.NextDouble() * 2 - 0.5), T.CreateTruncating(random.NextDouble() - 0.5)),
                        };
                    }

                    gamma.CopyTo(norm.Weight!.Value.Data, 0);
                    beta.CopyTo(norm.Bias!.Value.Data, 0);
                }

                var kernel = new Sequential<T>(kernelNorm, new Relu<T>(), new MaxPool2x2<T>()) { Backend = ComputeBackend.SimdWithWidth(bits) };
                var relu = new Relu<T>();
                var pool = new MaxPool2x2<T>();
                bool fused = BatchNormPasses<T>.VectorBits(bits, channels) > 0;
                foreach (bool training in new[] { false, true, false, true }) // evaluation first: the running statistics as created
                {
                    kernel.Training = training;
                    norm.Training = training;
                    foreach (var (n, h, w) in images.Where(s => s.N * s.H * s.W >= 2))
                    {
                        int[] shape = [n, h, w, channels];
                        string what = $"BatchNorm2d {channels}{(affine ? "" : " without affine")} → Relu → MaxPool2x2<{typeof(T).Name}> at {bits} bits on "
                            + $"{Tensor<T>.ShapeToString(shape)}, {(training ? "training" : "evaluation")}";
                        var x = n switch { 3 => Hostile<T>(random, shape), 2 => Ties<T>(random, shape), _ => Finite<T>(random, shape) };
                        for (int i = 0; i < x.Length; i += 2) x.Data[i] += T.CreateTruncating(i % channels); // channels with their own means
                        if (n == 4)
                        {
                            // Channel 0 of pixels 1–3 the largest value and twice the largest negative one: for double
                            // μ ≈ −max/m, so x − μ is +∞ at pixel 1 (the upper right of the first window), Σ(x − μ)² is +∞
                            // and that x̂ NaN, every other x̂ of the channel 0: the layer's sums are NaN through +0·NaN.
                            x.Data[channels] = T.BitDecrement(T.PositiveInfinity);
                            x.Data[2 * channels] = x.Data[3 * channels] = T.BitIncrement(T.NegativeInfinity);
                        }

                        var dp = n == 5 ? Hostile<T>(random, n, h / 2, w / 2, channels) : Finite<T>(random, n, h / 2, w / 2, channels);
                        var expected = pool.Forward(relu.Forward(norm.Forward(x)));
                        SameBits(expected, kernel.Forward(x), what + ", forward", anyNaN: true);
                        var steps = kernel.Runner.LastPlan!.Steps;
                        if (fused)
                        {
                            steps.Should().ContainSingle().Which.Should().BeOfType<BatchNormReluPoolStep<T>>().Which.Name.Should()
                                .Be($"{norm.Name} → Relu → MaxPool2x2 (fused, Vector{BatchNormPasses<T>.VectorBits(bits, channels)})");
                        }
                        else
                        {
                            steps.Select(s => s.GetType().Name.Split('`')[0]).Should().Equal("BatchNormStep", "ReluMaxPoolStep");
                        }

                        SameBits(norm.RunningMean.Value, kernelNorm.RunningMean.Value, what + ", running mean", anyNaN: true);
                        SameBits(norm.RunningVar.Value, kernelNorm.RunningVar.Value, what + ", running variance", anyNaN: true);
                        foreach (var parameter in norm.Parameters.Concat(kernelNorm.Parameters)) parameter.Gradient.Clear(); // no NaN carried over
                        var expectedDx = norm.Backward(relu.Backward(pool.Backward(dp)));
                        var dx = kernel.Backward(dp);
                        SameBits(expectedDx, dx, what + ", backward", anyNaN: true);
                        for (int i = 0; i < kernelNorm.Parameters.Count; i++)
                        {
                            SameBits(norm.Parameters[i].Gradient, kernelNorm.Parameters[i].Gradient, $"{what}, gradient of {kernelNorm.Parameters[i].Name}", anyNaN: true);
                        }

                        dx.Data.AsSpan().Fill(T.NaN); // a caller writing into the returned buffer changes no later result
                        if (!training) SameBits(expected, kernel.Infer(x), what + ", inference plan", anyNaN: true);
                    }
                }
            }
        }
    }
}
