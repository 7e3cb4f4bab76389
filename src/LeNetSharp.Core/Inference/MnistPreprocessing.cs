namespace LeNetSharp.Inference;

/// <summary>A rectangle of pixels: left column, top row, width and height (all in pixels, 0-based).</summary>
/// <param name="X">Left column.</param>
/// <param name="Y">Top row.</param>
/// <param name="Width">Columns (≥ 1).</param>
/// <param name="Height">Rows (≥ 1).</param>
public readonly record struct PixelBox(int X, int Y, int Width, int Height);

/// <summary>
/// Turns an arbitrary grey picture of one digit (a scan, a photo, a drawing of any size, dark on light or light on
/// dark) into a 28×28 image that looks like MNIST's, so a network trained on MNIST sees what it was trained on.
/// MNIST's digits were made like this (LeCun et al.): the ink's bounding box scaled, keeping its aspect ratio, to
/// fit 20×20 with anti-aliasing, then placed in 28×28 so that its centre of mass is at the centre. The steps, each a
/// pure function on row-major byte arrays (one byte per pixel, 0 = black, 255 = white), are:
/// <list type="number">
/// <item><see cref="ToWhiteOnBlack"/>: MNIST is white ink (255) on black (0); a page is light, so invert it, then
/// subtract the page's grey level and stretch the strokes to full strength.</item>
/// <item><see cref="InkBounds"/> and <see cref="Crop"/>: keep only the ink's bounding box.</item>
/// <item><see cref="ScaleLongerSide"/>: scale the box so its longer side is 20 pixels, by area averaging.</item>
/// <item><see cref="CentreByMass"/>: place it in 28×28 with its centre of mass at pixel (14, 14).</item>
/// </list>
/// On MNIST's own 28×28 digits the chain changes little (the ink threshold drops a faint outer pixel here and there,
/// which enlarges the digit slightly); with threshold 0 it gives back the image itself, apart from the contrast
/// stretch (tested on the first 1,000 test images).
/// </summary>
/// <remarks>Sizes are given as (width, height) here, the order image files use; the network's API uses (height, width).</remarks>
public static class MnistPreprocessing
{
    /// <summary>Side of the result: 28.</summary>
    public const int ImageSize = 28;

    /// <summary>Side of the box the digit is scaled into: 20 (MNIST leaves a margin of 4 on each side).</summary>
    public const int DigitSize = 20;

    /// <summary>
    /// The default ink threshold of <see cref="InkBounds"/>: 80 (about a third of full ink). Any smoothing of the
    /// picture (an image viewer's or camera's resampling, JPEG) leaves a faint halo around the strokes, and a photo
    /// has paper noise; counting those as ink would grow the box and so shrink the digit when it is scaled to 20
    /// pixels. Measured on 1,000 MNIST test digits drawn at 56×56, 100×140 and 300×300: thresholds 48–96 agree with
    /// the raw images' predictions best (0, MNIST's own "any non-zero pixel", loses about 0.5 %).
    /// </summary>
    public const byte InkThreshold = 80;

    /// <summary>
    /// All the steps: a 28×28 white-on-black image (0 = background, 255 = ink) centred like MNIST's. A picture
    /// without ink (blank, or a single uniform colour, which includes a 1×1 image) gives all zeros.
    /// </summary>
    /// <param name="grey">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>784 bytes, row-major 28×28, ready for <see cref="NetworkInference.Predict(Layers.Sequential{float}, ReadOnlySpan{byte}, int, int, int)"/>.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or a side is below 1.</exception>
    public static byte[] Preprocess(ReadOnlySpan<byte> grey, int width, int height) => Preprocess(grey, width, height, InkThreshold);

