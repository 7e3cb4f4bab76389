using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Numerics;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// Randomised shapes and values against the newest backward kernels (sparse conv, fused conv → ReLU → pool, the
/// vectorised max pool) and the training worker pool: bit equality with the im2col + GEMM path, naive references,
/// buffer reuse from a bigger batch to a smaller one, accumulation, and the pool's life cycle.
/// </summary>
public class BackwardFuzzTests
{
    private static T Value<T>(Random r, int style) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double u = r.NextDouble();
        return style switch
        {
            0 => T.CreateTruncating(r.NextDouble() * 2 - 1),
            1 => u < 0.3 ? T.Zero : u < 0.4 ? T.NegativeZero : T.CreateTruncating(r.Next(-2, 3) * 0.5), // ties and zeros
            2 => T.CreateTruncating((r.NextDouble() * 2 - 1) * Math.Pow(2, r.Next(-20, 40))), // large and small magnitudes
            _ => u < 0.5 ? T.NegativeZero : T.CreateTruncating(r.Next(-1, 2)),
        };
    }

    private static Tensor<T> RandomTensor<T>(Random r, int style, params int[] shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = new Tensor<T>(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = Value<T>(r, style);
        return t;
    }

    private static IEnumerable<int> Widths()
    {
        yield return 128;
        if (SimdWidths.SkipReason(256) is null) yield return 256;
        if (SimdWidths.SkipReason(512) is null) yield return 512;
    }

    // ---- (a) Conv backward with the SIMD provider against im2col + Gemm.Multiply with the same provider -------------

    private static void ConvAgainstGemm<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(seed);
        foreach (int bits in Widths())
        {
            var provider = SimdWidths.Provider(bits);
            int c = r.Next(1, 21), oc = r.Next(1, 41), kh = r.Next(1, 7), kw = r.Next(1, 7);
            var conv = new Conv<T>(c, oc, kh, kw, r) { GemmProvider = provider };
            var kernel = SimdWidths.Kernel(conv, bits);
            for (int i = 0; i < conv.Weight.Value.Length; i++) conv.Weight.Value.Data[i] = Value<T>(r, r.Next(3));
            for (int i = 0; i < oc; i++) conv.Bias.Value.Data[i] = Value<T>(r, r.Next(3));
            // Same conv, batches of several sizes (bigger first, then smaller: buffers reused), gradients accumulating.
            foreach (int n in new[] { r.Next(5, 10), r.Next(1, 4), 1, r.Next(1, 10) })
            {
                int h = r.Next(kh, 31), w = r.Next(kw, 31), style = r.Next(4);
                var x = RandomTensor<T>(r, style, n, h, w, c);
                var g = new ConvGeometry(n, h, w, c, kh, kw, 1, 0);
                var y = kernel.Forward(x).Data.ToArray();
                var patches = new T[g.PatchRows * g.PatchColumns];
                Im2Col.Forward<T>(x.Data, g, patches);
                var expectedY = new T[g.PatchRows * oc];
                RowOps.BroadcastRows<T>(conv.Bias.Value.Span, expectedY);
                Gemm.Multiply(provider, false, false, g.PatchRows, oc, g.PatchColumns, T.One, patches, conv.Weight.Value.Data, T.One, expectedY);
                y.Should().Equal(expectedY, "forward, seed {0}, {1} bits, shape n{2} h{3} w{4} c{5} oc{6} k{7}x{8}", seed, bits, n, h, w, c, oc, kh, kw);

                var dy = RandomTensor<T>(r, r.Next(4), n, g.OH, g.OW, oc);
                var expectedK = conv.Weight.Gradient.Data.ToArray();
                var expectedB = conv.Bias.Gradient.Data.ToArray();
                Gemm.Multiply(provider, true, false, g.PatchColumns, oc, g.PatchRows, T.One, patches, dy.Data, T.One, expectedK);
                RowOps.AddColumnSums<T>(dy.Data, expectedB);
                var patchGrad = new T[g.PatchRows * g.PatchColumns];
                var expectedX = new T[x.Length];
                if (c == 1)
                {
                    // One input channel: the kernel keeps the patches transposed (not the sparse kernel).
                    Gemm.Multiply(provider, false, true, g.PatchColumns, g.PatchRows, oc, T.One, conv.Weight.Value.Data, dy.Data, T.Zero, patchGrad);
                    Im2Col.BackwardTransposed<T>(patchGrad, g, expectedX);
                }
                else
                {
                    Gemm.Multiply(provider, false, true, g.PatchRows, g.PatchColumns, oc, T.One, dy.Data, conv.Weight.Value.Data, T.Zero, patchGrad);
                    Im2Col.Backward<T>(patchGrad, g, expectedX);
                }

                var dx = kernel.Backward(dy).Data.ToArray();
                string what = $"seed {seed}, {bits} bits, shape n{n} h{h} w{w} c{c} oc{oc} k{kh}x{kw}, style {style}";
                conv.Weight.Gradient.Data.Should().Equal(expectedK, "∂K, " + what);
                conv.Bias.Gradient.Data.Should().Equal(expectedB, "∂b, " + what);
                dx.Should().Equal(expectedX, "∂x, " + what);
            }
        }
    }

    public static TheoryData<int> Seeds() => new(Enumerable.Range(1, 40));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_float_conv_backward_equals_im2col_and_gemm(int seed) => ConvAgainstGemm<float>(seed);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_double_conv_backward_equals_im2col_and_gemm(int seed) => ConvAgainstGemm<double>(seed + 1000);

    // ---- (b) fused Conv(1→C) → Relu → MaxPool2x2 against the layers one by one with the same provider ---------------

    private static void FusedAgainstLayers<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(seed);
        foreach (int bits in Widths())
        {
            int oc = r.Next(1, 41), kh = r.Next(1, 6), kw = r.Next(1, 7);
            var net = new Sequential<T>(new Conv<T>(1, oc, kh, kw, r) { ComputeInputGradient = false }, new Relu<T>(), new MaxPool2x2<T>());
            net.Backend = ComputeBackend.SimdWithWidth(bits);
            var conv = (Conv<T>)net.Layers[0];
            for (int i = 0; i < conv.Weight.Value.Length; i++) conv.Weight.Value.Data[i] = Value<T>(r, r.Next(3));
            for (int i = 0; i < oc; i++) conv.Bias.Value.Data[i] = Value<T>(r, r.Next(3));
            foreach (int n in new[] { r.Next(5, 10), r.Next(1, 4), 1 })
            {
                int h = r.Next(kh + 1, 31), w = r.Next(kw + 1, 31), style = r.Next(4);
                var x = RandomTensor<T>(r, style, n, h, w, 1);
                string what = $"seed {seed}, {bits} bits, n{n} h{h} w{w} oc{oc} k{kh}x{kw}, style {style}";
                net.ZeroGradients();
                // Gradients already hold values: the new ones are added.
                for (int i = 0; i < conv.Weight.Gradient.Length; i++) conv.Weight.Gradient.Data[i] = Value<T>(r, 0);
                for (int i = 0; i < oc; i++) conv.Bias.Gradient.Data[i] = Value<T>(r, 0);
                var k0 = conv.Weight.Gradient.Data.ToArray();
                var b0 = conv.Bias.Gradient.Data.ToArray();
                var fusedY = net.Forward(x).Data.ToArray();
                bool fused = net.FusedPassesInLastForward() == 1;
                var dp = RandomTensor<T>(r, r.Next(4), n, (h - kh + 1) / 2, (w - kw + 1) / 2, oc);
                net.Backward(dp);
                var fusedK = conv.Weight.Gradient.Data.ToArray();
                var fusedB = conv.Bias.Gradient.Data.ToArray();

                k0.CopyTo(conv.Weight.Gradient.Data, 0);
                b0.CopyTo(conv.Bias.Gradient.Data, 0);
                var t = x;
                foreach (var layer in net.Layers) t = layer.Forward(t);
                var g = dp;
                for (int i = net.Layers.Count - 1; i >= 0; i--) g = net.Layers[i].Backward(g);
                fusedY.Should().Equal(t.Data, "p, fused {0}, {1}", fused, what);
                fusedK.Should().Equal(conv.Weight.Gradient.Data, "∂K, fused {0}, {1}", fused, what);
                fusedB.Should().Equal(conv.Bias.Gradient.Data, "∂b, fused {0}, {1}", fused, what);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_float_fused_pass_equals_the_layers(int seed) => FusedAgainstLayers<float>(seed + 2000);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_double_fused_pass_equals_the_layers(int seed) => FusedAgainstLayers<double>(seed + 3000);

    // ---- (c) MaxPool2x2 backward against a naive loop -------------------------------------------------------------

    private static void PoolAgainstNaive<T>(int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var r = new Random(seed);
        var pool = new MaxPool2x2<T>();
        foreach (int n in new[] { r.Next(5, 10), r.Next(1, 4), 1 })
        {
            int h = r.Next(2, 31), w = r.Next(2, 31), c = r.Next(4) switch { 0 => 8, 1 => 16, 2 => 4, _ => r.Next(1, 21) }, style = r.Next(4);
            var x = RandomTensor<T>(r, style, n, h, w, c);
            var y = pool.Forward(x);
            var dy = RandomTensor<T>(r, r.Next(4), y.Shape.ToArray());
            var dx = pool.Backward(dy).Data.ToArray();
            var expected = new T[x.Length];
            for (int b = 0; b < n; b++)
            for (int i = 0; i < h / 2; i++)
            for (int j = 0; j < w / 2; j++)
            for (int ch = 0; ch < c; ch++)
            {
                int best = -1;
                for (int di = 0; di < 2; di++)
                for (int dj = 0; dj < 2; dj++)
                {
                    int at = ((b * h + 2 * i + di) * w + 2 * j + dj) * c + ch;
                    if (best < 0 || x.Data[at] > x.Data[best]) best = at;
                }

                expected[best] = dy.Data[((b * (h / 2) + i) * (w / 2) + j) * c + ch];
            }

            dx.Should().Equal(expected, "seed {0}, n{1} h{2} w{3} c{4} style {5}", seed, n, h, w, c, style);
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_float_max_pool_backward_equals_a_naive_loop(int seed) => PoolAgainstNaive<float>(seed + 4000);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Fuzz_double_max_pool_backward_equals_a_naive_loop(int seed) => PoolAgainstNaive<double>(seed + 5000);

    // ---- (d) accumulation across two backward calls without ZeroGradients ------------------------------------------

    [Theory]
    [InlineData(128)]
    [InlineData(256)]
    [InlineData(512)]
    public void Two_backward_calls_accumulate_as_the_gemm_path(int bits)
    {
        if (SimdWidths.SkipReason(bits) is not null) return;
        var r = new Random(bits);
        var simd = new Conv<float>(6, 16, 5, 5, r) { GemmProvider = SimdWidths.Provider(bits) };
        var x = RandomTensor<float>(r, 0, 3, 12, 12, 6);
        var dy1 = RandomTensor<float>(r, 1, 3, 8, 8, 16);
        var dy2 = RandomTensor<float>(r, 1, 3, 8, 8, 16);
        var kernel = SimdWidths.Kernel(simd, bits);
        kernel.Forward(x);
        kernel.Backward(dy1);
        kernel.Forward(x);
        kernel.Backward(dy2);

        var g = new ConvGeometry(3, 12, 12, 6, 5, 5, 1, 0);
        var patches = new float[g.PatchRows * g.PatchColumns];
        Im2Col.Forward<float>(x.Data, g, patches);
        var k = new float[simd.Weight.Gradient.Length];
        var b = new float[16];
        foreach (var dy in new[] { dy1, dy2 })
        {
            Gemm.Multiply(SimdWidths.Provider(bits), true, false, g.PatchColumns, 16, g.PatchRows, 1f, patches, dy.Data, 1f, k);
            RowOps.AddColumnSums<float>(dy.Data, b);
        }

        simd.Weight.Gradient.Data.Should().Equal(k);
        simd.Bias.Gradient.Data.Should().Equal(b);
    }

    // ---- width switch on one Conv -----------------------------------------------------------------------------------

    [Theory]
    [InlineData(256, 128)]
    [InlineData(128, 256)]
    [InlineData(512, 256)]
    [InlineData(256, 512)]
    public void Conv_input_gradient_is_right_after_its_provider_changes_width(int first, int second)
    {
        if (SimdWidths.SkipReason(first) is not null || SimdWidths.SkipReason(second) is not null) return;
        var r = new Random(5);
        var conv = new Conv<float>(3, 5, 3, 3, r) { GemmProvider = SimdWidths.Provider(first) };
        var fresh = new Conv<float>(3, 5, 3, 3, new Random(1)) { GemmProvider = SimdWidths.Provider(second) };
        conv.Weight.Value.Data.CopyTo(fresh.Weight.Value.Data, 0);
        var x = RandomTensor<float>(r, 0, 2, 9, 9, 3);
        var dy = RandomTensor<float>(r, 0, 2, 7, 7, 5);
        var kernel = SimdWidths.Kernel(conv, first);
        kernel.Forward(x);
        kernel.Backward(dy);

        kernel.Backend = ComputeBackend.SimdWithWidth(second);
        kernel.Forward(x);
        var dx = kernel.Backward(dy).Data.ToArray();
        var freshKernel = SimdWidths.Kernel(fresh, second);
        freshKernel.Forward(x);
        dx.Should().Equal(freshKernel.Backward(dy).Data, "∂x must not depend on the width used before");
    }
}

/// <summary>The training worker pool through <see cref="Trainer{T}"/> with 2–4 threads: failures, life cycle, idling, determinism.</summary>
public class ParallelTrainerTests
{
    /// <summary>Identity layer that throws in forward on replicas (clones) while its shared switch is on.</summary>
    private sealed class Tripwire : Layer<float>
    {
        private readonly bool _clone;
        private readonly StrongBox<bool> _armed;

        public Tripwire(StrongBox<bool> armed, bool clone = false) => (_armed, _clone) = (armed, clone);

        public override string Name => "Tripwire";

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        public override LayerDescription Describe() => new("Tripwire");

        public override ILayer<float> Clone() => new Tripwire(_armed, clone: true);

        protected override Tensor<float> ForwardCore(Tensor<float> input) =>
            _clone && _armed.Value ? throw new InvalidDataException("replica failed") : input;

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
    }

    private static Sequential<float> Net(int seed, StrongBox<bool>? armed = null)
    {
        var random = new Random(seed);
        var layers = new List<ILayer<float>> { new Conv<float>(1, 4, 3, 3, random), new Relu<float>(), new MaxPool2x2<float>(), new Flatten<float>(), new Linear<float>(36, 3, random) };
        if (armed is not null) layers.Insert(4, new Tripwire(armed));
        return new Sequential<float>(layers.ToArray());
    }

    private static float[] Weights(Sequential<float> net) => net.Parameters.SelectMany(p => p.Value.Data).ToArray();

    [Fact]
    public void Step_after_Dispose_throws_or_finishes_instead_of_hanging()
    {
        var data = TestData.RandomImages(64, 1);
        var trainer = new Trainer<float>(Net(1), new TrainingOptions { BatchSize = 32, Threads = 2 });
        trainer.Step(data, Enumerable.Range(0, 32).ToArray());
        trainer.Dispose();
        var step = new Thread(() =>
        {
            try
            {
                trainer.Step(data, Enumerable.Range(0, 32).ToArray());
            }
            catch (ObjectDisposedException)
            {
            }
        }) { IsBackground = true };
        step.Start();
        bool finished = step.Join(TimeSpan.FromSeconds(10));
        finished.Should().BeTrue("a Step on a disposed trainer must throw (ObjectDisposedException) or run, not wait forever for stopped workers");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void A_replicas_exception_reaches_the_caller_and_the_next_step_is_a_clean_one(int threads)
    {
        var data = TestData.RandomImages(64, 2);
        var batch = Enumerable.Range(0, 8 * threads).ToArray();
        var armed = new StrongBox<bool>(true);
        var net = Net(3, armed);
        using var trainer = new Trainer<float>(net, new TrainingOptions { BatchSize = batch.Length, Threads = threads });
        var before = Weights(net);
        var act = () => trainer.Step(data, batch);
        act.Should().Throw<InvalidDataException>().WithMessage("replica failed");
        Weights(net).Should().Equal(before, "a failed step updates nothing");

        armed.Value = false;
        trainer.Step(data, batch);
        var reference = Net(3, new StrongBox<bool>(false));
        using (var clean = new Trainer<float>(reference, new TrainingOptions { BatchSize = batch.Length, Threads = threads }))
        {
            clean.Step(data, batch);
        }

        Weights(net).Should().Equal(Weights(reference), "the failed step's partial gradients must not leak into the next step");
    }

    [Fact]
    public void Creating_and_disposing_many_parallel_trainers_leaks_no_threads()
    {
        var data = TestData.RandomImages(64, 3);
        var batch = Enumerable.Range(0, 32).ToArray();
        void Round()
        {
            using var trainer = new Trainer<float>(Net(1), new TrainingOptions { BatchSize = 32, Threads = 4 });
            trainer.Step(data, batch);
        }

        for (int i = 0; i < 3; i++) Round();
        int before = Process.GetCurrentProcess().Threads.Count;
        for (int i = 0; i < 40; i++) Round();
        Thread.Sleep(200);
        int after = Process.GetCurrentProcess().Threads.Count;
        after.Should().BeLessThan(before + 10, "40 trainers of 4 threads, each disposed, must not leave their 120 worker threads behind");
    }

    [Fact]
    public void Parked_workers_wake_after_a_second_idle()
    {
        var data = TestData.RandomImages(64, 4);
        var batch = Enumerable.Range(0, 32).ToArray();
        using var trainer = new Trainer<float>(Net(1), new TrainingOptions { BatchSize = 32, Threads = 3 });
        trainer.Step(data, batch);
        Thread.Sleep(1000);
        double loss = 0;
        var step = new Thread(() => loss = trainer.Step(data, batch).Loss) { IsBackground = true };
        step.Start();
        step.Join(TimeSpan.FromSeconds(10)).Should().BeTrue("parked workers must wake for the next round");
        loss.Should().BeGreaterThan(0);
    }

    [Theory]
    [InlineData(2, 16)]
    [InlineData(3, 29)]
    [InlineData(4, 33)]
    public void Same_seed_and_thread_count_give_identical_parameters(int threads, int batchSize)
    {
        float[] Run()
        {
            var net = Net(5);
            using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 2, BatchSize = batchSize, Threads = threads, Seed = 9 });
            trainer.Train(TestData.RandomImages(150, 6));
            return Weights(net);
        }

        Run().Should().Equal(Run());
    }
}
