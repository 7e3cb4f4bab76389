using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Fully connected layer, laid out as in the tutorial (weight is (in, out), so y = x·W + b).
/// <code>
/// input  x : (N, in)      weight W : (in, out)      bias b : (out)      output y : (N, out)
/// forward  : y = x·W + b
/// backward : ∂W += xᵀ·∂y;  ∂b += Σ_rows ∂y;  ∂x = ∂y·Wᵀ
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Linear<T> : Layer<T>, IUsesGemm where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Parameter<T>[] _parameters;
    private Tensor<T>? _input;       // x of the last forward (the caller's tensor; not copied)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    /// <summary>Creates a linear layer with He-normal weights drawn from <paramref name="random"/> and zero bias.</summary>
    /// <param name="inFeatures">in (≥ 1).</param>
    /// <param name="outFeatures">out (≥ 1).</param>
    /// <param name="random">Source of the initial weights.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is below 1.</exception>
    public Linear(int inFeatures, int outFeatures, Random random)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        ArgumentNullException.ThrowIfNull(random);
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter<T>("weight", inFeatures, outFeatures);
        Bias = new Parameter<T>("bias", outFeatures);
        Initializers.HeNormal(Weight.Value.Span, inFeatures, random);
        _parameters = [Weight, Bias];
    }

    /// <summary>in, the input features.</summary>
    public int InFeatures { get; }

    /// <summary>out, the output features.</summary>
    public int OutFeatures { get; }

    /// <summary>The weight, shape (in, out).</summary>
    public Parameter<T> Weight { get; }

    /// <summary>The bias, shape (out).</summary>
    public Parameter<T> Bias { get; }

    /// <summary>The matrix multiply this layer runs; the network's execution plan sets it from its backend.</summary>
    internal GemmProvider GemmProvider
    {
        get;
        set => field = value ?? throw new ArgumentNullException(nameof(value));
    } = GemmProvider.Default;

    GemmProvider IUsesGemm.GemmProvider { get => GemmProvider; set => GemmProvider = value; }

    /// <inheritdoc />
    public override string Name => $"Linear {InFeatures}→{OutFeatures}";

    /// <inheritdoc />
    public override IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireInput(inputShape);
        return [inputShape[0], OutFeatures];
    }

    /// <inheritdoc />
    public override LayerDescription Describe() => new("Linear", ("in", InFeatures), ("out", OutFeatures));

    /// <summary>The layer a <see cref="Describe"/> result stands for (weights from a fixed seed; loading or cloning overwrites them).</summary>
    internal static Linear<T> FromDescription(LayerDescription d) => new(d.GetInt("in", 1), d.GetInt("out", 1), new Random(0));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        int n = input.Dim(0);
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, n, OutFeatures);

        // y = b broadcast over rows, then y += x (N, in) · W (in, out).
        RowOps.BroadcastRows<T>(Bias.Value.Span, output.Span);
        Gemm.Multiply(GemmProvider, false, false, n, OutFeatures, InFeatures, T.One, input.Data, Weight.Value.Data, T.One, output.Data);
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int n = _input!.Dim(0);
        T[] dy = outputGradient.Data;

        // ∂W (in, out) += xᵀ (in, N) · ∂y (N, out);  ∂b += column sums of ∂y.
        Gemm.Multiply(GemmProvider, true, false, InFeatures, OutFeatures, n, T.One, _input.Data, dy, T.One, Weight.Gradient.Data);
        RowOps.AddColumnSums<T>(dy, Bias.Gradient.Span);

        // ∂x (N, in) = ∂y (N, out) · Wᵀ (out, in).
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, InFeatures);
        Gemm.Multiply(GemmProvider, false, true, n, InFeatures, OutFeatures, T.One, dy, Weight.Value.Data, T.Zero, inputGrad.Data);
        return inputGrad;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal void RequireInput(ReadOnlySpan<int> shape)
    {
        if (shape.Length != 2 || shape[1] != InFeatures)
        {
            throw new ArgumentException($"{Name}: expected input (N, {InFeatures}), got {Tensor<T>.ShapeToString(shape)}.");
        }
    }
}
