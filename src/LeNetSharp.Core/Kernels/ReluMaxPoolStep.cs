using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// Relu → MaxPool2x2 as one pass, forward and backward: the Relu output is never written. A training forward keeps one
/// byte per pooled element, the window position whose element takes the gradient, and backward writes ∂x from ∂p and
/// those bytes alone.
/// <code>
/// input y : (N, H, W, C)   output p : (N, H/2, W/2, C), p[n,i,j,c] = max(max over the window y[n, 2i..2i+1, 2j..2j+1, c], 0)
/// record  : (N, H/2, W/2, C) bytes, 0–3 the window position (row-major) of the element ∂p goes to, 4 for none
/// backward: ∂y at that position = ∂p, every other element +0 (an odd last row or column included)
/// </code>
/// The maximum is the layers' (IEEE's, NaNs passed on with their bits, <see cref="ScalarOps.MaxKeepingNaN{T}(T, T)"/>) in
/// their order: Relu leaves a NaN as it is and is monotone, so the window's maximum first and Relu last gives the bits of
/// Relu then MaxPool2x2. The position is the one <see cref="MaxPool2x2{T}.FirstMaximum"/> picks among the Relu outputs
/// r = Relu(y) (ties to the first; a NaN makes its row pair compare false), written in y: for elements a, b,
/// r(b) &gt; r(a) ⇔ b &gt; a ∧ b &gt; 0, and Relu's derivative lets ∂p through only where r &gt; 0 ⇔ y &gt; 0 (so not at 0,
/// −0 or NaN). ∂p's bits are copied, a −0 and a NaN's payload included.
/// <para>
/// The sweeps run at the plan's vector width, or at the widest narrower one whose vector the channels fill, scalar
/// below 128 bits' worth (<see cref="ReluMaxPoolWindows{T}"/>); a vector of windows without a NaN takes the CPU's
/// maximum (see there).
/// </para>
/// </summary>
internal sealed class ReluMaxPoolStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly MaxPool2x2<T>? _alone; // the pool when the pass runs it without a Relu before it
    private readonly int _bits;             // the plan's vector width
    private readonly string _width;         // the width the plan's shape runs at, for the name
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private byte[] _record = [];
    private int _n, _h, _w, _c; // the last training forward's input shape

    /// <summary>Relu → MaxPool2x2 at <paramref name="bits"/>-bit vectors, for inputs of <paramref name="channels"/> channels.</summary>
    public ReluMaxPoolStep(int bits, int channels) : this(bits, channels, null)
    {
    }

    /// <summary>
    /// <paramref name="pool"/> alone, for training: the same pass without the Relu, the record holding the position
    /// the layer's backward picks (its own comparisons: a later element wins only when strictly greater, the lower row
    /// when the larger of its two beats the upper row's), so that backward need not read the input again.
    /// </summary>
    public ReluMaxPoolStep(MaxPool2x2<T> pool, int bits, int channels) : this(bits, channels, pool)
    {
    }

    private ReluMaxPoolStep(int bits, int channels, MaxPool2x2<T>? pool)
    {
        _alone = pool;
        _bits = bits;
        _width = WidthName(bits, channels);
    }

    private bool WithRelu => _alone is null;

    public override string Name => WithRelu ? $"Relu → MaxPool2x2 (fused, {_width})" : $"{_alone!.Name} (with positions, {_width})";

    public override int LayerCount => WithRelu ? 2 : 1;

    /// <summary>The pattern this pass replaces, at positions i, i + 1 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) => i + 1 < layers.Count && layers[i] is Relu<T> && layers[i + 1] is MaxPool2x2<T>;

    /// <summary>Whether <paramref name="shape"/> is an image batch the pass takes (else the layers run, and report any error).</summary>
    public static bool Applies(ReadOnlySpan<int> shape) => shape.Length == 4 && shape[0] >= 1 && shape[1] >= 2 && shape[2] >= 2 && shape[3] >= 1;

    /// <summary>
    /// The vector width the pass runs at for <paramref name="channels"/> with <paramref name="bits"/>-bit vectors: that
    /// width, or the widest narrower one whose vector of <typeparamref name="T"/> the channels fill; 0 (scalar) below 128
    /// bits' worth.
    /// </summary>
    public static int VectorBits(int bits, int channels) => BatchNormPasses<T>.VectorBits(bits, channels);

    /// <summary>"Vector512", "Vector256", "Vector128" or "scalar": the width <see cref="VectorBits"/> picks.</summary>
    public static string WidthName(int bits, int channels) => VectorBits(bits, channels) is var width and > 0 ? $"Vector{width}" : "scalar";

    /// <summary>
    /// p = MaxPool2x2(Relu(y)), in a buffer owned by this pass (overwritten by the next call); with
    /// <paramref name="keepForBackward"/>, the record too.
    /// </summary>
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        _alone?.RequireInput(input.Shape);
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3);
        var output = Tensor<T>.Reuse(ref _output, n, h / 2, w / 2, c);
        Span<byte> record = [];
        if (keepForBackward)
        {
            Scratch.Ensure(ref _record, output.Length);
            record = _record.AsSpan(0, output.Length);
            (_n, _h, _w, _c) = (n, h, w, c);
        }

        Pool(_bits, input.Data, n, h, w, c, WithRelu, output.Data, record);
        return output;
    }

    /// <summary>
    /// p = MaxPool2x2(Relu(y)), or with <paramref name="relu"/> false MaxPool2x2(y), at <paramref name="bits"/>-bit
    /// vectors (<see cref="VectorBits"/>), for y of shape (N, H, W, C) and p of (N, H/2, W/2, C); with a non-empty
    /// <paramref name="record"/> (p's length), each window's position too.
    /// </summary>
    public static void Pool(int bits, ReadOnlySpan<T> y, int n, int h, int w, int c, bool relu, Span<T> p, Span<byte> record)
    {
        switch (VectorBits(bits, c))
        {
            case 512: ReluMaxPoolWindows<T>.Forward<Simd512<T>, Vector512<T>>(y, n, h, w, c, relu, p, record); break;
            case 256: ReluMaxPoolWindows<T>.Forward<Simd256<T>, Vector256<T>>(y, n, h, w, c, relu, p, record); break;
            case 128: ReluMaxPoolWindows<T>.Forward<Simd128<T>, Vector128<T>>(y, n, h, w, c, relu, p, record); break;
            default: ReluMaxPoolWindows<T>.ForwardScalar(y, n, h, w, c, relu, p, record); break;
        }
    }

    /// <summary>∂y from ∂p and the record: ∂p where the record points, +0 everywhere else.</summary>
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int n = _n, h = _h, w = _w, c = _c;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, h, w, c);
        ReadOnlySpan<byte> record = _record.AsSpan(0, outputGradient.Length);
        switch (VectorBits(_bits, c))
        {
            case 512: ReluMaxPoolWindows<T>.Backward<Simd512<T>, Vector512<T>>(outputGradient.Data, record, n, h, w, c, inputGrad.Data); break;
            case 256: ReluMaxPoolWindows<T>.Backward<Simd256<T>, Vector256<T>>(outputGradient.Data, record, n, h, w, c, inputGrad.Data); break;
            case 128: ReluMaxPoolWindows<T>.Backward<Simd128<T>, Vector128<T>>(outputGradient.Data, record, n, h, w, c, inputGrad.Data); break;
            default: ReluMaxPoolWindows<T>.BackwardScalar(outputGradient.Data, record, n, h, w, c, inputGrad.Data); break;
        }

        // The odd last column and row no window covers.
        Span<T> dx = inputGrad.Span;
        int ph = h / 2, row = w * c;
        for (int b = 0; b < n; b++)
        {
            if (w % 2 != 0)
            {
                for (int r = 0; r < 2 * ph; r++) dx.Slice(((b * h + r) * w + w - 1) * c, c).Clear();
            }

            if (h % 2 != 0) dx.Slice((b * h + h - 1) * row, row).Clear();
        }

        return inputGrad;
    }
}

