using System.Numerics;
using System.Runtime.CompilerServices;
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
    private Tensor<T>? _patches;      // P (N·OH·OW, KH·KW·C) of the last forward
    private Tensor<T>? _output;       // y: (N, OH, OW, OC)
    private Tensor<T>? _patchGrad;    // ∂P (N·OH·OW, KH·KW·C)
    private Tensor<T>? _inputGrad;    // ∂x: (N, H, W, C)
    private ConvGeometry _geometry;

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
    /// When false, <see cref="ILayer{T}.Backward"/> still adds into the weight and bias gradients but skips ∂x (a
    /// GEMM and a col2im) and returns zeros of the input's shape. Use it for a network's first layer, whose input
    /// gradient nobody reads. Default true.
    /// </summary>
    public bool ComputeInputGradient { get; set; } = true;

    /// <summary>The matrix multiply this layer runs; the network's execution plan sets it from its backend.</summary>
    internal GemmProvider GemmProvider
    {
        get;
        set => field = value ?? throw new ArgumentNullException(nameof(value));
    } = GemmProvider.Default;

    GemmProvider IUsesGemm.GemmProvider { get => GemmProvider; set => GemmProvider = value; }

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
    public override LayerDescription Describe() => new("Conv",
        ("in", InChannels), ("out", OutChannels), ("kh", KernelHeight), ("kw", KernelWidth), ("stride", Stride), ("padding", Padding));

    /// <summary>A copy that also keeps <see cref="ComputeInputGradient"/>.</summary>
    /// <returns>The copy.</returns>
    public override ILayer<T> Clone()
    {
        var copy = (Conv<T>)base.Clone();
        copy.ComputeInputGradient = ComputeInputGradient;
        return copy;
    }

    /// <summary>The layer a <see cref="Describe"/> result stands for (weights from a fixed seed; loading or cloning overwrites them).</summary>
    internal static Conv<T> FromDescription(LayerDescription d) => new(
        d.GetInt("in", 1), d.GetInt("out", 1), d.GetInt("kh", 1), d.GetInt("kw", 1), NoInitialisation, d.GetInt("stride", 1), d.GetInt("padding", 0));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        RequireInput(input.Shape);
        var g = _geometry = Geometry(input.Shape);
        int m = g.PatchRows, k = g.PatchColumns;
        var output = Tensor<T>.Reuse(ref _output, g.N, g.OH, g.OW, OutChannels);

        // P = im2col(x): row r holds the KH·KW·C inputs under output pixel r's window.
        var patches = Tensor<T>.Reuse(ref _patches, m, k);
        Im2Col.Forward<T>(input.Data, g, patches.Data);

        // y = b broadcast over rows, then y += P (M, K) · K (K, OC).
        RowOps.BroadcastRows<T>(Bias.Value.Span, output.Span);
        Gemm.Multiply(GemmProvider, false, false, m, OutChannels, k, T.One, patches.Data, Weight.Value.Data, T.One, output.Data);
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

        // ∂K (K, OC) += Pᵀ (K, M) · ∂y (M, OC): every window's inputs times its outputs' gradients.
        Gemm.Multiply(GemmProvider, true, false, k, OutChannels, m, T.One, _patches!.Data, dy, T.One, Weight.Gradient.Data);

        // ∂b += column sums of ∂y: each bias feeds every output pixel of its channel.
        RowOps.AddColumnSums<T>(dy, Bias.Gradient.Span);

        if (!ComputeInputGradient)
        {
            inputGrad.Clear();
            return inputGrad;
        }

        // ∂P (M, K) = ∂y (M, OC) · Kᵀ (OC, K), then col2im adds each window's share back onto the pixels it read:
        // the adjoint of im2col, right for any stride and padding.
        var patchGrad = Tensor<T>.Reuse(ref _patchGrad, m, k);
        Gemm.Multiply(GemmProvider, false, true, m, k, OutChannels, T.One, dy, Weight.Value.Data, T.Zero, patchGrad.Data);
        Im2Col.Backward<T>(patchGrad.Data, g, inputGrad.Data);
        return inputGrad;
    }

    /// <summary>The convolution's sizes for an input of shape <c>s</c> = (N, H, W, C); the backend's kernels use it too.</summary>
    internal ConvGeometry Geometry(ReadOnlySpan<int> s) => new(s[0], s[1], s[2], s[3], KernelHeight, KernelWidth, Stride, Padding);

    /// <summary>Throws unless <paramref name="shape"/> is (N, H, W, C) with room for one window.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal void RequireInput(ReadOnlySpan<int> shape) =>
        RequireImage(shape, InChannels, Math.Max(1, KernelHeight - 2 * Padding), Math.Max(1, KernelWidth - 2 * Padding));

    /// <summary>A generator for layers whose weights are about to be overwritten (loading, cloning).</summary>
    private static Random NoInitialisation => new(0);
}
