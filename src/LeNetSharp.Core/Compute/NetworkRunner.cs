using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>
/// Runs a <see cref="Sequential{T}"/>: builds an <see cref="ExecutionPlan{T}"/> per input shape and mode through the
/// network's <see cref="ComputeBackend"/> (once; later calls with that shape replay it without allocating), remembers
/// which plan a backward must follow, and lets one thread at a time in.
/// </summary>
/// <remarks>
/// The layers hold the buffers of one forward/backward pass at a time, so a second thread entering while the first is
/// inside gets an <see cref="InvalidOperationException"/> (one interlocked compare-exchange per call, no allocation)
/// rather than overwriting the first thread's buffers.
/// </remarks>
internal sealed class NetworkRunner<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int MaxPlans = 8; // shapes kept at once (a training batch, a last short batch, evaluation, one image, …)

    private readonly Sequential<T> _network;
    private readonly List<ExecutionPlan<T>> _plans = [];
    private ExecutionPlan<T>? _last;         // the plan of the last forward
    private ExecutionPlan<T>? _backwardPlan; // the plan whose forward a backward follows; null when none kept its state
    private ComputeBackend _backend;
    private int _owner; // managed id of the thread inside (or holding the network for an evaluation), 0 when idle

    public NetworkRunner(Sequential<T> network, ComputeBackend backend)
    {
        _network = network;
        _backend = backend;
    }

    public ComputeBackend Backend
    {
        get => _backend;
        set
        {
            if (ReferenceEquals(value, _backend)) return; // plans stay valid
            int previous = Enter();
            try
            {
                // A pending backward keeps its plan: the forward it follows ran, whatever runs the next one.
                _backend = value;
                _plans.Clear();
                _last = null;
            }
            finally
            {
                Exit(previous);
            }
        }
    }

    /// <summary>The plans kept, oldest first (for tests and the samples' reports).</summary>
    public IReadOnlyList<ExecutionPlan<T>> Plans => _plans;

    /// <summary>The plan of the last forward (for tests and benchmarks), or null.</summary>
    public ExecutionPlan<T>? LastPlan => _last;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input, PlanMode mode, Action<int, Tensor<T>>? observe = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        int previous = Enter();
        try
        {
            _backwardPlan = null; // a forward that fails half-way leaves nothing a backward could follow
            var plan = PlanFor(input, mode);
            var output = plan.Forward(input, observe);
            if (mode != PlanMode.Inference) _backwardPlan = plan;
            return output;
        }
        finally
        {
            Exit(previous);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        ArgumentNullException.ThrowIfNull(outputGradient);
        int previous = Enter();
        try
        {
            var plan = _backwardPlan ?? throw new InvalidOperationException("Sequential: Backward was called before Forward.");
            return plan.Backward(outputGradient);
        }
        finally
        {
            Exit(previous);
        }
    }

    /// <summary>The cached plan for this shape and mode, or a new one from the backend (the oldest dropped past <see cref="MaxPlans"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private ExecutionPlan<T> PlanFor(Tensor<T> input, PlanMode mode)
    {
        if (_last is { } last && last.Fits(input.Shape, mode)) return last;
        foreach (var plan in _plans)
        {
            if (plan.Fits(input.Shape, mode)) return _last = plan;
        }

        var built = _backend.BuildPlan(_network, input, mode);
        if (_plans.Count == MaxPlans) _plans.RemoveAt(0);
        _plans.Add(built);
        return _last = built;
    }

    /// <summary>
    /// Marks the network as used by the calling thread; returns the previous owner (0 when it was idle, the caller's
    /// own id on a nested call) for <see cref="Exit"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another thread is inside.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public int Enter()
    {
        int me = Environment.CurrentManagedThreadId;
        int previous = Interlocked.CompareExchange(ref _owner, me, 0);
        if (previous != 0 && previous != me) ThrowConcurrentUse();
        return previous;
    }

    /// <summary>Takes the network for the calling thread unless another thread has it; pair a true result with <see cref="Exit"/>.</summary>
    /// <param name="previous">What <see cref="Exit"/> must be given.</param>
    /// <returns>False when another thread is using the network.</returns>
    public bool TryEnter(out int previous)
    {
        int me = Environment.CurrentManagedThreadId;
        previous = Interlocked.CompareExchange(ref _owner, me, 0);
        return previous == 0 || previous == me;
    }

    /// <summary>Releases what <see cref="Enter"/> took.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Exit(int previous)
    {
        if (previous == 0) Volatile.Write(ref _owner, 0);
    }

    private static void ThrowConcurrentUse() => throw new InvalidOperationException(
        "This network is used from two threads at once (its layers hold the buffers of one forward/backward pass at a time); "
        + "give each thread its own network.Clone(), or use LeNetSharp.Inference.Predictor.");
}