/// <summary>
/// <see cref="ReluMaxPoolStep{T}"/>'s sweeps at one vector width (or scalar): each pooling window's pixel takes whole
/// vectors of its channels, and when they do not divide evenly a last vector ending at the pixel's last channel
/// recomputes a few lanes (the same values: the output does not overlap the input).
/// </summary>
internal static class ReluMaxPoolWindows<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The record's value for a window that passes no gradient (its chosen element is not above 0).</summary>
    public const byte None = 4;

    /// <summary>
    /// p and, with a non-empty <paramref name="record"/>, the positions (see <see cref="ReluMaxPoolStep{T}.Pool"/>), at
    /// <typeparamref name="TOps"/>' width; C ≥ its vector length.
    /// <para>
    /// A vector of windows none of whose four inputs is NaN (one unordered compare per pair of rows, one branch) takes
    /// the CPU's maximum with the Relu: it gives the larger number, and of +0 and −0 either one; the Relu turns both
    /// into +0, and the position's comparisons (&gt;) do not tell them apart. Without the Relu the sign of a zero is the
    /// output's, so the pool alone takes the IEEE maximum (+0 above −0) there. A vector with a NaN takes the layers'
    /// NaN-keeping maximum, which passes on the first NaN in their order with its bits.
    /// </para>
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Forward<TOps, TV>(ReadOnlySpan<T> y, int n, int h, int w, int c, bool relu, Span<T> p, Span<byte> record)
        where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int ph = h / 2, pw = w / 2, row = w * c, last = c - TOps.Count;
        bool keep = !record.IsEmpty;
        ref T y0 = ref MemoryMarshal.GetReference(y);
        ref T p0 = ref MemoryMarshal.GetReference(p);
        ref byte r0 = ref MemoryMarshal.GetReference(record);
        TV one = TOps.Lanes(1), two = TOps.Lanes(2), none = TOps.Lanes(None);
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c, o += c)
                {
                    ref T t = ref Unsafe.Add(ref y0, top);
                    ref T d = ref Unsafe.Add(ref t, row);
                    for (int k = 0; ; k += TOps.Count)
                    {
                        if (k > last) k = last;
                        TV y00 = TOps.Load(ref Unsafe.Add(ref t, k)), y01 = TOps.Load(ref Unsafe.Add(ref t, k + c));
                        TV y10 = TOps.Load(ref Unsafe.Add(ref d, k)), y11 = TOps.Load(ref Unsafe.Add(ref d, k + c));
                        TV upper, lower, max;
                        if (TOps.AnySet(TOps.Or(TOps.AnyNaN(y00, y01), TOps.AnyNaN(y10, y11))))
                        {
                            upper = SimdOps.MaxKeepingNaN<TOps, TV, T>(y00, y01);
                            lower = SimdOps.MaxKeepingNaN<TOps, TV, T>(y10, y11);
                            max = SimdOps.MaxKeepingNaN<TOps, TV, T>(upper, lower);
                        }
                        else if (relu)
                        {
                            upper = TOps.MaxNative(y00, y01);
                            lower = TOps.MaxNative(y10, y11);
                            max = TOps.MaxNative(upper, lower);
                        }
                        else
                        {
                            upper = TOps.Max(y00, y01);
                            lower = TOps.Max(y10, y11);
                            max = TOps.Max(upper, lower);
                        }

                        TOps.Store(relu ? SimdOps.Relu<TOps, TV, T>(max) : max, ref Unsafe.Add(ref p0, o + k));
                        if (!keep)
                        {
                            if (k == last) break;
                            continue;
                        }

                        // The row the gradient goes to: the lower one when its maximum beats the upper one's (never with
                        // a NaN in the window: a row with one has a NaN maximum, and the layer's T.Max does too).
                        TV down = TOps.GreaterThan(lower, upper), position;
                        if (relu)
                        {
                            // Within the row, the right element when it beats the left one after Relu; the chosen
                            // element passes the gradient when it is above 0. (After Relu the lower row wins only
                            // above 0; below, nothing passes from either row.)
                            TV left = TOps.Select(down, y10, y00), right = TOps.Select(down, y11, y01);
                            TV toRight = TOps.And(TOps.GreaterThan(right, left), TOps.GreaterThan(right, TOps.Zero));
                            TV flows = TOps.Or(toRight, TOps.GreaterThan(left, TOps.Zero));
                            position = TOps.Select(flows, TOps.Or(TOps.And(down, two), TOps.And(toRight, one)), none);
                        }
                        else
                        {
                            TV right = TOps.Select(down, TOps.GreaterThan(y11, y10), TOps.GreaterThan(y01, y00));
                            position = TOps.Or(TOps.And(down, two), TOps.And(right, one));
                        }

                        TOps.StoreLowBytes(position, ref Unsafe.Add(ref r0, o + k));
                        if (k == last) break;
                    }
                }
            }
        }
    }

    /// <summary><see cref="Forward{TOps, TV}"/> one channel at a time, with the layers' scalar maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void ForwardScalar(ReadOnlySpan<T> y, int n, int h, int w, int c, bool relu, Span<T> p, Span<byte> record)
    {
        int ph = h / 2, pw = w / 2, row = w * c;
        bool keep = !record.IsEmpty;
        T zero = T.Zero;
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c)
                {
                    for (int k = 0; k < c; k++, o++)
                    {
                        T y00 = y[top + k], y01 = y[top + c + k], y10 = y[top + row + k], y11 = y[top + row + c + k];
                        T upper = ScalarOps.MaxKeepingNaN(y00, y01), lower = ScalarOps.MaxKeepingNaN(y10, y11);
                        T max = ScalarOps.MaxKeepingNaN(upper, lower);
                        p[o] = relu ? ScalarOps.Relu(max) : max;
                        if (!keep) continue;
                        bool down = lower > upper; // as the vector lanes
                        if (relu)
                        {
                            T left = down ? y10 : y00, right = down ? y11 : y01;
                            bool toRight = right > left && right > zero;
                            record[o] = toRight || left > zero ? (byte)((down ? 2 : 0) + (toRight ? 1 : 0)) : None;
                        }
                        else
                        {
                            bool right = down ? y11 > y10 : y01 > y00;
                            record[o] = (byte)((down ? 2 : 0) + (right ? 1 : 0));
                        }
                    }
                }
            }
        }
    }

    /// <summary>∂y of the elements the windows cover from ∂p and the record, at <typeparamref name="TOps"/>' width; C ≥ its vector length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void Backward<TOps, TV>(ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int c, Span<T> dy)
        where TOps : struct, ISimdOps<TV, T> where TV : struct
    {
        int ph = h / 2, pw = w / 2, row = w * c, last = c - TOps.Count;
        ref T dy0 = ref MemoryMarshal.GetReference(dy);
        ref T dp0 = ref MemoryMarshal.GetReference(dp);
        ref byte r0 = ref MemoryMarshal.GetReference(record);
        TV at00 = TOps.Zero, at01 = TOps.Lanes(1), at10 = TOps.Lanes(2), at11 = TOps.Lanes(3);
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c, o += c)
                {
                    ref T t = ref Unsafe.Add(ref dy0, top);
                    ref T d = ref Unsafe.Add(ref t, row);
                    for (int k = 0; ; k += TOps.Count)
                    {
                        if (k > last) k = last;
                        TV g = TOps.Load(ref Unsafe.Add(ref dp0, o + k));
                        TV position = TOps.LoadLowBytes(ref Unsafe.Add(ref r0, o + k));
                        TOps.Store(TOps.And(TOps.EqualLanes(position, at00), g), ref Unsafe.Add(ref t, k)); // every position of the window written
                        TOps.Store(TOps.And(TOps.EqualLanes(position, at01), g), ref Unsafe.Add(ref t, k + c));
                        TOps.Store(TOps.And(TOps.EqualLanes(position, at10), g), ref Unsafe.Add(ref d, k));
                        TOps.Store(TOps.And(TOps.EqualLanes(position, at11), g), ref Unsafe.Add(ref d, k + c));
                        if (k == last) break;
                    }
                }
            }
        }
    }

    /// <summary><see cref="Backward{TOps, TV}"/> one channel at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    public static void BackwardScalar(ReadOnlySpan<T> dp, ReadOnlySpan<byte> record, int n, int h, int w, int c, Span<T> dy)
    {
        int ph = h / 2, pw = w / 2, row = w * c;
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c)
                {
                    for (int k = 0; k < c; k++, o++)
                    {
                        int position = record[o];
                        T g = dp[o];
                        dy[top + k] = position == 0 ? g : T.Zero;
                        dy[top + c + k] = position == 1 ? g : T.Zero;
                        dy[top + row + k] = position == 2 ? g : T.Zero;
                        dy[top + row + c + k] = position == 3 ? g : T.Zero;
                    }
                }
            }
        }
    }
}
