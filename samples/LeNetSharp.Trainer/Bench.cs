using System.Diagnostics;
using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Trainer;

/// <summary>
/// The `bench` command: times training steps and an inference pass on MNIST, with a per-layer breakdown.
/// Timing and printing only; the work is the library's.
/// </summary>
internal static class Bench
{
    public static void Run(Options o, TextWriter stdout)
    {
        var train = Mnist.Load(o.Data, MnistSplit.Train);
        var test = Mnist.Load(o.Data, MnistSplit.Test);
        if (o.Batch >= train.Count) throw new ArgumentException($"bench --batch {o.Batch} needs more training images than that; {o.Data} has {train.Count}.");
        var network = LeNet.Create<float>(o.Seed);
        network.Backend = o.Backend;
        var trainer = new Trainer<float>(network, new TrainingOptions { BatchSize = o.Batch, Seed = o.Seed, Threads = o.Threads });
        int batch = o.Batch, steps = o.Steps;
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(o.Seed).Shuffle(order);
        int Offset(int step) => (int)((long)step * batch % (train.Count - batch));

        stdout.WriteLine($"bench: backend {network.Backend.Name}, batch {batch}, {steps} timed steps, threads {o.Threads}");
        var peaks = Peak.Measure(TimeSpan.FromSeconds(0.5));
        double peak = peaks.Max(p => p.GFlops);
        stdout.WriteLine("peak (this core, FP32 FMA loop, best of 0.5 s): " + string.Join(", ", peaks.Select(p =>
            string.Create(CultureInfo.InvariantCulture, $"Vector{p.Bits} {p.GFlops:F1} GFLOP/s"))));
        for (int s = 0; s < 300; s++) trainer.Step(train, order.AsSpan(Offset(s), batch)); // warm-up: JIT tiers and buffers

        // Timed in chunks too: the median chunk is what the code does when no other process takes the core.
        const int Chunk = 200;
        var chunkRates = new List<double>();
        var process = Process.GetCurrentProcess();
        TimeSpan Cpu() { process.Refresh(); return process.TotalProcessorTime; }
        var trainCpu = Cpu();
        var clock = Stopwatch.StartNew();
        for (int s = 0; s < steps;)
        {
            long start = Stopwatch.GetTimestamp();
            int end = Math.Min(steps, s + Chunk);
            for (; s < end; s++) trainer.Step(train, order.AsSpan(Offset(s), batch));
            if (end % Chunk == 0) chunkRates.Add(Chunk * batch / Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        double trainSeconds = clock.Elapsed.TotalSeconds;
        double trainCores = (Cpu() - trainCpu).TotalSeconds / trainSeconds;
        double trainRate = steps * batch / trainSeconds;
        trainer.Dispose(); // its worker threads stop before inference is timed

        const int Passes = 5; // 50,000 images: long enough that thread start-up and timer noise do not count
        for (int pass = 0; pass < Passes; pass++) Evaluator.Evaluate(network, test, o.InferBatch, o.Threads); // warm-up: JIT tiers settle
        var passRates = new List<double>();
        var inferCpu = Cpu();
        clock.Restart();
        EvaluationResult result = null!;
        for (int pass = 0; pass < Passes; pass++)
        {
            long start = Stopwatch.GetTimestamp();
            result = Evaluator.Evaluate(network, test, o.InferBatch, o.Threads);
            passRates.Add(test.Count / Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        double inferRate = Passes * test.Count / clock.Elapsed.TotalSeconds;
        double inferCores = (Cpu() - inferCpu).TotalSeconds / clock.Elapsed.TotalSeconds;

        PrintLayerBreakdown(network, train, order, batch, peak, stdout);
        PrintPlans(network, stdout);
        int bits = network.Runner.LastPlan?.Bits ?? 0; // the width the plans run at (0: the reference backend)
        GemmBench.Run(stdout, batch, bits == 0 ? [GemmProvider.MathNet] : [GemmProvider.SimdWithWidth(bits), GemmProvider.MathNet]);
        stdout.WriteLine($"(the benchmarked network on the test set after its training steps: {result})");
        var shape = new[] { 1, train.Height, train.Width, train.Channels };
        double trainFlops = TrainingFlops(network, shape), inferFlops = InferenceFlops(network, shape);
        // A run at a narrower width than the core's widest (--backend simd128 on an AVX2 core: what a 128-bit CPU such as
        // ARM64 runs) is also given against that width's own peak.
        double widthPeak = peaks.FirstOrDefault(p => p.Bits == bits).GFlops;
        string Of(double imagesPerSecond, double flops, int threads)
        {
            double gflops = imagesPerSecond * flops / 1e9;
            string text = string.Create(CultureInfo.InvariantCulture,
                $"{gflops:F1} GFLOP/s = {100 * gflops / (peak * threads):F1}% of {(threads == 1 ? "the core's" : $"{threads} cores'")} peak");
            return widthPeak > 0 && widthPeak < peak
                ? text + string.Create(CultureInfo.InvariantCulture, $" ({100 * gflops / (widthPeak * threads):F1}% of the Vector{bits} peak)")
                : text;
        }

        int cores = Math.Min(o.Threads, Environment.ProcessorCount);
        int trainThreads = trainer.Options.SplitsBatch(o.Batch) ? cores : 1; // smaller batches run on one thread
        double trainMedian = Median(chunkRates.Count > 0 ? chunkRates : [trainRate]), inferMedian = Median(passRates);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train ({trainFlops / 1e6:F2} MFLOP/image): {trainRate:F0} images/s, {Of(trainRate, trainFlops, trainThreads)}; median of {Chunk}-step chunks {trainMedian:F0} images/s, {Of(trainMedian, trainFlops, trainThreads)}"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"infer ({inferFlops / 1e6:F2} MFLOP/image): {inferRate:F0} images/s, {Of(inferRate, inferFlops, cores)}; median pass {inferMedian:F0} images/s, {Of(inferMedian, inferFlops, cores)}"));
        // CPU time over wall time: how many cores the process actually ran on. Below --threads, other processes held
        // the cores (no in-process cause can be read from such a run); at --threads with poor scaling, the cause is inside.
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cores in use (CPU time / wall time): training {trainCores:F2}, inference {inferCores:F2} (threads {o.Threads})"));
        if (o.Threads > Environment.ProcessorCount)
        {
            stdout.WriteLine($"scaling: not measured, {o.Threads} threads on {Environment.ProcessorCount} cores would only share them");
        }
        else if (o.Threads > 1)
        {
            PrintScaling(network, train, test, order, o, stdout);
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train: {trainRate:F0} images/s ({train.Count / trainRate:F2} s/epoch), infer: {inferRate:F0} images/s"));
    }

    /// <summary>
    /// N threads against 1 in this process, in alternating chunks, so that both see the same machine (other processes,
    /// speed phases of a shared host): the median of the per-pair ratios, for training at this batch and for inference.
    /// Beside them the machine's own ceiling at that moment: N independent one-thread trainers stepping at once (no
    /// work shared, nothing to wait for) against one.
    /// </summary>
    private static void PrintScaling(Sequential<float> network, ImageDataset train, ImageDataset test, int[] order, Options o, TextWriter stdout)
    {
        const int Pairs = 15, EvalImages = 10_000;
        int batch = o.Batch, steps = Math.Max(50, 3_200 / batch); // chunks of some thousands of images: tens of milliseconds
        using var one = new Trainer<float>(network.Clone(), new TrainingOptions { BatchSize = batch, Seed = o.Seed, Threads = 1 });
        using var many = new Trainer<float>(network.Clone(), new TrainingOptions { BatchSize = batch, Seed = o.Seed, Threads = o.Threads });
        var alone = Enumerable.Range(0, o.Threads).Select(_ => new Trainer<float>(network.Clone(), new TrainingOptions { BatchSize = batch, Seed = o.Seed })).ToArray();
        int position = 0;
        double TrainRate(Trainer<float> trainer)
        {
            long start = Stopwatch.GetTimestamp();
            for (int s = 0; s < steps; s++, position = (position + batch) % (train.Count - batch)) trainer.Step(train, order.AsSpan(position, batch));
            return steps * batch / Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        // Each independent trainer's own time too: the slowest against the fastest shows how unequal the cores are
        // now, which a data-parallel step (every thread's share the same size) waits for.
        var seconds = new double[alone.Length];
        double IndependentRate()
        {
            long start = Stopwatch.GetTimestamp();
            var threads = alone.Skip(1).Select((trainer, i) => new Thread(() =>
            {
                long own = Stopwatch.GetTimestamp();
                for (int s = 0; s < steps; s++) trainer.Step(train, order.AsSpan(s * batch % (train.Count - batch), batch));
                seconds[i + 1] = Stopwatch.GetElapsedTime(own).TotalSeconds;
            })).ToArray();
            foreach (var t in threads) t.Start();
            long first = Stopwatch.GetTimestamp();
            TrainRate(alone[0]);
            seconds[0] = Stopwatch.GetElapsedTime(first).TotalSeconds;
            foreach (var t in threads) t.Join();
            return steps * batch * alone.Length / Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        var subset = test.Take(EvalImages);
        double InferRate(int threads)
        {
            long start = Stopwatch.GetTimestamp();
            Evaluator.Evaluate(network, subset, o.InferBatch, threads);
            return subset.Count / Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        for (int i = 0; i < 3; i++) _ = TrainRate(one) + TrainRate(many) + IndependentRate() + InferRate(1) + InferRate(o.Threads); // warm-up
        var trainRatios = new List<double>();
        var ceilingRatios = new List<double>();
        var unevenness = new List<double>();
        var inferRatios = new List<double>();
        for (int i = 0; i < Pairs; i++)
        {
            double single = TrainRate(one);
            trainRatios.Add(TrainRate(many) / single);
            ceilingRatios.Add(IndependentRate() / single);
            unevenness.Add(seconds.Min() / seconds.Max());
            single = InferRate(1);
            inferRatios.Add(InferRate(o.Threads) / single);
        }

        foreach (var trainer in alone) trainer.Dispose();

        string Spread(List<double> r) => string.Create(CultureInfo.InvariantCulture, $"{Median(r):F2}x ({r.Min():F2}–{r.Max():F2})");
        stdout.WriteLine($"scaling, {o.Threads} threads against 1, alternating in this process (median of {Pairs} pairs, and their range):");
        bool split = many.Options.SplitsBatch(batch);
        stdout.WriteLine($"  training at batch {batch}: {Spread(trainRatios)}"
            + (split ? "" : $" (below {TrainingOptions.MinImagesPerThread} images a thread the trainer runs a batch on one thread)"));
        stdout.WriteLine($"  inference at batch {o.InferBatch}: {Spread(inferRatios)}");
        stdout.WriteLine($"  the machine's ceiling now, {o.Threads} independent one-thread trainers at once: {Spread(ceilingRatios)}");
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  those trainers' speeds, slowest / fastest: {Median(unevenness):F2} (median; {unevenness.Min():F2}–{unevenness.Max():F2}): an even split waits for the slowest core"));
        if (split)
        {
            var ofCeiling = trainRatios.Zip(ceilingRatios, (t, c) => t / c).ToList();
            stdout.WriteLine($"  training against that ceiling, pair by pair: {Spread(ofCeiling)} (what is left is the step's own cost: waiting, summing)");
        }
    }

    /// <summary>Median time of each layer's forward and backward over repeated single steps, with GFLOP/s for the GEMM layers.</summary>
    /// <summary>The plan the last forward ran, and each vector-width measurement the SIMD backend made in this process.</summary>
    private static void PrintPlans(Sequential<float> network, TextWriter stdout)
    {
        if (network.Runner.LastPlan is { } plan) stdout.WriteLine($"plan: {plan}");
        foreach (var c in LeNetSharp.Compute.WidthCalibration.All.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            // The key opens with "Single Training (3, 28, 28, 1)": element type, mode, input shape.
            string[] what = c.Key[..c.Key.IndexOf(':')].Split(' ', 3);
            string element = what[0] == nameof(Single) ? "float" : what[0] == nameof(Double) ? "double" : what[0];
            string times = string.Join(", ", c.Times.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Bits}-bit {m.Microseconds:F1} µs")));
            stdout.WriteLine($"vector width measured for {what[1].ToLowerInvariant()} in {element} on input {what[2]}: {c.Bits} bits (time a batch, best of 9 rounds: {times})");
        }
    }

    private static void PrintLayerBreakdown(Sequential<float> network, ImageDataset data, int[] order, int batch, double peak, TextWriter stdout)
    {
        const int Repeats = 2000;
        var x = new Tensor<float>(batch, data.Height, data.Width, data.Channels);
        var labels = new int[batch];
        var loss = new SoftmaxCrossEntropy<float>();
        data.FillBatch(order.AsSpan(0, batch), x, labels);
        network.Forward(x); // builds (or finds) the training plan for this shape
        var plan = network.Runner.LastPlan!;
        var steps = plan.Steps;
        var forward = new double[steps.Count, Repeats];
        var backward = new double[steps.Count, Repeats];
        for (int r = 0; r < Repeats; r++)
        {
            data.FillBatch(order.AsSpan(r * batch % (data.Count - batch), batch), x, labels);
            var t = x;
            for (int s = 0; s < steps.Count; s++)
            {
                long start = Stopwatch.GetTimestamp();
                t = steps[s].Forward(t, keepForBackward: true);
                forward[s, r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            loss.Forward(t, labels);
            var g = loss.Backward();
            for (int s = steps.Count - 1; s >= 0; s--)
            {
                long start = Stopwatch.GetTimestamp();
                g = steps[s].Backward(g);
                backward[s, r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            network.ZeroGradients(); // measure only; no update
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"per step of the plan at batch {batch}, {plan.Backend} (median µs; GFLOP/s where there are multiply-adds; this core's measured peak {peak:F1}):"));
        int column = Math.Max(steps.Max(st => st.Name.Length), "network as it runs (layer by layer)".Length) + 1;
        stdout.WriteLine("  " + "step".PadRight(column) + "forward          backward");
        double totalF = 0, totalB = 0;
        int[] shape = [batch, data.Height, data.Width, data.Channels];
        int layer = 0;
        for (int s = 0; s < steps.Count; s++)
        {
            double f = Median(forward, s), b = Median(backward, s);
            totalF += f;
            totalB += b;
            double flops = 0, backwardFlops = 0;
            for (int l = layer; l < layer + steps[s].LayerCount; l++)
            {
                double layerFlops = ForwardFlops(network.Layers[l], shape);
                flops += layerFlops;
                backwardFlops += (l == 0 && network.Layers[l] is Conv<float> { ComputeInputGradient: false } ? 1 : 2) * layerFlops;
                shape = network.Layers[l].OutputShape(shape);
            }

            layer += steps[s].LayerCount;
            string rate(double us, double fl) => fl > 0 ? string.Create(CultureInfo.InvariantCulture, $" ({fl / us / 1e3:F1} GF/s)") : "";
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {steps[s].Name.PadRight(column)}{f,7:F2}{rate(f, flops),-12} {b,7:F2}{rate(b, backwardFlops),-12}"));
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"total".PadRight(column)}{totalF,7:F2}{"",-12} {totalB,7:F2}"));

        // The network as it runs (fused Conv → Relu → MaxPool2x2 where it applies).
        var netForward = new double[Repeats];
        var netBackward = new double[Repeats];
        for (int r = 0; r < Repeats; r++)
        {
            data.FillBatch(order.AsSpan(r * batch % (data.Count - batch), batch), x, labels);
            long start = Stopwatch.GetTimestamp();
            var logits = network.Forward(x);
            netForward[r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            loss.Forward(logits, labels);
            var g = loss.Backward();
            start = Stopwatch.GetTimestamp();
            network.Backward(g);
            netBackward[r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            network.ZeroGradients();
        }

        double nf = Median(netForward), nb = Median(netBackward);
        var input = new[] { batch, data.Height, data.Width, data.Channels };
        double ff = InferenceFlops(network, input), bf = TrainingFlops(network, input) - ff;
        string label = network.Runner.LastPlan is { FusedSteps: > 0 } ? "network as it runs (fused)" : "network as it runs (layer by layer)";
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {label.PadRight(column)}{nf,7:F2} ({ff / nf / 1e3:F1} GF/s = {100 * ff / nf / 1e3 / peak:F0}%)  {nb,7:F2} ({bf / nb / 1e3:F1} GF/s = {100 * bf / nb / 1e3 / peak:F0}%)"));
    }

    /// <summary>Multiply-add FLOPs of a forward pass (2 per multiply-add) for an input of <paramref name="shape"/>.</summary>
    private static double InferenceFlops(Sequential<float> network, int[] shape)
    {
        double total = 0;
        foreach (var layer in network.Layers)
        {
            total += ForwardFlops(layer, shape);
            shape = layer.OutputShape(shape);
        }

        return total;
    }

    /// <summary>Forward plus backward: twice the forward again per layer (weight and input gradients), once for a layer that computes no input gradient.</summary>
    private static double TrainingFlops(Sequential<float> network, int[] shape)
    {
        double total = 0;
        foreach (var layer in network.Layers)
        {
            double f = ForwardFlops(layer, shape);
            total += f + (layer is Conv<float> { ComputeInputGradient: false } ? 1 : 2) * f;
            shape = layer.OutputShape(shape);
        }

        return total;
    }

    private static double ForwardFlops(ILayer<float> layer, int[] inputShape) => layer switch
    {
        Conv<float> c => 2.0 * layer.OutputShape(inputShape).Aggregate(1.0, (a, d) => a * d) * c.KernelHeight * c.KernelWidth * c.InChannels,
        Linear<float> l => 2.0 * inputShape[0] * l.InFeatures * l.OutFeatures,
        _ => 0,
    };

    private static double Median(IEnumerable<double> samples)
    {
        var values = samples.Order().ToArray();
        return values[values.Length / 2];
    }

    private static double Median(double[,] samples, int row)
    {
        var values = Enumerable.Range(0, samples.GetLength(1)).Select(i => samples[row, i]).Order().ToArray();
        return values[values.Length / 2];
    }
}

/// <summary>The GEMM shapes of one LeNet training step at batch 3, timed for each provider.</summary>
internal static class GemmBench
{
    /// <summary>(label, transA, transB, m, n, k) of every product in a step at batch <paramref name="n"/>, as the layers call them.</summary>
    public static (string Label, bool TransA, bool TransB, int M, int N, int K)[] Shapes(int n) =>
    [
        ("conv1 forward  P·K", true, false, n * 576, 6, 25),   // single channel: P is kept transposed
        ("conv1 ∂K      Pᵀ·∂y", false, false, 25, 6, n * 576),
        ("conv2 forward  P·K", false, false, n * 64, 16, 150),
        ("conv2 ∂K      Pᵀ·∂y", true, false, 150, 16, n * 64),
        ("conv2 ∂P      ∂y·Kᵀ", false, true, n * 64, 150, 16),
        ("linear forward x·W", false, false, n, 10, 256),
        ("linear ∂W     xᵀ·∂y", true, false, 256, 10, n),
        ("linear ∂x     ∂y·Wᵀ", false, true, n, 256, 10),
    ];

    public static void Run(TextWriter stdout, int batch, params GemmProvider[] providers)
    {
        stdout.WriteLine($"GEMM shapes of a training step at batch {batch} (median µs / GFLOP/s):");
        stdout.WriteLine($"  {"product",-22} {"m x n x k",-16}" + string.Concat(providers.Select(p => $" {p.Name,-24}")));
        foreach (var (label, ta, tb, m, n, k) in Shapes(batch))
        {
            var random = new Random(1);
            float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
            foreach (var arr in new[] { a, b }) for (int i = 0; i < arr.Length; i++) arr[i] = random.NextSingle();
            var line = $"  {label,-22} {$"{m}x{n}x{k}",-16}";
            foreach (var p in providers)
            {
                int reps = p == GemmProvider.MathNet ? 200 : 2000;
                var times = new double[reps];
                for (int r = 0; r < 50; r++) p.Multiply(ta, tb, m, n, k, 1f, a, b, 0f, c);
                for (int r = 0; r < reps; r++)
                {
                    long start = Stopwatch.GetTimestamp();
                    p.Multiply(ta, tb, m, n, k, 1f, a, b, 0f, c);
                    times[r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
                }

                Array.Sort(times);
                double us = times[reps / 2];
                line += string.Create(CultureInfo.InvariantCulture, $" {us,8:F2} µs {2.0 * m * n * k / us / 1e3,6:F1} GF/s   ");
            }

            stdout.WriteLine(line);
        }
    }
}
