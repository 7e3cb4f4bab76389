using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNorm1d{T}"/> and <see cref="BatchNorm2d{T}"/> at the plan's vector width, alone or with the
/// <see cref="Relu{T}"/> that follows it as one step; the same bits as the layers. The layer's passes over the (m, C)
/// values (<see cref="BatchNormPasses{TOps, TV, DOps, TD, T}"/>), with a block of channels per vector instead of one
/// channel at a time: each channel's sums still run over the rows in the layer's order, and each value goes through
/// the layer's operations (widened to double, subtracted, multiplied, rounded back; γ·x̂ + β in T without a fused
/// multiply-add), so every lane computes exactly what the layer's scalar code does. Where the channels do not fill a
/// vector of the plan's width the step runs at the widest narrower one they fill, and below 128 bits' worth (fewer
/// than 4 float or 2 double channels) by the layer's scalar loops; <see cref="Name"/> says which. The per-channel ends
/// (1/√(σ² + ε), the running statistics, ∂γ, ∂β, the scale of ∂x) are the layer's own methods. Float and double.
/// (Where several NaNs meet in a sum, which payload the result carries follows the order the JIT gives an addition's
/// operands, in the layer's scalar code as here: a NaN matches a NaN, every other value matches bit for bit.)
/// <para>
/// With the Relu: forward writes max(γ·x̂ + β, 0) (Relu's own maximum: −0 to +0, a NaN kept with its bits) where the
/// layer writes y, so BatchNorm's output never goes to memory. Backward lets ∂y through where y &gt; 0 (+0 elsewhere,
/// at 0 and NaN as Relu's derivative) as BatchNorm's two backward sweeps read it, so no masked ∂y is written either.
/// The mask is not read from the output: y is recomputed from the kept x̂ with γ and β, which the layer's backward
/// already takes as the forward left them (its ∂x is scaled by γ), and recomputing rounds as the forward did.
/// </para>
/// <para>
/// Memory traffic, in sweeps (streams) over m·C values. Training forward: Σx (read x), Σ(x − μ)² (read x; the
/// layer's two-pass variance, which no one-pass formula rounds alike), then one output sweep that reads x and writes
/// x̂ and y (or the Relu's output): 5 streams, against the layer's 6 (x̂ written, then read back for γ·x̂ + β) plus
/// Relu's 2. Evaluation forward: the output sweep alone, x̂ written only when kept for backward: 2 or 3 streams against
/// 4 (+2). Training backward: Σ∂y and Σ∂y·x̂ (read ∂y, x̂), then ∂x (read ∂y, x̂, write ∂x): 5 streams, with or
/// without the Relu (whose own backward adds 3). Evaluation backward: the sums and ∂x = scale·∂y in one sweep (the
/// scale needs no sum): 3 streams against the layer's 4. A training step of BatchNorm → Relu: 10 streams against 16.
/// </para>
/// </summary>
internal sealed class BatchNormStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly BatchNorm<T> _layer;
    private readonly bool _relu;        // whether the following Relu is part of the step
    private readonly BatchNormPasses<T> _passes;
    private readonly double[] _mean;    // per channel: μ of the batch (training) or running_mean (evaluation)
    private readonly double[] _invStd;  // per channel: 1/√(σ² + ε) or 1/√(running_var + ε)
    private readonly double[] _sumA;    // Σx then Σ(x − μ)² forward, Σ∂y backward
    private readonly double[] _sumB;    // Σ∂y·x̂ backward
    private readonly double[] _scale;   // γ/√(var + ε) backward
    private Tensor<T>? _normalized;     // x̂ of the last forward that kept it
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _lastForwardTrained;

    /// <summary>
    /// A step for <paramref name="layer"/> at <paramref name="bits"/>-bit vectors (or the widest narrower width its
    /// channels fill), and with <paramref name="relu"/> for the <see cref="Relu{T}"/> after it.
    /// </summary>
    public BatchNormStep(BatchNorm<T> layer, int bits, bool relu = false)
    {
        _layer = layer;
        _relu = relu;
        int c = layer.Channels;
        _passes = BatchNormPasses<T>.For(bits, c);
        _mean = new double[c];
        _invStd = new double[c];
        _sumA = new double[c];
        _sumB = new double[c];
        _scale = new double[c];
    }

    /// <summary>Whether the step runs <typeparamref name="T"/> (float and double: the element types it widens to double).</summary>
    public static bool Applies => typeof(T) == typeof(float) || typeof(T) == typeof(double);

    /// <summary>Whether a <see cref="Relu{T}"/> follows the BatchNorm at position i of a layer list (the step then runs both).</summary>
    public static bool FollowedByRelu(IReadOnlyList<ILayer<T>> layers, int i) => i + 1 < layers.Count && layers[i + 1] is Relu<T>;

    /// <summary>The layer's name, "→ Relu (fused, …)" with the Relu, and the width the passes run at ("Vector512", …, "scalar").</summary>
    public override string Name => _relu ? $"{_layer.Name} → Relu (fused, {_passes.Width})" : $"{_layer.Name} ({_passes.Width})";

    public override int LayerCount => _relu ? 2 : 1;

    /// <summary>What follows x̂ forward, and what precedes BatchNorm's backward, as the layer's γ and β stand now.</summary>
    private BatchNormTail<T> Tail => _layer.Affine
        ? new BatchNormTail<T>(_layer.Weight!.Value.Span, _layer.Bias!.Value.Span, _relu)
        : new BatchNormTail<T>([], [], _relu);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        int m = _layer.RowsOf(input), channels = _layer.Channels;
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> xhat = keepForBackward ? Tensor<T>.ReuseLike(ref _normalized, input).Span : [];
        ReadOnlySpan<T> x = input.Span;
        _lastForwardTrained = _layer.Training;
        if (_layer.Training)
        {
            _passes.Sums(x, m, channels, _sumA);                     // Σx
            for (int c = 0; c < channels; c++) _mean[c] = _sumA[c] / m;
            _passes.SquaredDeviations(x, m, channels, _mean, _sumA); // Σ(x − μ)²
            _layer.FinishBatchStatistics(_mean, _sumA, m, _invStd);
        }
        else
        {
            _layer.LoadRunningStatistics(_mean, _invStd);
        }

        _passes.Normalize(x, m, channels, _mean, _invStd, Tail, xhat, output.Span);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int channels = _layer.Channels, m = outputGradient.Length / channels;
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        ReadOnlySpan<T> dy = outputGradient.Span, xhat = _normalized!.Span;
        var tail = Tail;
        if (!_lastForwardTrained)
        {
            // Evaluation: x̂ is affine in x, ∂x = scale·∂y, and the scale needs no sum: one sweep.
            _layer.GradientScale(_invStd, _scale);
            _passes.GradientSums(dy, xhat, m, channels, tail, _sumA, _sumB, _scale, inputGrad.Span);
            _layer.AddParameterGradients(_sumA, _sumB, _invStd, _scale);
            return inputGrad;
        }

        _passes.GradientSums(dy, xhat, m, channels, tail, _sumA, _sumB, [], []); // Σ∂y, Σ∂y·x̂
        _layer.AddParameterGradients(_sumA, _sumB, _invStd, _scale);
        for (int c = 0; c < channels; c++)
        {
            _sumA[c] /= m;
            _sumB[c] /= m;
        }

        _passes.InputGradient(dy, xhat, m, channels, tail, _sumA, _sumB, _scale, inputGrad.Span);
        return inputGrad;
    }
}
