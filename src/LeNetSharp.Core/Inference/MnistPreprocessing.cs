using System.Numerics;

namespace LeNetSharp.Inference;

/// <summary>A rectangle of pixels: left column, top row, width and height (all in pixels, 0-based).</summary>
/// <param name="X">Left column.</param>
/// <param name="Y">Top row.</param>
/// <param name="Width">Columns (≥ 1).</param>
/// <param name="Height">Rows (≥ 1).</param>
internal readonly record struct PixelBox(int X, int Y, int Width, int Height);

/// <summary>
/// Turns an arbitrary grey picture of one digit (a scan, a photo, a drawing of any size, dark on light or light on
/// dark) into a 28×28 image that looks like MNIST's, so a network trained on MNIST sees what it was trained on:
/// <see cref="Preprocess(ReadOnlySpan{byte}, int, int)"/>. MNIST's digits were made like this (LeCun et al.): the
/// ink's bounding box scaled, keeping its aspect ratio, to fit 20×20 with anti-aliasing, then placed in 28×28 so
/// that its centre of mass is at the centre. The steps, on row-major bytes (one per pixel, 0 = black, 255 = white):
/// <list type="number">
/// <item>MNIST is white ink (255) on black (0); a page is light, so invert it, then subtract the page's grey level —
/// measured locally when a photo's lighting is uneven — and stretch the strokes to full strength.</item>
/// <item>Keep only the ink's bounding box, the ink threshold raised above a photo's pixel noise.</item>
/// <item>Scale the box so its longer side is 20 pixels, by area averaging, placing the pixel grid where the result is
/// sharpest (as MNIST's strokes are).</item>
/// <item>Place it in 28×28 with its centre of mass at pixel (14, 14).</item>
/// </list>
/// On MNIST's own 28×28 digits the chain changes little (the ink threshold drops a faint outer pixel here and there,
/// which enlarges the digit slightly); with the threshold at 0 it gives back the image itself, apart from the
/// contrast stretch (tested on the first 1,000 test images).
/// </summary>
/// <remarks>Sizes are given as (width, height) here, the order image files use; the network's API uses (height, width).</remarks>
public static class MnistPreprocessing
{
    /// <summary>Side of the result: 28.</summary>
    internal const int ImageSize = 28;

    /// <summary>Side of the box the digit is scaled into: 20 (MNIST leaves a margin of 4 on each side).</summary>
    internal const int DigitSize = 20;

    /// <summary>
    /// <see cref="ScaleSharpest"/> tries the 20-pixel grid at this many placements per axis, 1/8 of an output pixel
    /// apart: 8, so the best one is within 1/16 of a pixel of any grid the picture was enlarged from (64 placements:
    /// the scaling's first pass, along the longer side, runs 8 times, the cheap second one 64 times).
    /// </summary>
    internal const int PhaseSteps = 8;

    /// <summary>
    /// The largest output side <see cref="ScaleLongerSide"/>, <see cref="ScaleSharpest"/> and <see cref="CenterByMass"/>
    /// accept: 4096. Their cost grows with the output's pixel count as well as the input's (a size×size result is
    /// allocated), so an unbounded size would let a one-pixel input cost gigabytes; this package only ever needs 20
    /// and 28. Larger sizes throw <see cref="ArgumentOutOfRangeException"/>.
    /// </summary>
    internal const int MaxSize = 4096;

    /// <summary>
    /// The default ink threshold of <see cref="InkBounds"/>: 80 (about a third of full ink). Any smoothing of the
    /// picture (an image viewer's or camera's resampling, JPEG) leaves a faint halo around the strokes, and a photo
    /// has paper noise; counting those as ink would grow the box and so shrink the digit when it is scaled to 20
    /// pixels. Measured on 3,000 MNIST test digits drawn at 56×56, 100×140 and 300×300: thresholds 64–96 agree with
    /// the raw images' predictions best (0, MNIST's own "any non-zero pixel", loses about 0.5 %; with
    /// <see cref="ScaleSharpest"/>, 72 and 80 are within 0.1 % of each other).
    /// </summary>
    internal const byte InkThreshold = 80;

    /// <summary>
    /// Ink must stand out from the page by at least this many grey levels (of 255): 32. Measured after polarity
    /// detection and before the contrast stretch of <see cref="ToWhiteOnBlack"/>, as the strongest pixel's distance
    /// from the page's level (<see cref="BorderMedian"/>). A picture with less — blank, uniform (which includes any
    /// 1×1 picture), or only paper grain and JPEG noise — has no ink: <see cref="Preprocess(ReadOnlySpan{byte}, int, int)"/>
    /// throws <see cref="NoInkException"/> instead of stretching noise into a digit. Pencil on paper is 60 or more.
    /// </summary>
    internal const int MinInkContrast = 32;

