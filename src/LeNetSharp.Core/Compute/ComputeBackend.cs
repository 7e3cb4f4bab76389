using System.Numerics;
using System.Runtime.Intrinsics;
using LeNetSharp.Kernels;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>
/// Where a network's arithmetic runs. The layers hold the reference maths (plain loops, im2col + GEMM); a backend decides,
/// once per network and input shape, which of them run as they are and which a faster kernel replaces (one layer, or
/// several fused into one pass). Every kernel gives the layers' results bit for bit, at every vector width.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><see cref="Reference"/>: the layers' own code with MathNet's GEMM, nothing replaced.</item>
/// <item><see cref="Simd"/>: LeNetSharp's SIMD kernels; the vector width (128, 256 or 512 bits) of each step is chosen
/// per network, shape and mode by timing each candidate once on the first batch (a few milliseconds, remembered for the
/// process), since the fastest width differs by CPU, by network and by layer, and all give the same bits.</item>
/// <item><see cref="SimdWithWidth"/>: the SIMD kernels at one width, no timing.</item>
/// </list>
/// A backend is immutable and can be shared by any number of networks and threads.
/// </remarks>
public abstract class ComputeBackend
{
    private static readonly SimdBackend?[] FixedWidths = new SimdBackend?[3];

    private protected ComputeBackend()
    {
    }

    /// <summary>The layers' own code with MathNet's GEMM (<see cref="GemmProvider.MathNet"/>): the reference every kernel is checked against.</summary>
    public static ComputeBackend Reference { get; } = new ReferenceBackend();

    /// <summary>The SIMD kernels, each step at the width measured fastest for it in each network, input shape and mode.</summary>
    public static ComputeBackend Simd { get; } = new SimdBackend(null);

    /// <summary>
    /// What a network starts with: <see cref="Reference"/> when MathNet runs a native provider (MKL, OpenBLAS), otherwise
    /// <see cref="Simd"/> (MathNet's managed provider is a scalar loop, 10–40x slower on these shapes).
    /// </summary>
    public static ComputeBackend Default => MathNetGemmProvider.IsNative ? Reference : Simd;

    /// <summary>The vector widths, in bits, that this CPU accelerates (128 always counts: it has a software fallback).</summary>
    public static IReadOnlyList<int> AcceleratedWidths { get; } =
        new[] { 128, 256, 512 }.Where(b => b == 128 || (b == 256 ? Vector256.IsHardwareAccelerated : Vector512.IsHardwareAccelerated)).ToArray();

    /// <summary>
    /// The SIMD kernels at one vector width, without timing: the GEMM, the convolution, linear, batch-norm, dropout,
    /// pooling and fused kernels run at <paramref name="bits"/> (those of fewer channels than a vector holds at a narrower
    /// width); a ReLU standing alone uses <see cref="System.Numerics.Vector{T}"/>, whose width .NET picks for the CPU (the
    /// same bits either way).
    /// </summary>
    /// <param name="bits">128, 256 or 512.</param>
    /// <returns>The backend.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bits"/> is not 128, 256 or 512.</exception>
    /// <exception cref="PlatformNotSupportedException">The width is not hardware-accelerated here.</exception>
    public static ComputeBackend SimdWithWidth(int bits)
    {
        int slot = bits switch
        {
            128 => 0,
            256 => 1,
            512 => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Vector width must be 128, 256 or 512 bits."),
        };
        if (!AcceleratedWidths.Contains(bits)) throw new PlatformNotSupportedException($"{bits}-bit vectors are not hardware-accelerated on this machine.");
        return FixedWidths[slot] ??= new SimdBackend(bits);
    }

    /// <summary>Looks a backend up by name: "reference" (or "mathnet"), "simd" (width measured), "simd512", "simd256" or "simd128".</summary>
    /// <param name="name">The name, case-insensitive.</param>
    /// <returns>The backend.</returns>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    /// <exception cref="PlatformNotSupportedException">A width this CPU does not accelerate.</exception>
    public static ComputeBackend FromName(string name) => name?.ToLowerInvariant() switch
    {
        "reference" or "mathnet" => Reference,
        "simd" => Simd,
        "simd512" => SimdWithWidth(512),
        "simd256" => SimdWithWidth(256),
        "simd128" => SimdWithWidth(128),
        _ => throw new ArgumentException($"Unknown backend '{name}'; expected reference, simd, simd512, simd256 or simd128.", nameof(name)),
    };

