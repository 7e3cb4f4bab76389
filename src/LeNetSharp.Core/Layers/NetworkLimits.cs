using System.Globalization;
using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// The ceilings on a network that every loader (the model file, the tutorial's .npz, the ONNX importer), the exporters,
/// <see cref="Sequential{T}"/> and the checks before evaluation, prediction and training apply, so that a small hostile
/// file cannot make the library allocate or compute without bound. Each is decided from the layers' settings and
/// shapes before the memory or work it bounds is spent; the reasons for the figures are in DESIGN.md ("Untrusted input").
/// </summary>
internal static class NetworkLimits
{
    /// <summary>Layers in one network: 1,024 (the model file's own ceiling; LeNet has 8, a ResNet-152 about 500).</summary>
    public const int MaxLayers = 1024;

    /// <summary>Weights, biases and running statistics in one network: 67,108,864 (2^26; 256 MiB of float32).</summary>
    public const long MaxParameters = 1L << 26;

    /// <summary>
    /// Elements one image holds while it runs: every layer's output plus every convolution's patch matrix
    /// (OH·OW × KH·KW·C), which the layer keeps: 33,554,432 (2^25; 128 MiB of float32 per image).
    /// </summary>
    public const long MaxActivations = 1L << 25;

    /// <summary>Multiply-adds (or, for layers without weights, element operations) to run one image: 4,294,967,296 (2^32).</summary>
    public const long MaxMultiplyAdds = 1L << 32;

