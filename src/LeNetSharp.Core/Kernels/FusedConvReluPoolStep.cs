using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// Conv (one input channel, stride 1, no input gradient) → Relu → MaxPool2x2 as one pass
/// (<see cref="ConvReluPool{TOps, TV, T}"/>; a padded convolution runs unpadded over a copy of the input framed by its
/// zeros, which the patch matrix multiplies in the same places): the (N, OH, OW, OC) activation never goes to memory, pooling keeps the
/// window position of each maximum for backward. The execution plan runs it in place of the three layers
/// under the SIMD backend when the batch holds fewer than <see cref="MaxPixels"/> pixels; the results
/// are the three layers' bit for bit for finite inputs, weights and gradients (see the kernel for non-finite ones, and
/// for a −0 the caller left in a gradient buffer). It uses the convolution's own parameters, so training, saving and
/// loading see no difference.
/// </summary>
internal sealed class FusedConvReluPoolStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;     // p: (N, PH, PW, OC)
    private Tensor<T>? _inputGrad;  // zeros of the input's shape: nobody reads a first layer's input gradient
    private T[] _mask = [];
    private T[] _xPadded = [], _planes = [], _tile = [], _values = [], _lanes = []; // _values, _lanes, _patches: backward's lists
    private T[] _framed = [];       // a padded convolution's input with its zero border
    private int _height, _width;    // the input's own size (the geometry's is the framed one's when padded)
    private int[] _patches = [];
    private ConvPoolGeometry _geometry;
    private readonly int _bits;

    public FusedConvReluPoolStep(Conv<T> conv, int bits)
    {
        Conv = conv;
        _bits = bits;
    }

    public Conv<T> Conv { get; }

    public override string Name => $"{Conv.Name} → Relu → MaxPool2x2 (fused, Vector{_bits})";

    public override int LayerCount => 3;

    /// <summary>
    /// Whether the plan should take this pass where it applies: with fewer than 16 output channels (its blocks are 3
    /// channels wide). With more, the direct convolution and the Relu → MaxPool2x2 step after it are faster (3x3 1→32 at
    /// 512 bits: 0.84 ms a batch of 32 against 1.16 fused, forward and backward, AMD EPYC).
    /// </summary>
    public static bool Pays(Conv<T> conv) => conv.OutChannels < 16;

    /// <summary>The pattern this block replaces, at positions i, i + 1, i + 2 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) =>
        i + 2 < layers.Count && layers[i] is Conv<T> { InChannels: 1, Stride: 1 } && layers[i + 1] is Relu<T> && layers[i + 2] is MaxPool2x2<T>;

    /// <summary>
    /// Pixels (N·H·W) a fused batch stays below: backward lists each window's x offset times 4 in an int (2²⁹), less
    /// the padding after x. Larger batches run the three layers.
    /// </summary>
    public const int MaxPixels = (1 << 29) - 4096;

    /// <summary>
    /// Whether the three layers at <paramref name="i"/> can run fused at <paramref name="bits"/>-bit vectors for
    /// <paramref name="inputShape"/>: the pattern, no input gradient wanted, a shape the kernel handles, fewer than
    /// <see cref="MaxPixels"/> pixels. Otherwise the plan runs the three layers.
    /// </summary>
    public static bool Applies(IReadOnlyList<ILayer<T>> layers, int i, ReadOnlySpan<int> inputShape, int bits)
    {
        if (!Matches(layers, i) || layers[i] is not Conv<T> conv || conv.ComputeInputGradient || inputShape.Length != 4 || inputShape[3] != 1) return false;
        int kh = conv.KernelHeight, kw = conv.KernelWidth, h = inputShape[1] + 2 * conv.Padding, w = inputShape[2] + 2 * conv.Padding;
        if ((long)inputShape[0] * h * w >= MaxPixels) return false;
        return bits switch
        {
            512 => Supports<Simd512<T>, Vector512<T>>(kh, kw, h, w),
            256 => Supports<Simd256<T>, Vector256<T>>(kh, kw, h, w),
            _ => Supports<Simd128<T>, Vector128<T>>(kh, kw, h, w),
        };
    }

    private static bool Supports<TOps, TV>(int kh, int kw, int h, int w) where TOps : struct, ISimdOps<TV, T> where TV : struct =>
        ConvReluPool<TOps, TV, T>.Supports(kh, kw, h, w);

    /// <summary>
    /// p = MaxPool2x2(Relu(Conv(x))). Without <paramref name="keepForBackward"/> (inference) the window positions and
    /// the input copy are not made, and a backward refuses to run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        var s = input.Shape;
        int p = Conv.Padding;
        (_height, _width) = (s[1], s[2]);
        var g = _geometry = new ConvPoolGeometry(s[0], s[1] + 2 * p, s[2] + 2 * p, Conv.OutChannels, Conv.KernelHeight, Conv.KernelWidth);
        var output = Tensor<T>.Reuse(ref _output, g.N, g.PH, g.PW, g.OC);
        T[] x = input.Data;
        if (p > 0)
        {
            x = Frame(input, p);
        }

        if (_mask.Length != output.Length) _mask = new T[output.Length];
        switch (_bits)
        {
            case 512: Forward<Simd512<T>, Vector512<T>>(g, x, output, keepForBackward); break;
            case 256: Forward<Simd256<T>, Vector256<T>>(g, x, output, keepForBackward); break;
            default: Forward<Simd128<T>, Vector128<T>>(g, x, output, keepForBackward); break;
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private void Forward<TOps, TV>(ConvPoolGeometry g, T[] input, Tensor<T> output, bool keep) where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        if (keep) Scratch.Ensure(ref _xPadded, ConvReluPool<TOps, TV, T>.PaddedInputLength(g));
        Scratch.Ensure(ref _planes, ConvReluPool<TOps, TV, T>.SplitLength(g));
        Scratch.Ensure(ref _tile, ConvReluPool<TOps, TV, T>.TileLength(g));
        ConvReluPool<TOps, TV, T>.Forward(g, input, Conv.Weight.Value.Data, Conv.Bias.Value.Data, output.Data, keep ? _mask : null, keep ? _xPadded : null, _planes, _tile);
    }

    /// <summary>The single-channel batch <paramref name="input"/> (N, H, W, 1) inside a border of <paramref name="p"/> zeros, in a buffer of this step's.</summary>
    private T[] Frame(Tensor<T> input, int p)
    {
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), fh = h + 2 * p, fw = w + 2 * p;
        if (_framed.Length != n * fh * fw) _framed = new T[n * fh * fw];
        var x = input.Span;
        for (int b = 0; b < n; b++)
        {
            for (int y = 0; y < h; y++) x.Slice((b * h + y) * w, w).CopyTo(_framed.AsSpan(((b * fh + y + p) * fw) + p, w));
        }

        return _framed;
    }

    /// <summary>Adds the convolution's weight and bias gradients; returns zeros of the input's shape.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var g = _geometry;
        T[] dk = Conv.Weight.Gradient.Data, db = Conv.Bias.Gradient.Data;
        switch (_bits)
        {
            case 512: Backward<Simd512<T>, Vector512<T>>(g, outputGradient, dk, db); break;
            case 256: Backward<Simd256<T>, Vector256<T>>(g, outputGradient, dk, db); break;
            default: Backward<Simd128<T>, Vector128<T>>(g, outputGradient, dk, db); break;
        }

        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, g.N, _height, _width, 1);
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
