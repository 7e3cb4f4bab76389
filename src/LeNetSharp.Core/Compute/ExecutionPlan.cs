using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>What a plan is for: training keeps what backward needs; inference may fuse more and keeps nothing.</summary>
internal enum PlanMode
{
    Training,
    Inference,
    LayerByLayer,
}

/// <summary>
/// How one network runs on one backend for one input shape: the steps (a layer's own code, or a backend kernel standing
/// in for one or more layers), decided once when the plan is built, then replayed forward and backward. Plans are
/// built and cached by <see cref="NetworkRunner{T}"/>.
/// </summary>
internal sealed class ExecutionPlan<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int[] _inputShape;
    private readonly PlanStep<T>[] _steps;
    private readonly IUsesGemm[] _gemmUsers; // layers run by their own code that multiply matrices
    private readonly GemmProvider _gemm;

    public ExecutionPlan(ReadOnlySpan<int> inputShape, PlanMode mode, PlanStep<T>[] steps, GemmProvider gemm, string backend, int bits = 0)
    {
        Bits = bits;
        _inputShape = inputShape.ToArray();
        Mode = mode;
        _steps = steps;
        _gemm = gemm;
        Backend = backend;
        _gemmUsers = steps.OfType<LayerStep<T>>().Select(s => s.Layer).OfType<IUsesGemm>().ToArray();
    }

    public PlanMode Mode { get; }

    /// <summary>The vector width the kernels run at, or 0 for the reference backend.</summary>
    public int Bits { get; }

    /// <summary>The backend and width that built the plan, e.g. "simd (Vector256)".</summary>
    public string Backend { get; }

    public IReadOnlyList<PlanStep<T>> Steps => _steps;

    /// <summary>How many steps are backend kernels standing in for more than one layer.</summary>
    public int FusedSteps => _steps.Count(s => s.IsKernel && s.LayerCount > 1);

    public bool Fits(ReadOnlySpan<int> shape, PlanMode mode) => mode == Mode && shape.SequenceEqual(_inputShape);

    /// <summary>Runs every step forward; the last step's output (a buffer it owns).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input, Action<int, Tensor<T>>? observe = null)
    {
        // Layers are shared by every plan of the network: each run sets the GEMM its own plan chose.
        foreach (var user in _gemmUsers)
        {
            if (!ReferenceEquals(user.GemmProvider, _gemm)) user.GemmProvider = _gemm;
        }

        bool keep = Mode != PlanMode.Inference;
        var x = input;
        for (int s = 0; s < _steps.Length; s++)
        {
            x = _steps[s].Forward(x, keep);
            observe?.Invoke(s, x);
        }

        return x;
    }

    /// <summary>Runs every step backward from ∂loss/∂output; ∂loss/∂input.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        var g = outputGradient;
        for (int s = _steps.Length - 1; s >= 0; s--) g = _steps[s].Backward(g);
        return g;
    }

    /// <summary>One line per step, e.g. for a benchmark's table.</summary>
    public override string ToString() => $"{Backend}, {Mode}, input {Tensor<T>.ShapeToString(_inputShape)}: " + string.Join(" | ", _steps.Select(s => s.Name));
}