    /// <summary>
    /// Throws <paramref name="fail"/>'s exception unless <paramref name="layers"/> is within every ceiling: the layer
    /// count and parameters always, the activations and multiply-adds when <paramref name="image"/> (one example's
    /// shape without the batch, e.g. (H, W, C)) is given.
    /// </summary>
    /// <exception cref="ArgumentException">A layer cannot take the shape it would be given (from its own OutputShape).</exception>
    public static void Check<T>(IReadOnlyList<ILayer<T>> layers, ReadOnlySpan<int> image, Func<string, Exception> fail)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tally = new NetworkTally(image, fail);
        for (int i = 0; i < layers.Count; i++)
        {
            string what = Describe(i, layers[i]);
            tally.Reserve(i, what, StoredElements(layers[i]));
            tally.Run(layers[i], what);
        }
    }

    /// <summary>"layer 3 (Conv 5x5 6→16 stride 1 pad 0)": how every message names a layer.</summary>
    public static string Describe<T>(int index, ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T> =>
        $"layer {index} ({layer.Name})";

    /// <summary>The elements a layer stores: its parameters and its non-trainable state.</summary>
    public static long StoredElements<T>(ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T> =>
        layer.Parameters.Sum(p => (long)p.Value.Length) + ((layer as IStatefulLayer<T>)?.State.Sum(s => (long)s.Value.Length) ?? 0);

    /// <summary>
    /// What no loader accepts in <paramref name="layer"/>'s values: a BatchNorm's running statistic that is not finite or a
    /// negative running variance, then any parameter or state element that is not finite (see <see cref="NonFiniteValue{T}"/>); null when none.
    /// </summary>
    public static string? ValueProblem<T>(ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T> =>
        (layer is BatchNorm<T> batchNorm ? batchNorm.StateProblem() : null) ?? NonFiniteValue(layer);

    /// <summary>
    /// The first parameter or state element of <paramref name="layer"/> that is not a finite number, as
    /// "weight[12] is NaN, expected a finite number.", or null when all are finite.
    /// </summary>
    public static string? NonFiniteValue<T>(ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var p in layer.Parameters)
        {
            if (NonFinite(p.Name, p.Value.Span) is { } problem) return problem;
        }

        if (layer is IStatefulLayer<T> stateful)
        {
            foreach (var s in stateful.State)
            {
                if (NonFinite(s.Name, s.Value.Span) is { } problem) return problem;
            }
        }

        return null;

        static string? NonFinite(string name, ReadOnlySpan<T> values)
        {
            for (int i = 0; i < values.Length; i++)
            {
                if (!T.IsFinite(values[i])) return string.Create(CultureInfo.InvariantCulture, $"{name}[{i}] is {values[i]}, expected a finite number.");
            }

            return null;
        }
    }

    /// <summary>
    /// What one image costs in <paramref name="layer"/>, from its input and output shapes (batch first, batch 1):
    /// the elements it holds (its output, plus a convolution's patch matrix) and its multiply-adds.
    /// </summary>
    public static (Int128 Activations, Int128 MultiplyAdds) Cost<T>(ILayer<T> layer, ReadOnlySpan<int> input, ReadOnlySpan<int> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Int128 outputs = PerImage(output);
        switch (layer)
        {
            case Conv<T> c:
                Int128 window = (Int128)c.KernelHeight * c.KernelWidth * c.InChannels;
                Int128 positions = output.Length == 4 ? (Int128)output[1] * output[2] : outputs;
                return (outputs + positions * window, outputs * window);
            case Linear<T> l:
                return (outputs, (Int128)l.InFeatures * l.OutFeatures);
            case Pool2d<T> p:
                return (outputs, outputs * p.Kernel * p.Kernel);
            case MaxPool2x2<T>:
                return (outputs, outputs * 4);
            case GlobalAvgPool2d<T>:
                return (outputs, PerImage(input));
            default: // element-wise layers (and layers of your own, counted at least this much)
                return (outputs, Int128.Max(outputs, PerImage(input)));
        }
    }

    private static Int128 PerImage(ReadOnlySpan<int> shape)
    {
        Int128 n = 1;
        for (int d = 1; d < shape.Length; d++) n *= shape[d]; // ≤ 2^31 per axis: 4 axes stay far inside Int128
        return n;
    }
}

/// <summary>
/// Running totals of one network as its layers are read or built, in order; each call throws (through the loader's
/// own exception) the moment a total passes its ceiling in <see cref="NetworkLimits"/>, naming the layer, the figure
/// and the ceiling.
/// </summary>
internal sealed class NetworkTally
{
    private readonly Func<string, Exception> _fail;
    private readonly string _image;
    private int[]? _shape; // the next layer's input, (1, …); null when the input shape is not known
    private long _parameters;
    private Int128 _activations, _multiplyAdds;

    /// <param name="image">One example's shape without the batch (e.g. (H, W, C)); empty when it is not known.</param>
    /// <param name="fail">Makes the loader's exception from a one-line problem.</param>
    public NetworkTally(ReadOnlySpan<int> image, Func<string, Exception> fail)
    {
        _fail = fail;
        _image = $"({string.Join(", ", image.ToArray())})";
        _shape = image.IsEmpty ? null : [1, .. image];
    }

    /// <summary>Layers counted so far.</summary>
    public int Layers { get; private set; }

    /// <summary>Counts layer <paramref name="index"/> and its <paramref name="parameters"/>: call it before the layer is built.</summary>
    public void Reserve(int index, string what, long parameters)
    {
        Layers++;
        if (index >= NetworkLimits.MaxLayers) throw _fail($"{what}: a network may have at most {NetworkLimits.MaxLayers:N0} layers.");
        _parameters += parameters;
        if (_parameters > NetworkLimits.MaxParameters)
        {
            throw _fail($"{what} brings the parameters (weights and statistics) to {_parameters:N0}, more than the {NetworkLimits.MaxParameters:N0} a network may hold.");
        }
    }

    /// <summary>
    /// Adds what one image costs in <paramref name="layer"/> (nothing when the input shape is not known): call it
    /// before anything runs.
    /// </summary>
    /// <exception cref="ArgumentException">The layer cannot take the shape it would be given.</exception>
    public void Run<T>(ILayer<T> layer, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (_shape is null) return;
        int[] output = layer.OutputShape(_shape);
        var (activations, multiplyAdds) = NetworkLimits.Cost(layer, _shape, output);
        _activations += activations;
        _multiplyAdds += multiplyAdds;
        if (_activations > NetworkLimits.MaxActivations)
        {
            throw _fail($"{what} brings what one {_image} image holds to {_activations:N0} elements (layer outputs and convolution patches), "
                + $"more than the {NetworkLimits.MaxActivations:N0} a network may use.");
        }

        if (_multiplyAdds > NetworkLimits.MaxMultiplyAdds)
        {
            throw _fail($"{what} brings the work for one {_image} image to {_multiplyAdds:N0} multiply-adds, more than the {NetworkLimits.MaxMultiplyAdds:N0} a network may take.");
        }

        _shape = output;
    }
}