    /// <summary>All the steps, with the ink threshold of <see cref="InkBounds"/> given.</summary>
    /// <param name="grey">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="inkThreshold">Pixels above this (after <see cref="ToWhiteOnBlack"/>) count as ink when cropping.</param>
    /// <returns>784 bytes, row-major 28×28.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or a side is below 1.</exception>
    public static byte[] Preprocess(ReadOnlySpan<byte> grey, int width, int height, byte inkThreshold)
    {
        var ink = ToWhiteOnBlack(grey, width, height);
        if (InkBounds(ink, width, height, inkThreshold) is not { } box) return new byte[ImageSize * ImageSize];
        var crop = Crop(ink, width, height, box);
        var (scaled, w, h) = ScaleLongerSide(crop, box.Width, box.Height);
        return CentreByMass(scaled, w, h);
    }

    /// <summary>
    /// The median of the pixels on the image's outer edge (first and last rows and columns), the lower one of the
    /// two middle values for an even count. A digit is written on a page with a margin, so the edge is almost all
    /// page: its median is the page's colour even when strokes touch the edge (up to half of it), a shadow darkens a
    /// corner, or the digit is bold — unlike the mean or the median of the whole image.
    /// </summary>
    /// <param name="grey">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>The page's grey level.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    public static byte BorderMedian(ReadOnlySpan<byte> grey, int width, int height)
    {
        Check(grey, width, height);
        Span<int> histogram = stackalloc int[256];
        int count = 0;
        for (int y = 0; y < height; y++)
        {
            var row = grey.Slice(y * width, width);
            if (y == 0 || y == height - 1)
            {
                foreach (byte v in row) histogram[v]++;
                count += width;
            }
            else
            {
                histogram[row[0]]++;
                count++;
                if (width > 1)
                {
                    histogram[row[width - 1]]++;
                    count++;
                }
            }
        }

        int rank = (count - 1) / 2, seen = 0;
        for (int v = 0; v < 256; v++)
        {
            seen += histogram[v];
            if (seen > rank) return (byte)v;
        }

        return 255; // not reached
    }

    /// <summary>
    /// True when the page is light (<see cref="BorderMedian"/> above 127), i.e. the ink is dark on a light page and
    /// the image must be inverted to look like MNIST's white-on-black digits.
    /// </summary>
    /// <param name="grey">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>Whether <see cref="ToWhiteOnBlack"/> inverts this image.</returns>
    public static bool IsDarkOnLight(ReadOnlySpan<byte> grey, int width, int height) => BorderMedian(grey, width, height) > 127;

    /// <summary>
    /// Makes the ink white on a black page, as in MNIST: inverts when <see cref="IsDarkOnLight"/> (v → 255 − v), then
    /// maps the page's level b (the <see cref="BorderMedian"/> after inverting) to 0 and the strongest ink m to 255:
    /// v → round((v − b)·255 / (m − b)), below b → 0. Paper in a photo is grey, not white, and pencil is grey, not
    /// black, while every MNIST digit has a black page and full-strength strokes; an image that already is pure
    /// white-on-black (b = 0, m = 255) is unchanged. An image without contrast (m ≤ b: blank or uniform) gives zeros.
    /// </summary>
    /// <param name="grey">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>A new width·height array: 0 = page, 255 = the strongest ink.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    public static byte[] ToWhiteOnBlack(ReadOnlySpan<byte> grey, int width, int height)
    {
        int median = BorderMedian(grey, width, height);
        bool invert = median > 127;
        int background = invert ? 255 - median : median;
        int max = 0;
        foreach (byte p in grey) max = Math.Max(max, invert ? 255 - p : p);
        var result = new byte[grey.Length];
        if (max <= background) return result;
        int range = max - background;
        for (int i = 0; i < grey.Length; i++)
        {
            int v = (invert ? 255 - grey[i] : grey[i]) - background;
            result[i] = v <= 0 ? (byte)0 : (byte)((v * 255 + range / 2) / range);
        }

        return result;
    }

