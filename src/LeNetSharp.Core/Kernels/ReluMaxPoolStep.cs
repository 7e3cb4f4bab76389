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
/// </summary>
internal sealed class ReluMaxPoolStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The record's value for a window that passes no gradient (its chosen element is not above 0).</summary>
    private const byte None = 4;

    private readonly MaxPool2x2<T>? _alone; // the pool when the pass runs it without a Relu before it
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private byte[] _record = [];
    private int _n, _h, _w, _c; // the last training forward's input shape

    /// <summary>Relu → MaxPool2x2.</summary>
    public ReluMaxPoolStep()
    {
    }

    /// <summary>
    /// <paramref name="pool"/> alone, for training: the same pass without the Relu, the record holding the position
    /// the layer's backward picks (its own comparisons: a later element wins only when strictly greater, the lower row
    /// when the larger of its two beats the upper row's), so that backward need not read the input again.
    /// </summary>
    public ReluMaxPoolStep(MaxPool2x2<T> pool) => _alone = pool;

    private bool WithRelu => _alone is null;

    public override string Name => WithRelu ? $"Relu → MaxPool2x2 (fused, {VectorOps.WidthName<T>()})" : $"{_alone!.Name} (with positions, {VectorOps.WidthName<T>()})";

    public override int LayerCount => WithRelu ? 2 : 1;

    /// <summary>The pattern this pass replaces, at positions i, i + 1 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) => i + 1 < layers.Count && layers[i] is Relu<T> && layers[i + 1] is MaxPool2x2<T>;

    /// <summary>Whether <paramref name="shape"/> is an image batch the pass takes (else the layers run, and report any error).</summary>
    public static bool Applies(ReadOnlySpan<int> shape) => shape.Length == 4 && shape[0] >= 1 && shape[1] >= 2 && shape[2] >= 2 && shape[3] >= 1;

    /// <summary>
    /// p = MaxPool2x2(Relu(y)), in a buffer owned by this pass (overwritten by the next call); with
    /// <paramref name="keepForBackward"/>, the record too.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        _alone?.RequireInput(input.Shape);
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3), ph = h / 2, pw = w / 2, row = w * c;
        var output = Tensor<T>.Reuse(ref _output, n, ph, pw, c);
        bool relu = WithRelu;
        if (keepForBackward)
        {
            Scratch.Ensure(ref _record, output.Length);
            (_n, _h, _w, _c) = (n, h, w, c);
        }

        ref T x0 = ref MemoryMarshal.GetArrayDataReference(input.Data);
        ref T p0 = ref MemoryMarshal.GetArrayDataReference(output.Data);
        ref byte r0 = ref MemoryMarshal.GetArrayDataReference(_record);
        // Whole vectors of each pixel's channels; when they do not divide evenly, a last vector ending at the pixel's
        // last channel recomputes a few lanes (the same values: the output does not overlap the input). Fewer channels
        // than a vector run scalar.
        bool vectors = Vector.IsHardwareAccelerated && c >= Vector<T>.Count;
        int last = c - Vector<T>.Count;
        T zero = T.Zero;
        Vector<T> one = Lanes(1), two = Lanes(2), none = Lanes(None);
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c, o += c)
                {
                    ref T t = ref Unsafe.Add(ref x0, top);
                    ref T d = ref Unsafe.Add(ref t, row);
                    ref T p = ref Unsafe.Add(ref p0, o);
                    if (vectors)
                    {
                        for (int k = 0; ; k += Vector<T>.Count)
                        {
                            if (k > last) k = last;
                            Vector<T> y00 = Vector.LoadUnsafe(ref t, (nuint)k), y01 = Vector.LoadUnsafe(ref t, (nuint)(k + c));
                            Vector<T> y10 = Vector.LoadUnsafe(ref d, (nuint)k), y11 = Vector.LoadUnsafe(ref d, (nuint)(k + c));
                            Vector<T> upper = VectorOps.MaxKeepingNaN(y00, y01), lower = VectorOps.MaxKeepingNaN(y10, y11);
                            var max = VectorOps.MaxKeepingNaN(upper, lower);
                            (relu ? VectorOps.Relu(max) : max).StoreUnsafe(ref p, (nuint)k);
                            if (keepForBackward && !relu)
                            {
                                var down = Vector.GreaterThan(Vector.Max(y10, y11), Vector.Max(y00, y01));
                                var right = Vector.ConditionalSelect(down, Vector.GreaterThan(y11, y10), Vector.GreaterThan(y01, y00));
                                StoreBytes((down & two) | (right & one), ref Unsafe.Add(ref r0, o + k));
                            }
                            else if (keepForBackward)
                            {
                                // The row the gradient goes to (the lower one when its maximum beats the upper one's;
                                // never with a NaN in the window), then within it the right element when it beats the
                                // left one after Relu; the chosen element passes the gradient when it is above 0. (After
                                // Relu the lower row wins only above 0; below, nothing passes from either row.)
                                var down = Vector.GreaterThan(lower, upper);
                                Vector<T> left = Vector.ConditionalSelect(down, y10, y00), right = Vector.ConditionalSelect(down, y11, y01);
                                var toRight = Vector.GreaterThan(right, left) & Vector.GreaterThan(right, Vector<T>.Zero);
                                var flows = toRight | Vector.GreaterThan(left, Vector<T>.Zero);
                                var position = Vector.ConditionalSelect(flows, (down & two) | (toRight & one), none);
                                StoreBytes(position, ref Unsafe.Add(ref r0, o + k));
                            }

                            if (k == last) break;
                        }

                        continue;
                    }

                    for (int k = 0; k < c; k++)
                    {
                        T y00 = Unsafe.Add(ref t, k), y01 = Unsafe.Add(ref t, k + c), y10 = Unsafe.Add(ref d, k), y11 = Unsafe.Add(ref d, k + c);
                        T upper = ScalarOps.MaxKeepingNaN(y00, y01), lower = ScalarOps.MaxKeepingNaN(y10, y11);
                        T max = ScalarOps.MaxKeepingNaN(upper, lower);
                        Unsafe.Add(ref p, k) = relu ? ScalarOps.Relu(max) : max;
                        if (keepForBackward && !relu)
                        {
                            bool down = T.Max(y10, y11) > T.Max(y00, y01), right = down ? y11 > y10 : y01 > y00;
                            Unsafe.Add(ref r0, o + k) = (byte)((down ? 2 : 0) + (right ? 1 : 0));
                        }
                        else if (keepForBackward)
                        {
                            bool down = lower > upper; // as the vector lanes above
                            T left = down ? y10 : y00, right = down ? y11 : y01;
                            bool toRight = right > left && right > zero;
                            Unsafe.Add(ref r0, o + k) = toRight || left > zero ? (byte)((down ? 2 : 0) + (toRight ? 1 : 0)) : None;
                        }
                    }
                }
            }
        }

        return output;
    }

    /// <summary>∂y from ∂p and the record: ∂p where the record points, +0 everywhere else.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        int n = _n, h = _h, w = _w, c = _c, ph = h / 2, pw = w / 2, row = w * c;
        var inputGrad = Tensor<T>.Reuse(ref _inputGrad, n, h, w, c);
        ref T dx0 = ref MemoryMarshal.GetArrayDataReference(inputGrad.Data);
        ref T dp0 = ref MemoryMarshal.GetArrayDataReference(outputGradient.Data);
        ref byte r0 = ref MemoryMarshal.GetArrayDataReference(_record);
        bool vectors = Vector.IsHardwareAccelerated && c >= Vector<T>.Count;
        int last = c - Vector<T>.Count;
        Vector<T> at00 = Lanes(0), at01 = Lanes(1), at10 = Lanes(2), at11 = Lanes(3);
        int o = 0;
        for (int b = 0; b < n; b++)
        {
            for (int i = 0; i < ph; i++)
            {
                int top = (b * h + 2 * i) * row;
                for (int j = 0; j < pw; j++, top += 2 * c, o += c)
                {
                    ref T t = ref Unsafe.Add(ref dx0, top);
                    ref T d = ref Unsafe.Add(ref t, row);
                    ref T dp = ref Unsafe.Add(ref dp0, o);
                    if (vectors)
                    {
                        for (int k = 0; ; k += Vector<T>.Count)
                        {
                            if (k > last) k = last;
                            var g = Vector.LoadUnsafe(ref dp, (nuint)k);
                            var position = LoadBytes(ref Unsafe.Add(ref r0, o + k));
                            (g & LanesEqual(position, at00)).StoreUnsafe(ref t, (nuint)k); // every position of the window written
                            (g & LanesEqual(position, at01)).StoreUnsafe(ref t, (nuint)(k + c));
                            (g & LanesEqual(position, at10)).StoreUnsafe(ref d, (nuint)k);
                            (g & LanesEqual(position, at11)).StoreUnsafe(ref d, (nuint)(k + c));
                            if (k == last) break;
                        }

                        continue;
                    }

                    for (int k = 0; k < c; k++)
                    {
                        int position = Unsafe.Add(ref r0, o + k);
                        T g = Unsafe.Add(ref dp, k);
                        Unsafe.Add(ref t, k) = position == 0 ? g : T.Zero;
                        Unsafe.Add(ref t, k + c) = position == 1 ? g : T.Zero;
                        Unsafe.Add(ref d, k) = position == 2 ? g : T.Zero;
                        Unsafe.Add(ref d, k + c) = position == 3 ? g : T.Zero;
                    }
                }
            }
        }

        // The odd last column and row no window covers.
        Span<T> dx = inputGrad.Span;
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

    /// <summary>Every lane of <typeparamref name="T"/>'s width holding the integer <paramref name="value"/> (not the number).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<T> Lanes(int value) => Unsafe.SizeOf<T>() == 4
        ? Vector.As<uint, T>(new Vector<uint>((uint)value))
        : Vector.As<ulong, T>(new Vector<ulong>((ulong)value));

    /// <summary>All-ones lanes where <paramref name="a"/> and <paramref name="b"/> hold the same integer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<T> LanesEqual(Vector<T> a, Vector<T> b) => Unsafe.SizeOf<T>() == 4
        ? Vector.As<uint, T>(Vector.Equals(Vector.As<T, uint>(a), Vector.As<T, uint>(b)))
        : Vector.As<ulong, T>(Vector.Equals(Vector.As<T, ulong>(a), Vector.As<T, ulong>(b)));

    /// <summary>The low byte of each lane of <paramref name="lanes"/> (integers 0–4) to <see cref="Vector{T}.Count"/> bytes at <paramref name="destination"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreBytes(Vector<T> lanes, ref byte destination)
    {
        Vector<byte> bytes; // the lanes' bytes first, in order (then repeated)
        if (Unsafe.SizeOf<T>() == 4)
        {
            var u = Vector.As<T, uint>(lanes);
            var s = Vector.Narrow(u, u);
            bytes = Vector.Narrow(s, s);
        }
        else
        {
            var u = Vector.As<T, ulong>(lanes);
            var i = Vector.Narrow(u, u);
            var s = Vector.Narrow(i, i);
            bytes = Vector.Narrow(s, s);
        }

        switch (Vector<T>.Count) // a constant for the JIT: one branch remains
        {
            case 2: Unsafe.WriteUnaligned(ref destination, Vector.AsVectorUInt16(bytes)[0]); break;
            case 4: Unsafe.WriteUnaligned(ref destination, Vector.AsVectorUInt32(bytes)[0]); break;
            case 8: Unsafe.WriteUnaligned(ref destination, Vector.AsVectorUInt64(bytes)[0]); break;
            default:
                for (int k = 0; k < Vector<T>.Count; k += 8) Unsafe.WriteUnaligned(ref Unsafe.Add(ref destination, k), Vector.AsVectorUInt64(bytes)[k / 8]);
                break;
        }
    }

    /// <summary><see cref="Vector{T}.Count"/> bytes from <paramref name="source"/>, each widened to a lane of <typeparamref name="T"/>'s width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<T> LoadBytes(ref byte source)
    {
        Vector<byte> bytes = Vector<T>.Count switch // the bytes in the first lanes; what follows is not read
        {
            2 => Vector.AsVectorByte(new Vector<ushort>(Unsafe.ReadUnaligned<ushort>(ref source))),
            4 => Vector.AsVectorByte(new Vector<uint>(Unsafe.ReadUnaligned<uint>(ref source))),
            8 => Vector.AsVectorByte(new Vector<ulong>(Unsafe.ReadUnaligned<ulong>(ref source))),
            _ => Vector128.LoadUnsafe(ref source).AsVector(), // 16 bytes: 512-bit vectors of float
        };
        var widened = Vector.WidenLower(Vector.WidenLower(bytes));
        return Unsafe.SizeOf<T>() == 4 ? Vector.As<uint, T>(widened) : Vector.As<ulong, T>(Vector.WidenLower(widened));
    }
}
