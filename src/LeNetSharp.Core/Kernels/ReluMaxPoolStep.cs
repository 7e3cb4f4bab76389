using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LeNetSharp.Compute;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Kernels;

/// <summary>
/// Relu → MaxPool2x2 forward as one pass, for inference plans only: the Relu output is never written, and neither layer
/// keeps anything for backward.
/// <code>
/// input y : (N, H, W, C)   output p : (N, H/2, W/2, C), p[n,i,j,c] = max(max over the window y[n, 2i..2i+1, 2j..2j+1, c], 0)
/// </code>
/// The maximum is the layers' (IEEE's, NaNs passed on with their bits, <see cref="ScalarOps.MaxKeepingNaN{T}(T, T)"/>) in
/// their order: Relu leaves a NaN as it is and is monotone, so the window's maximum first and Relu last gives the bits of
/// Relu then MaxPool2x2.
/// </summary>
internal sealed class ReluMaxPoolStep<T> : KernelStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _output;

    public override string Name => $"Relu → MaxPool2x2 (fused, {VectorOps.WidthName<T>()})";

    public override int LayerCount => 2;

    /// <summary>The pattern this pass replaces, at positions i, i + 1 of a layer list.</summary>
    public static bool Matches(IReadOnlyList<ILayer<T>> layers, int i) => i + 1 < layers.Count && layers[i] is Relu<T> && layers[i + 1] is MaxPool2x2<T>;

    /// <summary>Whether <paramref name="shape"/> is an image batch the pass takes (else the layers run, and report any error).</summary>
    public static bool Applies(ReadOnlySpan<int> shape) => shape.Length == 4 && shape[1] >= 2 && shape[2] >= 2 && shape[3] >= 1;

    /// <summary>p = MaxPool2x2(Relu(y)), in a buffer owned by this pass (overwritten by the next call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // fully optimised from the first call: no tier-0 or OSR code in a kernel
    protected override Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward)
    {
        if (keepForBackward) throw new InvalidOperationException("Relu → MaxPool2x2 as one pass is for inference only.");
        int n = input.Dim(0), h = input.Dim(1), w = input.Dim(2), c = input.Dim(3), ph = h / 2, pw = w / 2, row = w * c;
        var output = Tensor<T>.Reuse(ref _output, n, ph, pw, c);
        ref T x0 = ref MemoryMarshal.GetArrayDataReference(input.Data);
        ref T p0 = ref MemoryMarshal.GetArrayDataReference(output.Data);
        int vc = Vector.IsHardwareAccelerated && c % Vector<T>.Count == 0 ? c : 0; // channels done with vectors
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
                    int k = 0;
                    for (; k < vc; k += Vector<T>.Count)
                    {
                        var max = VectorOps.MaxKeepingNaN(
                            VectorOps.MaxKeepingNaN(Vector.LoadUnsafe(ref t, (nuint)k), Vector.LoadUnsafe(ref t, (nuint)(k + c))),
                            VectorOps.MaxKeepingNaN(Vector.LoadUnsafe(ref d, (nuint)k), Vector.LoadUnsafe(ref d, (nuint)(k + c))));
                        VectorOps.Relu(max).StoreUnsafe(ref p, (nuint)k);
                    }

                    for (; k < c; k++)
                    {
                        T max = ScalarOps.MaxKeepingNaN(
                            ScalarOps.MaxKeepingNaN(Unsafe.Add(ref t, k), Unsafe.Add(ref t, k + c)),
                            ScalarOps.MaxKeepingNaN(Unsafe.Add(ref d, k), Unsafe.Add(ref d, k + c)));
                        Unsafe.Add(ref p, k) = ScalarOps.Relu(max);
                    }
                }
            }
        }

        return output;
    }

    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient) =>
        throw new InvalidOperationException("Relu → MaxPool2x2 as one pass is for inference only.");
}