    /// <summary>
    /// The smallest rectangle holding every ink pixel, an ink pixel being one above <paramref name="threshold"/>.
    /// Cropping to it is what makes the digit's size and position in the picture irrelevant: only its shape is kept.
    /// </summary>
    /// <param name="ink">White-on-black pixels (see <see cref="ToWhiteOnBlack"/>), row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="threshold">Pixels above this are ink (default <see cref="InkThreshold"/>; 0 counts any non-zero pixel, as MNIST did).</param>
    /// <returns>The box, or null when no pixel is ink.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    public static PixelBox? InkBounds(ReadOnlySpan<byte> ink, int width, int height, byte threshold = InkThreshold)
    {
        Check(ink, width, height);
        int left = width, right = -1, top = -1, bottom = -1;
        for (int y = 0; y < height; y++)
        {
            var row = ink.Slice(y * width, width);
            int first = -1, last = -1;
            for (int x = 0; x < width; x++)
            {
                if (row[x] > threshold)
                {
                    if (first < 0) first = x;
                    last = x;
                }
            }

            if (first < 0) continue;
            if (top < 0) top = y;
            bottom = y;
            left = Math.Min(left, first);
            right = Math.Max(right, last);
        }

        return top < 0 ? null : new PixelBox(left, top, right - left + 1, bottom - top + 1);
    }

    /// <summary>Copies the pixels inside <paramref name="box"/>.</summary>
    /// <param name="grey">width·height pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="box">A rectangle inside the image.</param>
    /// <returns>box.Width·box.Height pixels, row after row.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or the box is not inside the image.</exception>
    public static byte[] Crop(ReadOnlySpan<byte> grey, int width, int height, PixelBox box)
    {
        Check(grey, width, height);
        if (box.X < 0 || box.Y < 0 || box.Width < 1 || box.Height < 1 || box.X + box.Width > width || box.Y + box.Height > height)
        {
            throw new ArgumentException($"The box {box} is not inside the {width}×{height} image.", nameof(box));
        }

        var result = new byte[box.Width * box.Height];
        for (int y = 0; y < box.Height; y++)
        {
            grey.Slice((box.Y + y) * width + box.X, box.Width).CopyTo(result.AsSpan(y * box.Width, box.Width));
        }

        return result;
    }

    /// <summary>
    /// Scales the image by s = size / max(width, height), the same factor on both axes so the digit keeps its
    /// aspect ratio (a "1" stays thin), by area averaging: each output pixel is the mean of the input over the
    /// square it covers, partly covered input pixels weighted by the covered fraction. That is the anti-aliasing
    /// MNIST used (its digits' edges are grey), works for shrinking by any factor (every input pixel counts, no
    /// aliasing) and for enlarging (each input pixel becomes a block with blended edges). The sums are exact
    /// integers, rounded once at the end (half up). The shorter side becomes ⌈side·s⌉ pixels; the part of its last
    /// pixel beyond the image counts as background (0). Time and memory grow with the input's pixel count only.
    /// </summary>
    /// <param name="grey">width·height pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="size">The longer side of the result (default <see cref="DigitSize"/>, 20).</param>
    /// <returns>The scaled pixels and their width and height (the larger of which is <paramref name="size"/>).</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or size is below 1.</exception>
    public static (byte[] Pixels, int Width, int Height) ScaleLongerSide(ReadOnlySpan<byte> grey, int width, int height, int size = DigitSize)
    {
        Check(grey, width, height);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        // In units of 1/(size·L): input pixel i spans [i·size, (i+1)·size), output pixel j spans [j·L, (j+1)·L).
        long longer = Math.Max(width, height);
        int outW = (int)((width * (long)size + longer - 1) / longer), outH = (int)((height * (long)size + longer - 1) / longer);
        var (xStart, xCount, xWeights) = Overlaps(width, outW, size, longer);
        var (yStart, yCount, yWeights) = Overlaps(height, outH, size, longer);

        var rows = new long[height * outW]; // horizontal pass: Σ v·overlap, ≤ 255·L per entry
        for (int y = 0; y < height; y++)
        {
            var src = grey.Slice(y * width, width);
            for (int j = 0, w = 0; j < outW; j++)
            {
                long sum = 0;
                for (int k = 0; k < xCount[j]; k++, w++) sum += src[xStart[j] + k] * xWeights[w];
                rows[y * outW + j] = sum;
            }
        }

        var result = new byte[outW * outH];
        long area = longer * longer;
        for (int j = 0, w = 0; j < outH; j++)
        {
            int first = w;
            for (int x = 0; x < outW; x++)
            {
                long sum = 0;
                w = first;
                for (int k = 0; k < yCount[j]; k++, w++) sum += rows[(yStart[j] + k) * outW + x] * yWeights[w];
                result[j * outW + x] = (byte)((sum + area / 2) / area);
            }

            w = first + yCount[j];
        }

        return (result, outW, outH);
    }

