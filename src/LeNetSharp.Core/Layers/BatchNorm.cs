using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Batch normalisation with PyTorch 1.13's semantics, per channel c over every other axis (the batch, and for images
/// the pixels): <see cref="BatchNorm1d{T}"/> over (N, C), <see cref="BatchNorm2d{T}"/> over NHWC (N, H, W, C).
/// <code>
/// input  x : (…, C), m values per channel      output y : the shape of x
/// weight γ : (C), 1 at first   bias β : (C), 0 at first     (only with affine; else γ = 1, β = 0)
/// state    : running_mean (C), 0 at first;  running_var (C), 1 at first
/// training : μ = Σx / m;  σ² = Σ(x − μ)² / m (biased);  x̂ = (x − μ) / √(σ² + ε);  y = γ·x̂ + β
///            running_mean ← (1 − momentum)·running_mean + momentum·μ
///            running_var  ← (1 − momentum)·running_var  + momentum·Σ(x − μ)² / (m − 1)   (unbiased)
/// evaluation: x̂ = (x − running_mean) / √(running_var + ε);  y = γ·x̂ + β   (the state is not changed)
/// backward : ∂β += Σ ∂y;  ∂γ += Σ ∂y·x̂;
///            training:   ∂x = γ/√(σ² + ε) · (∂y − Σ∂y / m − x̂·Σ(∂y·x̂) / m)   (through μ and σ²)
///            evaluation: ∂x = γ/√(running_var + ε) · ∂y
/// </code>
/// Sums, means and variances are accumulated in double for both element types. Training needs more than one value
/// per channel (m ≥ 2), as in PyTorch. Which statistics are used follows <see cref="Layer{T}.Training"/>, set by
/// <see cref="Sequential{T}.Training"/>: on while the trainer steps, off for evaluation and prediction.
/// </summary>
/// <remarks>
/// The running statistics are non-trainable <see cref="IStatefulLayer{T}.State"/>: the optimizer never updates them
/// (only the forward pass in training does), model files, checkpoints and clones carry them, and
/// <see cref="Sequential{T}.Summary"/> counts them as non-trainable parameters.
/// <para>
/// When <see cref="Training.TrainingOptions.Threads"/> splits a batch across threads, each thread's replica of the
/// network normalises its own shard by that shard's statistics, as the replicas of PyTorch's <c>DataParallel</c> do:
/// the gradients are those of per-shard batch normalisation, not of the whole batch's. The running statistics that
/// count are those of the trained network's own layer, updated from the first shard (whose images are fixed by the
/// batch), so they are deterministic for a given thread count; the replicas' running statistics are never used.
/// </para>
/// </remarks>
/// <typeparam name="T">Element type.</typeparam>
public abstract class BatchNorm<T> : Layer<T>, IStatefulLayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Parameter<T>[] _parameters;
    private readonly StateTensor<T>[] _state;
    private readonly double[] _mean;    // per channel: the batch's μ (training) or running_mean (evaluation) of the last forward
    private readonly double[] _invStd;  // per channel: 1/√(σ² + ε) or 1/√(running_var + ε) of the last forward
    private readonly double[] _sumA;    // per-channel sums: Σx then Σ(x − μ)² forward, Σ∂y backward
    private readonly double[] _sumB;    // per-channel sums: Σ∂y·x̂ backward
    private readonly double[] _scale;   // per channel: γ/√(var + ε) backward
    private Tensor<T>? _normalized;     // x̂ of the last forward
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _lastForwardTrained;   // whether the last forward used batch statistics

    /// <summary>Checks the settings and creates γ = 1, β = 0, running_mean = 0, running_var = 1.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range.</exception>
    private protected BatchNorm(int channels, double eps, double momentum, bool affine)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(channels, 1);
        CheckSettings(eps, momentum);
        Channels = channels;
        Eps = eps;
        Momentum = momentum;
        Affine = affine;
        if (affine)
        {
            Weight = new Parameter<T>("weight", channels);
            Bias = new Parameter<T>("bias", channels);
            Weight.Value.Span.Fill(T.One);
            _parameters = [Weight, Bias];
        }
        else
        {
            _parameters = [];
        }

        RunningMean = new StateTensor<T>("running_mean", channels);
        RunningVar = new StateTensor<T>("running_var", channels);
        RunningVar.Value.Span.Fill(T.One);
        _state = [RunningMean, RunningVar];
        _mean = new double[channels];
        _invStd = new double[channels];
        _sumA = new double[channels];
        _sumB = new double[channels];
        _scale = new double[channels];
    }

    /// <summary>C, the channels (features) normalised one by one.</summary>
    public int Channels { get; }

    /// <summary>ε, added to the variance before the square root (PyTorch's default 1e-5).</summary>
    public double Eps { get; }

    /// <summary>The weight of the newest batch in the running statistics (PyTorch's default 0.1).</summary>
    public double Momentum { get; }

    /// <summary>Whether the layer has the learnable <see cref="Weight"/> γ and <see cref="Bias"/> β.</summary>
    public bool Affine { get; }

    /// <summary>γ, shape (C), 1 at first; null without <see cref="Affine"/>.</summary>
    public Parameter<T>? Weight { get; }

    /// <summary>β, shape (C), 0 at first; null without <see cref="Affine"/>.</summary>
    public Parameter<T>? Bias { get; }

    /// <summary>The running mean, shape (C), 0 at first: non-trainable state.</summary>
    public StateTensor<T> RunningMean { get; }

    /// <summary>The running (unbiased) variance, shape (C), 1 at first: non-trainable state.</summary>
    public StateTensor<T> RunningVar { get; }

    /// <summary>γ and β (empty without <see cref="Affine"/>).</summary>
    public override IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>running_mean and running_var.</summary>
    public IReadOnlyList<StateTensor<T>> State => _state;

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireInput(inputShape);
        return inputShape.ToArray();
    }

    /// <summary>The type name ("BatchNorm1d", "BatchNorm2d").</summary>
    private protected abstract string Kind { get; }

    /// <summary>What <see cref="Channels"/> is called in the description ("features", "channels").</summary>
    private protected abstract string ChannelsSetting { get; }

    /// <inheritdoc />
    public override string Name => string.Create(CultureInfo.InvariantCulture,
        $"{Kind} {Channels} eps {Eps:G} momentum {Momentum:G}{(Affine ? "" : " without affine")}");

    /// <inheritdoc />
    public override LayerDescription Describe() =>
        new(Kind, (ChannelsSetting, Channels), ("eps", Eps), ("momentum", Momentum), ("affine", Affine ? 1 : 0));

    /// <summary>Throws unless <paramref name="shape"/> is one the layer takes; the message names both shapes.</summary>
    private protected abstract void RequireInput(ReadOnlySpan<int> shape);

    /// <summary>Throws unless ε is positive and finite and the momentum in [0, 1].</summary>
    /// <exception cref="ArgumentOutOfRangeException">One is not.</exception>
    internal static void CheckSettings(double eps, double momentum)
    {
        if (!(eps > 0 && double.IsFinite(eps)))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be positive and finite (PyTorch's default is 1e-5).");
        }

        if (!(momentum >= 0 && momentum <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "momentum must be in [0, 1] (PyTorch's default is 0.1).");
        }
    }

    /// <summary>The first running statistic that is not finite, or a negative variance, as a message; null when all are usable.</summary>
    internal string? StateProblem()
    {
        var mean = RunningMean.Value.Span;
        var variance = RunningVar.Value.Span;
        for (int c = 0; c < Channels; c++)
        {
            if (!T.IsFinite(mean[c])) return string.Create(CultureInfo.InvariantCulture, $"running_mean[{c}] is {mean[c]}, expected a finite number.");
        }

        for (int c = 0; c < Channels; c++)
        {
            if (!T.IsFinite(variance[c]) || variance[c] < T.Zero)
            {
                return string.Create(CultureInfo.InvariantCulture, $"running_var[{c}] is {variance[c]}, expected a finite number ≥ 0.");
            }
        }

        return null;
    }

    /// <summary>The (eps, momentum, affine) settings of a description, checked.</summary>
    private protected static (double Eps, double Momentum, bool Affine) ReadSettings(LayerDescription d) =>
        (d.Get("eps"), d.Get("momentum"), d.GetInt("affine", 0, 1) == 1);

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected sealed override Tensor<T> ForwardCore(Tensor<T> input)
    {
        int channels = Channels, m = RowsOf(input);
        var output = Tensor<T>.ReuseLike(ref _output, input);
        var normalized = Tensor<T>.ReuseLike(ref _normalized, input);
        ReadOnlySpan<T> x = input.Span;
        if (Training) BatchStatistics(x, m);
        else LoadRunningStatistics(_mean, _invStd);
        _lastForwardTrained = Training;

        Span<T> xhat = normalized.Span, y = output.Span;
        ReadOnlySpan<double> mean = _mean, invStd = _invStd;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++)
            {
                xhat[o + c] = T.CreateTruncating((double.CreateTruncating(x[o + c]) - mean[c]) * invStd[c]);
            }
        }

        if (!Affine)
        {
            xhat.CopyTo(y);
            return output;
        }

        ReadOnlySpan<T> gamma = Weight!.Value.Span, beta = Bias!.Value.Span;
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++) y[o + c] = gamma[c] * xhat[o + c] + beta[c];
        }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected sealed override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int channels = Channels, m = outputGradient.Length / channels;
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        ReadOnlySpan<T> dy = outputGradient.Span, xhat = _normalized!.Span;
        Span<T> dx = inputGrad.Span;
        Span<double> sumDy = _sumA, sumDyXhat = _sumB;
        sumDy.Clear();
        sumDyXhat.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++)
            {
                double g = double.CreateTruncating(dy[o + c]);
                sumDy[c] += g;
                sumDyXhat[c] += g * double.CreateTruncating(xhat[o + c]);
            }
        }

        Span<double> scale = _scale;
        AddParameterGradients(sumDy, sumDyXhat, _invStd, scale);

        if (!_lastForwardTrained)
        {
            // Evaluation: μ and σ² are constants, so x̂ is affine in x.
            for (int r = 0; r < m; r++)
            {
                int o = r * channels;
                for (int c = 0; c < channels; c++) dx[o + c] = T.CreateTruncating(scale[c] * double.CreateTruncating(dy[o + c]));
            }

            return inputGrad;
        }

        // Training: through the batch's μ and σ² as well: subtract the mean of ∂y and its projection on x̂.
        for (int c = 0; c < channels; c++)
        {
            sumDy[c] /= m;
            sumDyXhat[c] /= m;
        }

        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++)
            {
                double g = double.CreateTruncating(dy[o + c]) - sumDy[c] - double.CreateTruncating(xhat[o + c]) * sumDyXhat[c];
                dx[o + c] = T.CreateTruncating(scale[c] * g);
            }
        }

        return inputGrad;
    }

    /// <summary>
    /// The batch's μ and 1/√(σ² + ε) per channel (two passes: the sum, then the squared deviations), and the running
    /// statistics' update, in PyTorch's order of operations.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void BatchStatistics(ReadOnlySpan<T> x, int m)
    {
        int channels = Channels;
        Span<double> mean = _mean, varSum = _sumA, invStd = _invStd;
        mean.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++) mean[c] += double.CreateTruncating(x[o + c]);
        }

        for (int c = 0; c < channels; c++) mean[c] /= m;
        varSum.Clear();
        for (int r = 0; r < m; r++)
        {
            int o = r * channels;
            for (int c = 0; c < channels; c++)
            {
                double d = double.CreateTruncating(x[o + c]) - mean[c];
                varSum[c] += d * d;
            }
        }

        FinishBatchStatistics(mean, varSum, m, invStd);
    }

    /// <summary>
    /// Checks an input's shape and, in training, that each channel has more than one value; the rows (values per
    /// channel, m) it holds. Shared with the SIMD backend's kernel.
    /// </summary>
    /// <exception cref="ArgumentException">The shape is not one the layer takes, or m &lt; 2 in training.</exception>
    internal int RowsOf(Tensor<T> input)
    {
        RequireInput(input.Shape);
        int m = input.Length / Channels;
        if (Training && m < 2)
        {
            throw new ArgumentException($"{Name}: Expected more than 1 value per channel when training, got input size {input.ShapeString}.", nameof(input));
        }

        return m;
    }

    /// <summary>
    /// The per-channel end of the batch statistics, from μ and Σ(x − μ)² over <paramref name="m"/> values: 1/√(σ² + ε)
    /// into <paramref name="invStd"/>, and the running statistics' update, in PyTorch's order of operations.
    /// </summary>
    internal void FinishBatchStatistics(ReadOnlySpan<double> mean, ReadOnlySpan<double> varSum, int m, Span<double> invStd)
    {
        int channels = Channels;
        Span<T> runningMean = RunningMean.Value.Span, runningVar = RunningVar.Value.Span;
        double momentum = Momentum;
        for (int c = 0; c < channels; c++)
        {
            invStd[c] = 1 / Math.Sqrt(varSum[c] / m + Eps);
            runningMean[c] = T.CreateTruncating(momentum * mean[c] + (1 - momentum) * double.CreateTruncating(runningMean[c]));
            double unbiased = varSum[c] / (m - 1);
            runningVar[c] = T.CreateTruncating(momentum * unbiased + (1 - momentum) * double.CreateTruncating(runningVar[c]));
        }
    }

    /// <summary>running_mean and 1/√(running_var + ε) per channel.</summary>
    internal void LoadRunningStatistics(Span<double> mean, Span<double> invStd)
    {
        ReadOnlySpan<T> runningMean = RunningMean.Value.Span, runningVar = RunningVar.Value.Span;
        for (int c = 0; c < Channels; c++)
        {
            mean[c] = double.CreateTruncating(runningMean[c]);
            invStd[c] = 1 / Math.Sqrt(double.CreateTruncating(runningVar[c]) + Eps);
        }
    }

    /// <summary>
    /// ∂β += Σ∂y, ∂γ += Σ∂y·x̂ (with <see cref="Affine"/>), and the scale of ∂x per channel, γ/√(var + ε), into
    /// <paramref name="scale"/>: γ as the forward used it (the optimizer steps after backward).
    /// </summary>
    internal void AddParameterGradients(ReadOnlySpan<double> sumDy, ReadOnlySpan<double> sumDyXhat, ReadOnlySpan<double> invStd, Span<double> scale)
    {
        GradientScale(invStd, scale);
        if (!Affine) return;
        Span<T> gammaGrad = Weight!.Gradient.Span, betaGrad = Bias!.Gradient.Span;
        for (int c = 0; c < Channels; c++)
        {
            betaGrad[c] += T.CreateTruncating(sumDy[c]);
            gammaGrad[c] += T.CreateTruncating(sumDyXhat[c]);
        }
    }

    /// <summary>The scale of ∂x per channel, γ/√(var + ε) (1/√(var + ε) without <see cref="Affine"/>), into <paramref name="scale"/>: no sum needed.</summary>
    internal void GradientScale(ReadOnlySpan<double> invStd, Span<double> scale)
    {
        if (!Affine)
        {
            invStd[..Channels].CopyTo(scale);
            return;
        }

        ReadOnlySpan<T> gamma = Weight!.Value.Span;
        for (int c = 0; c < Channels; c++) scale[c] = invStd[c] * double.CreateTruncating(gamma[c]);
    }
}