    /// <summary>
    /// The ink's bounding box (see <see cref="InkBounds"/>) must have a longer side of at least 1/25 of the picture's
    /// longer side: a speck smaller than that (a single dark pixel on a page, a dust mark) is not a digit, and
    /// scaling it to 20 pixels would make a square "digit" out of it. A digit 28 pixels tall passes on a picture up
    /// to 700 pixels across, a 160-pixel one on a 4000-pixel photo; a single pixel passes only on a picture of at most
    /// 25×25.
    /// </summary>
    internal const int MinInkExtentFraction = 25;

    /// <summary>
    /// All the steps: a 28×28 white-on-black image (0 = background, 255 = ink) centred like MNIST's.
    /// </summary>
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>784 bytes, row-major 28×28, ready for <see cref="NetworkInference.Predict(Layers.Sequential{float}, ReadOnlySpan{byte}, int, int, int)"/>.</returns>
    /// <exception cref="NoInkException">
    /// The picture has no ink: the strongest ink differs from the page by less than 32 grey levels of 255 (blank,
    /// uniform, 1×1; pencil on paper is 60 or more), or the ink's bounding box has a longer side under 1/25 of the
    /// picture's (a speck).
    /// </exception>
    /// <exception cref="ArgumentException">The array length is not width·height, or a side is below 1.</exception>
    public static byte[] Preprocess(ReadOnlySpan<byte> gray, int width, int height) => Preprocess(gray, width, height, InkThreshold);

    /// <summary>
    /// All the steps, with the ink threshold of <see cref="InkBounds"/> given; on a noisy picture it is raised to
    /// <see cref="NoiseThreshold"/> of the picture's <see cref="NoiseLevel"/> (a clean picture keeps it).
    /// </summary>
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="inkThreshold">Pixels above this (after <see cref="ToWhiteOnBlack"/>) count as ink when cropping (the floor when the picture is noisy).</param>
    /// <returns>784 bytes, row-major 28×28.</returns>
    /// <exception cref="NoInkException">The picture has no ink (see <see cref="Preprocess(ReadOnlySpan{byte}, int, int)"/>).</exception>
    /// <exception cref="ArgumentException">The array length is not width·height, or a side is below 1.</exception>
    internal static byte[] Preprocess(ReadOnlySpan<byte> gray, int width, int height, byte inkThreshold)
    {
        Check(gray, width, height);
        var (_, background, max) = Levels(gray, width, height);
        if (max - background < MinInkContrast)
        {
            throw new NoInkException(
                $"no ink found (the strongest pixel differs from the page's grey level by {max - background} of 255; ink must differ by at least {MinInkContrast})");
        }

        var ink = Flatten(gray, width, height, out int contrast, out double noise);
        byte threshold = NoiseThreshold(noise, contrast, inkThreshold);
        if (InkBounds(ink, width, height, threshold) is not { } box)
        {
            throw new NoInkException($"no ink found (no pixel is above the ink threshold {threshold} after the contrast stretch)");
        }

        if ((long)Math.Max(box.Width, box.Height) * MinInkExtentFraction < Math.Max(width, height))
        {
            throw new NoInkException(
                $"no ink found (the only ink is a {box.Width}×{box.Height} speck in a {width}×{height} picture; a digit must span at least 1/{MinInkExtentFraction} of the longer side)");
        }

        var crop = Crop(ink, width, height, box);
        var (scaled, w, h, _, _) = ScaleSharpest(crop, box.Width, box.Height);
        return CenterByMass(scaled, w, h);
    }