    /// <summary>
    /// The intensity-weighted mean position (x̄, ȳ) = (Σ v·x / Σ v, Σ v·y / Σ v), in pixel indices (pixel (0, 0)'s
    /// centre is (0, 0)).
    /// </summary>
    /// <param name="grey">width·height white-on-black pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>The centre of mass, or null when every pixel is 0.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    public static (double X, double Y)? CentreOfMass(ReadOnlySpan<byte> grey, int width, int height)
    {
        Check(grey, width, height);
        long total = 0, sx = 0, sy = 0;
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int v = grey[y * width + x];
                total += v;
                sx += (long)v * x;
                sy += (long)v * y;
            }
        }

        return total == 0 ? null : ((double)sx / total, (double)sy / total);
    }

    /// <summary>
    /// Places the image in a size×size black square, shifted by a whole number of pixels so that its
    /// <see cref="CentreOfMass"/> lands as close as possible to pixel (size/2, size/2) — (14, 14) for 28 — as MNIST
    /// did: the network learnt digits at that position, and the centre of mass, unlike the box's centre, does not
    /// move when a stroke such as a 7's bar sticks out. (Measured on MNIST's test set: every image's centre of mass
    /// is within half a pixel of (14, 14).) Whole-pixel shifts keep the values exact. Pixels shifted outside the
    /// square are dropped, which a 20×20 digit never is unless its mass sits more than 4 pixels off its box's centre.
    /// </summary>
    /// <param name="grey">width·height white-on-black pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="size">The side of the result (default <see cref="ImageSize"/>, 28).</param>
    /// <returns>size·size pixels, row after row; all zeros when the input is.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or size is below 1.</exception>
    public static byte[] CentreByMass(ReadOnlySpan<byte> grey, int width, int height, int size = ImageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        var result = new byte[size * size];
        if (CentreOfMass(grey, width, height) is not var (cx, cy)) return result;
        int dx = (int)Math.Floor(size / 2 - cx + 0.5), dy = (int)Math.Floor(size / 2 - cy + 0.5);
        for (int y = 0; y < height; y++)
        {
            int ty = y + dy;
            if (ty < 0 || ty >= size) continue;
            for (int x = 0; x < width; x++)
            {
                int tx = x + dx;
                if (tx >= 0 && tx < size) result[ty * size + tx] = grey[y * width + x];
            }
        }

        return result;
    }

    /// <summary>
    /// For n input pixels scaled to m output pixels (input pixel = <paramref name="unitIn"/>, output pixel =
    /// <paramref name="unitOut"/> units): each output pixel's first input pixel, how many it overlaps, and the
    /// overlaps in units, all output pixels' weights one after the other.
    /// </summary>
    private static (int[] Start, int[] Count, long[] Weights) Overlaps(int n, int m, long unitIn, long unitOut)
    {
        var start = new int[m];
        var count = new int[m];
        var weights = new List<long>(n + m);
        long end = n * unitIn;
        for (int j = 0; j < m; j++)
        {
            long lo = j * unitOut, hi = Math.Min((j + 1) * unitOut, end);
            int first = (int)(lo / unitIn), last = (int)((hi - 1) / unitIn);
            start[j] = first;
            count[j] = last - first + 1;
            for (int i = first; i <= last; i++) weights.Add(Math.Min(hi, (i + 1) * unitIn) - Math.Max(lo, i * unitIn));
        }

        return (start, count, weights.ToArray());
    }

    private static void Check(ReadOnlySpan<byte> grey, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (grey.Length != (long)width * height)
        {
            throw new ArgumentException($"A {width}×{height} image has {(long)width * height} pixels, got {grey.Length}.", nameof(grey));
        }
    }
}
