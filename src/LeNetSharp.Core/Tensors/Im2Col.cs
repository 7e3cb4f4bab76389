using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LeNetSharp.Tensors;

/// <summary>
/// The sizes of one 2-D convolution over an NHWC batch: input (N, H, W, C), kernel (KH, KW, C, OC),
/// output (N, OH, OW, OC) with OH = (H + 2·Padding − KH) / Stride + 1 and likewise OW.
/// </summary>
/// <param name="N">Batch size.</param>
/// <param name="H">Input height.</param>
/// <param name="W">Input width.</param>
/// <param name="C">Input channels.</param>
/// <param name="KH">Kernel height.</param>
/// <param name="KW">Kernel width.</param>
/// <param name="Stride">Step between neighbouring windows, in both directions.</param>
/// <param name="Padding">Zero padding added on every side.</param>
public readonly record struct ConvGeometry(int N, int H, int W, int C, int KH, int KW, int Stride, int Padding)
{
    /// <summary>Output height: (H + 2·Padding − KH) / Stride + 1.</summary>
    public int OH => (H + 2 * Padding - KH) / Stride + 1;

    /// <summary>Output width: (W + 2·Padding − KW) / Stride + 1.</summary>
    public int OW => (W + 2 * Padding - KW) / Stride + 1;

    /// <summary>Rows of the patch matrix: N·OH·OW, one per output pixel.</summary>
    public int PatchRows => N * OH * OW;

    /// <summary>Columns of the patch matrix: KH·KW·C, one per kernel tap and input channel.</summary>
    public int PatchColumns => KH * KW * C;

    /// <summary>Throws when a size is non-positive or the kernel does not fit the padded input.</summary>
    /// <exception cref="ArgumentException">The geometry is impossible; the message says which size.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Validate()
    {
        if (N < 1 || H < 1 || W < 1 || C < 1)
        {
            throw new ArgumentException($"Input must have positive sizes; got (N, H, W, C) = ({N}, {H}, {W}, {C}).");
        }

        if (KH < 1 || KW < 1 || Stride < 1 || Padding < 0)
        {
            throw new ArgumentException($"Kernel {KH}x{KW}, stride {Stride}, padding {Padding}: sizes and stride must be ≥ 1, padding ≥ 0.");
        }

        if (H + 2 * Padding < KH || W + 2 * Padding < KW)
        {
            throw new ArgumentException(
                $"Kernel {KH}x{KW} does not fit input {H}x{W} with padding {Padding}.");
        }
    }
}

