using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Layers;

namespace LeNetSharp.Training;

/// <summary>
/// An optimizer, as in PyTorch: it holds the parameters it updates and their per-parameter state (momentum buffers,
/// moment estimates); a learning-rate schedule only sets <see cref="LearningRate"/>, so any schedule works with any
/// optimizer. The built-in ones are <see cref="Sgd{T}"/>, <see cref="Adam{T}"/> and <see cref="AdamW{T}"/>.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public interface IOptimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The learning rate the next <see cref="Step"/> uses (positive and finite).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not positive and finite.</exception>
    double LearningRate { get; set; }

    /// <summary>The parameters this optimizer updates, in the order of its state's buffers.</summary>
    IReadOnlyList<Parameter<T>> Parameters { get; }

    /// <summary>Updates every parameter from its accumulated gradient, then sets the gradients to zero.</summary>
    void Step();

    /// <summary>A copy of the optimizer's state (step count and per-parameter buffers), for a checkpoint.</summary>
    /// <returns>A snapshot that later steps do not change.</returns>
    OptimizerState<T> SaveState();

    /// <summary>Replaces the optimizer's state with <paramref name="state"/> (copied), to continue a run exactly.</summary>
    /// <param name="state">A state saved by an optimizer of the same kind over parameters of the same shapes.</param>
    /// <exception cref="ArgumentException">
    /// The state is another optimizer's, or its buffers do not match the parameters; nothing is changed.
    /// </exception>
    void LoadState(OptimizerState<T> state);
}

/// <summary>
/// What an optimizer carries from step to step besides the parameters: how many steps it has taken and named
/// per-parameter buffers, as in PyTorch's optimizer <c>state_dict</c> (SGD: <c>momentum_buffer</c>; Adam and AdamW:
/// <c>exp_avg</c>, <c>exp_avg_sq</c> and, with AMSGrad, <c>max_exp_avg_sq</c>).
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class OptimizerState<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>Creates a state.</summary>
    /// <param name="optimizer">The optimizer's kind ("SGD", "Adam", "AdamW" or a custom optimizer's name).</param>
    /// <param name="steps">Steps taken (≥ 0).</param>
    /// <param name="buffers">Buffer name → one array per parameter, in the optimizer's parameter order.</param>
    /// <exception cref="ArgumentException">A name is empty, or a buffer list or array is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="steps"/> is negative.</exception>
    public OptimizerState(string optimizer, long steps, IReadOnlyDictionary<string, T[][]> buffers)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(optimizer);
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        ArgumentNullException.ThrowIfNull(buffers);
        foreach (var (name, arrays) in buffers)
        {
            if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A buffer name is empty.", nameof(buffers));
            if (arrays is null || arrays.Any(a => a is null)) throw new ArgumentException($"Buffer \"{name}\" has a missing array.", nameof(buffers));
        }

        Optimizer = optimizer;
        Steps = steps;
        Buffers = buffers;
    }

    /// <summary>The optimizer's kind, e.g. "Adam".</summary>
    public string Optimizer { get; }

    /// <summary>Steps taken (PyTorch's <c>step</c>; Adam's bias correction uses it).</summary>
    public long Steps { get; }

    /// <summary>Buffer name → one array per parameter.</summary>
    public IReadOnlyDictionary<string, T[][]> Buffers { get; }
}

