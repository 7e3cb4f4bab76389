using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="Conv{T}"/> at one SIMD width, the same bits as the layer's im2col + GEMM with that width's GEMM:
/// <list type="bullet">
/// <item>forward straight from the input (<see cref="DirectConv{TOps, TV, T}"/>) for stride 1, several input channels and
/// at least a vector of outputs; with padding, from a copy of the input with its zero border (the patch matrix's zeros,
/// multiplied in the same order: the same bits) instead of the patch matrix nine or more times its size;</item>
/// <item>single-channel inputs keep the patch matrix transposed, Pᵀ (K, M): built from contiguous runs and multiplied
/// along its long side;</item>
/// <item>backward from ∂y's nonzeros (<see cref="SparseConvBackward{TOps, TV, T}"/>) for stride 1 and no padding, without
/// the patch matrix or ∂P, where x (for ∂K) and K (for ∂x) are finite: it leaves out the 0·∞ terms the GEMM turns into NaN.</item>
/// </list>
/// It uses the layer's own parameters and settings, so training, saving and loading see no difference.
/// </summary>
internal sealed class ConvStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Conv<T> _conv;
    private readonly int _bits;
    private readonly GemmProvider _gemm;
    private Tensor<T>? _patches;      // P (M, K) of the last forward, or Pᵀ when TransposedPatches
    private Tensor<T>? _output;       // y: (N, OH, OW, OC)
    private Tensor<T>? _patchGrad;    // ∂P, or ∂Pᵀ when TransposedPatches
    private Tensor<T>? _inputGrad;    // ∂x: (N, H, W, C)
    private Tensor<T>? _input;        // x of the last forward when it ran without patches (the caller's tensor; not copied)
    private T[] _padded = [];         // x with its zero border, for a padded direct forward
    private ConvGeometry _geometry;
    private SparseConvScratch<T>? _sparse;
    private T[] _accumulators = [];   // the direct backward's ∂K chains
    private T[] _packedWeight = [];   // K's taps as (OC, C) rows for the direct ∂x
    private int[] _schedule = [];     // the direct ∂x's blocks of input pixels, built for _scheduled
    private int _blocks;
    private ConvGeometry _scheduled;

    public ConvStep(Conv<T> conv, int bits)
    {
        _conv = conv;
        _bits = bits;
        _gemm = GemmProvider.SimdWithWidth(bits);
    }

    /// <summary>Whether the step has anything faster than the layer for <paramref name="conv"/>.</summary>
    public static bool Applies(Conv<T> conv) => conv.InChannels == 1 || conv.Stride == 1;

    public override string Name => $"{_conv.Name} (Vector{_bits})";

    public override int LayerCount => 1;

    private int OutChannels => _conv.OutChannels;

    /// <summary>Single-channel inputs keep Pᵀ (K, M); others keep P (M, K), whose rows are runs of KW·C elements.</summary>
    private bool TransposedPatches => _conv.InChannels == 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        _conv.RequireInput(input.Shape);
        var g = _geometry = _conv.Geometry(input.Shape);
        int m = g.PatchRows, k = g.PatchColumns;
        var output = Tensor<T>.Reuse(ref _output, g.N, g.OH, g.OW, OutChannels);
        _input = null;
        if (DirectForward(g, input, output))
        {
            _input = input; // backward builds the patches from it
            return output;
        }

        // y = b broadcast over rows, then y += P·K.
        RowOps.BroadcastRows<T>(_conv.Bias.Value.Span, output.Span);
        if (TransposedPatches)
        {
            var patchesT = Tensor<T>.Reuse(ref _patches, k, m);
            Im2Col.ForwardTransposed<T>(input.Data, g, patchesT.Data);
            Gemm.Multiply(_gemm, true, false, m, OutChannels, k, T.One, patchesT.Data, _conv.Weight.Value.Data, T.One, output.Data);
        }
        else
        {
            var patches = Tensor<T>.Reuse(ref _patches, m, k);
            Im2Col.Forward<T>(input.Data, g, patches.Data);
            Gemm.Multiply(_gemm, false, false, m, OutChannels, k, T.One, patches.Data, _conv.Weight.Value.Data, T.One, output.Data);
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var g = _geometry;
        int m = g.PatchRows, k = g.PatchColumns;
        T[] dy = outputGradient.Data;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, g.H, g.W, g.C);
        if (_input is { } x)
        {
            // x stays for another backward of the same forward (the patches built here would do, but a direct
            // backward reads x itself).
            if (SparseBackward(dy, g, x.Data, inputGrad.Data)) return inputGrad;
            if (DirectBackward(dy, g, x.Data, inputGrad.Data)) return inputGrad;
            if (TransposedPatches) Im2Col.ForwardTransposed<T>(x.Data, g, Tensor<T>.Reuse(ref _patches, k, m).Data);
            else Im2Col.Forward<T>(x.Data, g, Tensor<T>.Reuse(ref _patches, m, k).Data);
        }

        // ∂K (KH·KW·C, OC) += Pᵀ (K, M) · ∂y (M, OC)
        Gemm.Multiply(_gemm, !TransposedPatches, false, k, OutChannels, m, T.One, _patches!.Data, dy, T.One, _conv.Weight.Gradient.Data);

        // ∂b += column sums of ∂y
        RowOps.AddColumnSums<T>(dy, _conv.Bias.Gradient.Span);

        if (!_conv.ComputeInputGradient)
        {
            inputGrad.Clear();
            return inputGrad;
        }

        if (TransposedPatches || !SparseBackward(dy, g, null, inputGrad.Data)) InputGradientThroughPatches(dy, g, inputGrad.Data);
        return inputGrad;
    }

    /// <summary>∂x through the patch matrix's gradient: ∂P = ∂y·Kᵀ (∂Pᵀ = K·∂yᵀ for single-channel inputs) scattered back onto the image.</summary>
    private void InputGradientThroughPatches(T[] dy, in ConvGeometry g, T[] dx)
    {
        int m = g.PatchRows, k = g.PatchColumns;
        if (TransposedPatches)
        {
            var patchGradT = Tensor<T>.Reuse(ref _patchGrad, k, m);
            Gemm.Multiply(_gemm, false, true, k, m, OutChannels, T.One, _conv.Weight.Value.Data, dy, T.Zero, patchGradT.Data);
            Im2Col.BackwardTransposed<T>(patchGradT.Data, g, dx);
        }
        else
        {
            var patchGrad = Tensor<T>.Reuse(ref _patchGrad, m, k);
            Gemm.Multiply(_gemm, false, true, m, k, OutChannels, T.One, dy, _conv.Weight.Value.Data, T.Zero, patchGrad.Data);
            Im2Col.Backward<T>(patchGrad.Data, g, dx);
        }
    }

    /// <summary>
    /// ∂K, ∂b and ∂x (when wanted) from ∂y's nonzeros without the patch matrix or ∂P, bit for bit the im2col + GEMM
    /// path's result (<see cref="SparseConvBackward{TOps, TV, T}"/>); with <paramref name="x"/> null ∂x only (the caller
    /// has added ∂K and ∂b). False when the shape is not one it takes (nothing is written then).
    /// </summary>
    /// <remarks>
    /// Non-finite inputs, weights and gradients, which it would not give the GEMM path's bits for
    /// (<see cref="SparseConvBackward{TOps, TV, T}.Exact"/>), take the other paths, so that every width gives the layer's
    /// bits whichever path its forward took.
    /// </remarks>
    private bool SparseBackward(T[] dy, in ConvGeometry g, T[]? x, T[] dx) =>
        SparseConvBackward<Simd128<T>, Vector128<T>, T>.Supports(g, OutChannels) // the shape first: Exact reads all of x, K and ∂y
        && SparseConvBackward<Simd128<T>, Vector128<T>, T>.Exact(x, _conv.Weight.Value.Data, dy, inputGradient: x is null || _conv.ComputeInputGradient)
        && _bits switch
    {
        512 => SparseBackward<Simd512<T>, Vector512<T>>(dy, g, x, dx),
        256 => SparseBackward<Simd256<T>, Vector256<T>>(dy, g, x, dx),
        _ => SparseBackward<Simd128<T>, Vector128<T>>(dy, g, x, dx),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool SparseBackward<TOps, TV>(T[] dy, in ConvGeometry g, T[]? x, T[] dx) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        if (!SparseConvBackward<TOps, TV, T>.Supports(g, OutChannels)) return false;
        var scratch = _sparse ??= new();
        SparseConvBackward<TOps, TV, T>.Gather(g, OutChannels, dy, scratch);
        if (x is not null)
        {
            SparseConvBackward<TOps, TV, T>.WeightGradient(g, OutChannels, x, dy, _conv.Weight.Gradient.Data, scratch);
            RowOps.AddColumnSums<T>(dy, _conv.Bias.Gradient.Span);
        }

        if (x is null || _conv.ComputeInputGradient) SparseConvBackward<TOps, TV, T>.InputGradient(g, OutChannels, _conv.Weight.Value.Data, dx, scratch);
        else Array.Clear(dx);
        return true;
    }

    /// <summary>
    /// ∂K, ∂b and ∂x (when wanted) straight from x (framed by its zero border when padded, as the direct forward left it)
    /// and ∂y, without the patch matrix or ∂P: bit for bit the im2col + GEMM path (<see cref="DirectConvBackward{TOps, TV, T}"/>).
    /// ∂x goes through ∂P + col2im when the input has fewer channels than a vector. False (nothing written) when it does not apply.
    /// </summary>
    private bool DirectBackward(T[] dy, in ConvGeometry g, T[] x, T[] dx) => _bits switch
    {
        512 => DirectBackward<Simd512<T>, Vector512<T>>(dy, g, x, dx),
        256 => DirectBackward<Simd256<T>, Vector256<T>>(dy, g, x, dx),
        _ => DirectBackward<Simd128<T>, Vector128<T>>(dy, g, x, dx),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectBackward<TOps, TV>(T[] dy, in ConvGeometry g, T[] x, T[] dx) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        if (!DirectConvBackward<TOps, TV, T>.SupportsWeightGradient(g, OutChannels)) return false;
        var framed = g with { H = g.H + 2 * g.Padding, W = g.W + 2 * g.Padding, Padding = 0 };
        Scratch.Ensure(ref _accumulators, DirectConvBackward<TOps, TV, T>.AccumulatorLength(g, OutChannels));
        DirectConvBackward<TOps, TV, T>.WeightGradient(framed, OutChannels, g.Padding == 0 ? x : _padded, dy, _accumulators, _conv.Weight.Gradient.Data, _conv.Bias.Gradient.Span);
        if (!_conv.ComputeInputGradient)
        {
            Array.Clear(dx);
        }
        else if (DirectConvBackward<TOps, TV, T>.Supports(g, OutChannels))
        {
            Scratch.Ensure(ref _packedWeight, g.PatchColumns * OutChannels);
            if (_scheduled != g)
            {
                Scratch.Ensure(ref _schedule, InputSchedule.Length(g));
                _blocks = InputSchedule.Build(g, _schedule);
                _scheduled = g;
            }

            DirectConvBackward<TOps, TV, T>.InputGradient(g, OutChannels, dy, _conv.Weight.Value.Data, _packedWeight, _schedule, _blocks, dx);
        }
        else
        {
            InputGradientThroughPatches(dy, g, dx);
        }

        return true;
    }

    /// <summary>y = conv(x) + b straight from the input: stride 1, several input channels (padded ones through a zero-framed copy). False when it does not apply.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectForward(in ConvGeometry g, Tensor<T> input, Tensor<T> output)
    {
        if (_conv.Stride != 1) return false;
        if (g.Padding == 0) return DirectConv.TryForward(_bits, g, OutChannels, input.Data, _conv.Weight.Value.Data, _conv.Bias.Value.Data, output.Data);

        // The same convolution without padding over the input framed by zeros: each output is the same chain over the
        // same taps, the border's zeros where the patch matrix has them.
        int p = g.Padding, h = g.H + 2 * p, w = g.W + 2 * p, c = g.C;
        var padded = g with { H = h, W = w, Padding = 0 };
        if (!DirectConv.Supports<T>(_bits, OutChannels)) return false;
        int size = g.N * h * w * c;
        if (_padded.Length != size) _padded = new T[size]; // the border is never written: it stays zero
        var x = input.Span;
        for (int n = 0; n < g.N; n++)
        {
            for (int y = 0; y < g.H; y++)
            {
                x.Slice(((n * g.H + y) * g.W) * c, g.W * c).CopyTo(_padded.AsSpan(((n * h + y + p) * w + p) * c, g.W * c));
            }
        }

        return DirectConv.TryForward(_bits, padded, OutChannels, _padded, _conv.Weight.Value.Data, _conv.Bias.Value.Data, output.Data);
    }
}
