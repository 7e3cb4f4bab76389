using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="Linear{T}"/> at one SIMD width, the same bits as the layer with that width's GEMM: the forward as a 1x1
/// convolution read straight from W (<see cref="DirectConv{TOps, TV, T}"/>) with the widest vectors up to the step's
/// that the outputs fill; for small batches (up to 8 rows) a
/// backward without the GEMM's packing, tiling and scattered writes, which cost more than the arithmetic there (Linear
/// 256→10 at batch 3: 7,680 multiply-adds each for ∂W and ∂x):
/// <list type="bullet">
/// <item>∂W += xᵀ·∂y with vectors over the outputs, each vector's ∂y rows held in registers down all of W's rows;</item>
/// <item>∂x = ∂y·Wᵀ with vectors over the batch (the narrowest width that holds it): 8 rows of W at a time, each
/// output a chain over W's row in order, the lanes then written to their batch rows.</item>
/// </list>
/// Each element is the GEMM's chain of fused multiply-adds over the same terms in the same order (then old + chain for
/// ∂W), and such a chain gives the same bits at any vector width, so the narrower vectors change nothing. It uses the
/// layer's own parameters.
/// </summary>
internal sealed class LinearStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Linear<T> _linear;
    private readonly int _bits;
    private readonly GemmProvider _gemm;
    private Tensor<T>? _input;       // x of the last forward (the caller's tensor; not copied)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private T[] _gradientT = [];     // ∂yᵀ's columns as vectors over the batch, for the small-batch ∂x

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
        if (!InputGradient(dy, n, inputGrad.Data))
        {
            Gemm.Multiply(_gemm, false, true, n, inF, outF, T.One, dy, _linear.Weight.Value.Data, T.Zero, inputGrad.Data);
        }

        return inputGrad;
    }

    /// <summary>
    /// y = x·W + b as a 1x1 convolution over (N, 1, 1, in) (<see cref="DirectConv{TOps, TV, T}"/>), reading W in place (no
    /// padded copy per call), at the widest width up to the step's that the outputs fill (Linear 256→10 at 512 bits runs
    /// 256-bit vectors): the same bits as that GEMM. False when the outputs fill no vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectForward(int n, Tensor<T> input, Tensor<T> output) =>
        OutputBits() > 0 && DirectConv.TryForward(OutputBits(), new ConvGeometry(n, 1, 1, _linear.InFeatures, 1, 1, 1, 0), _linear.OutFeatures,
            input.Data, _linear.Weight.Value.Data, _linear.Bias.Value.Data, output.Data);

    /// <summary>The widest vector width up to the step's that the outputs fill; 0 when they fill none.</summary>
    private int OutputBits()
    {
        int outF = _linear.OutFeatures;
        if (_bits >= 512 && outF >= Vector512<T>.Count) return 512;
        if (_bits >= 256 && outF >= Vector256<T>.Count) return 256;
        return outF >= Vector128<T>.Count ? 128 : 0;
    }

    /// <summary>Batches up to this many rows take the small-batch backward.</summary>
    private const int SmallBatch = 8;

    /// <summary>
    /// ∂W += xᵀ·∂y for a small batch, with the widest vectors up to the step's that the outputs fill. False (the GEMM
    /// runs) for larger batches or fewer outputs than a 128-bit vector holds.
    /// </summary>
    private bool AddWeightGradient(T[] x, T[] dy, int n)
    {
        if (n > SmallBatch) return false;
        switch (OutputBits())
        {
            case 512: AddWeightGradient<Simd512<T>, Vector512<T>>(x, dy, n); return true;
            case 256: AddWeightGradient<Simd256<T>, Vector256<T>>(x, dy, n); return true;
            case 128: AddWeightGradient<Simd128<T>, Vector128<T>>(x, dy, n); return true;
            default: return false;
        }
    }

    /// <summary>
    /// ∂W += xᵀ·∂y, one vector of outputs at a time (at 0, W, 2W, … and the last one shifted back to end at the output
    /// count): per element one chain of fused multiply-adds from zero over the batch rows in order, then old + chain,
    /// as the GEMM computes it. The shifted last vector leaves the lanes it shares with the one before as that one
    /// stored them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void AddWeightGradient<TOps, TV>(T[] x, T[] dy, int n) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int inF = _linear.InFeatures, outF = _linear.OutFeatures, w = TOps.Count;
        ref T x0 = ref x[0];
        ref T dw0 = ref _linear.Weight.Gradient.Data[0];
        for (int v = 0; v < outF; v += w)
        {
            int at = Math.Min(v, outF - w);
            TV keep = TOps.SelectLow(TOps.AllBitsSet, TOps.Zero, v - at); // lanes already updated by the vector before
            ref T dy0 = ref dy[at];
            ref T dw = ref Unsafe.Add(ref dw0, at);
            switch (n)
            {
                case 1: AddChains<TOps, TV, One>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 2: AddChains<TOps, TV, Two>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 3: AddChains<TOps, TV, Three>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 4: AddChains<TOps, TV, Four>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 5: AddChains<TOps, TV, Five>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 6: AddChains<TOps, TV, Six>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                case 7: AddChains<TOps, TV, Seven>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
                default: AddChains<TOps, TV, Eight>(ref x0, inF, ref dy0, outF, ref dw, keep); break;
            }
        }
    }

    /// <summary>
    /// ∂W[i, vector] += Σ_b x[b, i]·∂y[b, vector] for every row i, <typeparamref name="TN"/> batch rows (their ∂y
    /// vectors in registers); lanes set in <paramref name="keep"/> keep the value they hold.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AddChains<TOps, TV, TN>(ref T x0, int inF, ref T dy0, int outF, ref T dw, TV keep)
        where TOps : struct, ISimdOps<TV, T> where TV : struct where TN : struct, IFixedCount
    {
        int n = TN.Count; // a constant for the JIT
        nint dyStep = outF, x1 = inF, x2 = 2 * x1, x3 = 3 * x1, x4 = 4 * x1, x5 = 5 * x1, x6 = 6 * x1, x7 = 7 * x1;
        TV d0 = TOps.Load(ref dy0);
        TV d1 = n > 1 ? TOps.Load(ref Unsafe.Add(ref dy0, dyStep)) : TOps.Zero;
        TV d2 = n > 2 ? TOps.Load(ref Unsafe.Add(ref dy0, 2 * dyStep)) : TOps.Zero;
        TV d3 = n > 3 ? TOps.Load(ref Unsafe.Add(ref dy0, 3 * dyStep)) : TOps.Zero;
        TV d4 = n > 4 ? TOps.Load(ref Unsafe.Add(ref dy0, 4 * dyStep)) : TOps.Zero;
        TV d5 = n > 5 ? TOps.Load(ref Unsafe.Add(ref dy0, 5 * dyStep)) : TOps.Zero;
        TV d6 = n > 6 ? TOps.Load(ref Unsafe.Add(ref dy0, 6 * dyStep)) : TOps.Zero;
        TV d7 = n > 7 ? TOps.Load(ref Unsafe.Add(ref dy0, 7 * dyStep)) : TOps.Zero;
        ref T row = ref dw;
        for (nint i = 0; i < x1; i++)
        {
            ref T xi = ref Unsafe.Add(ref x0, i);
            TV sum = TOps.MultiplyAdd(TOps.Broadcast(xi), d0, TOps.Zero);
            if (n > 1) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x1)), d1, sum);
            if (n > 2) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x2)), d2, sum);
            if (n > 3) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x3)), d3, sum);
            if (n > 4) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x4)), d4, sum);
            if (n > 5) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x5)), d5, sum);
            if (n > 6) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x6)), d6, sum);
            if (n > 7) sum = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref xi, x7)), d7, sum);
            TV old = TOps.Load(ref row);
            TOps.Store(TOps.Select(keep, old, TOps.Add(old, sum)), ref row);
            row = ref Unsafe.Add(ref row, dyStep);
        }
    }

    /// <summary>
    /// ∂x = ∂y·Wᵀ for a small batch with vectors over the batch rows, at the narrowest width up to the step's that holds
    /// them. False (the GEMM runs) when none does.
    /// </summary>
    private bool InputGradient(T[] dy, int n, T[] dx)
    {
        if (n > SmallBatch) return false;
        if (n <= Vector128<T>.Count) InputGradient<Simd128<T>, Vector128<T>>(dy, n, dx);
        else if (_bits >= 256 && n <= Vector256<T>.Count) InputGradient<Simd256<T>, Vector256<T>>(dy, n, dx);
        else if (_bits >= 512 && n <= Vector512<T>.Count) InputGradient<Simd512<T>, Vector512<T>>(dy, n, dx);
        else return false;
        return true;
    }

    /// <summary>
    /// ∂x[b, i] = Σ_j ∂y[b, j]·W[i, j], one chain of fused multiply-adds from zero over j in order per element (the
    /// GEMM's), lanes over b: ∂yᵀ's columns as vectors (lanes past the batch zero), 8 rows of W at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void InputGradient<TOps, TV>(T[] dy, int n, T[] dx) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int inF = _linear.InFeatures, outF = _linear.OutFeatures, w = TOps.Count;
        Scratch.Ensure(ref _gradientT, outF * w);
        ref T dyT = ref _gradientT[0];
        for (int j = 0; j < outF; j++)
        {
            for (int b = 0; b < w; b++) Unsafe.Add(ref dyT, j * w + b) = b < n ? dy[b * outF + j] : T.Zero;
        }

        Span<T> tile = stackalloc T[8 * w];
        ref T t0 = ref MemoryMarshal.GetReference(tile);
        ref T weight = ref _linear.Weight.Value.Data[0];
        ref T dx0 = ref dx[0];
        for (int i = 0; i < inF; i += 8)
        {
            int rows = Math.Min(8, inF - i);
            Rows8<TOps, TV>(ref Unsafe.Add(ref weight, (nint)i * outF), outF, rows, ref dyT, ref t0);
            for (int b = 0; b < n; b++)
            {
                ref T dst = ref Unsafe.Add(ref dx0, (nint)b * inF + i);
                for (int r = 0; r < rows; r++) Unsafe.Add(ref dst, r) = Unsafe.Add(ref t0, r * w + b);
            }
        }
    }

    /// <summary>
    /// Tile row r = Σ_j W[r, j]·∂yᵀ[j] (from zero, j in order) for W's rows 0 … 7 at <paramref name="weight"/> (rows past
    /// <paramref name="rows"/> repeat the last one).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows8<TOps, TV>(ref T weight, int outF, int rows, ref T dyT, ref T tile) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        nint w = TOps.Count, o1 = Row(1, rows, outF), o2 = Row(2, rows, outF), o3 = Row(3, rows, outF), o4 = Row(4, rows, outF);
        nint o5 = Row(5, rows, outF), o6 = Row(6, rows, outF), o7 = Row(7, rows, outF);
        TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero, a4 = TOps.Zero, a5 = TOps.Zero, a6 = TOps.Zero, a7 = TOps.Zero;
        ref T d = ref dyT;
        ref T u = ref weight;
        for (int j = 0; j < outF; j++)
        {
            TV v = TOps.Load(ref d);
            a0 = TOps.MultiplyAdd(TOps.Broadcast(u), v, a0);
            a1 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o1)), v, a1);
            a2 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o2)), v, a2);
            a3 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o3)), v, a3);
            a4 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o4)), v, a4);
            a5 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o5)), v, a5);
            a6 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o6)), v, a6);
            a7 = TOps.MultiplyAdd(TOps.Broadcast(Unsafe.Add(ref u, o7)), v, a7);
            d = ref Unsafe.Add(ref d, w);
            u = ref Unsafe.Add(ref u, 1);
        }

        TOps.Store(a0, ref tile); TOps.Store(a1, ref Unsafe.Add(ref tile, w)); TOps.Store(a2, ref Unsafe.Add(ref tile, 2 * w));
        TOps.Store(a3, ref Unsafe.Add(ref tile, 3 * w)); TOps.Store(a4, ref Unsafe.Add(ref tile, 4 * w)); TOps.Store(a5, ref Unsafe.Add(ref tile, 5 * w));
        TOps.Store(a6, ref Unsafe.Add(ref tile, 6 * w)); TOps.Store(a7, ref Unsafe.Add(ref tile, 7 * w));
    }

    /// <summary>Offset of block row <paramref name="i"/>; rows past the last re-read it (their sums are not written).</summary>
    private static nint Row(int i, int rows, int stride) => (nint)Math.Min(i, rows - 1) * stride;
}
