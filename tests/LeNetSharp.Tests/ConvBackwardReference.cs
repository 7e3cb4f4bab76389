using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// A convolution's backward the layer's way, the oracle of the kernels that replace it: ∂K += Pᵀ·∂y and ∂b += ∂y's
/// column sums added to the gradients the layer holds, ∂x = col2im(∂y·Kᵀ), with a given GEMM.
/// </summary>
internal static class ConvBackwardReference
{
    /// <summary>Expected (∂K, ∂b, ∂x) for <paramref name="conv"/> (stride 1) on x with padding <paramref name="padding"/>, given ∂y.</summary>
    public static (T[] WeightGradient, T[] BiasGradient, T[] InputGradient) Backward<T>(
        GemmProvider provider, Conv<T> conv, T[] x, T[] dy, int n, int h, int w, int padding) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int c = conv.InChannels, oc = conv.OutChannels;
        var weightGradient = conv.Weight.Gradient.Data.ToArray();
        var biasGradient = conv.Bias.Gradient.Data.ToArray();
        var g = new ConvGeometry(n, h, w, c, conv.KernelHeight, conv.KernelWidth, 1, padding);
        var patches = new T[g.PatchRows * g.PatchColumns];
        Im2Col.Forward<T>(x, g, patches);
        Gemm.Multiply(provider, true, false, g.PatchColumns, oc, g.PatchRows, T.One, patches, dy, T.One, weightGradient);
        RowOps.AddColumnSums<T>(dy, biasGradient);
        var patchGrad = new T[g.PatchRows * g.PatchColumns];
        Gemm.Multiply(provider, false, true, g.PatchRows, g.PatchColumns, oc, T.One, dy, conv.Weight.Value.Data, T.Zero, patchGrad);
        var inputGradient = new T[n * h * w * c];
        Im2Col.Backward<T>(patchGrad, g, inputGradient);
        return (weightGradient, biasGradient, inputGradient);
    }
}
