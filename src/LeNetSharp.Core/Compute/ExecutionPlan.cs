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
    private readonly int[] _stepBits;
    private readonly (IUsesGemm Layer, GemmProvider Gemm)[] _gemmUsers; // layers run by their own code that multiply matrices, and the GEMM of their step's width

    /// <summary>A plan of <paramref name="steps"/>, step s at <paramref name="stepBits"/>[s]-bit vectors (0: the reference, MathNet's GEMM).</summary>
    public ExecutionPlan(ReadOnlySpan<int> inputShape, PlanMode mode, PlanStep<T>[] steps, int[] stepBits, string backend)
    {
        if (stepBits.Length != steps.Length) throw new ArgumentException("One width per step.", nameof(stepBits));
        _inputShape = inputShape.ToArray();
        Mode = mode;
        _steps = steps;
        _stepBits = stepBits;
        Bits = stepBits.DefaultIfEmpty(0).Max();
        Widths = WidthNames.Distinct(stepBits);
        Backend = backend;
        var users = new List<(IUsesGemm, GemmProvider)>();
        for (int s = 0; s < steps.Length; s++)
        {
            if (steps[s] is LayerStep<T> { Layer: IUsesGemm user }) users.Add((user, stepBits[s] == 0 ? GemmProvider.MathNet : GemmProvider.SimdWithWidth(stepBits[s])));
        }

        _gemmUsers = users.ToArray();
    }

    public PlanMode Mode { get; }

    /// <summary>The input shape the plan was built for, batch first.</summary>
    public ReadOnlySpan<int> InputShape => _inputShape;

    /// <summary>The widest vector width a step runs at, or 0 for the reference backend.</summary>
    public int Bits { get; }

    /// <summary>The vector widths the steps run at, widest first (one when the width is fixed; empty for the reference backend).</summary>
    public IReadOnlyList<int> Widths { get; }

    /// <summary>The vector width step <paramref name="step"/> runs at (0: the reference backend).</summary>
    public int StepBits(int step) => _stepBits[step];

    /// <summary>The backend and width that built the plan, e.g. "simd (Vector256)" or "simd (Vector512 and Vector256 by step)".</summary>
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
        foreach (var (user, gemm) in _gemmUsers)
        {
            if (!ReferenceEquals(user.GemmProvider, gemm)) user.GemmProvider = gemm;
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

    /// <summary>Runs every step backward from ∂loss/∂output; ∂loss/∂input. <paramref name="observe"/> is told of each step done (last step first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient, Action<int>? observe = null)
    {
        var g = outputGradient;
        for (int s = _steps.Length - 1; s >= 0; s--)
        {
            g = _steps[s].Backward(g);
            observe?.Invoke(s);
        }

        return g;
    }

    /// <summary>One line per step, e.g. for a benchmark's table.</summary>
    public override string ToString() => $"{Backend}, {Mode}, input {Tensor<T>.ShapeToString(_inputShape)}: " + string.Join(" | ", _steps.Select(s => s.Name));
}
