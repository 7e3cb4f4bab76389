using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="Linear{T}"/> at one SIMD width, the same bits as the layer with that width's GEMM: the forward as a 1x1
/// convolution read straight from W (<see cref="DirectConv{TOps, TV, T}"/>), and ∂W for small batches without the
/// GEMM's packing. It uses the layer's own parameters.
/// </summary>
internal sealed class LinearStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Linear<T> _linear;
    private readonly int _bits;
    private readonly GemmProvider _gemm;
    private Tensor<T>? _input;       // x of the last forward (the caller's tensor; not copied)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    public LinearStep(Linear<T> linear, int bits)
    {
        _linear = linear;
        _bits = bits;
        _gemm = GemmProvider.SimdWithWidth(bits);
    }

    public override string Name => $"{_linear.Name} (Vector{_bits})";

    public override int LayerCount => 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        _linear.RequireInput(input.Shape);
        int n = input.Dim(0), inF = _linear.InFeatures, outF = _linear.OutFeatures;
        _input = input;
        var output = Tensor<T>.Reuse(ref _output, n, outF);
        if (DirectForward(n, input, output)) return output;
        RowOps.BroadcastRows<T>(_linear.Bias.Value.Span, output.Span);
        Gemm.Multiply(_gemm, false, false, n, outF, inF, T.One, input.Data, _linear.Weight.Value.Data, T.One, output.Data);
        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int n = _input!.Dim(0), inF = _linear.InFeatures, outF = _linear.OutFeatures;
        T[] dy = outputGradient.Data;
        if (!AddWeightGradient(_input.Data, dy, n))
        {
            Gemm.Multiply(_gemm, true, false, inF, outF, n, T.One, _input.Data, dy, T.One, _linear.Weight.Gradient.Data);
        }

        RowOps.AddColumnSums<T>(dy, _linear.Bias.Gradient.Span);
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, inF);
        Gemm.Multiply(_gemm, false, true, n, inF, outF, T.One, dy, _linear.Weight.Value.Data, T.Zero, inputGrad.Data);
        return inputGrad;
    }

    /// <summary>
    /// y = x·W + b as a 1x1 convolution over (N, 1, 1, in) (<see cref="DirectConv{TOps, TV, T}"/>): with at least a vector of
    /// outputs, reading W in place (no padded copy per call). The same
    /// bits as that GEMM. False when it does not apply.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectForward(int n, Tensor<T> input, Tensor<T> output) =>
        DirectConv.TryForward(_bits, new ConvGeometry(n, 1, 1, _linear.InFeatures, 1, 1, 1, 0), _linear.OutFeatures, input.Data, _linear.Weight.Value.Data, _linear.Bias.Value.Data, output.Data);

    /// <summary>
    /// ∂W += xᵀ·∂y for a few rows (up to 8) with the SIMD GEMM's arithmetic — per element one chain of fused
    /// multiply-adds from zero over the rows in order, then old + chain — without its packing and tiling, which cost more
    /// than the arithmetic here: the same bits. False (the GEMM runs) for other batches or widths of W.
    /// </summary>
    private bool AddWeightGradient(T[] x, T[] dy, int n) => n <= 8 ? _bits switch
    {
        512 => AddWeightGradient<Simd512<T>, Vector512<T>>(x, dy, n),
        256 => AddWeightGradient<Simd256<T>, Vector256<T>>(x, dy, n),
        128 => AddWeightGradient<Simd128<T>, Vector128<T>>(x, dy, n),
        _ => false,
    } : false;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool AddWeightGradient<TOps, TV>(T[] x, T[] dy, int n) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int inF = _linear.InFeatures, outF = _linear.OutFeatures, w = TOps.Count;
        bool twoShifted = outF > w && outF <= 2 * w && outF % w != 0; // vectors at 0 and out − W, overlapping
        if (outF % w != 0 && !twoShifted) return false;
        ref T x0 = ref x[0];
        ref T dy0 = ref dy[0];
        ref T dw0 = ref _linear.Weight.Gradient.Data[0];
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
}
