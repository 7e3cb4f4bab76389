using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Conv (one input channel, stride 1, no padding, no input gradient) → Relu → MaxPool2x2 as one pass
/// (<see cref="ConvReluPool{TOps, TV, T}"/>): the (N, OH, OW, OC) activation never goes to memory, pooling keeps the
/// window position of each maximum for backward. <see cref="Sequential{T}"/> runs it in place of the three layers
/// when the network's GEMM is the SIMD one and the batch holds fewer than <see cref="MaxPixels"/> pixels; the results
/// are the three layers' bit for bit for finite inputs, weights and gradients (see the kernel for non-finite ones, and
/// for a −0 the caller left in a gradient buffer). It uses the convolution's own parameters, so training, saving and
/// loading see no difference.
/// </summary>
internal sealed class FusedConvReluPool<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;     // p: (N, PH, PW, OC)
    private Tensor<T>? _inputGrad;  // zeros of the input's shape: nobody reads a first layer's input gradient
    private T[] _mask = [];
    private T[] _xPadded = [], _planes = [], _tile = [], _values = [], _lanes = []; // _values, _lanes, _patches: backward's lists
    private int[] _patches = [];
    private ConvPoolGeometry _geometry;
    private int _bits;
    private bool _kept; // the last forward kept what backward needs

    public FusedConvReluPool(Conv<T> conv) => Conv = conv;

    public Conv<T> Conv { get; }

    /// <summary>The pattern this block replaces, at positions i, i + 1, i + 2 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) =>
        i + 2 < layers.Count && layers[i] is Conv<T> { InChannels: 1, Stride: 1, Padding: 0 } && layers[i + 1] is Relu<T> && layers[i + 2] is MaxPool2x2<T>;

    /// <summary>
    /// Pixels (N·H·W) a fused batch stays below: backward lists each window's x offset times 4 in an int (2²⁹), less
    /// the padding after x. Larger batches run the three layers.
    /// </summary>
    public const int MaxPixels = (1 << 29) - 4096;

    /// <summary>
    /// Whether this forward can run fused: SIMD GEMM (its width picks the kernel's), no input gradient wanted, a
    /// shape the kernel handles, fewer than <see cref="MaxPixels"/> pixels. Otherwise the network runs the three layers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public bool Applies(GemmProvider provider, ReadOnlySpan<int> inputShape)
    {
        if (provider is not SimdGemmProvider simd || Conv.ComputeInputGradient || inputShape.Length != 4 || inputShape[3] != 1) return false;
        if ((long)inputShape[0] * inputShape[1] * inputShape[2] >= MaxPixels) return false;
        int kh = Conv.KernelHeight, kw = Conv.KernelWidth, h = inputShape[1], w = inputShape[2];
        _bits = simd.VectorBits;
        return _bits switch
        {
            512 => Supports<Simd512<T>, Vector512<T>>(kh, kw, h, w),
            256 => Supports<Simd256<T>, Vector256<T>>(kh, kw, h, w),
            _ => Supports<Simd128<T>, Vector128<T>>(kh, kw, h, w),
        };
    }

    private static bool Supports<TOps, TV>(int kh, int kw, int h, int w) where TOps : struct, ISimdOps<TV, T> where TV : struct =>
        ConvReluPool<TOps, TV, T>.Supports(kh, kw, h, w);

    /// <summary>
    /// p = MaxPool2x2(Relu(Conv(x))), at the width <see cref="Applies"/> picked. Without
    /// <paramref name="keepForBackward"/> (inference) the window positions and the input copy are not made, and
    /// <see cref="Backward"/> refuses to run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input, bool keepForBackward = true)
    {
        var s = input.Shape;
        var g = _geometry = new ConvPoolGeometry(s[0], s[1], s[2], Conv.OutChannels, Conv.KernelHeight, Conv.KernelWidth);
        var output = Tensor<T>.Reuse(ref _output, g.N, g.PH, g.PW, g.OC);
        if (_mask.Length != output.Length) _mask = new T[output.Length];
        _kept = keepForBackward;
        switch (_bits)
        {
            case 512: Forward<Simd512<T>, Vector512<T>>(g, input, output, keepForBackward); break;
            case 256: Forward<Simd256<T>, Vector256<T>>(g, input, output, keepForBackward); break;
            default: Forward<Simd128<T>, Vector128<T>>(g, input, output, keepForBackward); break;
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void Forward<TOps, TV>(ConvPoolGeometry g, Tensor<T> input, Tensor<T> output, bool keep) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        if (keep) Scratch.Ensure(ref _xPadded, ConvReluPool<TOps, TV, T>.PaddedInputLength(g));
        Scratch.Ensure(ref _planes, ConvReluPool<TOps, TV, T>.SplitLength(g));
        Scratch.Ensure(ref _tile, ConvReluPool<TOps, TV, T>.TileLength(g));
        ConvReluPool<TOps, TV, T>.Forward(g, input.Data, Conv.Weight.Value.Data, Conv.Bias.Value.Data, output.Data, keep ? _mask : null, keep ? _xPadded : null, _planes, _tile);
    }

    /// <summary>Adds the convolution's weight and bias gradients; returns zeros of the input's shape.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        if (_output is null || !_kept) throw new InvalidOperationException($"{Conv.Name}: Backward was called before Forward.");
        if (!outputGradient.HasShape(_output.Shape))
        {
            throw new ArgumentException(
                $"{Conv.Name} → Relu → MaxPool2x2: output gradient has shape {outputGradient.ShapeString}, expected {_output.ShapeString}.",
                nameof(outputGradient));
        }

        var g = _geometry;
        T[] dk = Conv.Weight.Gradient.Data, db = Conv.Bias.Gradient.Data;
        switch (_bits)
        {
            case 512: Backward<Simd512<T>, Vector512<T>>(g, outputGradient, dk, db); break;
            case 256: Backward<Simd256<T>, Vector256<T>>(g, outputGradient, dk, db); break;
            default: Backward<Simd128<T>, Vector128<T>>(g, outputGradient, dk, db); break;
        }

        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, g.H, g.W, 1);
        inputGrad.Clear();
        return inputGrad;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void Backward<TOps, TV>(ConvPoolGeometry g, Tensor<T> outputGradient, T[] dk, T[] db) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int length = ConvReluPool<TOps, TV, T>.BackwardListLength(g);
        Scratch.Ensure(ref _patches, length);
        Scratch.Ensure(ref _values, length);
        Scratch.Ensure(ref _lanes, ConvReluPool<TOps, TV, T>.LanesLength);
        ConvReluPool<TOps, TV, T>.Backward(g, _xPadded, _mask, outputGradient.Data, dk, db, _patches, _values, _lanes);
    }
}