/// <summary>
/// im2col for NHWC images and its adjoint col2im. Row r = (n, oh, ow) of the patch matrix (N·OH·OW, KH·KW·C)
/// holds the input window under output pixel (n, oh, ow), taps ordered (kh, kw, c) to match a (KH, KW, C, OC)
/// kernel; taps that fall into the zero padding are 0. All of the reference layers' convolution index arithmetic is
/// here; the backend's kernels index on their own and are tested against it.
/// </summary>
public static class Im2Col
{
    /// <summary>Fills the patch matrix <paramref name="cols"/> (N·OH·OW, KH·KW·C) from the image batch <paramref name="x"/> (N, H, W, C).</summary>
    /// <param name="x">Input batch, N·H·W·C elements, NHWC.</param>
    /// <param name="g">The convolution's sizes.</param>
    /// <param name="cols">Destination, N·OH·OW·KH·KW·C elements; fully overwritten.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">A span's length does not match <paramref name="g"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Forward<T>(ReadOnlySpan<T> x, in ConvGeometry g, Span<T> cols) where T : unmanaged, INumberBase<T>
    {
        CheckLengths(x.Length, cols.Length, g);
        int oh = g.OH, ow = g.OW, c = g.C, rowLength = g.PatchColumns, tapRow = g.KW * c;
        int vw = Vector256<T>.Count, tapVectors = (tapRow + vw - 1) / vw * vw;
        ref T x0 = ref MemoryMarshal.GetReference(x);
        ref T cols0 = ref MemoryMarshal.GetReference(cols);
        int row = 0;
        for (int n = 0; n < g.N; n++)
        {
            for (int y = 0; y < oh; y++)
            {
                int iy0 = y * g.Stride - g.Padding;
                bool rowsInside = iy0 >= 0 && iy0 + g.KH <= g.H;
                for (int xo = 0; xo < ow; xo++, row++)
                {
                    int ix0 = xo * g.Stride - g.Padding;
                    int dstStart = row * rowLength;
                    if (rowsInside && ix0 >= 0 && ix0 + g.KW <= g.W)
                    {
                        // The window lies inside the image: KH contiguous runs of KW·C elements.
                        int src = ((n * g.H + iy0) * g.W + ix0) * c;
                        int lastSrc = src + (g.KH - 1) * g.W * c;
                        if (Vector256.IsHardwareAccelerated && lastSrc + tapVectors <= x.Length && dstStart + (g.KH - 1) * tapRow + tapVectors <= cols.Length)
                        {
                            // Whole vectors, possibly past the run's end: the next run (written next) overwrites the excess.
                            ref T s = ref Unsafe.Add(ref x0, src);
                            ref T d = ref Unsafe.Add(ref cols0, dstStart);
                            for (int kh = 0; kh < g.KH; kh++)
                            {
                                for (int i = 0; i < tapRow; i += vw)
                                {
                                    Vector256.LoadUnsafe(ref Unsafe.Add(ref s, i)).StoreUnsafe(ref Unsafe.Add(ref d, i));
                                }

                                s = ref Unsafe.Add(ref s, g.W * c);
                                d = ref Unsafe.Add(ref d, tapRow);
                            }

                            continue;
                        }
                    }

                    Span<T> dst = cols.Slice(dstStart, rowLength);
                    for (int kh = 0; kh < g.KH; kh++)
                    {
                        int iy = iy0 + kh;
                        Span<T> dstRow = dst.Slice(kh * tapRow, tapRow);
                        if ((uint)iy >= (uint)g.H)
                        {
                            dstRow.Clear();
                            continue;
                        }

                        int rowBase = (n * g.H + iy) * g.W;
                        // The kernel row spans input columns ix0 .. ix0+KW-1; copy the part inside the image in one go.
                        int first = Math.Clamp(-ix0, 0, g.KW), last = Math.Clamp(g.W - ix0, first, g.KW);
                        dstRow[..(first * c)].Clear();
                        if (last > first)
                        {
                            x.Slice((rowBase + ix0 + first) * c, (last - first) * c).CopyTo(dstRow[(first * c)..]);
                        }

                        dstRow[(last * c)..].Clear();
                    }
                }
            }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="Forward{T}"/>: scatters patch-matrix gradients back onto the image, summing where
    /// windows overlap. <paramref name="dx"/> (N, H, W, C) is overwritten, not accumulated into.
    /// </summary>
    /// <param name="cols">Patch-matrix gradient, N·OH·OW·KH·KW·C elements.</param>
    /// <param name="g">The convolution's sizes.</param>
    /// <param name="dx">Destination image gradient, N·H·W·C elements; fully overwritten.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">A span's length does not match <paramref name="g"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void Backward<T>(ReadOnlySpan<T> cols, in ConvGeometry g, Span<T> dx) where T : unmanaged, INumberBase<T>
    {
        CheckLengths(dx.Length, cols.Length, g);
        dx.Clear();
        int oh = g.OH, ow = g.OW, c = g.C, rowLength = g.PatchColumns, tapRow = g.KW * c;
        int row = 0;
        for (int n = 0; n < g.N; n++)
        {
            for (int y = 0; y < oh; y++)
            {
                for (int xo = 0; xo < ow; xo++, row++)
                {
                    ReadOnlySpan<T> src = cols.Slice(row * rowLength, rowLength);
                    int iy0 = y * g.Stride - g.Padding, ix0 = xo * g.Stride - g.Padding;
                    int first = Math.Clamp(-ix0, 0, g.KW), last = Math.Clamp(g.W - ix0, first, g.KW);
                    if (last == first) continue;
                    for (int kh = 0; kh < g.KH; kh++)
                    {
                        int iy = iy0 + kh;
                        if ((uint)iy >= (uint)g.H) continue;
                        ShortCopy.Add(src.Slice(kh * tapRow + first * c, (last - first) * c), dx.Slice(((n * g.H + iy) * g.W + ix0 + first) * c));
                    }
                }
            }
        }
    }

    /// <summary>
    /// The transposed patch matrix: fills <paramref name="colsT"/> (KH·KW·C, N·OH·OW) with Pᵀ, so row (kh, kw, c) holds
    /// that tap for every output pixel. For single-channel images at stride 1 each (tap, image row) is one contiguous
    /// run, which makes this layout several times cheaper to build than <see cref="Forward{T}"/>'s.
    /// </summary>
    /// <param name="x">Input batch, N·H·W·C elements, NHWC.</param>
    /// <param name="g">The convolution's sizes.</param>
    /// <param name="colsT">Destination, KH·KW·C·N·OH·OW elements; fully overwritten.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">A span's length does not match <paramref name="g"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void ForwardTransposed<T>(ReadOnlySpan<T> x, in ConvGeometry g, Span<T> colsT) where T : unmanaged, INumberBase<T>
    {
        CheckLengths(x.Length, colsT.Length, g);
        int oh = g.OH, ow = g.OW, c = g.C, m = g.PatchRows;
        for (int kh = 0; kh < g.KH; kh++)
        for (int kw = 0; kw < g.KW; kw++)
        for (int ch = 0; ch < c; ch++)
        {
            Span<T> row = colsT.Slice(((kh * g.KW + kw) * c + ch) * m, m);
            if (g.Stride == 1 && c == 1 && g.Padding == 0)
            {
                // The common case (LeNet's first layer): every output row is one image-row run, nothing to clear.
                ref T x0 = ref MemoryMarshal.GetReference(x);
                ref T d0 = ref MemoryMarshal.GetReference(row);
                for (int n = 0, d = 0; n < g.N; n++)
                {
                    for (int y = 0, src = (n * g.H + kh) * g.W + kw; y < oh; y++, d += ow, src += g.W)
                    {
                        ShortCopy.Copy(ref Unsafe.Add(ref x0, src), ref Unsafe.Add(ref d0, d), ow);
                    }
                }

                continue;
            }

            var (first, last) = ValidColumns(g, kw);
            for (int n = 0; n < g.N; n++)
            {
                for (int y = 0; y < oh; y++)
                {
                    Span<T> dst = row.Slice((n * oh + y) * ow, ow);
                    int iy = y * g.Stride - g.Padding + kh;
                    if ((uint)iy >= (uint)g.H || last <= first)
                    {
                        dst.Clear();
                        continue;
                    }

                    if (first > 0) dst[..first].Clear();
                    if (last < ow) dst[last..].Clear();
                    int src = ((n * g.H + iy) * g.W + first * g.Stride - g.Padding + kw) * c + ch;
                    if (g.Stride == 1 && c == 1)
                    {
                        ShortCopy.Copy(ref Unsafe.Add(ref MemoryMarshal.GetReference(x), src), ref dst[first], last - first);
                    }
                    else
                    {
                        for (int ox = first; ox < last; ox++, src += g.Stride * c) dst[ox] = x[src];
                    }
                }
            }
        }
    }

    /// <summary>
    /// The adjoint of <see cref="ForwardTransposed{T}"/>: scatters a transposed patch gradient (KH·KW·C, N·OH·OW) back
    /// onto the image (N, H, W, C), summing overlaps. <paramref name="dx"/> is overwritten.
    /// </summary>
    /// <param name="colsT">Transposed patch gradient, KH·KW·C·N·OH·OW elements.</param>
    /// <param name="g">The convolution's sizes.</param>
    /// <param name="dx">Destination image gradient, N·H·W·C elements; fully overwritten.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">A span's length does not match <paramref name="g"/>.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public static void BackwardTransposed<T>(ReadOnlySpan<T> colsT, in ConvGeometry g, Span<T> dx) where T : unmanaged, INumberBase<T>
    {
        CheckLengths(dx.Length, colsT.Length, g);
        dx.Clear();
        int oh = g.OH, ow = g.OW, c = g.C, m = g.PatchRows;
        // Taps last to first: each pixel then sums its windows' shares in Backward's order (output pixels in row-major
        // order, i.e. kernel rows and columns descending), so the two give the same bits.
        for (int kh = g.KH - 1; kh >= 0; kh--)
        for (int kw = g.KW - 1; kw >= 0; kw--)
        for (int ch = 0; ch < c; ch++)
        {
            ReadOnlySpan<T> row = colsT.Slice(((kh * g.KW + kw) * c + ch) * m, m);
            var (first, last) = ValidColumns(g, kw);
            if (last <= first) continue;
            for (int n = 0; n < g.N; n++)
            {
                for (int y = 0; y < oh; y++)
                {
                    int iy = y * g.Stride - g.Padding + kh;
                    if ((uint)iy >= (uint)g.H) continue;
                    ReadOnlySpan<T> src = row.Slice((n * oh + y) * ow + first, last - first);
                    int dst = ((n * g.H + iy) * g.W + first * g.Stride - g.Padding + kw) * c + ch;
                    if (g.Stride == 1 && c == 1)
                    {
                        ShortCopy.Add(src, dx[dst..]);
                    }
                    else
                    {
                        for (int i = 0; i < src.Length; i++, dst += g.Stride * c) dx[dst] += src[i];
                    }
                }
            }
        }
    }

    /// <summary>The output columns [first, last) whose input column ox·stride − pad + kw falls inside the image.</summary>
    private static (int First, int Last) ValidColumns(in ConvGeometry g, int kw)
    {
        int first = Math.Max(0, (g.Padding - kw + g.Stride - 1) / g.Stride);
        int last = Math.Min(g.OW, (g.W - 1 + g.Padding - kw) / g.Stride + 1);
        if (g.W - 1 + g.Padding - kw < 0) last = 0;
        return (first, Math.Max(first, last));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private static void CheckLengths(int imageLength, int colsLength, in ConvGeometry g)
    {
        g.Validate();
        long image = (long)g.N * g.H * g.W * g.C, patches = (long)g.PatchRows * g.PatchColumns;
        if (imageLength != image)
        {
            throw new ArgumentException($"Image buffer has {imageLength} elements; (N, H, W, C) = ({g.N}, {g.H}, {g.W}, {g.C}) needs {image}.");
        }

        if (colsLength != patches)
        {
            throw new ArgumentException($"Patch buffer has {colsLength} elements; ({g.PatchRows}, {g.PatchColumns}) needs {patches}.");
        }
    }
}
