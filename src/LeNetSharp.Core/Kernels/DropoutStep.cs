using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Compute;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// <see cref="Dropout{T}"/> at the plan's vector width: the layer's draws and mask, the same bits. Training forward draws
/// the SplitMix64 numbers of a vector of elements at once in 64-bit lanes (element i's is Mix(s + (i + 1)·γ), s from
/// <see cref="Dropout{T}.TakeDraws"/>, which advances the layer's generator or uses up the trainer's stream as the layer
/// does), keeps an element where (z &gt;&gt; 11) ≥ ⌈p·2⁵³⌉ (the layer's u ≥ p as integers: see
/// <see cref="Dropout{T}.KeepThreshold"/>), and writes the mask m (1/(1 − p) or +0) and y = x·m in the same sweep.
/// Backward ∂x = ∂y·m; evaluation copies, as the layer does. A fixed test mask takes the layer's own loop.
/// </summary>
internal sealed class DropoutStep<T>(Dropout<T> layer, int bits) : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _mask;      // m of the last training forward
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;
    private bool _masked;          // whether the last forward was in training mode (it drew _mask)

    /// <summary>Whether the step runs <typeparamref name="T"/> (float and double).</summary>
    public static bool Applies => typeof(T) == typeof(float) || typeof(T) == typeof(double);

    public override string Name => $"{layer.Name} (Vector{bits})";

    public override int LayerCount => 1;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        var output = Tensor<T>.ReuseLike(ref _output, input);
        _masked = layer.Training;
        if (!layer.Training)
        {
            input.Span.CopyTo(output.Span);
            return output;
        }

        var mask = Tensor<T>.ReuseLike(ref _mask, input);
        if (layer.FixedKeep is not null)
        {
            layer.DrawMask(input, mask.Span);
            DropoutKernel.Multiply<T>(bits, input.Span, mask.Span, output.Span);
        }
        else
        {
            DropoutKernel.Forward(bits, layer.TakeDraws(input), layer.KeepThreshold, layer.Scale, input.Span, mask.Span, output.Span);
        }

        return output;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        if (!_masked) outputGradient.Span.CopyTo(inputGrad.Span);
        else DropoutKernel.Multiply<T>(bits, outputGradient.Span, _mask!.Span, inputGrad.Span);
        return inputGrad;
    }
}

/// <summary>Dropout's mask from SplitMix64 draws in vectors of 64-bit lanes, and the element-wise product, at one width.</summary>
internal static class DropoutKernel
{
    private const ulong Gamma = Dropout<float>.Gamma;

