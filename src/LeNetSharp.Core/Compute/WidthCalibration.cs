using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>
/// Chooses the vector width of each step of <see cref="ComputeBackend.Simd"/>'s plans the way FFTW's planner chooses an
/// algorithm: by timing each candidate once, on this machine, for this network, input shape and mode, and remembering
/// the fastest for the life of the process. Every width gives the same bits, so the choice changes speed only, and it is
/// made step by step: a convolution whose output channels fill a 512-bit vector may run fastest at 512 bits while the
/// next layer's six channels run fastest at 256.
/// </summary>
/// <remarks>
/// The timing runs on a copy of the network (its gradients and buffers are not the caller's) with the caller's own
/// first batch: the whole plan at each width in turn (forward, and backward with a dense upstream gradient in
/// training), in interleaved rounds so that a slow phase of the machine falls on every candidate alike, each step timed
/// on its own. Each step's fastest round decides (another process or a slow phase only ever makes a round slower, so
/// the fastest is the least disturbed). A step takes another width than the one fastest for the whole plan only when
/// that saves 5 % of its time and 0.5 % of the plan's (so steps whose code is the same at every width, and steps too
/// short to matter, stay with the rest). Where the widths' plans cut the layers into steps differently (a fusion that
/// applies at one width only), the layers between two cuts all plans share go together at one width. It costs 3 widths
/// × 9 rounds of ≥ 1 ms for a small network (about 30 ms), 3 rounds for a large one (at most about half a second), and
/// is shared by every network of the same layers and shape, on every thread.
/// </remarks>
internal static class WidthCalibration
{
    private const int Rounds = 9;
    private const double ClearGain = 0.05; // a step leaves the whole plan's fastest width when another saves this much of its time (and a tenth of it of the plan's)
    private static readonly TimeSpan MinRound = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan Budget = TimeSpan.FromMilliseconds(400); // a large network: fewer rounds, not endless timing

    private static readonly ConcurrentDictionary<string, Lazy<Calibration>> Choices = new();

    /// <summary>
    /// What was measured for one network, shape and mode: the width for the step starting at each layer
    /// (<see cref="LayerBits"/>, the same for the layers one step runs), each width's whole plan as the sum of its steps'
    /// fastest times, and that of the plan of the chosen widths (<see cref="Microseconds"/>, never more than the fastest
    /// single width's). No times when the copy could not be timed.
    /// </summary>
    internal sealed record Calibration(string Key, int[] LayerBits, IReadOnlyList<(int Bits, double Microseconds)> Times, double Microseconds)
    {
        /// <summary>The widths chosen, widest first.</summary>
        public IReadOnlyList<int> Widths => WidthNames.Distinct(LayerBits);
    }

    /// <summary>Every calibration made in this process (for benchmarks and tests).</summary>
    internal static IEnumerable<Calibration> All => Choices.Values.Where(l => l.IsValueCreated).Select(l => l.Value);

    /// <summary>
    /// Whether the widths of <paramref name="network"/>'s plan for <paramref name="shape"/> and <paramref name="mode"/> were
    /// timed (false when the network could not be copied or its copy failed to run, and on a CPU with one width).
    /// </summary>
    internal static bool Measured<T>(Sequential<T> network, ReadOnlySpan<int> shape, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string key = Key(network, shape, mode == PlanMode.LayerByLayer ? PlanMode.Inference : mode);
        return Choices.TryGetValue(key, out var known) && known.IsValueCreated && known.Value.Times.Count > 0;
    }

    /// <summary>The width for the step starting at each layer of <paramref name="network"/>, running <paramref name="input"/>'s shape in <paramref name="mode"/>.</summary>
    public static int[] Choose<T>(Sequential<T> network, Tensor<T> input, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var widths = ComputeBackend.AcceleratedWidths;
        if (widths.Count == 1) return SimdBackend.Uniform(network, widths[0]);
        string key = Key(network, input.Shape, mode);
        if (Choices.TryGetValue(key, out var known) && known.IsValueCreated) return known.Value.LayerBits;
        Sequential<T> copy;
        try
        {
            copy = network.Clone();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A layer of the caller's that cannot be copied (NotSupportedException, or a Clone that throws anything
            // else): nothing to time on, and no reason to stop a network that runs.
            return SimdBackend.Uniform(network, Unmeasured(widths));
        }

        var lazy = Choices.GetOrAdd(key, k => new Lazy<Calibration>(() => MeasureOrFallBack(k, copy, input, mode, widths)));
        try
        {
            return lazy.Value.LayerBits;
        }
        catch
        {
            Choices.TryRemove(new(key, lazy)); // out of memory: time it again next time
            throw;
        }
    }