    /// <summary>
    /// The median of the pixels on the image's outer edge (first and last rows and columns), the lower one of the
    /// two middle values for an even count. A digit is written on a page with a margin, so the edge is almost all
    /// page: its median is the page's colour even when strokes touch the edge (up to half of it), a shadow darkens a
    /// corner, or the digit is bold — unlike the mean or the median of the whole image.
    /// </summary>
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>The page's grey level.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    internal static byte BorderMedian(ReadOnlySpan<byte> gray, int width, int height)
    {
        Check(gray, width, height);
        Span<int> histogram = stackalloc int[256];
        int count = 0;
        for (int y = 0; y < height; y++)
        {
            var row = gray.Slice(y * width, width);
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
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>Whether <see cref="ToWhiteOnBlack"/> inverts this image.</returns>
    internal static bool IsDarkOnLight(ReadOnlySpan<byte> gray, int width, int height) => BorderMedian(gray, width, height) > 127;

    /// <summary>
    /// Makes the ink white on a black page, as in MNIST: inverts when <see cref="IsDarkOnLight"/> (v → 255 − v), then
    /// subtracts the page's level b and maps the strongest ink m (the largest v − b) to 255: v → round((v − b)·255 /
    /// m), below b → 0. Paper in a photo is grey, not white, and pencil is grey, not black, while every MNIST digit
    /// has a black page and full-strength strokes; an image that already is pure white-on-black (b = 0, m = 255) is
    /// unchanged. An image without contrast (m ≤ 0: blank or uniform) gives zeros. The page's level is the
    /// <see cref="BorderMedian"/> (after inverting) for a clean picture; for a noisy one (a photo: <see cref="NoiseLevel"/>
    /// at least 1) it is measured locally, b(x, y) = <see cref="PageLevels"/>, because a photo's paper is lit unevenly
    /// and its noise on the darker paper would otherwise count as ink. A clean picture keeps the single level: its
    /// page has no noise to pass the ink threshold, so one level suffices (shaded pages without noise are read at
    /// 100 % with it), and local levels only risk blocks inside thick strokes or their halos (on MNIST digits drawn at
    /// 300×300 they cost 1.6 % of the picture agreement).
    /// </summary>
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>A new width·height array: 0 = page, 255 = the strongest ink.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    internal static byte[] ToWhiteOnBlack(ReadOnlySpan<byte> gray, int width, int height) => Flatten(gray, width, height, out _, out _);

    /// <summary>
    /// Side of the blocks <see cref="PageLevels"/> measures the page in: at least 16 pixels, and at least 1/12 of the
    /// longer side (133 pixels on a 1200×1600 photo), so a block is wider than a pen stroke and most of it is paper,
    /// while the grid is fine enough to follow a page darkening towards its corners (with a quarter of the side, the
    /// shaded photos of <c>ShadedPhotoTests</c> are read no better than with a single level).
    /// </summary>
    internal const int PageBlock = 16;

    /// <summary>
    /// <see cref="PageLevels"/> keeps one uniform level (the <see cref="BorderMedian"/>) when its blocks' levels span
    /// at most this many grey levels: 4. A page lit evenly (every clean scan or drawing) is then treated exactly as a
    /// single colour, whatever noise or ink there is in a block.
    /// </summary>
    internal const int PageFlatness = 4;

    /// <summary>
    /// The page's grey level at every pixel of a white-on-black-oriented image (ink brighter than the page), for
    /// photos of paper lit unevenly: the light falls off across the page and towards its edges, so no single level is
    /// the paper everywhere; with one level, the darker paper counts as faint ink, noise on it passes the ink
    /// threshold, and the crop box grows over the shaded part ("flat-field" correction). The image is cut into a grid
    /// of blocks of about max(<see cref="PageBlock"/>, longer side / 12) pixels (n = max(1, side / that) blocks per
    /// axis, equal up to a pixel); each block's level is the 20th percentile of its pixels (the page, as long as less
    /// than 80 % of the block is ink or halo: a block is wider than a stroke). A block inside a bold stroke reads the ink
    /// instead; such a level, more than half the contrast above the <see cref="BorderMedian"/> b (contrast: the
    /// brightest pixel minus b), is ink, not paper, and is replaced by b (without this, bold digits filling a clean
    /// picture had their strokes hollowed). The levels are interpolated bilinearly
    /// between the blocks' centres, and extrapolated linearly beyond the outer centres, so a linear gradient is
    /// followed exactly. When there is one block, or the blocks' levels span at most <see cref="PageFlatness"/>, the
    /// page is even and the result is the <see cref="BorderMedian"/> everywhere (the level used for a single colour).
    /// Time O(width·height); memory the result plus 256 counts per block (at most 12×12 blocks).
    /// </summary>
    /// <param name="ink">width·height pixels, ink brighter than the page (invert dark-on-light images first), row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>A new width·height array: the page's level under each pixel.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    internal static byte[] PageLevels(ReadOnlySpan<byte> ink, int width, int height)
    {
        Check(ink, width, height);
        var result = new byte[ink.Length];
        int block = Math.Max(PageBlock, Math.Max(width, height) / 12);
        int nx = Math.Max(1, width / block), ny = Math.Max(1, height / block);
        if (nx * ny > 1)
        {
            var histograms = new int[nx * ny * 256];
            var columnBlock = new int[width];
            for (int x = 0; x < width; x++) columnBlock[x] = (int)((long)x * nx / width);
            for (int y = 0; y < height; y++)
            {
                int rowBase = (int)((long)y * ny / height) * nx;
                var row = ink.Slice(y * width, width);
                for (int x = 0; x < width; x++) histograms[((rowBase + columnBlock[x]) << 8) + row[x]]++;
            }

            var levels = new double[nx * ny];
            int border = BorderMedian(ink, width, height), brightest = 0;
            foreach (byte p in ink) brightest = Math.Max(brightest, (int)p);
            int inkLevel = border + (brightest - border) / 2;
            int low = 255, high = 0;
            for (int b = 0; b < levels.Length; b++)
            {
                var histogram = histograms.AsSpan(b << 8, 256);
                int count = 0;
                foreach (int c in histogram) count += c;
                int rank = (count - 1) / 5, seen = 0, v = 0;
                for (; v < 255; v++)
                {
                    seen += histogram[v];
                    if (seen > rank) break;
                }

                if (v > inkLevel) v = border;
                levels[b] = v;
                low = Math.Min(low, v);
                high = Math.Max(high, v);
            }

            if (high - low > PageFlatness)
            {
                var (x0, tx) = Centers(width, nx);
                var (y0, ty) = Centers(height, ny);
                for (int y = 0; y < height; y++)
                {
                    int j = y0[y];
                    double t = ty[y];
                    for (int x = 0; x < width; x++)
                    {
                        int i = x0[x];
                        double s = tx[x];
                        double top = Lerp(levels, j * nx, i, nx, s);
                        double level = ny == 1 ? top : top + (Lerp(levels, (j + 1) * nx, i, nx, s) - top) * t;
                        result[y * width + x] = (byte)Math.Clamp((int)Math.Round(level), 0, 255);
                    }
                }

                return result;
            }
        }

        result.AsSpan().Fill(BorderMedian(ink, width, height));
        return result;

        static double Lerp(double[] levels, int rowStart, int i, int n, double s) =>
            n == 1 ? levels[rowStart] : levels[rowStart + i] + (levels[rowStart + i + 1] - levels[rowStart + i]) * s;
    }

    /// <summary>
    /// For each pixel along an axis of n blocks: the block whose centre starts its interpolation interval (0 to n − 2)
    /// and its fraction of the way to the next centre (below 0 or above 1 beyond the outer centres: extrapolation).
    /// </summary>
    private static (int[] First, double[] Fraction) Centers(int side, int n)
    {
        var first = new int[side];
        var fraction = new double[side];
        double pitch = (double)side / n;
        for (int p = 0; p < side; p++)
        {
            double u = (p + 0.5) / pitch - 0.5; // in block-centre units: block i's centre is at u = i
            int i = n == 1 ? 0 : Math.Clamp((int)Math.Floor(u), 0, n - 2);
            first[p] = i;
            fraction[p] = u - i;
        }

        return (first, fraction);
    }

    /// <summary>
    /// The standard deviation of the pixel noise (grain, sensor noise) in grey levels, estimated from neighbours:
    /// the median of |g(x + 1, y) − g(x, y)| over every horizontally adjacent pair, divided by 0.6745·√2 (for
    /// Gaussian noise of σ the difference has σ√2, whose median absolute value is 0.6745 times that). Edges of
    /// strokes and slow lighting changes make a small part of the pairs and leave the median alone; a clean picture
    /// (flat page, flat strokes) has most differences 0 and gives 0. Time O(width·height), memory 256 counts.
    /// </summary>
    /// <param name="gray">width·height grey values, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>σ in grey levels; 0 for a one-column image.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    internal static double NoiseLevel(ReadOnlySpan<byte> gray, int width, int height)
    {
        Check(gray, width, height);
        if (width < 2) return 0;
        Span<long> histogram = stackalloc long[256];
        for (int y = 0; y < height; y++)
        {
            var row = gray.Slice(y * width, width);
            for (int x = 1; x < width; x++) histogram[Math.Abs(row[x] - row[x - 1])]++;
        }

        long count = (long)(width - 1) * height, rank = (count - 1) / 2, seen = 0;
        for (int d = 0; d < 256; d++)
        {
            seen += histogram[d];
            if (seen > rank) return d / (0.6745 * Math.Sqrt(2));
        }

        return 0; // not reached
    }

    /// <summary>
    /// How many noise standard deviations above the page a pixel must be for <see cref="NoiseThreshold"/> to count it
    /// as ink: 6. The page's level is its 20th percentile (<see cref="PageLevels"/>), so the page's noise sits about
    /// 0.84 σ above 0 after subtraction, and Gaussian noise passes 5.2 σ beyond that on about 1 pixel in 10 million,
    /// so a 2-megapixel photo keeps no speck that would grow the crop box.
    /// </summary>
    internal const double NoiseSigmas = 6;

    /// <summary>
    /// The ink threshold for <see cref="InkBounds"/> on an image with pixel noise: the larger of
    /// <paramref name="floor"/> and <see cref="NoiseSigmas"/>·σ after the contrast stretch of
    /// <see cref="ToWhiteOnBlack"/> (which multiplies the noise by 255 / contrast), at most 254. A photo's noise,
    /// stretched, can exceed the fixed threshold on thousands of paper pixels spread over the page, and then the box
    /// is the page, and the digit a few pixels tall inside it. A clean picture (σ = 0) keeps <paramref name="floor"/>.
    /// </summary>
    /// <param name="noise">The noise's σ in grey levels (<see cref="NoiseLevel"/>).</param>
    /// <param name="contrast">The strongest ink above the page before stretching (1 to 255; below 1 gives <paramref name="floor"/>).</param>
    /// <param name="floor">The threshold without noise (default <see cref="InkThreshold"/>).</param>
    /// <returns>The threshold for <see cref="InkBounds"/>.</returns>
    internal static byte NoiseThreshold(double noise, int contrast, byte floor = InkThreshold)
    {
        if (contrast < 1 || !(noise > 0)) return floor;
        double stretched = Math.Ceiling(NoiseSigmas * noise * 255 / contrast);
        return (byte)Math.Clamp(Math.Max(stretched, floor), floor, Math.Max((int)floor, 254));
    }

    /// <summary>
    /// <see cref="ToWhiteOnBlack"/>, also returning the contrast m (the strongest ink above the page, 0 for none) and
    /// the picture's <see cref="NoiseLevel"/>.
    /// </summary>
    private static byte[] Flatten(ReadOnlySpan<byte> gray, int width, int height, out int contrast, out double noise)
    {
        byte border = BorderMedian(gray, width, height);
        bool invert = border > 127;
        var oriented = new byte[gray.Length];
        for (int i = 0; i < gray.Length; i++) oriented[i] = invert ? (byte)(255 - gray[i]) : gray[i];
        noise = NoiseLevel(gray, width, height);
        byte[] page;
        if (noise >= 1) page = PageLevels(oriented, width, height);
        else
        {
            page = new byte[gray.Length];
            page.AsSpan().Fill(invert ? (byte)(255 - border) : border);
        }

        int max = 0;
        for (int i = 0; i < oriented.Length; i++) max = Math.Max(max, oriented[i] - page[i]);
        contrast = max;
        if (max <= 0) return new byte[gray.Length];
        for (int i = 0; i < oriented.Length; i++)
        {
            int v = oriented[i] - page[i];
            oriented[i] = v <= 0 ? (byte)0 : (byte)((v * 255 + max / 2) / max);
        }

        return oriented;
    }

    /// <summary>Polarity, the page's level b and the strongest ink m, both after inverting (see <see cref="ToWhiteOnBlack"/>).</summary>
    private static (bool Invert, int Background, int Max) Levels(ReadOnlySpan<byte> gray, int width, int height)
    {
        int median = BorderMedian(gray, width, height);
        bool invert = median > 127;
        int background = invert ? 255 - median : median;
        int max = 0;
        foreach (byte p in gray) max = Math.Max(max, invert ? 255 - p : p);
        return (invert, background, max);
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
    internal static PixelBox? InkBounds(ReadOnlySpan<byte> ink, int width, int height, byte threshold = InkThreshold)
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
    /// <param name="gray">width·height pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="box">A rectangle inside the image.</param>
    /// <returns>box.Width·box.Height pixels, row after row.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or the box is not inside the image.</exception>
    internal static byte[] Crop(ReadOnlySpan<byte> gray, int width, int height, PixelBox box)
    {
        Check(gray, width, height);
        if (box.X < 0 || box.Y < 0 || box.Width < 1 || box.Height < 1 || (long)box.X + box.Width > width || (long)box.Y + box.Height > height)
        {
            throw new ArgumentException($"The box {box} is not inside the {width}×{height} image.", nameof(box));
        }

        var result = new byte[box.Width * box.Height];
        for (int y = 0; y < box.Height; y++)
        {
            gray.Slice((box.Y + y) * width + box.X, box.Width).CopyTo(result.AsSpan(y * box.Width, box.Width));
        }

        return result;
    }

    /// <summary>
    /// Scales the image by s = size / max(width, height), the same factor on both axes so the digit keeps its
    /// aspect ratio (a "1" stays thin), by area averaging: each output pixel is the mean of the input over the
    /// square it covers, partly covered input pixels weighted by the covered fraction. That is the anti-aliasing
    /// MNIST used (its digits' edges are grey), works for shrinking by any factor (every input pixel counts, no
    /// aliasing) and for enlarging (each input pixel becomes a block with blended edges). The sums are exact
    /// integers, rounded once at the end (half up). Time and memory grow with the input's pixel count only.
    /// The output grid starts <paramref name="phaseX"/>/<see cref="PhaseSteps"/> of an output pixel left of the
    /// image and <paramref name="phaseY"/>/<see cref="PhaseSteps"/> above it (0, 0: at its top-left corner), so a
    /// side becomes ⌈side·s + phase/PhaseSteps⌉ pixels (the longer one <paramref name="size"/> at phase 0, at most
    /// size + 1); the parts of the first and last pixels beyond the image count as background (0). The total ink
    /// Σ v is the same at every phase (up to rounding); only how it falls on the pixels changes.
    /// </summary>
    /// <param name="gray">width·height pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="size">The longer side of the image in output pixels (default <see cref="DigitSize"/>, 20).</param>
    /// <param name="phaseX">Horizontal shift of the grid in 1/<see cref="PhaseSteps"/> of an output pixel, 0 to PhaseSteps − 1.</param>
    /// <param name="phaseY">Vertical shift of the grid, likewise.</param>
    /// <returns>The scaled pixels and their width and height.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, size is below 1 or above <see cref="MaxSize"/>, or a phase is outside 0 to PhaseSteps − 1.</exception>
    internal static (byte[] Pixels, int Width, int Height) ScaleLongerSide(ReadOnlySpan<byte> gray, int width, int height, int size = DigitSize, int phaseX = 0, int phaseY = 0)
    {
        var scaling = new Scaling(gray, width, height, size);
        ArgumentOutOfRangeException.ThrowIfNegative(phaseX);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(phaseX, PhaseSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(phaseY);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(phaseY, PhaseSteps);
        var (pixels, outW, outH) = scaling.Second(scaling.First(gray, phaseX, phaseY), phaseX, phaseY);
        return (pixels, outW, outH);
    }

    /// <summary>
    /// <see cref="ScaleLongerSide"/> at the grid placement, of the
    /// <see cref="PhaseSteps"/>² tried, whose result is sharpest: the largest Σ v² (the ink Σ v is the same at every
    /// placement, so the largest Σ v² is the one that blurs it least); ties keep the first, phase (0, 0) before others.
    /// Why: MNIST's digits are sharp — the NIST scans were black and white, so after the anti-aliased shrink a stroke's
    /// edge is grey over at most one pixel. Where the 20-pixel grid falls on a freshly drawn stroke hardly matters,
    /// but a picture that was itself enlarged from a small image (a zoomed screenshot, a low-resolution scan blown up,
    /// an MNIST digit drawn at 300×300) has blocks from its small original, and a grid straddling those blocks blurs
    /// every stroke over one more pixel, which the network never saw. On MNIST's own digits (enlarged by 1) phase
    /// (0, 0) is the identity and every other phase blurs, so the result is the image itself.
    /// </summary>
    /// <param name="gray">width·height pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="size">The longer side of the image in output pixels (default <see cref="DigitSize"/>, 20).</param>
    /// <returns>The scaled pixels, their width and height, and the phases chosen.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or size is below 1 or above <see cref="MaxSize"/>.</exception>
    internal static (byte[] Pixels, int Width, int Height, int PhaseX, int PhaseY) ScaleSharpest(ReadOnlySpan<byte> gray, int width, int height, int size = DigitSize)
    {
        var scaling = new Scaling(gray, width, height, size);
        (byte[] Pixels, int Width, int Height, int PhaseX, int PhaseY) best = default;
        long bestEnergy = -1;

        // The first pass (along the longer axis, the one that shrinks the data most) depends on that axis's phase only.
        for (int a = 0; a < PhaseSteps; a++)
        {
            var sums = scaling.First(gray, a, a);
            for (int b = 0; b < PhaseSteps; b++)
            {
                var (phaseX, phaseY) = scaling.VerticalFirst ? (b, a) : (a, b);
                var (pixels, outW, outH) = scaling.Second(sums, phaseX, phaseY);
                long energy = 0;
                foreach (byte v in pixels) energy += v * v;

                // Ties keep the first placement in (phaseX, phaseY) order, whichever pass runs first.
                if (energy > bestEnergy || (energy == bestEnergy && (phaseX, phaseY).CompareTo((best.PhaseX, best.PhaseY)) < 0))
                {
                    (bestEnergy, best) = (energy, (pixels, outW, outH, phaseX, phaseY));
                }
            }
        }

        return best;
    }

    /// <summary>
    /// The intensity-weighted mean position (x̄, ȳ) = (Σ v·x / Σ v, Σ v·y / Σ v), in pixel indices (pixel (0, 0)'s
    /// centre is (0, 0)).
    /// </summary>
    /// <param name="gray">width·height white-on-black pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <returns>The centre of mass, or null when every pixel is 0.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height.</exception>
    internal static (double X, double Y)? CenterOfMass(ReadOnlySpan<byte> gray, int width, int height)
    {
        Check(gray, width, height);
        long total = 0, sx = 0, sy = 0;
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                int v = gray[y * width + x];
                total += v;
                sx += (long)v * x;
                sy += (long)v * y;
            }
        }

        return total == 0 ? null : ((double)sx / total, (double)sy / total);
    }

    /// <summary>
    /// Places the image in a size×size black square, shifted by a whole number of pixels so that its
    /// <see cref="CenterOfMass"/> lands as close as possible to pixel (size/2, size/2) — (14, 14) for 28 — as MNIST
    /// did: the network learnt digits at that position, and the centre of mass, unlike the box's centre, does not
    /// move when a stroke such as a 7's bar sticks out. (Measured on MNIST's test set: every image's centre of mass
    /// is within half a pixel of (14, 14).) Whole-pixel shifts keep the values exact. Pixels shifted outside the
    /// square are dropped, which a 20×20 digit never is unless its mass sits more than 4 pixels off its box's centre.
    /// </summary>
    /// <param name="gray">width·height white-on-black pixels, row after row.</param>
    /// <param name="width">Columns (≥ 1).</param>
    /// <param name="height">Rows (≥ 1).</param>
    /// <param name="size">The side of the result (default <see cref="ImageSize"/>, 28).</param>
    /// <returns>size·size pixels, row after row; all zeros when the input is.</returns>
    /// <exception cref="ArgumentException">The array length is not width·height, or size is below 1 or above <see cref="MaxSize"/>.</exception>
    internal static byte[] CenterByMass(ReadOnlySpan<byte> gray, int width, int height, int size = ImageSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxSize);
        var result = new byte[size * size];
        if (CenterOfMass(gray, width, height) is not var (cx, cy)) return result;
        int dx = (int)Math.Floor(size / 2 - cx + 0.5), dy = (int)Math.Floor(size / 2 - cy + 0.5);
        for (int y = 0; y < height; y++)
        {
            int ty = y + dy;
            if (ty < 0 || ty >= size) continue;
            for (int x = 0; x < width; x++)
            {
                int tx = x + dx;
                if (tx >= 0 && tx < size) result[ty * size + tx] = gray[y * width + x];
            }
        }

        return result;
    }

    /// <summary>
    /// Area averaging in exact integers. Along an axis, in units of 1/(size·L·PhaseSteps) of an input pixel (L the
    /// longer side): input pixel i spans [i·size·P, (i+1)·size·P), output pixel j spans [j·L·P − phase·L, (j+1)·L·P −
    /// phase·L), P = PhaseSteps. A sum Σ v·overlapX·overlapY divided by (L·P)², rounded half up, is the mean. The sums
    /// are exact, so the order of the two passes does not change a bit: the first runs along the longer side (which it
    /// shrinks to at most size + 1), so the intermediate sums stay small for any shape, and each axis's overlaps are
    /// computed once per phase, O(output) each: an output pixel fully covers every input pixel between its first and
    /// last, so only those two have partial weights.
    /// </summary>
    private sealed class Scaling
    {
        private readonly int _width, _height;
        private readonly long _unitIn, _unitOut, _longer;
        private readonly Axis?[] _x = new Axis?[PhaseSteps], _y = new Axis?[PhaseSteps];

        public Scaling(ReadOnlySpan<byte> gray, int width, int height, int size)
        {
            Check(gray, width, height);
            ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxSize);
            (_width, _height, _longer) = (width, height, Math.Max(width, height));
            _unitIn = (long)size * PhaseSteps;
            _unitOut = _longer * PhaseSteps;
            VerticalFirst = height >= width;
        }

        /// <summary>Whether the first pass runs down the columns (the picture is at least as tall as wide).</summary>
        public bool VerticalFirst { get; }

        /// <summary>
        /// The first pass, along the longer axis at that axis's phase (the other phase is ignored): Σ v·overlap per
        /// output position along it and input position across (≤ 255·L·P each).
        /// </summary>
        public long[] First(ReadOnlySpan<byte> gray, int phaseX, int phaseY)
        {
            if (VerticalFirst)
            {
                var a = AxisOf(_y, _height, phaseY);
                var sums = new long[a.M * _width];
                Pass(gray, 1, _height, _width, a, sums);
                return sums;
            }
            else
            {
                var a = AxisOf(_x, _width, phaseX);
                var sums = new long[_height * a.M];
                Pass(gray, _height, _width, 1, a, sums);
                return sums;
            }
        }

        /// <summary>The second pass over <see cref="First"/>'s sums, divided by the output pixel's area, rounded half up.</summary>
        public (byte[] Pixels, int Width, int Height) Second(long[] sums, int phaseX, int phaseY)
        {
            long[] totals;
            int outW, outH;
            if (VerticalFirst)
            {
                var a = AxisOf(_x, _width, phaseX);
                (outW, outH) = (a.M, sums.Length / _width);
                totals = new long[outH * outW];
                Pass<long>(sums, outH, _width, 1, a, totals);
            }
            else
            {
                var a = AxisOf(_y, _height, phaseY);
                (outW, outH) = (sums.Length / _height, a.M);
                totals = new long[outH * outW];
                Pass<long>(sums, 1, _height, outW, a, totals);
            }

            var result = new byte[totals.Length];
            long area = _unitOut * _unitOut;
            for (int i = 0; i < totals.Length; i++) result[i] = (byte)((totals[i] + area / 2) / area);
            return (result, outW, outH);
        }

        /// <summary>
        /// One pass along an axis of n inputs: src is (outer, n, inner) row-major, dst (outer, m, inner); dst[o, j, k] =
        /// Σ_i overlap(j, i)·src[o, i, k] = first's weight·src[first] + last's weight·src[last] + unit·Σ src[between].
        /// </summary>
        private void Pass<T>(ReadOnlySpan<T> src, int outer, int n, int inner, Axis a, Span<long> dst)
            where T : unmanaged, IBinaryInteger<T>
        {
            long unit = _unitIn;
            for (int o = 0; o < outer; o++)
            {
                var block = src.Slice(o * n * inner, n * inner);
                for (int j = 0; j < a.M; j++)
                {
                    var d = dst.Slice((o * a.M + j) * inner, inner);
                    int first = a.First[j], last = a.Last[j];
                    long wf = a.FirstWeight[j], wl = a.LastWeight[j];
                    var f = block.Slice(first * inner, inner);
                    if (first == last)
                    {
                        for (int k = 0; k < inner; k++) d[k] = wf * long.CreateTruncating(f[k]);
                        continue;
                    }

                    var l = block.Slice(last * inner, inner);
                    if (inner == 1)
                    {
                        long between = 0;
                        foreach (T v in block.Slice(first + 1, last - first - 1)) between += long.CreateTruncating(v);
                        d[0] = wf * long.CreateTruncating(f[0]) + wl * long.CreateTruncating(l[0]) + unit * between;
                        continue;
                    }

                    d.Clear();
                    for (int i = first + 1; i < last; i++)
                    {
                        var row = block.Slice(i * inner, inner);
                        for (int k = 0; k < inner; k++) d[k] += long.CreateTruncating(row[k]);
                    }

                    for (int k = 0; k < inner; k++) d[k] = wf * long.CreateTruncating(f[k]) + wl * long.CreateTruncating(l[k]) + unit * d[k];
                }
            }
        }

        private Axis AxisOf(Axis?[] cache, int n, int phase) => cache[phase] ??= Overlaps(n, phase);

        /// <summary>
        /// For n input pixels and a grid shifted by phase/P of an output pixel: the output count m and, per output
        /// pixel, the first and last input pixels it overlaps and those two overlaps in units (when first = last, the
        /// one overlap is the first's and the last's is unused).
        /// </summary>
        private Axis Overlaps(int n, int phase)
        {
            long origin = phase * _longer, end = n * _unitIn;
            int m = (int)((end + origin + _unitOut - 1) / _unitOut);
            var a = new Axis(m, new int[m], new int[m], new long[m], new long[m]);
            for (int j = 0; j < m; j++)
            {
                long lo = Math.Max(j * _unitOut - origin, 0), hi = Math.Min((j + 1) * _unitOut - origin, end);
                int first = (int)(lo / _unitIn), last = (int)((hi - 1) / _unitIn);
                a.First[j] = first;
                a.Last[j] = last;
                a.FirstWeight[j] = Math.Min(hi, (first + 1) * _unitIn) - lo;
                a.LastWeight[j] = hi - last * _unitIn;
            }

            return a;
        }

        private sealed record Axis(int M, int[] First, int[] Last, long[] FirstWeight, long[] LastWeight);
    }

    private static void Check(ReadOnlySpan<byte> gray, int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (gray.Length != (long)width * height)
        {
            throw new ArgumentException($"A {width}×{height} image has {(long)width * height} pixels, got {gray.Length}.", nameof(gray));
        }
    }
}
