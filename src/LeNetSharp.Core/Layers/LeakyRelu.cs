using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// Leaky rectified linear unit, element-wise, any shape (PyTorch's <c>nn.LeakyReLU(negative_slope=0.01)</c>).
/// <code>
/// input  x : any shape                      output y : the same shape
/// forward  : y = x where x &gt; 0, else slope·x   (NaN stays NaN)
/// backward : ∂x = ∂y where x &gt; 0, else slope·∂y  (the derivative at exactly 0 is taken as slope, as PyTorch's)
/// </code>
/// The mask "x &gt; 0" is read from the cached input, so any finite slope works, negative or above 1 too.
/// </summary>
/// <typeparam name="T">Element type.</typeparam>
public sealed class LeakyRelu<T> : Layer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly T _slope;
    private readonly string _name;
    private Tensor<T>? _input;      // x of the last forward (the caller's tensor; not copied)
    private Tensor<T>? _output;
    private Tensor<T>? _inputGrad;

    /// <summary>Creates the layer.</summary>
    /// <param name="slope">The factor applied to inputs ≤ 0: any number finite in <typeparamref name="T"/> (default 0.01, PyTorch's <c>negative_slope</c>).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="slope"/> is NaN or infinite, or beyond <typeparamref name="T"/>'s range (above about 3.4e38 in magnitude for float).</exception>
    public LeakyRelu(double slope = 0.01)
    {
        if (!double.IsFinite(slope))
        {
            throw new ArgumentOutOfRangeException(nameof(slope), slope, $"LeakyRelu: slope must be a finite number, got {slope.ToString(CultureInfo.InvariantCulture)}.");
        }

        _slope = T.CreateChecked(slope);
        if (!T.IsFinite(_slope))
        {
            // 1e308 is a finite double but infinite as a float: every input ≤ 0 would give −∞, and 0 would give NaN.
            throw new ArgumentOutOfRangeException(nameof(slope), slope,
                $"LeakyRelu: slope {slope.ToString(CultureInfo.InvariantCulture)} is beyond the range of {typeof(T).Name}, in which the layer computes; expected a finite {typeof(T).Name}.");
        }

        Slope = slope;
        _name = string.Create(CultureInfo.InvariantCulture, $"LeakyRelu slope {slope}");
    }

    /// <summary>The factor applied to inputs ≤ 0 (as given; a float layer computes with it rounded to float).</summary>
    public double Slope { get; }

    /// <inheritdoc />
    public override string Name => _name;

    /// <summary>The input's shape: the layer is element-wise.</summary>
    /// <param name="inputShape">Any shape.</param>
    /// <returns>A copy of <paramref name="inputShape"/>.</returns>
    public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

    /// <summary>"LeakyRelu" with its setting "slope".</summary>
    /// <returns>The description.</returns>
    public override LayerDescription Describe() => new("LeakyRelu", ("slope", Slope));

    /// <summary>The layer a <see cref="Describe"/> result stands for.</summary>
    internal static LeakyRelu<T> FromDescription(LayerDescription d) => new(d.Get("slope"));

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> ForwardCore(Tensor<T> input)
    {
        _input = input;
        var output = Tensor<T>.ReuseLike(ref _output, input);
        Span<T> x = input.Span, y = output.Span;
        T slope = _slope;
        for (int i = 0; i < x.Length; i++) y[i] = x[i] > T.Zero ? x[i] : x[i] * slope;
        return output;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    protected override Tensor<T> BackwardCore(Tensor<T> outputGradient)
    {
        var inputGrad = Tensor<T>.ReuseLike(ref _inputGrad, outputGradient);
        Span<T> x = _input!.Span, dy = outputGradient.Span, dx = inputGrad.Span;
        T slope = _slope;
        for (int i = 0; i < x.Length; i++) dx[i] = x[i] > T.Zero ? dy[i] : dy[i] * slope;
        return inputGrad;
    }
}
