using System.Numerics;
using System.Runtime.CompilerServices;

namespace LeNetSharp.Tensors;

/// <summary>The element-wise maxima the reference layers use, defined once so that every kernel can match their bits.</summary>
internal static class ScalarOps
{
    /// <summary>
    /// IEEE max(x, 0) with a NaN passed on with its bits: +0 where x ≤ 0 (−0 included), else x. Written as a comparison
    /// and a select, not as <c>T.Max</c>/<c>Vector.Max</c>, whose NaN results differ by CPU, vector width and
    /// JIT tier (one quiets a signalling NaN, another returns it as is): this way every path gives the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Relu<T>(T x) where T : INumber<T> => x <= T.Zero ? T.Zero : x;


    /// <summary>
    /// IEEE maximum with NaNs passed on with their bits: <paramref name="a"/> when it is NaN, else <paramref name="b"/>
    /// when it is NaN, else the larger (+0 above −0). <c>T.Max</c> and <c>Vector.Max</c> agree on numbers but
    /// choose between two NaNs, and quiet a signalling one, differently by CPU, width and JIT tier; this fixes the choice,
    /// so a maximum over several values is the first NaN among them in the order they are combined.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T MaxKeepingNaN<T>(T a, T b) where T : INumber<T> => T.IsNaN(a) ? a : T.IsNaN(b) ? b : T.Max(a, b);
}
