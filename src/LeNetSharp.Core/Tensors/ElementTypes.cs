namespace LeNetSharp.Tensors;

/// <summary>The element types the library computes in, checked when a layer or network is built.</summary>
internal static class ElementTypes
{
    /// <summary>
    /// Throws unless <typeparamref name="T"/> is <see cref="float"/> or <see cref="double"/>: the kernels (SIMD GEMM,
    /// im2col, pooling) exist for those two only, and another type (say <see cref="Half"/>) would otherwise build
    /// and then fail deep inside a vector call on the first forward pass.
    /// </summary>
    /// <param name="what">What is being built, for the message (e.g. "Conv&lt;Half&gt;").</param>
    /// <exception cref="NotSupportedException">Any other element type; the message names it and the two supported ones.</exception>
    public static void Require<T>(string what)
    {
        if (typeof(T) != typeof(float) && typeof(T) != typeof(double))
        {
            throw new NotSupportedException(
                $"{what}: element type {typeof(T).Name} is not supported; LeNetSharp computes in float (Single, for speed) or double (for gradient checks) only.");
        }
    }
}