    /// <summary>
    /// <see cref="Measure"/>, or the unmeasured width when the copy fails: a layer's copy may not run where the layer
    /// does (a Clone that misses some state), and when the input is at fault the caller's own forward reports it.
    /// Remembered like a measurement, so a copy that always fails is not cloned and run again on every batch.
    /// </summary>
    private static Calibration MeasureOrFallBack<T>(string key, Sequential<T> copy, Tensor<T> input, PlanMode mode, IReadOnlyList<int> widths)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        try
        {
            return Measure(key, copy, input, mode, widths);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new Calibration(key, SimdBackend.Uniform(copy, Unmeasured(widths)), [], 0);
        }
    }

    /// <summary>The width used when the network cannot be timed: 256 bits where accelerated (the fastest on the CPUs measured), else 128.</summary>
    private static int Unmeasured(IReadOnlyList<int> widths) => widths.Contains(256) ? 256 : 128;

    /// <summary>The network's layers (kinds and settings), element type, shape and mode.</summary>
    internal static string Key<T>(Sequential<T> network, ReadOnlySpan<int> shape, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T> =>
        $"{typeof(T).Name} {mode} {Tensor<T>.ShapeToString(shape)}: "
        + string.Join(" | ", network.Layers.Select(l => $"{l.GetType().FullName} {l.Name}{(l is Conv<T> { ComputeInputGradient: false } ? " (no ∂x)" : "")}"));

    private static Calibration Measure<T>(string key, Sequential<T> copy, Tensor<T> input, PlanMode mode, IReadOnlyList<int> widths)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int layers = copy.Layers.Count;
        var plans = widths.Select(b => SimdBackend.Build(copy, input.Shape, mode, SimdBackend.Uniform(copy, b))).ToArray();
        Tensor<T>? upstream = null;
        double[] ticks = []; // the run's time in each step of the plan being timed
        long last = 0;
        void Forwarded(int s, Tensor<T> _) => Lap(s);
        void Lap(int s)
        {
            long now = Stopwatch.GetTimestamp();
            ticks[s] += now - last;
            last = now;
        }

        void Run(ExecutionPlan<T> plan)
        {
            last = Stopwatch.GetTimestamp();
            var y = plan.Forward(input, Forwarded);
            if (mode != PlanMode.Training) return;
            if (upstream is null)
            {
                upstream = new Tensor<T>(y.Shape.ToArray());
                upstream.Span.Fill(T.One / T.CreateChecked(y.Dim(0)));
            }

            last = Stopwatch.GetTimestamp();
            plan.Backward(upstream, Lap);
        }

        var scratch = plans.Select(p => new double[p.Steps.Count]).ToArray();
        void RunEach()
        {
            for (int p = 0; p < plans.Length; p++)
            {
                ticks = scratch[p];
                Run(plans[p]);
            }
        }

        // Warm up (first calls allocate the buffers), and find how many runs make a round long enough to time.
        RunEach();
        var clock = Stopwatch.StartNew();
        RunEach();

        double perRun = Math.Max(clock.Elapsed.TotalMilliseconds / plans.Length, 1e-4);
        int reps = (int)Math.Clamp(Math.Ceiling(MinRound.TotalMilliseconds / perRun), 1, 10_000);
        int rounds = perRun * reps * plans.Length * Rounds <= Budget.TotalMilliseconds ? Rounds : 3;

        // Each step's fastest round, in microseconds a run.
        var best = plans.Select(p => Enumerable.Repeat(double.MaxValue, p.Steps.Count).ToArray()).ToArray();
        double toMicroseconds = 1e6 / Stopwatch.Frequency / reps;
        for (int r = 0; r < rounds; r++)
        {
            for (int j = 0; j < plans.Length; j++)
            {
                int p = (r + j) % plans.Length; // each width takes every place in the order in turn
                copy.ZeroGradients();
                ticks = scratch[p];
                Array.Clear(ticks);
                for (int k = 0; k < reps; k++) Run(plans[p]);
                for (int s = 0; s < ticks.Length; s++) best[p][s] = Math.Min(best[p][s], ticks[s] * toMicroseconds);
            }
        }

        // The layer index each step of each plan starts at; the cuts every plan shares bound the runs of layers chosen together.
        var starts = plans.Select(p => Starts(p, layers)).ToArray();
        var shared = Enumerable.Range(0, layers + 1).Where(i => starts.All(st => Array.IndexOf(st, i) >= 0)).ToArray();
        // A run of layers leaves the width fastest for the whole plan only for a clear gain: steps whose code is the same
        // at every width (ReLU, pooling, reshapes) keep it rather than follow the timer's noise.
        var times = widths.Select((b, p) => (b, best[p].Sum())).ToArray();
        int whole = Enumerable.Range(0, plans.Length).MinBy(p => times[p].Item2);
        var layerBits = new int[layers];
        double chosen = 0;
        for (int c = 0; c + 1 < shared.Length; c++)
        {
            int from = shared[c], to = shared[c + 1];
            double Cost(int p) => Enumerable.Range(0, plans[p].Steps.Count).Where(s => starts[p][s] >= from && starts[p][s] < to).Sum(s => best[p][s]);
            int fastest = Enumerable.Range(0, plans.Length).MinBy(Cost);
            double gain = Cost(whole) - Cost(fastest);
            if (gain < ClearGain * Cost(whole) || gain < ClearGain / 10 * times[whole].Item2) fastest = whole;
            chosen += Cost(fastest);
            Array.Fill(layerBits, widths[fastest], from, to - from);
        }

        return new Calibration(key, layerBits, times, chosen);
    }

    /// <summary>The layer each step of <paramref name="plan"/> starts at, then <paramref name="layers"/>.</summary>
    private static int[] Starts<T>(ExecutionPlan<T> plan, int layers) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var starts = new int[plan.Steps.Count + 1];
        for (int s = 0; s < plan.Steps.Count; s++) starts[s + 1] = starts[s] + plan.Steps[s].LayerCount;
        return starts[^1] == layers ? starts : throw new InvalidOperationException("The plan's steps do not cover the layers.");
    }
}