    /// <summary>
    /// m[i] = <paramref name="scale"/> where Mix(<paramref name="state"/> + (i + 1)·γ) &gt;&gt; 11 ≥ <paramref name="threshold"/>,
    /// else +0, and y[i] = x[i]·m[i], for i below x's length, at <paramref name="bits"/>-bit vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Forward<T>(int bits, ulong state, ulong threshold, T scale, ReadOnlySpan<T> x, Span<T> m, Span<T> y)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = x.Length;
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref T ms = ref MemoryMarshal.GetReference(m[..n]);
        ref T ys = ref MemoryMarshal.GetReference(y[..n]);
        int i = bits switch
        {
            512 => Forward512(state, threshold, scale, ref xs, ref ms, ref ys, n),
            256 => Forward256(state, threshold, scale, ref xs, ref ms, ref ys, n),
            _ => Forward128(state, threshold, scale, ref xs, ref ms, ref ys, n),
        };
        for (; i < n; i++)
        {
            T mi = (SplitMix64.Mix(state + (ulong)(i + 1) * Gamma) >> 11) >= threshold ? scale : T.Zero;
            Unsafe.Add(ref ms, i) = mi;
            Unsafe.Add(ref ys, i) = Unsafe.Add(ref xs, i) * mi;
        }
    }

    /// <summary>c[i] = a[i]·b[i] for i below a's length, at <paramref name="bits"/>-bit vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Multiply<T>(int bits, ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        switch (bits)
        {
            case 512: Multiply<Simd512<T>, Vector512<T>, T>(a, b[..a.Length], c[..a.Length]); break;
            case 256: Multiply<Simd256<T>, Vector256<T>, T>(a, b[..a.Length], c[..a.Length]); break;
            default: Multiply<Simd128<T>, Vector128<T>, T>(a, b[..a.Length], c[..a.Length]); break;
        }
    }

    private static void Multiply<TOps, TV, T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c)
        where TOps : struct, ISimdOps<TV, T> where TV : struct where T : unmanaged, IFloatingPointIeee754<T>
    {
        ref T pa = ref MemoryMarshal.GetReference(a), pb = ref MemoryMarshal.GetReference(b), pc = ref MemoryMarshal.GetReference(c);
        int i = 0, n = a.Length;
        for (; i + TOps.Count <= n; i += TOps.Count)
        {
            TOps.Store(TOps.Multiply(TOps.Load(ref Unsafe.Add(ref pa, i)), TOps.Load(ref Unsafe.Add(ref pb, i))), ref Unsafe.Add(ref pc, i));
        }

        for (; i < n; i++) Unsafe.Add(ref pc, i) = Unsafe.Add(ref pa, i) * Unsafe.Add(ref pb, i);
    }

    // ----- one width each: the draws of the lanes of a vector of T (two vectors of 64-bit lanes for float, one for double) -----

    /// <summary>All-ones lanes where SplitMix64's output for counter z keeps its element: Mix(z) &gt;&gt; 11 ≥ t (both below 2⁵³, so a signed compare).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<long> Keep(Vector512<ulong> z, Vector512<long> t)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return Vector512.GreaterThanOrEqual((z >> 11).AsInt64(), t);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<long> Keep(Vector256<ulong> z, Vector256<long> t)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return Vector256.GreaterThanOrEqual((z >> 11).AsInt64(), t);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<long> Keep(Vector128<ulong> z, Vector128<long> t)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return Vector128.GreaterThanOrEqual((z >> 11).AsInt64(), t);
    }

    /// <summary>The whole vectors of T from element 0; returns how many elements were done.</summary>
    private static int Forward512<T>(ulong state, ulong threshold, T scale, ref T xs, ref T ms, ref T ys, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int lanes = Vector512<T>.Count, i = 0;
        var z0 = Vector512.Create(state) + (Vector512<ulong>.Indices + Vector512<ulong>.One) * Gamma; // the counters of elements 0, 1, …
        var z1 = z0 + Vector512.Create((ulong)Vector512<ulong>.Count * Gamma);
        var advance = Vector512.Create((ulong)lanes * Gamma);
        var t = Vector512.Create((long)threshold);
        var s = Vector512.Create(scale);
        for (; i + lanes <= n; i += lanes, z0 += advance, z1 += advance)
        {
            var keep = typeof(T) == typeof(float) ? Vector512.Narrow(Keep(z0, t), Keep(z1, t)).As<int, T>() : Keep(z0, t).As<long, T>();
            var mi = keep & s;
            mi.StoreUnsafe(ref ms, (nuint)i);
            (Vector512.LoadUnsafe(ref xs, (nuint)i) * mi).StoreUnsafe(ref ys, (nuint)i);
        }

        return i;
    }

    private static int Forward256<T>(ulong state, ulong threshold, T scale, ref T xs, ref T ms, ref T ys, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int lanes = Vector256<T>.Count, i = 0;
        var z0 = Vector256.Create(state) + (Vector256<ulong>.Indices + Vector256<ulong>.One) * Gamma;
        var z1 = z0 + Vector256.Create((ulong)Vector256<ulong>.Count * Gamma);
        var advance = Vector256.Create((ulong)lanes * Gamma);
        var t = Vector256.Create((long)threshold);
        var s = Vector256.Create(scale);
        for (; i + lanes <= n; i += lanes, z0 += advance, z1 += advance)
        {
            var keep = typeof(T) == typeof(float) ? Vector256.Narrow(Keep(z0, t), Keep(z1, t)).As<int, T>() : Keep(z0, t).As<long, T>();
            var mi = keep & s;
            mi.StoreUnsafe(ref ms, (nuint)i);
            (Vector256.LoadUnsafe(ref xs, (nuint)i) * mi).StoreUnsafe(ref ys, (nuint)i);
        }

        return i;
    }

    private static int Forward128<T>(ulong state, ulong threshold, T scale, ref T xs, ref T ms, ref T ys, int n) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int lanes = Vector128<T>.Count, i = 0;
        var z0 = Vector128.Create(state) + (Vector128<ulong>.Indices + Vector128<ulong>.One) * Gamma;
        var z1 = z0 + Vector128.Create((ulong)Vector128<ulong>.Count * Gamma);
        var advance = Vector128.Create((ulong)lanes * Gamma);
        var t = Vector128.Create((long)threshold);
        var s = Vector128.Create(scale);
        for (; i + lanes <= n; i += lanes, z0 += advance, z1 += advance)
        {
            var keep = typeof(T) == typeof(float) ? Vector128.Narrow(Keep(z0, t), Keep(z1, t)).As<int, T>() : Keep(z0, t).As<long, T>();
            var mi = keep & s;
            mi.StoreUnsafe(ref ms, (nuint)i);
            (Vector128.LoadUnsafe(ref xs, (nuint)i) * mi).StoreUnsafe(ref ys, (nuint)i);
        }

        return i;
    }
}
