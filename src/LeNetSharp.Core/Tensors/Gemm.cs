using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using LeNetSharp.Kernels;
using MathNet.Numerics.Providers.LinearAlgebra;

namespace LeNetSharp.Tensors;

/// <summary>
/// The one matrix-multiply entry point of LeNetSharp: every layer multiplies matrices through
/// <see cref="Multiply{T}(GemmProvider, bool, bool, int, int, int, T, T[], T[], T, T[])"/> with the provider its
/// network's execution plan chose from the network's <see cref="Compute.ComputeBackend"/>; there is no process-wide
/// setting, so two networks (a test and a server, say) never change each other's arithmetic.
/// </summary>
/// <remarks>
/// All matrices here are row-major (C order), as tensors are. Providers that think column-major (MathNet)
/// compute the transposed product instead, which needs no copy.
/// </remarks>
public static class Gemm
{
    /// <summary>
    /// C ← alpha·op(A)·op(B) + beta·C with <see cref="GemmProvider.Default"/>; see the overload taking a provider.
    /// </summary>
    /// <param name="transA">When true A is stored as (k, m) and op(A) = Aᵀ; else A is stored as (m, k).</param>
    /// <param name="transB">When true B is stored as (n, k) and op(B) = Bᵀ; else B is stored as (k, n).</param>
    /// <param name="m">Rows of C and of op(A).</param>
    /// <param name="n">Columns of C and of op(B).</param>
    /// <param name="k">The shared (summed) dimension.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A's elements: exactly m·k of them.</param>
    /// <param name="b">B's elements: exactly k·n of them.</param>
    /// <param name="beta">Scale of C's previous content: 0 overwrites, 1 accumulates.</param>
    /// <param name="c">C's elements: exactly m·n of them.</param>
    /// <typeparam name="T"><see cref="float"/> or <see cref="double"/>.</typeparam>
    /// <exception cref="ArgumentException">An array's length does not match its dimensions.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    public static void Multiply<T>(bool transA, bool transB, int m, int n, int k, T alpha, T[] a, T[] b, T beta, T[] c)
        where T : unmanaged, IFloatingPointIeee754<T> =>
        Multiply(GemmProvider.Default, transA, transB, m, n, k, alpha, a, b, beta, c);

    /// <summary>
    /// C ← alpha·op(A)·op(B) + beta·C, all row-major. op(A) is (m, k), op(B) is (k, n), C is (m, n).
    /// </summary>
    /// <param name="provider">The implementation to run, e.g. <see cref="GemmProvider.MathNet"/>.</param>
    /// <param name="transA">When true A is stored as (k, m) and op(A) = Aᵀ; else A is stored as (m, k).</param>
    /// <param name="transB">When true B is stored as (n, k) and op(B) = Bᵀ; else B is stored as (k, n).</param>
    /// <param name="m">Rows of C and of op(A).</param>
    /// <param name="n">Columns of C and of op(B).</param>
    /// <param name="k">The shared (summed) dimension.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A's elements: exactly m·k of them.</param>
    /// <param name="b">B's elements: exactly k·n of them.</param>
    /// <param name="beta">Scale of C's previous content: 0 overwrites, 1 accumulates.</param>
    /// <param name="c">C's elements: exactly m·n of them.</param>
    /// <typeparam name="T"><see cref="float"/> or <see cref="double"/>.</typeparam>
    /// <exception cref="ArgumentException">An array's length does not match its dimensions.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Multiply<T>(GemmProvider provider, bool transA, bool transB, int m, int n, int k, T alpha, T[] a, T[] b, T beta, T[] c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(provider);
        CheckLength(a, transA ? k : m, transA ? m : k, nameof(a));
        CheckLength(b, transB ? n : k, transB ? k : n, nameof(b));
        CheckLength(c, m, n, nameof(c));
        if (typeof(T) == typeof(float))
        {
            provider.Multiply(transA, transB, m, n, k, float.CreateTruncating(alpha), Unsafe.As<float[]>(a),
                Unsafe.As<float[]>(b), float.CreateTruncating(beta), Unsafe.As<float[]>(c));
        }
        else if (typeof(T) == typeof(double))
        {
            provider.Multiply(transA, transB, m, n, k, double.CreateTruncating(alpha), Unsafe.As<double[]>(a),
                Unsafe.As<double[]>(b), double.CreateTruncating(beta), Unsafe.As<double[]>(c));
        }
        else
        {
            throw new NotSupportedException($"GEMM supports float and double, not {typeof(T).Name}.");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void CheckLength<T>(T[] array, int rows, int columns, string name)
    {
        ArgumentNullException.ThrowIfNull(array, name);
        if (rows < 0 || columns < 0 || array.Length != (long)rows * columns)
        {
            throw new ArgumentException(
                $"Matrix {name} should be ({rows}, {columns}) = {(long)rows * columns} elements, but has {array.Length}.", name);
        }
    }
}

/// <summary>
/// A row-major GEMM implementation: C ← alpha·op(A)·op(B) + beta·C for float and double.
/// Arguments arrive already validated by <see cref="Gemm"/>.
/// </summary>
public abstract class GemmProvider
{
    /// <summary>Math.NET Numerics' linear-algebra provider (whichever one MathNet reports as active).</summary>
    public static GemmProvider MathNet { get; } = new MathNetGemmProvider();