    /// <summary>A short name, e.g. "simd (width measured)" or "simd (Vector256)".</summary>
    public abstract string Name { get; }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>The plan for <paramref name="network"/> on an input like <paramref name="input"/>; validates the shape first.</summary>
    internal abstract ExecutionPlan<T> BuildPlan<T>(Sequential<T> network, Tensor<T> input, PlanMode mode) where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>
    /// Throws the layers' own message when the network cannot take <paramref name="shape"/>, and names the layer when one
    /// example of that shape would hold or cost more than <see cref="NetworkLimits"/> allows: checked once per plan,
    /// before any buffer of the plan is allocated, whichever way the network is run.
    /// </summary>
    private protected static void RequireShape<T>(Sequential<T> network, ReadOnlySpan<int> shape) where T : unmanaged, IFloatingPointIeee754<T>
    {
        network.OutputShapes(shape);
        var example = shape[1..];
        string shown = $"({string.Join(", ", example.ToArray())})";
        NetworkLimits.Check(network.Layers, example, problem => new ArgumentException($"The network is over the library's ceilings for {shown} inputs: {problem}"));
    }

    /// <summary>Every layer by its own code.</summary>
    private protected static PlanStep<T>[] LayerSteps<T>(Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T> =>
        network.Layers.Select(l => (PlanStep<T>)new LayerStep<T>(l)).ToArray();
}

/// <summary>The layers' own code, MathNet's GEMM.</summary>
internal sealed class ReferenceBackend : ComputeBackend
{
    public override string Name => "reference (MathNet GEMM)";

    internal override ExecutionPlan<T> BuildPlan<T>(Sequential<T> network, Tensor<T> input, PlanMode mode)
    {
        RequireShape(network, input.Shape);
        return new ExecutionPlan<T>(input.Shape, mode, LayerSteps(network), new int[network.Layers.Count], Name);
    }
}

/// <summary>
/// The SIMD kernels (<see cref="KernelRules"/>) at a fixed width, or each step at the width <see cref="WidthCalibration"/>
/// measured fastest for it in this network, shape and mode.
/// </summary>
internal sealed class SimdBackend(int? bits) : ComputeBackend
{
    public int? Bits { get; } = bits;

    public override string Name => Bits is int b ? $"simd (Vector{b})" : "simd (width measured)";

    internal override ExecutionPlan<T> BuildPlan<T>(Sequential<T> network, Tensor<T> input, PlanMode mode)
    {
        RequireShape(network, input.Shape);
        // Layer by layer runs no kernel but the GEMM: the widths measured for inference serve it.
        int[] layerBits = Bits is int b
            ? Uniform(network, b)
            : WidthCalibration.Choose(network, input, mode == PlanMode.LayerByLayer ? PlanMode.Inference : mode);
        return Build(network, input.Shape, mode, layerBits);
    }

    /// <summary>Every layer at <paramref name="bits"/>-bit vectors.</summary>
    internal static int[] Uniform<T>(Sequential<T> network, int bits) where T : unmanaged, IFloatingPointIeee754<T> =>
        Enumerable.Repeat(bits, network.Layers.Count).ToArray();

    /// <summary>
    /// The plan with the step that starts at layer i at <paramref name="layerBits"/>[i]-bit vectors (the layers a step
    /// fuses share its width).
    /// </summary>
    internal static ExecutionPlan<T> Build<T>(Sequential<T> network, ReadOnlySpan<int> inputShape, PlanMode mode, int[] layerBits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        PlanStep<T>[] steps = mode == PlanMode.LayerByLayer ? LayerSteps(network) : KernelRules.Steps(network.Layers, inputShape, mode, layerBits);
        var stepBits = new int[steps.Length];
        for (int s = 0, layer = 0; s < steps.Length; layer += steps[s].LayerCount, s++) stepBits[s] = layerBits[layer];
        var widths = WidthNames.Distinct(stepBits).Select(b => $"Vector{b}").ToArray();
        string name = widths.Length == 1 ? $"simd ({widths[0]})" : $"simd ({WidthNames.List(widths)} by step)";
        return new ExecutionPlan<T>(inputShape, mode, steps, stepBits, name);
    }
}