/// <summary>
/// What the built-in optimizers share: the parameters, the learning rate, the step count and optional clipping of
/// the gradients by their global norm before each update (<see cref="MaxGradientNorm"/>). <see cref="Step"/>
/// clips, updates, clears the gradients and counts the step; after the first step it allocates nothing.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public abstract class Optimizer<T> : IOptimizer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Parameter<T>[] _parameters;

    private protected Optimizer(IEnumerable<Parameter<T>> parameters, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _parameters = parameters.ToArray();
        if (_parameters.Any(p => p is null)) throw new ArgumentException("A parameter is null.", nameof(parameters));
        if (_parameters.Distinct().Count() != _parameters.Length) throw new ArgumentException("A parameter is listed twice.", nameof(parameters));
        LearningRate = learningRate;
    }

    /// <summary>The optimizer's kind as PyTorch names it ("SGD", "Adam", "AdamW"), recorded in its state.</summary>
    public abstract string Name { get; }

    /// <inheritdoc />
    public double LearningRate
    {
        get;
        set => field = value > 0 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"{Name}: the learning rate must be positive and finite.");
    }

    /// <summary>
    /// When set, each <see cref="Step"/> first scales the gradients as PyTorch's <c>clip_grad_norm_</c> does, so
    /// that their global L2 norm is at most this (see <see cref="GradientClipping.ClipByGlobalNorm{T}"/>); null (the
    /// default) leaves them as they are.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not positive and finite.</exception>
    public double? MaxGradientNorm
    {
        get;
        set => field = value is not { } v || (v > 0 && double.IsFinite(v))
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"{Name}: the maximum gradient norm must be positive and finite (or null for no clipping).");
    }

    /// <summary>The global L2 norm of the gradients at the last step, before clipping; NaN until a step has clipped.</summary>
    public double LastGradientNorm { get; private set; } = double.NaN;

    /// <summary>Steps taken so far (restored from a checkpoint with <see cref="LoadState"/>).</summary>
    public long Steps { get; private set; }

    /// <inheritdoc />
    public IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>The parameters as an array, for the update loops.</summary>
    private protected Parameter<T>[] ParameterArray => _parameters;

    /// <summary>Clips the gradients when <see cref="MaxGradientNorm"/> is set, applies the update, clears the gradients and counts the step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Step()
    {
        if (MaxGradientNorm is { } max) LastGradientNorm = GradientClipping.ClipByGlobalNorm(_parameters, max);
        Steps++;
        Update(Steps);
        foreach (var p in _parameters) p.Gradient.Span.Clear();
    }

    /// <summary>Applies the update rule to every parameter from its gradient (which it may change).</summary>
    /// <param name="step">This step's 1-based number.</param>
    private protected abstract void Update(long step);

    /// <summary>The names of the per-parameter buffers this optimizer keeps now (none, for SGD without momentum).</summary>
    private protected abstract IReadOnlyList<(string Name, T[][] Arrays)> Buffers { get; }

    /// <inheritdoc />
    public OptimizerState<T> SaveState() => new(Name, Steps,
        Buffers.ToDictionary(b => b.Name, b => b.Arrays.Select(a => (T[])a.Clone()).ToArray()));

    /// <inheritdoc />
    public void LoadState(OptimizerState<T> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Optimizer != Name)
        {
            throw new ArgumentException($"The state is {state.Optimizer}'s; this optimizer is {Name}.", nameof(state));
        }

        var mine = Buffers;
        var unexpected = state.Buffers.Keys.Where(k => mine.All(b => b.Name != k)).ToList();
        if (unexpected.Count > 0)
        {
            throw new ArgumentException($"{Name} keeps no buffer \"{unexpected[0]}\" with these settings; it keeps {Names(mine)}.", nameof(state));
        }

        foreach (var (name, arrays) in mine)
        {
            if (!state.Buffers.TryGetValue(name, out var saved))
            {
                throw new ArgumentException($"The state has no \"{name}\" buffers; {Name} keeps {Names(mine)}.", nameof(state));
            }

            if (saved.Length != arrays.Length)
            {
                throw new ArgumentException($"The state has {saved.Length} \"{name}\" buffers for {arrays.Length} parameters.", nameof(state));
            }

            for (int i = 0; i < arrays.Length; i++)
            {
                if (saved[i].Length != arrays[i].Length)
                {
                    throw new ArgumentException(
                        $"\"{name}\" buffer {i} has {saved[i].Length} elements; parameter {_parameters[i]} has {arrays[i].Length}.", nameof(state));
                }
            }
        }

        foreach (var (name, arrays) in mine)
        {
            var saved = state.Buffers[name];
            for (int i = 0; i < arrays.Length; i++) saved[i].CopyTo(arrays[i], 0);
        }

        Steps = state.Steps;
    }

    private static string Names(IReadOnlyList<(string Name, T[][] Arrays)> buffers) =>
        buffers.Count == 0 ? "none" : string.Join(", ", buffers.Select(b => $"\"{b.Name}\""));

    /// <summary>Throws unless <paramref name="value"/> is in [0, 1).</summary>
    private protected static void RequireFraction(double value, string name, string what)
    {
        if (!(value >= 0 && value < 1)) throw new ArgumentOutOfRangeException(name, value, $"{what} must be in [0, 1).");
    }
}

/// <summary>Clipping of gradients by their global norm, as PyTorch's <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales the gradients of <paramref name="parameters"/> so that their global L2 norm (as if they were one vector)
    /// is at most about <paramref name="maxNorm"/>: with total norm n, every gradient is multiplied by
    /// min(1, maxNorm / (n + 10⁻⁶)), PyTorch's rule. As in PyTorch, a NaN norm makes every gradient NaN and an infinite
    /// one zeroes the finite gradients. The norm is summed in double, in a fixed order; nothing is allocated.
    /// </summary>
    /// <param name="parameters">The parameters whose gradients are clipped.</param>
    /// <param name="maxNorm">The largest norm allowed (positive and finite).</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>The global norm before clipping.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxNorm"/> is not positive and finite.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static double ClipByGlobalNorm<T>(IReadOnlyList<Parameter<T>> parameters, double maxNorm) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm > 0 && double.IsFinite(maxNorm)))
        {
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The maximum gradient norm must be positive and finite.");
        }

        double total = 0;
        for (int p = 0; p < parameters.Count; p++) total += SumOfSquares<T>(parameters[p].Gradient.Span);
        double norm = Math.Sqrt(total);
        double coefficient = Math.Min(maxNorm / (norm + 1e-6), 1.0); // NaN stays NaN, as torch.clamp keeps it
        if (coefficient != 1.0)
        {
            T c = T.CreateTruncating(coefficient);
            for (int p = 0; p < parameters.Count; p++)
            {
                Span<T> g = parameters[p].Gradient.Span;
                for (int i = 0; i < g.Length; i++) g[i] *= c;
            }
        }

        return norm;
    }

    /// <summary>Σ x² in double, with four running sums in a fixed order (the same bits on every machine).</summary>
    private static double SumOfSquares<T>(ReadOnlySpan<T> x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (; i + 4 <= x.Length; i += 4)
        {
            double a = double.CreateTruncating(x[i]), b = double.CreateTruncating(x[i + 1]);
            double c = double.CreateTruncating(x[i + 2]), d = double.CreateTruncating(x[i + 3]);
            s0 += a * a;
            s1 += b * b;
            s2 += c * c;
            s3 += d * d;
        }

        for (; i < x.Length; i++)
        {
            double a = double.CreateTruncating(x[i]);
            s0 += a * a;
        }

        return (s0 + s1) + (s2 + s3);
    }
}
