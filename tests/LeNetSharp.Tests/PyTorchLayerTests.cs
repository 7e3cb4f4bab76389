using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>
/// Tanh, Sigmoid, LeakyRelu, Dropout, MaxPool2d, AvgPool2d and GlobalAvgPool2d against PyTorch's forward and backward,
/// from Fixtures/layers.npz (written by Fixtures/make_layer_fixtures.py with torch.nn.functional in float64, NCHW
/// transposed to NHWC): in double to 1e-12, in float to float's precision.
/// </summary>
public class PyTorchLayerTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, NpyArray>> Arrays =
        new(() => Npy.ReadNpz(Path.Combine(AppContext.BaseDirectory, "Fixtures", "layers.npz")));

    private static Tensor<T> Array<T>(string key) where T : unmanaged, IFloatingPointIeee754<T> =>
        (Arrays.Value.TryGetValue(key, out var a) ? a : throw new KeyNotFoundException($"layers.npz has no '{key}'")).ToTensor<T>();

    /// <summary>The layers by fixture case.</summary>
    private static ILayer<T> Layer<T>(string name) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string[] parts = name.Split('_');
        int Setting(string prefix, int otherwise) =>
            parts.FirstOrDefault(p => p.Length > 1 && p[0] == prefix[0] && char.IsDigit(p[1])) is { } p ? int.Parse(p[1..]) : otherwise;
        int kernel = Setting("k", 0);
        return parts[0] switch
        {
            "tanh" => new Tanh<T>(),
            "sigmoid" => new Sigmoid<T>(),
            "leakyrelu" => parts[1] == "default" ? new LeakyRelu<T>() : new LeakyRelu<T>(double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture)),
            "maxpool" => Setting("s", -1) is int s and > 0 ? new MaxPool2d<T>(kernel, s, Setting("p", 0)) : new MaxPool2d<T>(kernel, padding: Setting("p", 0)),
            "avgpool" => Setting("s", -1) is int s and > 0 ? new AvgPool2d<T>(kernel, s, Setting("p", 0)) : new AvgPool2d<T>(kernel, padding: Setting("p", 0)),
            "globalavgpool" => new GlobalAvgPool2d<T>(),
            _ => throw new ArgumentException(name),
        };
    }

    private static readonly string[] CaseNames =
    [
        "tanh", "sigmoid", "leakyrelu_default", "leakyrelu_0.2", "leakyrelu_-0.3",
        "maxpool_k2", "maxpool_k3_s2_p1", "maxpool_k3_s1_p1", "maxpool_k3", "maxpool_k4_s2_p2", "maxpool_k5_s3_p2", "maxpool_k1_s2", "maxpool_k3_s2_p1_ties",
        "avgpool_k2", "avgpool_k3_s2_p1", "avgpool_k3_s1_p1", "avgpool_k3", "avgpool_k4_s2_p2", "avgpool_k5_s3_p2", "avgpool_k1_s2", "avgpool_k3_s2_p1_ties",
        "globalavgpool", "globalavgpool_1x1",
    ];

    public static TheoryData<string> Cases => new(CaseNames);

    [Fact]
    public void Every_case_of_the_fixture_is_tested()
    {
        var tested = CaseNames.Append("dropout_0.3").ToHashSet();
        Arrays.Value.Keys.Select(k => k[..k.LastIndexOf('_')]).Distinct().Should().BeEquivalentTo(tested);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_backward_agree_with_PyTorch_in_double(string name) => Agree<double>(name, Layer<double>(name), 1e-12);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_backward_agree_with_PyTorch_in_float(string name) => Agree<float>(name, Layer<float>(name), 2e-6);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Dropout_with_PyTorchs_mask_agrees_with_PyTorch(bool inDouble)
    {
        const string Name = "dropout_0.3";
        var keep = Arrays.Value[Name + "_keep"].Values;
        keep.Average().Should().BeInRange(0.6, 0.8, "PyTorch kept about 1 − p of the elements");
        if (inDouble) Agree<double>(Name, new Dropout<double>(0.3) { FixedKeep = keep.Select(k => k == 1).ToArray() }, 0);
        else Agree<float>(Name, new Dropout<float>(0.3) { FixedKeep = keep.Select(k => k == 1).ToArray() }, 5e-7);
    }

    /// <summary>The layer's output and input gradient against PyTorch's, to <paramref name="tolerance"/>·max(1, |PyTorch's|).</summary>
    private static void Agree<T>(string name, ILayer<T> layer, double tolerance) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var x = Array<T>(name + "_x");
        var expectedY = Arrays.Value[name + "_y"];
        var expectedDx = Arrays.Value[name + "_dx"];

        var y = layer.Forward(x);
        y.Shape.ToArray().Should().Equal(expectedY.Shape, "{0}: PyTorch's output shape, NHWC", layer.Name);
        Close(y, expectedY.Values, tolerance, $"{layer.Name} forward");

        var dx = layer.Backward(Array<T>(name + "_dy"));
        dx.Shape.ToArray().Should().Equal(expectedDx.Shape);
        Close(dx, expectedDx.Values, tolerance, $"{layer.Name} backward");
    }

    private static void Close<T>(Tensor<T> actual, double[] expected, double tolerance, string what) where T : unmanaged, IFloatingPointIeee754<T>
    {
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(double.CreateTruncating(actual.Data[i]) - expected[i]) / Math.Max(1, Math.Abs(expected[i]));
            if (double.IsNaN(error)) error = double.PositiveInfinity; // a NaN where PyTorch has a number (or the reverse)
            if (error > worst) (worst, at) = (error, i);
        }

        worst.Should().BeLessThanOrEqualTo(tolerance, "{0}: element {1} is {2}, PyTorch's {3}", what, at, at >= 0 ? actual.Data[at] : default, at >= 0 ? expected[at] : 0);
    }
}
