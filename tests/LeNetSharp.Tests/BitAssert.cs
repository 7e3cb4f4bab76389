using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>Comparisons of floating-point results as bits: −0 and +0 differ, a NaN equals only its own payload (unless told otherwise).</summary>
internal static class BitAssert
{
    public static long Bits<T>(T value) where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? BitConverter.SingleToInt32Bits(Unsafe.BitCast<T, float>(value)) : BitConverter.DoubleToInt64Bits(Unsafe.BitCast<T, double>(value));

    public static string Show<T>(T value) where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? $"{value} (0x{(uint)Bits(value):X8})" : $"{value} (0x{Bits(value):X16})";

    /// <summary>Fails on the first element whose bits differ, naming it, both values and their bits.</summary>
    public static void SameBits<T>(Tensor<T> expected, Tensor<T> actual, string what, bool anyNaN = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        actual.ShapeString.Should().Be(expected.ShapeString, what);
        SameBits(expected.Data, actual.Data, what, anyNaN);
    }

    public static void SameBits<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what, bool anyNaN = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        actual.Length.Should().Be(expected.Length, what);
        for (int i = 0; i < expected.Length; i++)
        {
            if (Bits(expected[i]) != Bits(actual[i]) && !(anyNaN && T.IsNaN(expected[i]) && T.IsNaN(actual[i])))
            {
                throw new Xunit.Sdk.XunitException($"{what}: element {i} of {expected.Length} is {Show(actual[i])}, the reference gives {Show(expected[i])}.");
            }
        }
    }
}
