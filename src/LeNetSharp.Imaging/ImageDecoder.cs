using LeNetSharp.Persistence;
using SkiaSharp;

namespace LeNetSharp.Imaging;

/// <summary>
/// Decodes a picture (PNG, JPEG, BMP; GIF and WebP too, as SkiaSharp reads them) of any size into 8-bit grey or RGB
/// pixels, row after row (H, W, C), upright (the EXIF orientation of phone photos applied) and with transparency
/// resolved (see <see cref="Decode"/>): grey for <c>MnistPreprocessing.Preprocess</c>, either for an
/// <see cref="Data.ImageDataset"/>. Anything that is not a whole, readable image of at most <see cref="MaxPixels"/>
/// pixels is refused with an <see cref="InvalidDataException"/> whose message starts with the file's name.
/// Safe to call from several threads at once.
/// </summary>
/// <example>
/// <code>
/// var (grey, width, height) = ImageDecoder.DecodeFile("digit.jpg");              // width·height bytes, 0 black … 255 white
/// var (rgb, w, h) = ImageDecoder.DecodeFile("cat.png", channels: 3);             // w·h·3 bytes: R, G, B per pixel
/// </code>
/// </example>
public static class ImageDecoder
{
    /// <summary>
    /// The largest image accepted: 50 megapixels (a 200 MB RGBA buffer while decoding). Checked from the header,
    /// before any pixel is decoded, so a small file claiming a huge size costs nothing.
    /// </summary>
    public const long MaxPixels = 50_000_000;

    /// <summary>The encodings SkiaSharp decodes here, for messages.</summary>
    public const string Formats = "PNG, JPEG, BMP, GIF or WebP";

    /// <summary>The largest file accepted: 100 MB.</summary>
    public const long MaxBytes = 100_000_000;

