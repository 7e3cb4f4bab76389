using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// 2-D convolution (cross-correlation, as in every deep-learning library) over NHWC images, computed as
/// im2col + GEMM.
/// <code>
/// input  x : (N, H, W, C)
/// weight K : (KH, KW, C, OC)        bias b : (OC)
/// output y : (N, OH, OW, OC)        OH = (H + 2·pad − KH) / stride + 1, likewise OW
/// forward  : P = im2col(x) (N·OH·OW, KH·KW·C);  y = P·K + b
/// backward : ∂K += Pᵀ·∂y;  ∂b += Σ_rows ∂y;  ∂x = col2im(∂y·Kᵀ)
/// </code>
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class Conv<T> : Layer<T>, IUsesGemm where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Parameter<T>[] _parameters;
    private Tensor<T>? _patches;      // P (N·OH·OW, KH·KW·C) of the last forward, or Pᵀ when TransposedPatches
    private Tensor<T>? _output;       // y: (N, OH, OW, OC)
    private Tensor<T>? _patchGrad;    // ∂P, or ∂Pᵀ when TransposedPatches
    private Tensor<T>? _inputGrad;    // ∂x: (N, H, W, C)
    private Tensor<T>? _input;        // x of the last forward when it ran without patches (the caller's tensor; not copied)
    private ConvGeometry _geometry;
    private SparseConvScratch<T>? _sparse;

    /// <summary>Creates a convolution with He-normal weights drawn from <paramref name="random"/> and zero bias.</summary>
    /// <param name="inChannels">C, input channels (≥ 1).</param>
    /// <param name="outChannels">OC, output channels (≥ 1).</param>
    /// <param name="kernelHeight">KH (≥ 1).</param>
    /// <param name="kernelWidth">KW (≥ 1).</param>
    /// <param name="random">Source of the initial weights; pass a seeded instance for reproducible runs.</param>
    /// <param name="stride">Step between windows in both directions (default 1, ≥ 1).</param>
    /// <param name="padding">Zeros added on every side (default 0, ≥ 0).</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is out of range.</exception>
    public Conv(int inChannels, int outChannels, int kernelHeight, int kernelWidth, Random random, int stride = 1, int padding = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outChannels, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kernelHeight, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kernelWidth, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(stride, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        ArgumentNullException.ThrowIfNull(random);
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelHeight = kernelHeight;
        KernelWidth = kernelWidth;
        Stride = stride;
        Padding = padding;
        Weight = new Parameter<T>("weight", kernelHeight, kernelWidth, inChannels, outChannels);
        Bias = new Parameter<T>("bias", outChannels);
        Initializers.HeNormal(Weight.Value.Span, kernelHeight * kernelWidth * inChannels, random);
        _parameters = [Weight, Bias];
    }

    /// <summary>C, the input channels.</summary>
    public int InChannels { get; }

    /// <summary>OC, the output channels.</summary>
    public int OutChannels { get; }

    /// <summary>KH, the kernel height.</summary>
    public int KernelHeight { get; }

    /// <summary>KW, the kernel width.</summary>
    public int KernelWidth { get; }

    /// <summary>Step between windows.</summary>
    public int Stride { get; }

    /// <summary>Zero padding on every side.</summary>
    public int Padding { get; }

    /// <summary>The kernel, shape (KH, KW, C, OC).</summary>
    public Parameter<T> Weight { get; }

    /// <summary>The bias, shape (OC).</summary>
    public Parameter<T> Bias { get; }

    /// <summary>
    /// When false, <see cref="ILayer{T}.Backward"/> still fills the weight and bias gradients but skips ∂x (a GEMM and a
    /// col2im) and returns zeros of the input's shape. Use it for a network's first layer, whose input gradient
    /// nobody reads. Default true.
    /// </summary>
    public bool ComputeInputGradient { get; set; } = true;

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
    public override string Name => $"Conv {KernelHeight}x{KernelWidth} {InChannels}→{OutChannels} stride {Stride} pad {Padding}";

    /// <inheritdoc />
    public override IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <inheritdoc />
    public override int[] OutputShape(ReadOnlySpan<int> inputShape)
    {
        RequireInput(inputShape);
        var g = Geometry(inputShape);
        return [g.N, g.OH, g.OW, OutChannels];
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        var g = _geometry = Geometry(input.Shape);
        int m = g.PatchRows, k = g.PatchColumns;
        var output = Tensor<T>.Reuse(ref _output, g.N, g.OH, g.OW, OutChannels);
        _input = null;
        if (DirectForward(g, input, output))
        {
            _input = input; // backward builds the patches from it
            return output;
        }

        // y = b broadcast over rows, then y += P·K.
        RowOps.BroadcastRows<T>(Bias.Value.Span, output.Span);
        if (TransposedPatches)
        {
            var patchesT = Tensor<T>.Reuse(ref _patches, k, m);
            Im2Col.ForwardTransposed<T>(input.Data, g, patchesT.Data);
            Gemm.Multiply(GemmProvider, true, false, m, OutChannels, k, T.One, patchesT.Data, Weight.Value.Data, T.One, output.Data);
        }
        else
        {
            var patches = Tensor<T>.Reuse(ref _patches, m, k);
            Im2Col.Forward<T>(input.Data, g, patches.Data);
            Gemm.Multiply(GemmProvider, false, false, m, OutChannels, k, T.One, patches.Data, Weight.Value.Data, T.One, output.Data);
        }

        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var g = _geometry;
        int m = g.PatchRows, k = g.PatchColumns;
        T[] dy = outputGradient.Data;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, g.H, g.W, g.C);
        if (_input is { } x)
        {
            _input = null;
            if (SparseBackward(dy, g, x.Data, inputGrad.Data)) return inputGrad;
            Im2Col.Forward<T>(x.Data, g, Tensor<T>.Reuse(ref _patches, m, k).Data);
        }

        // ∂K (KH·KW·C, OC) += Pᵀ (K, M) · ∂y (M, OC)
        Gemm.Multiply(GemmProvider, !TransposedPatches, false, k, OutChannels, m, T.One, _patches!.Data, dy, T.One, Weight.Gradient.Data);

        // ∂b += column sums of ∂y
        RowOps.AddColumnSums<T>(dy, Bias.Gradient.Span);

        if (!ComputeInputGradient)
        {
            inputGrad.Clear();
            return inputGrad;
        }

        if (TransposedPatches)
        {
            // ∂Pᵀ (K, M) = K (K, OC) · ∂yᵀ (OC, M), then scatter back onto the image.
            var patchGradT = Tensor<T>.Reuse(ref _patchGrad, k, m);
            Gemm.Multiply(GemmProvider, false, true, k, m, OutChannels, T.One, Weight.Value.Data, dy, T.Zero, patchGradT.Data);
            Im2Col.BackwardTransposed<T>(patchGradT.Data, g, inputGrad.Data);
        }
        else if (!SparseBackward(dy, g, null, inputGrad.Data))
        {
            // ∂P (M, K) = ∂y (M, OC) · Kᵀ (OC, K), then scatter back onto the image.
            var patchGrad = Tensor<T>.Reuse(ref _patchGrad, m, k);
            Gemm.Multiply(GemmProvider, false, true, m, k, OutChannels, T.One, dy, Weight.Value.Data, T.Zero, patchGrad.Data);
            Im2Col.Backward<T>(patchGrad.Data, g, inputGrad.Data);
        }

        return inputGrad;
    }

    /// <summary>
    /// With the SIMD GEMM: ∂K, ∂b and ∂x (when wanted) from ∂y's nonzeros without the patch matrix or ∂P, bit for bit
    /// the im2col + GEMM path's result (<see cref="SparseConvBackward{TOps, TV, T}"/>); with <paramref name="x"/> null
    /// ∂x only (the caller has added ∂K and ∂b). False when the GEMM or the shape is not one it takes (nothing is
    /// written then).
    /// </summary>
    private bool SparseBackward(T[] dy, in ConvGeometry g, T[]? x, T[] dx) => (GemmProvider as SimdGemmProvider)?.VectorBits switch
    {
        512 => SparseBackward<Simd512<T>, Vector512<T>>(dy, g, x, dx),
        256 => SparseBackward<Simd256<T>, Vector256<T>>(dy, g, x, dx),
        128 => SparseBackward<Simd128<T>, Vector128<T>>(dy, g, x, dx),
        _ => false,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool SparseBackward<TOps, TV>(T[] dy, in ConvGeometry g, T[]? x, T[] dx) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        if (!SparseConvBackward<TOps, TV, T>.Supports(g, OutChannels)) return false;
        var scratch = _sparse ??= new();
        SparseConvBackward<TOps, TV, T>.Gather(g, OutChannels, dy, scratch);
        if (x is not null)
        {
            SparseConvBackward<TOps, TV, T>.WeightGradient(g, OutChannels, x, Weight.Gradient.Data, scratch);
            RowOps.AddColumnSums<T>(dy, Bias.Gradient.Span);
        }

        if (x is null || ComputeInputGradient) SparseConvBackward<TOps, TV, T>.InputGradient(g, OutChannels, Weight.Value.Data, dx, scratch);
        else Array.Clear(dx);
        return true;
    }

    /// <summary>
    /// y = conv(x) + b straight from the input (<see cref="DirectConv{TOps, TV, T}"/>), no patch matrix: with the SIMD
    /// GEMM (whose width it takes), stride 1, no padding, several input channels and at least a vector of outputs. The
    /// same bits as im2col + that GEMM. False when it does not apply.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private bool DirectForward(in ConvGeometry g, Tensor<T> input, Tensor<T> output) =>
        !TransposedPatches && Stride == 1 && Padding == 0
        && DirectConv.TryForward(GemmProvider, g, OutChannels, input.Data, Weight.Value.Data, Bias.Value.Data, output.Data);

    /// <summary>
    /// Single-channel inputs keep the patch matrix transposed, Pᵀ (K, M): built from contiguous runs, and multiplied
    /// along its long side. Other inputs keep P (M, K), whose rows are contiguous runs of KW·C elements.
    /// </summary>
    private bool TransposedPatches => InChannels == 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void RequireInput(ReadOnlySpan<int> shape) =>
        RequireImage(shape, InChannels, Math.Max(1, KernelHeight - 2 * Padding), Math.Max(1, KernelWidth - 2 * Padding));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private ConvGeometry Geometry(ReadOnlySpan<int> s) => new(s[0], s[1], s[2], s[3], KernelHeight, KernelWidth, Stride, Padding);
}
