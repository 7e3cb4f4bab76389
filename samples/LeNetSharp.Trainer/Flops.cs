using LeNetSharp.Layers;

namespace LeNetSharp.Trainer;

/// <summary>
/// The floating-point work of one layer for one input: <see cref="Forward"/> for an inference pass, <see cref="Training"/>
/// for a training step (forward and backward). For Conv and Linear (<see cref="MultiplyAdds"/>) it is 2 FLOPs per
/// multiply-add; for every other layer the element count it touches, reported but left out of the peak fraction.
/// </summary>
/// <param name="Layer">The layer's name.</param>
/// <param name="Forward">FLOPs of its forward.</param>
/// <param name="Training">FLOPs of its forward plus its backward.</param>
/// <param name="MultiplyAdds">True for a GEMM layer (Conv, Linear): the work a peak of FMAs bounds.</param>
internal readonly record struct LayerFlops(string Layer, double Forward, double Training, bool MultiplyAdds);

/// <summary>
/// FLOP counts of a network, from its layers and an input shape. A convolution's forward is N·OH·OW·OC·KH·KW·C
/// multiply-adds, a Linear's N·IN·OUT; a training step adds the weight gradient (as much again) and the input gradient
/// (as much again, unless the layer skips it: <see cref="Conv{T}.ComputeInputGradient"/> false), so 3× forward, or 2×
/// for a first convolution whose input gradient nobody reads. Bias additions are not counted (one add per output, under
/// 1 % of a convolution with more than 50 multiply-adds per output). Element-wise layers (activations, pools, batch
/// norm, dropout) count their input's elements once forward and once more backward; Flatten counts nothing, nor does
/// Dropout in an inference pass (the identity there).
/// </summary>
internal static class Flops
{
    /// <summary>Each layer's work for an input of <paramref name="inputShape"/> (batch first; batch 1 gives per-image counts).</summary>
    public static IReadOnlyList<LayerFlops> PerLayer(Sequential<float> network, ReadOnlySpan<int> inputShape)
    {
        var result = new List<LayerFlops>(network.Layers.Count);
        int[] shape = inputShape.ToArray();
        foreach (var layer in network.Layers)
        {
            int[] output = layer.OutputShape(shape);
            result.Add(Of(layer, shape, output));
            shape = output;
        }

        return result;
    }

    /// <summary>Multiply-add FLOPs of an inference pass (the sum of <see cref="LayerFlops.Forward"/> over Conv and Linear).</summary>
    public static double Inference(Sequential<float> network, ReadOnlySpan<int> inputShape) =>
        PerLayer(network, inputShape).Where(l => l.MultiplyAdds).Sum(l => l.Forward);

    /// <summary>Multiply-add FLOPs of a training step (the sum of <see cref="LayerFlops.Training"/> over Conv and Linear).</summary>
    public static double Training(Sequential<float> network, ReadOnlySpan<int> inputShape) =>
        PerLayer(network, inputShape).Where(l => l.MultiplyAdds).Sum(l => l.Training);

    private static LayerFlops Of(ILayer<float> layer, int[] input, int[] output)
    {
        static double Elements(int[] shape) => shape.Aggregate(1.0, (a, d) => a * d);
        switch (layer)
        {
            case Conv<float> c:
            {
                double forward = 2 * Elements(output) * c.KernelHeight * c.KernelWidth * c.InChannels;
                return new(layer.Name, forward, (c.ComputeInputGradient ? 3 : 2) * forward, true);
            }

            case Linear<float> l:
            {
                double forward = 2.0 * input[0] * l.InFeatures * l.OutFeatures;
                return new(layer.Name, forward, 3 * forward, true);
            }

            case Flatten<float>:
                return new(layer.Name, 0, 0, false);
            case Dropout<float>:
                return new(layer.Name, 0, 2 * Elements(input), false);
            default:
                return new(layer.Name, Elements(input), 2 * Elements(input), false);
        }
    }
}
