using System.Numerics;
using System.Runtime.CompilerServices;

namespace LeNetSharp.Tensors;

/// <summary>
/// A dense, row-major (C order) tensor: a flat <see cref="Data"/> array and a shape.
/// Images use NHWC layout: shape (N, H, W, C); matrices are (rows, columns).
/// </summary>
/// <typeparam name="T">Element type: <see cref="float"/> for training, <see cref="double"/> for gradient checks.</typeparam>
/// <remarks>
/// <see cref="Data"/> always has exactly <see cref="Length"/> elements, so it can be handed to a BLAS-style GEMM
/// as is. Tensors are not thread-safe.
/// </remarks>
public sealed class Tensor<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly int[] _shape;

    /// <summary>Creates a zero-filled tensor of the given shape.</summary>
    /// <param name="shape">Dimensions, outermost first; each must be ≥ 1.</param>
    /// <exception cref="ArgumentException">A dimension is below 1, or no dimension was given.</exception>
    public Tensor(params int[] shape)
        : this(new T[CheckedLength(shape)], shape)
    {
    }

    /// <summary>Wraps an existing array (no copy) as a tensor of the given shape.</summary>
    /// <param name="data">The elements in row-major order; its length must equal the product of <paramref name="shape"/>.</param>
    /// <param name="shape">Dimensions, outermost first; each must be ≥ 1.</param>
    /// <exception cref="ArgumentException">The array length does not match the shape.</exception>
    public Tensor(T[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        int length = CheckedLength(shape);
        if (data.Length != length)
        {
            throw new ArgumentException(
                $"Data has {data.Length} elements but shape {ShapeToString(shape)} needs {length}.", nameof(data));
        }

        Data = data;
        _shape = (int[])shape.Clone();
    }

    /// <summary>The elements in row-major order; exactly <see cref="Length"/> of them.</summary>
    public T[] Data { get; }

    /// <summary>The dimensions, outermost first (for images: N, H, W, C).</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The number of elements: the product of the dimensions.</summary>
    public int Length => Data.Length;

    /// <summary>The elements as a span.</summary>
    public Span<T> Span => Data;

    /// <summary>Dimension <paramref name="axis"/> of the shape.</summary>
    /// <param name="axis">0-based axis; must be below <see cref="Rank"/>.</param>
    public int Dim(int axis) => _shape[axis];

    /// <summary>True when this tensor has exactly the given shape.</summary>
    /// <param name="shape">The dimensions to compare against.</param>
    public bool HasShape(ReadOnlySpan<int> shape) => shape.SequenceEqual(_shape);

    /// <summary>The shape written as "(d0, d1, …)".</summary>
    public string ShapeString => ShapeToString(_shape);

    /// <summary>Sets every element to zero.</summary>
    public void Clear() => Array.Clear(Data);

    /// <summary>Copies the elements of <paramref name="source"/> into this tensor (same length required).</summary>
    /// <param name="source">A tensor with the same number of elements.</param>
    public void CopyFrom(Tensor<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.Length != Length)
        {
            throw new ArgumentException($"Cannot copy {source.ShapeString} into {ShapeString}.", nameof(source));
        }

        source.Data.CopyTo(Data, 0);
    }

    /// <summary>A new tensor with the same shape and a copy of the elements.</summary>
    public Tensor<T> Clone() => new((T[])Data.Clone(), _shape);

    /// <inheritdoc />
    public override string ToString() => $"Tensor<{typeof(T).Name}>{ShapeString}";

    /// <summary>Formats a shape as "(d0, d1, …)".</summary>
    /// <param name="shape">The dimensions.</param>
    public static string ShapeToString(ReadOnlySpan<int> shape) => "(" + string.Join(", ", shape.ToArray()) + ")";

    /// <summary>
    /// Returns <paramref name="buffer"/> when it already has the shape (d0, d1), else replaces it with a new zeroed
    /// tensor of that shape. Layers use this to allocate only when the batch size changes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal static Tensor<T> Reuse(ref Tensor<T>? buffer, int d0, int d1)
    {
        if (buffer is null || buffer.Rank != 2 || buffer._shape[0] != d0 || buffer._shape[1] != d1)
        {
            buffer = new Tensor<T>(d0, d1);
        }

        return buffer;
    }

    /// <summary>As <see cref="Reuse(ref Tensor{T}?, int, int)"/> for a rank-4 shape (d0, d1, d2, d3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal static Tensor<T> Reuse(ref Tensor<T>? buffer, int d0, int d1, int d2, int d3)
    {
        if (buffer is null || buffer.Rank != 4 || buffer._shape[0] != d0 || buffer._shape[1] != d1
            || buffer._shape[2] != d2 || buffer._shape[3] != d3)
        {
            buffer = new Tensor<T>(d0, d1, d2, d3);
        }

        return buffer;
    }

    /// <summary>As <see cref="Reuse(ref Tensor{T}?, int, int)"/> for any shape (allocates the shape array; not for hot paths).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal static Tensor<T> Reuse(ref Tensor<T>? buffer, ReadOnlySpan<int> shape)
    {
        if (buffer is null || !buffer.HasShape(shape))
        {
            buffer = new Tensor<T>(shape.ToArray());
        }

        return buffer;
    }

    /// <summary>As <see cref="Reuse(ref Tensor{T}?, int, int)"/> for the shape of <paramref name="like"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal static Tensor<T> ReuseLike(ref Tensor<T>? buffer, Tensor<T> like) => like.Rank switch
    {
        2 => Reuse(ref buffer, like._shape[0], like._shape[1]),
        4 => Reuse(ref buffer, like._shape[0], like._shape[1], like._shape[2], like._shape[3]),
        _ => Reuse(ref buffer, like.Shape),
    };

    private static int CheckedLength(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length == 0)
        {
            throw new ArgumentException("A tensor needs at least one dimension.", nameof(shape));
        }

        long length = 1;
        foreach (int d in shape)
        {
            if (d < 1)
            {
                throw new ArgumentException($"Every dimension must be at least 1; got {ShapeToString(shape)}.", nameof(shape));
            }

            length *= d;
            if (length > Array.MaxLength)
            {
                throw new ArgumentException($"Shape {ShapeToString(shape)} is too large for one array.", nameof(shape));
            }
        }

        return (int)length;
    }
}