    /// <summary>
    /// Reads and decodes the file at <paramref name="path"/> (see <see cref="Decode"/>). Only a regular file is
    /// opened: its kind is checked first (stat, following symbolic links), so a FIFO never blocks, a device such as
    /// /dev/zero is never read, and a socket or a loop of links is refused by name; a file over <see cref="MaxBytes"/>
    /// is refused from its length, before anything is read.
    /// </summary>
    /// <param name="path">The image file.</param>
    /// <param name="channels">1 for grey (the default), 3 for RGB.</param>
    /// <param name="maxPixels">The caller's ceiling on width·height (default <see cref="MaxPixels"/>; see <see cref="Decode"/>).</param>
    /// <returns>width·height·channels bytes, row after row (0 = black, 255 = full intensity), and the upright width and height.</returns>
    /// <exception cref="InvalidDataException">
    /// Not a regular file, not a readable image, empty, too large; the message starts with the file's name.
    /// </exception>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">The file cannot be read (no permission, a read error).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channels"/> is neither 1 nor 3, or <paramref name="maxPixels"/> is below 1.</exception>
    public static (byte[] Pixels, int Width, int Height) DecodeFile(string path, int channels = 1, long maxPixels = MaxPixels)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        CheckArguments(channels, maxPixels);
        return Decode(ReadFile(path), path, channels, maxPixels);
    }

    /// <summary>The bytes of the regular file at <paramref name="path"/>, at most <see cref="MaxBytes"/> (see <see cref="DecodeFile"/>).</summary>
    internal static byte[] ReadFile(string path)
    {
        using var file = SafeFile.OpenRead(path, problem => new InvalidDataException($"{path}: {problem}"));
        return SafeFile.ReadRest(file, MaxBytes, problem => new InvalidDataException($"{path}: the file {problem}"));
    }

    private static void CheckArguments(int channels, long maxPixels)
    {
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "Must be 1 (grey) or 3 (RGB).");
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPixels, 1);
    }

    /// <summary>
    /// Decodes an encoded image to grey or RGB. Grey is luma Y = (77·R + 150·G + 29·B) / 256 (ITU-R BT.601 weights).
    /// The JPEG EXIF orientation of phone photos is applied (so a digit is upright). Transparent pixels are treated as
    /// paper, a grey chosen from the image: when most of it is transparent (a drawing of strokes on nothing), the paper
    /// is white under dark strokes and black under light ones, so the strokes stay visible whatever their colour; when
    /// most is opaque, transparent holes take the opaque pixels' median grey (the page's colour). Partly transparent
    /// pixels are blended with that paper by their alpha (each of R, G and B, for colour).
    /// </summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <param name="name">The file's name or path, for error messages.</param>
    /// <param name="channels">1 for grey (the default), 3 for RGB.</param>
    /// <param name="maxPixels">
    /// The caller's ceiling on width·height (default <see cref="MaxPixels"/>), checked from the header before any pixel
    /// buffer is allocated: a server sets a much lower one so a small file declaring a huge image costs nothing.
    /// </param>
    /// <returns>width·height·channels bytes (0 = black, 255 = full intensity), row after row, and the upright width and height.</returns>
    /// <exception cref="InvalidDataException">Empty, not an image, truncated or corrupt, or more than <paramref name="maxPixels"/> pixels.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="channels"/> is neither 1 nor 3, or <paramref name="maxPixels"/> is below 1.</exception>
    public static (byte[] Pixels, int Width, int Height) Decode(ReadOnlySpan<byte> encoded, string name, int channels = 1, long maxPixels = MaxPixels)
    {
        ArgumentNullException.ThrowIfNull(name);
        CheckArguments(channels, maxPixels);
        if (encoded.IsEmpty) throw new InvalidDataException($"{name}: the file is empty, not an image.");
        if (encoded.Length > MaxBytes) throw new InvalidDataException($"{name}: {encoded.Length:N0} bytes; images of at most {MaxBytes:N0} are accepted.");
        using var stream = new SKMemoryStream(encoded.ToArray());
        using var codec = SKCodec.Create(stream, out var created);
        if (codec is null)
        {
            if (PngSides(encoded) is var (w, h) && Math.Max(w, h) > MaxSide)
            {
                throw new InvalidDataException($"{name}: the PNG is {w}×{h}; a side of more than {MaxSide:N0} pixels exceeds the decoder's limit.");
            }

            throw new InvalidDataException($"{name}: not a {Formats} image that can be read ({Describe(created)}).");
        }

        int width = codec.Info.Width, height = codec.Info.Height;
        if (width < 1 || height < 1) throw new InvalidDataException($"{name}: the image has no pixels ({width}×{height}).");
        if ((long)width * height > maxPixels)
        {
            throw new InvalidDataException(
                $"{name}: {width}×{height} is {(long)width * height:N0} pixels; at most {maxPixels:N0} pixels ({maxPixels / 1e6:0.##} megapixels) are accepted.");
        }

        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success)
        {
            throw new InvalidDataException($"{name}: the {codec.EncodedFormat} image cannot be decoded ({Describe(result)}).");
        }

        var pixels = Flatten(bitmap.GetPixelSpan(), width * height, channels);
        return Orient(pixels, width, height, channels, codec.EncodedOrigin);
    }

    /// <summary>The longest side the PNG decoder accepts: 1,000,000 pixels (libpng's limit, as SkiaSharp sets it).</summary>
    public const int MaxSide = 1_000_000;

    /// <summary>The width and height in a PNG's header (IHDR), or null when the bytes do not start like a PNG.</summary>
    private static (long Width, long Height)? PngSides(ReadOnlySpan<byte> encoded) =>
        encoded.Length >= 24 && encoded[..8].SequenceEqual((ReadOnlySpan<byte>)[137, 80, 78, 71, 13, 10, 26, 10]) && encoded[12..16].SequenceEqual("IHDR"u8)
            ? (System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(encoded[16..]), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(encoded[20..]))
            : null;

    /// <summary>Grey or RGB values from RGBA pixels, transparent ones blended with the paper (see <see cref="Decode"/>).</summary>
    private static byte[] Flatten(ReadOnlySpan<byte> rgba, int count, int channels)
    {
        var luma = new byte[count];
        int transparent = 0;
        long inkSum = 0, inkWeight = 0;
        Span<int> opaqueHistogram = stackalloc int[256];
        for (int i = 0; i < count; i++)
        {
            int r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2], a = rgba[4 * i + 3];
            int y = (77 * r + 150 * g + 29 * b + 128) >> 8;
            luma[i] = (byte)y;
            if (a < 255) transparent++;
            if (a >= 128) opaqueHistogram[y]++;
            inkSum += (long)y * a;
            inkWeight += a;
        }

        if (transparent == 0) return channels == 1 ? luma : Rgb(rgba, count, paper: 0);
        int paper;
        if (2 * transparent > count)
        {
            // Mostly transparent: the opaque pixels are the strokes; the paper must contrast with them.
            paper = inkWeight > 0 && inkSum / inkWeight < 128 ? 255 : 0;
        }
        else
        {
            // Mostly opaque: the page is in the opaque pixels; transparent holes take its (median) colour.
            int opaque = 0;
            foreach (int c in opaqueHistogram) opaque += c;
            paper = 255;
            for (int v = 0, seen = 0; v < 256; v++)
            {
                seen += opaqueHistogram[v];
                if (2 * seen > opaque)
                {
                    paper = v;
                    break;
                }
            }
        }

        if (channels == 3) return Rgb(rgba, count, paper);
        for (int i = 0; i < count; i++)
        {
            int a = rgba[4 * i + 3];
            if (a < 255) luma[i] = Blend(luma[i], a, paper);
        }

        return luma;
    }

    /// <summary>RGB from RGBA, each channel of a transparent pixel blended with the grey <paramref name="paper"/>.</summary>
    private static byte[] Rgb(ReadOnlySpan<byte> rgba, int count, int paper)
    {
        var rgb = new byte[3 * count];
        for (int i = 0; i < count; i++)
        {
            int a = rgba[4 * i + 3];
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = a == 255 ? rgba[4 * i + c] : Blend(rgba[4 * i + c], a, paper);
        }

        return rgb;
    }

    private static byte Blend(int value, int alpha, int paper) => (byte)((value * alpha + paper * (255 - alpha) + 127) / 255);

    /// <summary>Turns the stored pixels upright according to the EXIF orientation (phone cameras store them sideways).</summary>
    private static (byte[] Pixels, int Width, int Height) Orient(byte[] pixels, int width, int height, int channels, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or 0) return (pixels, width, height);
        bool swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        int w = swap ? height : width, h = swap ? width : height;
        var upright = new byte[pixels.Length];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                // The stored pixel shown at (x, y).
                (int sx, int sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (width - 1 - x, y),               // mirrored
                    SKEncodedOrigin.BottomRight => (width - 1 - x, height - 1 - y), // rotated 180°
                    SKEncodedOrigin.BottomLeft => (x, height - 1 - y),            // flipped
                    SKEncodedOrigin.LeftTop => (y, x),                            // transposed
                    SKEncodedOrigin.RightTop => (y, height - 1 - x),              // to be turned 90° clockwise
                    SKEncodedOrigin.RightBottom => (width - 1 - y, height - 1 - x), // transverse
                    SKEncodedOrigin.LeftBottom => (width - 1 - y, x),             // to be turned 90° anticlockwise
                    _ => (x, y),
                };
                for (int c = 0; c < channels; c++) upright[(y * w + x) * channels + c] = pixels[(sy * width + sx) * channels + c];
            }
        }

        return (upright, w, h);
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.IncompleteInput or SKCodecResult.ErrorInInput => "the file is truncated or corrupt",
        SKCodecResult.Unimplemented => "this encoding is not supported",
        SKCodecResult.InvalidInput => "unrecognised content",
        _ => result.ToString(),
    };
}
