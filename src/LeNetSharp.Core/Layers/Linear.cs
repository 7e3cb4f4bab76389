using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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

    /// <summary>
    /// The matrix multiply this layer runs (default <see cref="Tensors.GemmProvider.Default"/>). A
    /// <see cref="Sequential{T}"/> sets it on every layer from its own <see cref="Sequential{T}.GemmProvider"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException">The value is null.</exception>
    public GemmProvider GemmProvider
    {
        get;
        set => field = value ?? throw new ArgumentNullException(nameof(value));
    } = GemmProvider.Default;

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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        int n = input.Dim(0);
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, n, OutFeatures);
        if (DirectForward(n, input, output)) return output;
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
        if (!AddWeightGradient(_input.Data, dy, n))
        {
            Gemm.Multiply(GemmProvider, true, false, InFeatures, OutFeatures, n, T.One, _input.Data, dy, T.One, Weight.Gradient.Data);
        }
        RowOps.AddColumnSums<T>(dy, Bias.Gradient.Span);

        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, InFeatures);
        Gemm.Multiply(GemmProvider, false, true, n, InFeatures, OutFeatures, T.One, dy, Weight.Value.Data, T.Zero, inputGrad.Data);
        return inputGrad;
    }

    /// <summary>
    /// y = x·W + b as a 1x1 convolution over (N, 1, 1, in) (<see cref="DirectConv{TOps, TV, T}"/>): with the SIMD GEMM
    /// (whose width it takes) and at least a vector of outputs, reading W in place (no padded copy per call). The same
    /// bits as that GEMM. False when it does not apply.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectForward(int n, Tensor<T> input, Tensor<T> output) =>
        DirectConv.TryForward(GemmProvider, new ConvGeometry(n, 1, 1, InFeatures, 1, 1, 1, 0), OutFeatures, input.Data, Weight.Value.Data, Bias.Value.Data, output.Data);

    /// <summary>
    /// ∂W += xᵀ·∂y for a few rows (up to 8) with the SIMD GEMM's arithmetic — per element one chain of fused
    /// multiply-adds from zero over the rows in order, then old + chain — without its packing and tiling, which cost more
    /// than the arithmetic here: the same bits. False (the GEMM runs) for other GEMMs, batches or widths of W.
    /// </summary>
    private bool AddWeightGradient(T[] x, T[] dy, int n) => n <= 8 ? (GemmProvider as SimdGemmProvider)?.VectorBits switch
    {
        512 => AddWeightGradient<Simd512<T>, Vector512<T>>(x, dy, n),
        256 => AddWeightGradient<Simd256<T>, Vector256<T>>(x, dy, n),
        128 => AddWeightGradient<Simd128<T>, Vector128<T>>(x, dy, n),
        _ => false,
    } : false;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool AddWeightGradient<TOps, TV>(T[] x, T[] dy, int n) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int inF = InFeatures, outF = OutFeatures, w = TOps.Count;
        bool twoShifted = outF > w && outF <= 2 * w && outF % w != 0; // vectors at 0 and out − W, overlapping
        if (outF % w != 0 && !twoShifted) return false;
        ref T x0 = ref x[0];
        ref T dy0 = ref dy[0];
        ref T dw0 = ref Weight.Gradient.Data[0];
        int last = outF - w;
        for (int i = 0; i < inF; i++)
        {
            ref T row = ref Unsafe.Add(ref dw0, i * outF);
            if (twoShifted)
            {
                // Both old values are read before either store: the overlapping lanes get the same value twice.
                TV old0 = TOps.Load(ref row), old1 = TOps.Load(ref Unsafe.Add(ref row, last));
                TV sum0 = Chain<TOps, TV>(ref x0, ref dy0, n, inF, outF, i, 0), sum1 = Chain<TOps, TV>(ref x0, ref dy0, n, inF, outF, i, last);
                TOps.Store(TOps.Add(old1, sum1), ref Unsafe.Add(ref row, last));
                TOps.Store(TOps.Add(old0, sum0), ref row);
                continue;
            }

            for (int j = 0; j < outF; j += w)
            {
                ref T at = ref Unsafe.Add(ref row, j);
                TOps.Store(TOps.Add(TOps.Load(ref at), Chain<TOps, TV>(ref x0, ref dy0, n, inF, outF, i, j)), ref at);
            }
        }

        return true;
    }

    /// <summary>Σ_b x[b, i]·∂y[b, j … j + W − 1], fused multiply-adds from zero over b in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Chain<TOps, TV>(ref T x0, ref T dy0, int n, int inF, int outF, int i, int j) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        TV sum = TOps.Zero;
        for (int b = 0; b < n; b++) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref x0, b * inF + i)), TOps.Load(ref Unsafe.Add(ref dy0, b * outF + j)), sum);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void RequireInput(ReadOnlySpan<int> shape)
    {
        if (shape.Length != 2 || shape[1] != InFeatures)
        {
            throw new ArgumentException($"{Name}: expected input (N, {InFeatures}), got {Tensor<T>.ShapeToString(shape)}.");
        }
    }
}