    /// <summary>
    /// LeNetSharp's managed SIMD GEMM at the widest hardware-accelerated vector width (512, 256 or 128 bits).
    /// </summary>
    public static GemmProvider Simd { get; } = new SimdGemmProvider(
        Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 128);

    /// <summary>
    /// The fastest available: <see cref="MathNet"/> when MathNet runs a native provider (MKL, OpenBLAS), otherwise
    /// <see cref="Simd"/> (MathNet's managed provider is a scalar loop, 10–40x slower on these shapes).
    /// </summary>
    public static GemmProvider Default => MathNetGemmProvider.IsNative ? MathNet : Simd;

    /// <summary>The SIMD GEMM at an explicit vector width.</summary>
    /// <param name="bits">512, 256 or 128.</param>
    /// <returns>A provider using <c>Vector{bits}</c>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bits"/> is not 128, 256 or 512.</exception>
    /// <exception cref="PlatformNotSupportedException">The width is not hardware-accelerated here.</exception>
    public static GemmProvider SimdWithWidth(int bits) => new SimdGemmProvider(bits);

    /// <summary>Looks a provider up by name: "mathnet", "simd" (widest), "simd512", "simd256" or "simd128".</summary>
    /// <param name="name">The name, case-insensitive.</param>
    /// <returns>The provider.</returns>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    public static GemmProvider FromName(string name) => name?.ToLowerInvariant() switch
    {
        "mathnet" => MathNet,
        "simd" => Simd,
        "simd512" => SimdWithWidth(512),
        "simd256" => SimdWithWidth(256),
        "simd128" => SimdWithWidth(128),
        _ => throw new ArgumentException($"Unknown GEMM '{name}'; expected mathnet, simd, simd512, simd256 or simd128.", nameof(name)),
    };

    /// <summary>A short human-readable name, e.g. "mathnet (Managed)".</summary>
    public abstract string Name { get; }

    /// <summary>Single-precision GEMM; see <see cref="Gemm"/> for the meaning of each argument.</summary>
    /// <param name="transA">A stored transposed, (k, m).</param>
    /// <param name="transB">B stored transposed, (n, k).</param>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">Shared dimension.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, m·k elements.</param>
    /// <param name="b">B, k·n elements.</param>
    /// <param name="beta">Scale of C's previous content.</param>
    /// <param name="c">C, m·n elements.</param>
    public abstract void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, float[] a, float[] b, float beta, float[] c);

    /// <summary>Double-precision GEMM; see <see cref="Gemm"/> for the meaning of each argument.</summary>
    /// <param name="transA">A stored transposed, (k, m).</param>
    /// <param name="transB">B stored transposed, (n, k).</param>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">Shared dimension.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, m·k elements.</param>
    /// <param name="b">B, k·n elements.</param>
    /// <param name="beta">Scale of C's previous content.</param>
    /// <param name="c">C, m·n elements.</param>
    public abstract void Multiply(bool transA, bool transB, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[] c);

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>
/// GEMM through <see cref="LinearAlgebraControl.Provider"/>. MathNet is column-major: a row-major (r, c) buffer is
/// the column-major (c, r) matrix, so the row-major C = op(A)·op(B) is computed as the column-major
/// Cᵀ = op(B)ᵀ·op(A)ᵀ on the very same arrays.
/// </summary>
internal sealed class MathNetGemmProvider : GemmProvider
{
    /// <summary>True when MathNet's active provider is native code rather than its managed loops.</summary>
    public static bool IsNative => !LinearAlgebraControl.Provider.GetType().Name.Contains("Managed", StringComparison.Ordinal);

    public override string Name => $"mathnet ({LinearAlgebraControl.Provider})";

    public override void Multiply(bool transA, bool transB, int m, int n, int k, float alpha, float[] a, float[] b, float beta, float[] c)
    {
        var (tb, ta, rowsB, colsB, rowsA, colsA) = Layout(transA, transB, m, n, k);
        LinearAlgebraControl.Provider.MatrixMultiplyWithUpdate(tb, ta, alpha, b, rowsB, colsB, a, rowsA, colsA, beta, c);
    }

    public override void Multiply(bool transA, bool transB, int m, int n, int k, double alpha, double[] a, double[] b, double beta, double[] c)
    {
        var (tb, ta, rowsB, colsB, rowsA, colsA) = Layout(transA, transB, m, n, k);
        LinearAlgebraControl.Provider.MatrixMultiplyWithUpdate(tb, ta, alpha, b, rowsB, colsB, a, rowsA, colsA, beta, c);
    }

    /// <summary>
    /// The column-major call for row-major C = op(A)·op(B): first operand B, whose op(B)ᵀ is (n, k) — a row-major (k, n)
    /// buffer is already that matrix, a stored (n, k) one needs a transpose; second operand A likewise, op(A)ᵀ (k, m).
    /// </summary>
    private static (Transpose TransB, Transpose TransA, int RowsB, int ColsB, int RowsA, int ColsA) Layout(bool transA, bool transB, int m, int n, int k) =>
        (transB ? Transpose.Transpose : Transpose.DontTranspose, transA ? Transpose.Transpose : Transpose.DontTranspose,
         transB ? k : n, transB ? n : k, transA ? m : k, transA ? k : m);
}
