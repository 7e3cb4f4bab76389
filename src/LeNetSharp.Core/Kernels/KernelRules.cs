using System.Numerics;
using LeNetSharp.Compute;
using LeNetSharp.Layers;

namespace LeNetSharp.Kernels;

/// <summary>
/// The SIMD backend's rules: at each position of the layer list, the first rule that matches the layers there and the
/// shape reaching them supplies a kernel step for one or more layers; where none does, the layer runs its own code
/// (with the SIMD GEMM). Every kernel equals the layers it replaces bit for bit.
/// </summary>
internal static class KernelRules
{
    /// <summary>A rule: the step it supplies for the layers at i given their input shape, or null.</summary>
    private delegate PlanStep<T>? Rule<T>(IReadOnlyList<ILayer<T>> layers, int i, ReadOnlySpan<int> shape, PlanMode mode, int bits)
        where T : unmanaged, IFloatingPointIeee754<T>;

    private static class For<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>The rules in the order they are tried: fusions first, then single-layer kernels.</summary>
        public static readonly Rule<T>[] All =
        [
            // Conv (one input channel, no input gradient, few output channels) → Relu → MaxPool2x2 in one pass: the activation never goes to memory.
            (layers, i, shape, mode, bits) => FusedConvReluPoolStep<T>.Applies(layers, i, shape, bits) && FusedConvReluPoolStep<T>.Pays((Conv<T>)layers[i])
                ? new FusedConvReluPoolStep<T>((Conv<T>)layers[i], bits) : null,
            // Relu → MaxPool2x2 in one pass, the Relu output never written (training keeps a byte per pooled element for backward).
            (layers, i, shape, mode, bits) => ReluMaxPoolStep<T>.Matches(layers, i) && ReluMaxPoolStep<T>.Applies(shape)
                ? new ReluMaxPoolStep<T>(bits, shape[3]) : null,
            // BatchNorm2d → Relu → MaxPool2x2: the statistics, then one sweep over the pool's windows; only the pooled output (and in
            // training a byte per pooled element) is written, and backward takes BatchNorm's sums from the pooled gradient.
            (layers, i, shape, mode, bits) => BatchNormReluPoolStep<T>.Matches(layers, i) && BatchNormReluPoolStep<T>.Applies((BatchNorm2d<T>)layers[i], shape, bits)
                ? new BatchNormReluPoolStep<T>((BatchNorm2d<T>)layers[i], (MaxPool2x2<T>)layers[i + 2], bits) : null,
            // BatchNorm1d/2d, with the Relu after it in the same sweeps (a MaxPool2x2 after that Relu, where the step above does
            // not apply, runs as its own step).
            (layers, i, shape, mode, bits) => layers[i] is BatchNorm<T> norm && BatchNormStep<T>.Applies
                ? new BatchNormStep<T>(norm, bits, relu: BatchNormStep<T>.FollowedByRelu(layers, i)) : null,
            (layers, i, shape, mode, bits) => layers[i] is Conv<T> conv && ConvStep<T>.Applies(conv) ? new ConvStep<T>(conv, bits) : null,
            (layers, i, shape, mode, bits) => layers[i] is Linear<T> linear ? new LinearStep<T>(linear, bits) : null,
            (layers, i, shape, mode, bits) => layers[i] is Relu<T> relu ? new ReluStep<T>(relu) : null,
            // MaxPool2x2 alone in training keeps its window positions (a byte each) for backward; in inference a pure max.
            (layers, i, shape, mode, bits) => layers[i] is MaxPool2x2<T> pool && ReluMaxPoolStep<T>.Applies(shape)
                ? mode == PlanMode.Training ? new ReluMaxPoolStep<T>(pool, bits, shape[3]) : new MaxPool2x2Step<T>(pool, bits, shape[3]) : null,
            (layers, i, shape, mode, bits) => layers[i] is Dropout<T> dropout && DropoutStep<T>.Applies ? new DropoutStep<T>(dropout, bits) : null,
        ];
    }

    /// <summary>
    /// The steps for <paramref name="layers"/> on inputs of <paramref name="inputShape"/>, the step that starts at layer i
    /// at <paramref name="layerBits"/>[i]-bit vectors.
    /// </summary>
    public static PlanStep<T>[] Steps<T>(IReadOnlyList<ILayer<T>> layers, ReadOnlySpan<int> inputShape, PlanMode mode, int[] layerBits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var steps = new List<PlanStep<T>>(layers.Count);
        int[] shape = inputShape.ToArray();
        for (int i = 0; i < layers.Count;)
        {
            PlanStep<T>? step = null;
            foreach (var rule in For<T>.All)
            {
                if ((step = rule(layers, i, shape, mode, layerBits[i])) is not null) break;
            }

            step ??= new LayerStep<T>(layers[i]);
            for (int l = 0; l < step.LayerCount; l++) shape = layers[i + l].OutputShape(shape);
            steps.Add(step);
            i += step.LayerCount;
        }

        return steps.ToArray();
    }
}
