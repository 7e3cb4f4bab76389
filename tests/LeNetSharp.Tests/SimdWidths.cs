using System.Reflection;
using System.Runtime.Intrinsics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using Xunit.Sdk;

namespace LeNetSharp.Tests;

/// <summary>The SIMD widths the tests cover, and why one is skipped on a machine that lacks it.</summary>
internal static class SimdWidths
{
    public static readonly int[] All = [128, 256, 512];

    /// <summary>Null when <paramref name="bits"/>-bit vectors are hardware-accelerated here, else the reason to skip.</summary>
    public static string? SkipReason(int bits) => bits switch
    {
        128 => null, // always runs (accelerated, or the software fallback)
        256 when Vector256.IsHardwareAccelerated => null,
        512 when Vector512.IsHardwareAccelerated => null,
        _ => $"{bits}-bit vectors are not hardware-accelerated on this CPU ({CpuModel()})",
    };

    public static GemmProvider Provider(int bits) => GemmProvider.SimdWithWidth(bits);

    /// <summary>
    /// <paramref name="layer"/> alone in a network on the SIMD backend at <paramref name="bits"/>: its forward and backward
    /// run the backend's kernel for that layer (the code under test), where the layer itself runs the reference maths.
    /// </summary>
    public static Sequential<T> Kernel<T>(ILayer<T> layer, int bits) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        new(layer) { Backend = ComputeBackend.SimdWithWidth(bits) };

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }
}

/// <summary>A fact about one SIMD width: reported as skipped, with the reason, where the CPU lacks that width.</summary>
public sealed class WidthFactAttribute : FactAttribute
{
    public WidthFactAttribute(int bits) => Skip = SimdWidths.SkipReason(bits);
}

/// <summary>
/// Theory rows from a static member of the test class taking the width as its one argument
/// (<c>[WidthData(nameof(Cases), 512)]</c>); where the CPU lacks the width every row is reported as skipped, with the reason.
/// </summary>
public sealed class WidthDataAttribute : MemberDataAttributeBase
{
    public WidthDataAttribute(string memberName, int bits) : base(memberName, [bits]) => Skip = SimdWidths.SkipReason(bits);

    protected override object[] ConvertDataItem(MethodInfo testMethod, object item) =>
        item as object[] ?? throw new ArgumentException($"{MemberName} yielded a {item?.GetType().Name ?? "null"}, not object[].");
}
