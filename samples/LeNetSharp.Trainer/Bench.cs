using System.Diagnostics;
using System.Globalization;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Trainer;

/// <summary>
/// The `bench` command: times training steps and inference, with a per-layer breakdown and the work against the core's
/// measured peak. Of the tutorial's LeNet on MNIST by default (the original output, line for line); of --net modern or
/// of the network in --arch FILE (on MNIST when it takes 28x28x1 images, else on random images of its own size) with
/// --batch, --optimizer and --momentum. Timing and printing only; the work is the library's.
/// </summary>
internal static class Bench
{
    /// <summary>Bytes of synthetic pixels at most (one byte a value), and images at most: what MNIST's test set holds.</summary>
    private const int SyntheticBytes = 64 << 20, SyntheticImages = 10_000;

    /// <summary>The network to time and the images it trains and infers on.</summary>
    private sealed record Setup(Sequential<float> Network, ImageDataset Train, ImageDataset Test, bool Synthetic);

    public static void Run(Options o, TextWriter stdout)
    {
        // Extended output (optimizer, network and FLOPs per step) for anything but the tutorial's recipe on its LeNet.
        bool extended = o.Arch is not null || o.Given.Contains("--net") || o.Given.Contains("--optimizer") || o.Given.Contains("--momentum");
        var (network, train, test, synthetic) = Prepare(o, stdout);
        if (o.Batch >= train.Count) throw new ArgumentException($"bench --batch {o.Batch} needs more training images than that; {o.Data} has {train.Count}."); // (a synthetic set always has)
        network.Backend = o.Backend;
        var trainer = new Trainer<float>(network, new TrainingOptions
        {
            BatchSize = o.Batch, Seed = o.Seed, Threads = o.Threads, LearningRate = o.LearningRate,
            Optimizer = Recipe.Optimizer(o), Momentum = o.Momentum, WeightDecay = o.EffectiveWeightDecay,
        });
        int batch = o.Batch, steps = o.Steps;
        var order = Enumerable.Range(0, train.Count).ToArray();
        new Random(o.Seed).Shuffle(order);
        int Offset(int step) => (int)((long)step * batch % (train.Count - batch));

        stdout.WriteLine($"bench: backend {network.Backend.Name}, batch {batch}, {steps} timed steps, threads {o.Threads}"
            + (extended ? $", {OptimizerText(o)}, inference batch {o.InferBatch}" : ""));
        var peaks = Peak.Measure(TimeSpan.FromSeconds(0.5));
        double peak = peaks.Max(p => p.GFlops);
        stdout.WriteLine("peak (this core, FP32 FMA loop, best of 0.5 s): " + string.Join(", ", peaks.Select(p =>
            string.Create(CultureInfo.InvariantCulture, $"Vector{p.Bits} {p.GFlops:F1} GFLOP/s"))));
        int warmup = Math.Min(300, steps);
        for (int s = 0; s < warmup; s++) trainer.Step(train, order.AsSpan(Offset(s), batch)); // warm-up: JIT tiers and buffers

        // Timed in chunks too: the median chunk is what the code does when no other process takes the core. The
        // tutorial's 200 steps of 3 images; a twentieth of the run (at most 200 steps) for the others; never more than the run.
        int chunk = Math.Min(steps, extended ? Math.Clamp(steps / 20, 1, 200) : 200);
        var chunkRates = new List<double>();
        var process = Process.GetCurrentProcess();
        TimeSpan Cpu() { process.Refresh(); return process.TotalProcessorTime; }
        var trainCpu = Cpu();
        var clock = Stopwatch.StartNew();
        for (int s = 0; s < steps;)
        {
            long start = Stopwatch.GetTimestamp();
            int end = Math.Min(steps, s + chunk);
            for (; s < end; s++) trainer.Step(train, order.AsSpan(Offset(s), batch));
            if (end % chunk == 0) chunkRates.Add(chunk * batch / Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        double trainSeconds = clock.Elapsed.TotalSeconds;
        int trainBits = network.Runner.LastPlan?.Bits ?? 0; // the width training ran at (0: the reference backend)
        double trainCores = (Cpu() - trainCpu).TotalSeconds / trainSeconds;
        double trainRate = steps * batch / trainSeconds;
        trainer.Dispose(); // its worker threads stop before inference is timed

        const int Passes = 5; // 50,000 MNIST images: long enough that thread start-up and timer noise do not count
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
        int inferBits = network.Runner.LastPlan?.Bits ?? trainBits; // inference may measure another width
        double inferCores = (Cpu() - inferCpu).TotalSeconds / clock.Elapsed.TotalSeconds;

        PrintLayerBreakdown(network, train, order, batch, peak, extended, stdout);
        PrintPlans(network, stdout);
        int bits = network.Runner.LastPlan?.Bits ?? 0; // the width the plans run at (0: the reference backend)
        if (o.Arch is null && o.Net == "lenet") // the GEMM shapes are LeNet's
        {
            GemmBench.Run(stdout, batch, bits == 0 ? [GemmProvider.MathNet] : [GemmProvider.SimdWithWidth(bits), GemmProvider.MathNet]);
        }

        if (!synthetic) stdout.WriteLine($"(the benchmarked network on the test set after its training steps: {result})");
        var shape = new[] { 1, train.Height, train.Width, train.Channels };
        double trainFlops = Flops.Training(network, shape), inferFlops = Flops.Inference(network, shape);
        // A run at a narrower width than the core's widest (--backend simd128 on an AVX2 core: what a 128-bit CPU such as
        // ARM64 runs) is also given against that width's own peak.
        string Of(double imagesPerSecond, double flops, int threads, int runBits)
        {
            double widthPeak = peaks.FirstOrDefault(p => p.Bits == runBits).GFlops;
            double gflops = imagesPerSecond * flops / 1e9;
            string text = string.Create(CultureInfo.InvariantCulture,
                $"{gflops:F1} GFLOP/s = {100 * gflops / (peak * threads):F1}% of {(threads == 1 ? "the core's" : $"{threads} cores'")} peak");
            return widthPeak > 0 && widthPeak < peak
                ? text + string.Create(CultureInfo.InvariantCulture, $" ({100 * gflops / (widthPeak * threads):F1}% of the Vector{runBits} peak)")
                : text;
        }

        int cores = Math.Min(o.Threads, Environment.ProcessorCount);
        int trainThreads = trainer.Options.SplitsBatch(o.Batch) ? cores : 1; // smaller batches run on one thread
        double trainMedian = Median(chunkRates.Count > 0 ? chunkRates : [trainRate]), inferMedian = Median(passRates);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train ({trainFlops / 1e6:F2} MFLOP/image): {trainRate:F0} images/s, {Of(trainRate, trainFlops, trainThreads, trainBits)}; median of {chunk}-step chunks {trainMedian:F0} images/s, {Of(trainMedian, trainFlops, trainThreads, trainBits)}"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"infer ({inferFlops / 1e6:F2} MFLOP/image): {inferRate:F0} images/s, {Of(inferRate, inferFlops, cores, inferBits)}; median pass {inferMedian:F0} images/s, {Of(inferMedian, inferFlops, cores, inferBits)}"));
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
    /// The network and its images, with the lines that name them: "data: …" (MNIST from --data, or the synthetic
    /// images), then "arch: …" or "net: …" for another network than the tutorial's LeNet. Everything that can fail
    /// (the file, its fit to the data) fails here, before any timing.
    /// </summary>
    private static Setup Prepare(Options o, TextWriter stdout)
    {
        Sequential<float> network;
        if (o.Arch is { } path)
        {
            network = Recipe.LoadNetwork(path, out var declared);
            var (height, width, channels) = declared ?? ImageShape(path, network);
            if ((height, width, channels) != (28, 28, 1))
            {
                Recipe.CheckFits(path, network, height, width, channels, classes: null);
                int classes = network.OutputShapes([1, height, width, channels])[^1][1];
                if (classes < 2) throw new InvalidDataException($"{path}: the network gives {classes} output per image; bench needs one score per class, at least 2.");
                var images = Synthetic(height, width, channels, classes, o);
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"data: synthetic, {images.Count:N0} random {height}x{width}x{channels} images in {classes} classes (seed {o.Seed}): the network does not take MNIST's 28x28x1 images"));
                stdout.WriteLine(Recipe.ArchitectureLine(path, network));
                return new(network, images, images, true);
            }

            var (train, test) = Mnist(o, stdout);
            Recipe.CheckFits(path, network, train.Height, train.Width, train.Channels, train.Classes);
            stdout.WriteLine(Recipe.ArchitectureLine(path, network));
            return new(network, train, test, false);
        }

        var (mnistTrain, mnistTest) = Mnist(o, stdout);
        network = DataSource.NewNetwork(o, mnistTrain);
        if (o.Given.Contains("--net")) stdout.WriteLine($"net: {o.Net}: {network.Layers.Count} layers, {string.Join(" → ", network.Layers.Select(l => l.Name))}");
        return new(network, mnistTrain, mnistTest, false);
    }

    /// <summary>Both splits of --data, after the "data: …" line that names them.</summary>
    private static (ImageDataset Train, ImageDataset Test) Mnist(Options o, TextWriter stdout)
    {
        Program.PrintDataset(o, stdout, LeNetSharp.Data.Mnist.Recognize(o.Data, MnistSplit.Train, MnistSplit.Test));
        return (LeNetSharp.Data.Mnist.Load(o.Data, MnistSplit.Train), LeNetSharp.Data.Mnist.Load(o.Data, MnistSplit.Test));
    }

    /// <summary>
    /// The image size a model file's network takes (the file records none): 28x28 with the channels of its first
    /// convolution or batch norm when it turns those into scores, else the smallest square it does, up to 1024x1024.
    /// </summary>
    /// <exception cref="InvalidDataException">No such size; the message names the file and why 28x28 does not fit.</exception>
    private static (int Height, int Width, int Channels) ImageShape(string path, Sequential<float> network)
    {
        int channels = network.Layers.Select(l => l switch { Conv<float> c => c.InChannels, BatchNorm2d<float> b => b.Channels, Linear<float> or Flatten<float> => 1, _ => 0 })
            .FirstOrDefault(c => c > 0, 1);
        bool Scores(int size)
        {
            try
            {
                var shapes = network.OutputShapes([1, size, size, channels]);
                return shapes.Count > 0 && shapes[^1].Length == 2;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        if (Scores(28)) return (28, 28, channels);
        for (int size = 1; size <= 1024; size++)
        {
            if (Scores(size)) return (size, size, channels);
        }

        Recipe.CheckFits(path, network, 28, 28, channels, classes: null); // says why 28x28 does not fit
        throw new InvalidDataException($"{path}: no square image size up to 1024x1024x{channels} fits the network (a model file records none; an .onnx does).");
    }

    /// <summary>Random images (bytes from --seed) and labels: as many as <see cref="SyntheticImages"/>, fewer for large images, and more than a batch.</summary>
    private static ImageDataset Synthetic(int height, int width, int channels, int classes, Options o)
    {
        long perImage = (long)height * width * channels;
        int count = (int)Math.Max(o.Batch + 1, Math.Min(SyntheticImages, SyntheticBytes / perImage));
        if (count * perImage > Array.MaxLength)
        {
            throw new ArgumentException($"bench --batch {o.Batch}: {count} synthetic {height}x{width}x{channels} images would take more than {Array.MaxLength:N0} bytes; give a smaller batch.");
        }

        var random = new Random(o.Seed);
        var pixels = new byte[(long)count * perImage];
        random.NextBytes(pixels);
        var labels = new byte[count];
        for (int i = 0; i < count; i++) labels[i] = (byte)random.Next(Math.Min(classes, 256));
        return new ImageDataset(pixels, labels, height, width, channels, classes);
    }

    /// <summary>"optimizer sgd (momentum 0.9), lr 0.01" or "optimizer adamw (weight decay 0.01), lr 0.01".</summary>
    private static string OptimizerText(Options o)
    {
        var settings = new List<string>();
        if (o.Momentum != 0) settings.Add(string.Create(CultureInfo.InvariantCulture, $"momentum {o.Momentum}"));
        if (o.EffectiveWeightDecay != 0) settings.Add(string.Create(CultureInfo.InvariantCulture, $"weight decay {o.EffectiveWeightDecay}"));
        return string.Create(CultureInfo.InvariantCulture, $"optimizer {o.Optimizer}{(settings.Count == 0 ? "" : $" ({string.Join(", ", settings)})")}, lr {o.LearningRate}");
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
            string chosen = c.Widths.Count == 1 ? $"{c.Widths[0]} bits" : $"{LeNetSharp.Compute.WidthNames.List(c.Widths.Select(b => b.ToString(CultureInfo.InvariantCulture)))} bits by layer ({string.Join(" ", c.LayerBits)})";
            stdout.WriteLine($"vector width measured for {what[1].ToLowerInvariant()} in {element} on input {what[2]}: {chosen}"
                + (c.Times.Count == 0 ? " (not timed: the network's copy could not be run)"
                    : string.Create(CultureInfo.InvariantCulture, $" (a batch as the sum of each step's best of 9 rounds: {times}; as chosen {c.Microseconds:F1} µs)")));
        }
    }

    /// <summary>
    /// Median time of each plan step's forward and backward over repeated single training steps (as many as fit in
    /// <see cref="BreakdownBudget"/>, at most 2,000), with GFLOP/s for the GEMM layers; then the network as it runs.
    /// <paramref name="extended"/> adds milliseconds, each step's share of the time and its FLOPs per image.
    /// </summary>
    private static void PrintLayerBreakdown(Sequential<float> network, ImageDataset data, int[] order, int batch, double peak, bool extended, TextWriter stdout)
    {
        var x = new Tensor<float>(batch, data.Height, data.Width, data.Channels);
        var labels = new int[batch];
        var loss = new SoftmaxCrossEntropy<float>();
        data.FillBatch(order.AsSpan(0, batch), x, labels);
        network.Forward(x); // builds (or finds) the training plan for this shape
        var plan = network.Runner.LastPlan!;
        var steps = plan.Steps;
        void StepByStep(int r, double[,]? forward, double[,]? backward)
        {
            data.FillBatch(order.AsSpan(r * batch % (data.Count - batch), batch), x, labels);
            var t = x;
            for (int s = 0; s < steps.Count; s++)
            {
                long start = Stopwatch.GetTimestamp();
                t = steps[s].Forward(t, keepForBackward: true);
                if (forward is not null) forward[s, r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            loss.Forward(t, labels);
            var g = loss.Backward();
            for (int s = steps.Count - 1; s >= 0; s--)
            {
                long start = Stopwatch.GetTimestamp();
                g = steps[s].Backward(g);
                if (backward is not null) backward[s, r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }

            network.ZeroGradients(); // measure only; no update
        }

        long first = Stopwatch.GetTimestamp();
        StepByStep(0, null, null);
        int repeats = Repeats(Stopwatch.GetElapsedTime(first));
        var forward = new double[steps.Count, repeats];
        var backward = new double[steps.Count, repeats];
        for (int r = 0; r < repeats; r++) StepByStep(r, forward, backward);

        // Per image: each step's multiply-add FLOPs (forward; backward) and all its FLOPs (element counts included).
        var layers = Flops.PerLayer(network, [1, data.Height, data.Width, data.Channels]);
        var stepFlops = new (double Forward, double Backward, double AllForward, double AllTraining)[steps.Count];
        for (int s = 0, layer = 0; s < steps.Count; layer += steps[s].LayerCount, s++)
        {
            foreach (var l in layers.Skip(layer).Take(steps[s].LayerCount))
            {
                stepFlops[s].AllForward += l.Forward;
                stepFlops[s].AllTraining += l.Training;
                if (!l.MultiplyAdds) continue;
                stepFlops[s].Forward += l.Forward;
                stepFlops[s].Backward += l.Training - l.Forward;
            }
        }

        int column = Math.Max(steps.Max(st => st.Name.Length), "network as it runs (layer by layer)".Length) + 1;
        double totalF = 0, totalB = 0;
        var f = new double[steps.Count];
        var b = new double[steps.Count];
        for (int s = 0; s < steps.Count; s++)
        {
            totalF += f[s] = Median(forward, s);
            totalB += b[s] = Median(backward, s);
        }

        string Rate(double us, double flops) => flops > 0 ? string.Create(CultureInfo.InvariantCulture, $" ({batch * flops / us / 1e3:F1} GF/s)") : "";
        if (extended)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"per step of the plan at batch {batch}, {plan.Backend} (median ms a batch over {repeats} training steps, the step's share of their time, FLOPs an image; "
                + $"GFLOP/s of the multiply-adds, this core's measured peak {peak:F1}):"));
            stdout.WriteLine($"  {"step".PadRight(column)}{"forward ms",-26}{"backward ms",-26}{"share",7}  {"MFLOP/image forward",20}{"training",10}");
            for (int s = 0; s < steps.Count; s++)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {steps[s].Name.PadRight(column)}{f[s] / 1e3,9:F3}{Rate(f[s], stepFlops[s].Forward),-17}{b[s] / 1e3,9:F3}{Rate(b[s], stepFlops[s].Backward),-17}"
                    + $"{100 * (f[s] + b[s]) / (totalF + totalB),6:F1}%  {stepFlops[s].AllForward / 1e6,20:F3}{stepFlops[s].AllTraining / 1e6,10:F3}"));
            }

            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {"total".PadRight(column)}{totalF / 1e3,9:F3}{"",-17}{totalB / 1e3,9:F3}{"",-17}{100.0,6:F1}%  {layers.Sum(l => l.Forward) / 1e6,20:F3}{layers.Sum(l => l.Training) / 1e6,10:F3}"));
            double elementsF = layers.Where(l => !l.MultiplyAdds).Sum(l => l.Forward), elementsT = layers.Where(l => !l.MultiplyAdds).Sum(l => l.Training);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  (FLOPs: 2 a multiply-add in Conv and Linear, forward, weight gradient and input gradient; the other layers count their elements, "
                + $"{elementsF / 1e6:F3} MFLOP an image forward and {elementsT / 1e6:F3} training, left out of the GFLOP/s and the peak fractions)"));
        }
        else
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"per step of the plan at batch {batch}, {plan.Backend} (median µs; GFLOP/s where there are multiply-adds; this core's measured peak {peak:F1}):"));
            stdout.WriteLine("  " + "step".PadRight(column) + "forward          backward");
            for (int s = 0; s < steps.Count; s++)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {steps[s].Name.PadRight(column)}{f[s],7:F2}{Rate(f[s], stepFlops[s].Forward),-12} {b[s],7:F2}{Rate(b[s], stepFlops[s].Backward),-12}"));
            }

            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {"total".PadRight(column)}{totalF,7:F2}{"",-12} {totalB,7:F2}"));
        }

        // The network as it runs (fused Conv → Relu → MaxPool2x2 where it applies).
        void AsItRuns(int r, double[]? netForward, double[]? netBackward)
        {
            data.FillBatch(order.AsSpan(r * batch % (data.Count - batch), batch), x, labels);
            long start = Stopwatch.GetTimestamp();
            var logits = network.Forward(x);
            if (netForward is not null) netForward[r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            loss.Forward(logits, labels);
            var g = loss.Backward();
            start = Stopwatch.GetTimestamp();
            network.Backward(g);
            if (netBackward is not null) netBackward[r] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            network.ZeroGradients();
        }

        first = Stopwatch.GetTimestamp();
        AsItRuns(0, null, null);
        repeats = Repeats(Stopwatch.GetElapsedTime(first));
        var netForward = new double[repeats];
        var netBackward = new double[repeats];
        for (int r = 0; r < repeats; r++) AsItRuns(r, netForward, netBackward);

        double nf = Median(netForward), nb = Median(netBackward);
        var input = new[] { batch, data.Height, data.Width, data.Channels };
        double ff = Flops.Inference(network, input), bf = Flops.Training(network, input) - ff;
        string label = network.Runner.LastPlan is { FusedSteps: > 0 } ? "network as it runs (fused)" : "network as it runs (layer by layer)";
        stdout.WriteLine(extended
            ? string.Create(CultureInfo.InvariantCulture,
                $"  {label.PadRight(column)}{nf / 1e3,9:F3} ({ff / nf / 1e3:F1} GF/s = {100 * ff / nf / 1e3 / peak:F0}%)  {nb / 1e3,9:F3} ({bf / nb / 1e3:F1} GF/s = {100 * bf / nb / 1e3 / peak:F0}%)")
            : string.Create(CultureInfo.InvariantCulture,
                $"  {label.PadRight(column)}{nf,7:F2} ({ff / nf / 1e3:F1} GF/s = {100 * ff / nf / 1e3 / peak:F0}%)  {nb,7:F2} ({bf / nb / 1e3:F1} GF/s = {100 * bf / nb / 1e3 / peak:F0}%)"));
    }

    /// <summary>The time the per-step table's measurement loops may take each.</summary>
    private static readonly TimeSpan BreakdownBudget = TimeSpan.FromSeconds(4);

    /// <summary>How many repeats of what one took <paramref name="once"/> fit in <see cref="BreakdownBudget"/>: 10 to 2,000.</summary>
    private static int Repeats(TimeSpan once) => (int)Math.Clamp(BreakdownBudget.TotalSeconds / Math.Max(once.TotalSeconds, 1e-6), 10, 2000);

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
