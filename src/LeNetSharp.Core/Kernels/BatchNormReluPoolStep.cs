using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="BatchNorm2d{T}"/> → <see cref="Relu{T}"/> → <see cref="MaxPool2x2{T}"/> as one step at the plan's vector
/// width, with the bits of the three layers; neither BatchNorm's nor the Relu's full-size output goes to memory.
/// <code>
/// input x : (N, H, W, C)    output p : (N, H/2, W/2, C) = MaxPool2x2(Relu(γ·x̂ + β)),  x̂ = T((x − μ)·1/√(σ² + ε))
/// record  : (N, H/2, W/2, C) bytes, the window position ∂p reaches (0–3) or 4 for none, as ReluMaxPoolStep's
/// </code>
/// Forward: in training the batch statistics by <see cref="BatchNormStep{T}"/>'s passes (Σx, then Σ(x − μ)²: the layer's
/// order and two-pass variance) and the layer's own per-channel end (1/√(σ² + ε), the running statistics), in evaluation
/// the running statistics; then one sweep over the pool's windows computes x̂ and y for the four elements, the maximum,
/// the Relu and, when kept for backward, the position and the x̂ there (<see cref="IBatchNormPoolPasses{T}"/>). Where
/// none of a window's four y is NaN the maximum is the CPU's, which may give −0 for +0: the Relu turns either into +0,
/// and the position's comparisons do not tell them apart; a window with a NaN takes the layers' NaN-keeping maximum.
/// Backward keeps x (the caller's tensor, not copied, as <see cref="MaxPool2x2{T}"/> keeps its input) and recomputes x̂
/// from it for ∂x, rounding as the forward did.
/// <para>
/// Backward: BatchNorm's ∂y (g) is ∂p at the recorded position and +0 everywhere else, so its sums Σg and Σg·x̂ take one
/// term per window where the layer adds one per element. Skipping the others changes no bit: the layer's sums run
/// over the elements in order per channel, start at +0 (so never become −0) and add g = +0 and +0·x̂ = ±0 there, which
/// leave a sum as it is, provided x̂ is finite. In training every x̂ of a channel is finite when μ and Σ(x − μ)² are
/// (|x̂| is then at most about √m), which the forward checks; otherwise, and after an evaluation forward, the sums run
/// over every element as the layer's do. The terms that remain keep the layer's order: a pair of image rows adds its
/// upper row's terms window by window, then its lower row's (see <see cref="IBatchNormPoolPasses{T}.GradientSums"/>). Then one sweep writes ∂x for every element (the layer's
/// formula with g, the odd last row and column included), taking a window's g − mean g once and, per element, that or
/// +0 − mean g by the recorded position.
/// </para>
/// <para>
/// Memory traffic, in sweeps over the N·H·W·C values: training forward 3 reads of x (Σx, Σ(x − μ)², the pooled sweep)
/// and quarter-size writes (p, the record, the x̂ at the positions), against 5 for BatchNormStep with the Relu and 1
/// for the pool's step after it; training backward 1 read of x and 1 write (∂x) plus quarter-size reads, against 5
/// and 1: 5 full-size streams a training step against 12. Float and double, channels that fill at least one 128-bit
/// vector (else the layers' other steps run).
/// </para>
/// </summary>
internal sealed class BatchNormReluPoolStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly BatchNorm2d<T> _norm;
    private readonly MaxPool2x2<T> _pool;
    private readonly BatchNormPasses<T> _statistics;
    private readonly IBatchNormPoolPasses<T> _passes;
    private readonly double[] _mean;    // per channel: μ of the batch (training) or running_mean (evaluation)
    private readonly double[] _invStd;  // per channel: 1/√(σ² + ε) or 1/√(running_var + ε)
    private readonly double[] _sumA;    // Σx then Σ(x − μ)² forward, Σg backward
    private readonly double[] _sumB;    // Σg·x̂ backward
    private readonly double[] _scale;   // γ/√(var + ε) backward
    private T[] _stash = [];            // the lower rows' terms of a row of windows
    private byte[] _record = [];
    private T[] _chosen = [];           // x̂ at each window's position
    private Tensor<T>? _input;          // x of the last forward that kept it (the caller's tensor)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _lastForwardTrained;
    private bool _finite;               // whether every x̂ of the last training forward is finite

    /// <summary>The step for <paramref name="norm"/> → Relu → <paramref name="pool"/> at <paramref name="bits"/>-bit vectors (or the widest narrower width its channels fill).</summary>
    public BatchNormReluPoolStep(BatchNorm2d<T> norm, MaxPool2x2<T> pool, int bits)
    {
        _norm = norm;
        _pool = pool;
        int c = norm.Channels;
        _statistics = BatchNormPasses<T>.For(bits, c);
        _passes = (IBatchNormPoolPasses<T>)_statistics; // a vector width: see Applies
        _mean = new double[c];
        _invStd = new double[c];
        _sumA = new double[c];
        _sumB = new double[c];
        _scale = new double[c];
    }

    /// <summary>Whether BatchNorm2d → Relu → MaxPool2x2 stand at positions i to i + 2 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) =>
        i + 2 < layers.Count && layers[i] is BatchNorm2d<T> && layers[i + 1] is Relu<T> && layers[i + 2] is MaxPool2x2<T>;

    /// <summary>
    /// Whether the step runs <paramref name="norm"/> on inputs of <paramref name="shape"/> at <paramref name="bits"/>:
    /// float or double, an image batch the pool takes with the layer's channels (else the layers run, and report any
    /// error), enough channels for a 128-bit vector.
    /// </summary>
    public static bool Applies(BatchNorm2d<T> norm, ReadOnlySpan<int> shape, int bits) =>
        BatchNormStep<T>.Applies && ReluMaxPoolStep<T>.Applies(shape) && shape[3] == norm.Channels && BatchNormPasses<T>.VectorBits(bits, norm.Channels) > 0;

    public override string Name => $"{_norm.Name} → Relu → {_pool.Name} (fused, {_statistics.Width})";

    public override int LayerCount => 3;

    /// <summary>γ and β as the layer holds them now, and the Relu.</summary>
    private BatchNormTail<T> Tail => _norm.Affine
        ? new BatchNormTail<T>(_norm.Weight!.Value.Span, _norm.Bias!.Value.Span, relu: true)
        : new BatchNormTail<T>([], [], relu: true);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        int m = _norm.RowsOf(input), channels = _norm.Channels;
        _pool.RequireInput(input.Shape);
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2);
        var output = Tensor<T>.Reuse(ref _output, n, h / 2, w / 2, channels);
        ReadOnlySpan<T> x = input.Span;
        _lastForwardTrained = _norm.Training;
        if (_norm.Training)
        {
            _statistics.Sums(x, m, channels, _sumA);                     // Σx
            for (int c = 0; c < channels; c++) _mean[c] = _sumA[c] / m;
            _statistics.SquaredDeviations(x, m, channels, _mean, _sumA); // Σ(x − μ)²
            _finite = true;
            for (int c = 0; c < channels; c++) _finite &= double.IsFinite(_mean[c]) && double.IsFinite(_sumA[c]);
            _norm.FinishBatchStatistics(_mean, _sumA, m, _invStd);
        }
        else
        {
            _norm.LoadRunningStatistics(_mean, _invStd);
        }

        Span<byte> record = [];
        Span<T> chosen = [];
        if (keepForBackward)
        {
            Scratch.Ensure(ref _record, output.Length);
            Scratch.Ensure(ref _chosen, output.Length);
            record = _record.AsSpan(0, output.Length);
            chosen = _chosen.AsSpan(0, output.Length);
            _input = input;
        }

        _passes.Forward(x, n, h, w, channels, _mean, _invStd, Tail, output.Span, record, chosen);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var input = _input!;
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), channels = _norm.Channels, m = input.Length / channels;
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, input);
        ReadOnlySpan<T> x = input.Span, dp = outputGradient.Span;
        ReadOnlySpan<byte> record = _record.AsSpan(0, dp.Length);
        if (_lastForwardTrained && _finite)
        {
            Scratch.Ensure(ref _stash, _passes.StashLength(w / 2));
            _passes.GradientSums(_chosen.AsSpan(0, dp.Length), dp, record, n, h, w, channels, _sumA, _sumB, _stash);
        }
        else
        {
            EveryElementSums(x, dp, record, n, h, w, channels);
        }

        _norm.AddParameterGradients(_sumA, _sumB, _invStd, _scale); // and the scale of ∂x
        if (_lastForwardTrained)
        {
            for (int c = 0; c < channels; c++)
            {
                _sumA[c] /= m;
                _sumB[c] /= m;
            }
        }

        _passes.InputGradient(x, dp, record, n, h, w, channels, _mean, _invStd, _lastForwardTrained, _sumA, _sumB, _scale, inputGrad.Span);
        return inputGrad;
    }

    /// <summary>
    /// Σg and Σg·x̂ over every element in the layer's order and with its scalar operations (g = ∂p at the recorded
    /// position, +0 elsewhere; x̂ recomputed): where an x̂ may be infinite or NaN, and +0·x̂ then a NaN that counts.
    /// </summary>
    private void EveryElementSums(ReadOnlySpan<T> x, ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int channels)
    {
        int ph = h / 2, pw = w / 2;
        Span<double> sumDy = _sumA, sumDyXhat = _sumB;
        sumDy.Clear();
        sumDyXhat.Clear();
        for (int image = 0, o = 0; image < n; image++)
        {
            for (int r = 0; r < h; r++)
            {
                for (int col = 0; col < w; col++)
                {
                    bool covered = r < 2 * ph && col < 2 * pw;
                    int pooled = ((image * ph + r / 2) * pw + col / 2) * channels, position = 2 * (r % 2) + col % 2;
                    for (int c = 0; c < channels; c++, o++)
                    {
                        T g = covered && record[pooled + c] == position ? dp[pooled + c] : T.Zero;
                        T xhat = T.CreateTruncating((double.CreateTruncating(x[o]) - _mean[c]) * _invStd[c]);
                        double gd = double.CreateTruncating(g);
                        sumDy[c] += gd;
                        sumDyXhat[c] += gd * double.CreateTruncating(xhat);
                    }
                }
            }
        }
    }
}
