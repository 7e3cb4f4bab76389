using SkiaSharp;

namespace LeNetSharp.Tests;

/// <summary>Encodes small test pictures with SkiaSharp.</summary>
internal static class Pictures
{
    /// <summary>Encodes RGBA pixels (unpremultiplied) as PNG, JPEG or BMP.</summary>
    public static byte[] Encode(byte[] rgba, int width, int height, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        rgba.CopyTo(bitmap.GetPixelSpan());
        using var image = SKImage.FromBitmap(bitmap);
        using var data = format == SKEncodedImageFormat.Bmp ? EncodeBmp(rgba, width, height) : image.Encode(format, 100);
        return data.ToArray();
    }

    /// <summary>Opaque RGBA from grey values.</summary>
    public static byte[] Rgba(byte[] grey, byte alpha = 255) => grey.SelectMany(g => new[] { g, g, g, alpha }).ToArray();

    /// <summary>A 32-bit BMP (SkiaSharp reads BMP but does not write it).</summary>
    private static SKData EncodeBmp(byte[] rgba, int width, int height)
    {
        using var ms = new MemoryStream();
        using var w = new BinaryWriter(ms);
        int size = 54 + rgba.Length;
        w.Write((byte)'B'); w.Write((byte)'M'); w.Write(size); w.Write(0); w.Write(54);
        w.Write(40); w.Write(width); w.Write(-height); w.Write((short)1); w.Write((short)32); w.Write(0); w.Write(rgba.Length);
        w.Write(2835); w.Write(2835); w.Write(0); w.Write(0);
        for (int i = 0; i < rgba.Length; i += 4) { w.Write(rgba[i + 2]); w.Write(rgba[i + 1]); w.Write(rgba[i]); w.Write(rgba[i + 3]); }
        w.Flush();
        return SKData.CreateCopy(ms.ToArray());
    }
}

public class ImageDecoderTests : TempDirectoryTest
{
    private static readonly byte[] Grey3x2 = [0, 100, 255, 30, 60, 90];

    [Theory]
    [InlineData(SKEncodedImageFormat.Png)]
    [InlineData(SKEncodedImageFormat.Bmp)]
    public void Lossless_files_decode_to_their_exact_grey_values(SKEncodedImageFormat format)
    {
        var (grey, width, height) = ImageDecoder.Decode(Pictures.Encode(Pictures.Rgba(Grey3x2), 3, 2, format), "x");
        (width, height).Should().Be((3, 2));
        grey.Should().Equal(Grey3x2);
    }

    [Fact]
    public void Colour_becomes_bt601_luma_and_jpeg_decodes_close_to_the_original()
    {
        byte[] rgba = [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255];
        // (77·R + 150·G + 29·B + 128) >> 8: red (19,635 + 128) / 256 = 77, green 38,378 / 256 = 149, blue 7,523 / 256 = 29.
        ImageDecoder.Decode(Pictures.Encode(rgba, 3, 1), "rgb.png").Pixels.Should().Equal(77, 149, 29);

        var flat = Enumerable.Repeat((byte)200, 16 * 16).ToArray();
        var (jpeg, w, h) = ImageDecoder.Decode(Pictures.Encode(Pictures.Rgba(flat), 16, 16, SKEncodedImageFormat.Jpeg), "flat.jpg");
        (w, h).Should().Be((16, 16));
        jpeg.Should().OnlyContain(v => Math.Abs(v - 200) <= 2);
    }

    [Fact]
    public void Colour_decodes_to_rgb_with_transparent_pixels_taking_the_paper_grey()
    {
        // Red, green, blue and one transparent pixel: mostly opaque, so the hole takes the opaque pixels' median grey,
        // the luma of red (77; green 149, blue 29), in each channel.
        byte[] rgba = [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 10, 20, 30, 0];
        var (rgb, width, height) = ImageDecoder.Decode(Pictures.Encode(rgba, 2, 2), "rgb.png", channels: 3);
        (width, height).Should().Be((2, 2));
        rgb.Should().Equal(255, 0, 0, 0, 255, 0, 0, 0, 255, 77, 77, 77);
        FluentActions.Invoking(() => ImageDecoder.Decode(Pictures.Encode(rgba, 2, 2), "rgb.png", channels: 2)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void Dark_strokes_on_a_transparent_background_get_white_paper_and_light_strokes_black_paper()
    {
        // 4 pixels: one opaque stroke pixel, three fully transparent (their colour channels say nothing).
        byte[] dark = [10, 10, 10, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ImageDecoder.Decode(Pictures.Encode(dark, 2, 2), "dark.png").Pixels.Should().Equal(10, 255, 255, 255);
        byte[] light = [240, 240, 240, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ImageDecoder.Decode(Pictures.Encode(light, 2, 2), "light.png").Pixels.Should().Equal(240, 0, 0, 0);
        // Half-transparent black on (white) paper: (0·128 + 255·127 + 127) / 255 = 127.
        byte[] half = [0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        ImageDecoder.Decode(Pictures.Encode(half, 2, 2), "half.png").Pixels[0].Should().Be(127);
    }

    [Fact]
    public void A_transparent_hole_in_an_opaque_page_takes_the_page_colour()
    {
        // 3 opaque pixels of a light-grey page (220, 220, 20 = a stroke) and one transparent hole: median page colour 220.
        byte[] rgba = [220, 220, 220, 255, 220, 220, 220, 255, 20, 20, 20, 255, 0, 0, 0, 0];
        ImageDecoder.Decode(Pictures.Encode(rgba, 2, 2), "hole.png").Pixels.Should().Equal(220, 220, 20, 220);
    }

    [Fact]
    public void The_exif_orientation_of_a_phone_photo_is_applied()
    {
        // A 3×1 JPEG (dark, mid, light) tagged "rotate 90° clockwise to view" (orientation 6) is a 1×3 column, top = dark.
        var jpeg = Pictures.Encode(Pictures.Rgba(Enumerable.Range(0, 24).Select(i => (byte)(i < 8 ? 0 : i < 16 ? 128 : 255)).ToArray()), 24, 1,
            SKEncodedImageFormat.Jpeg);
        byte[] exif =
        [
            0xFF, 0xE1, 0x00, 0x22, (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0, // APP1, length 34
            (byte)'I', (byte)'I', 0x2A, 0x00, 0x08, 0x00, 0x00, 0x00,                   // little-endian TIFF, IFD at 8
            0x01, 0x00, 0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, // 1 entry: Orientation = 6
            0x00, 0x00, 0x00, 0x00,                                                     // no next IFD
        ];
        var tagged = jpeg.Take(2).Concat(exif).Concat(jpeg.Skip(2)).ToArray();

        var (grey, width, height) = ImageDecoder.Decode(tagged, "photo.jpg");
        (width, height).Should().Be((1, 24));
        grey[0].Should().BeLessThan(40);
        grey[^1].Should().BeGreaterThan(215);
        var (rgb, w, h) = ImageDecoder.Decode(tagged, "photo.jpg", channels: 3);
        (w, h).Should().Be((1, 24));
        rgb[..3].Should().OnlyContain(v => v < 40);
        rgb[^3..].Should().OnlyContain(v => v > 215);
    }

    [Fact]
    public void Empty_garbage_and_truncated_files_are_refused_naming_the_file()
    {
        FluentActions.Invoking(() => ImageDecoder.Decode([], "empty.png")).Should().Throw<InvalidDataException>().WithMessage("empty.png: *empty*");
        FluentActions.Invoking(() => ImageDecoder.Decode("hello, not an image"u8, "notes.txt")).Should().Throw<InvalidDataException>()
            .WithMessage("notes.txt: not a PNG, JPEG, BMP, GIF or WebP image*");
        var png = Pictures.Encode(Pictures.Rgba(Enumerable.Range(0, 64 * 64).Select(i => (byte)(i * 7)).ToArray()), 64, 64);
        FluentActions.Invoking(() => ImageDecoder.Decode(png.AsSpan(0, png.Length / 2), "cut.png")).Should().Throw<InvalidDataException>()
            .WithMessage("cut.png: *");
    }

    [Fact]
    public void An_oversized_image_is_refused_from_its_header_before_decoding()
    {
        // A 100-byte PNG whose header claims 10,000×10,000 pixels (100 megapixels): its one data chunk holds a few bytes.
        var header = PngHeader(10_000, 10_000);
        FluentActions.Invoking(() => ImageDecoder.Decode(header, "huge.png")).Should().Throw<InvalidDataException>()
            .WithMessage("huge.png: 10000×10000 is 100,000,000 pixels; at most 50,000,000 pixels (50 megapixels) are accepted.");
        FluentActions.Invoking(() => ImageDecoder.Decode(PngHeader(2001, 2000), "big.png", maxPixels: 4_000_000)).Should().Throw<InvalidDataException>()
            .WithMessage("big.png: 2001×2000 is 4,002,000 pixels; at most 4,000,000 pixels (4 megapixels) are accepted.");
    }

    [Fact]
    public void A_png_with_a_side_over_a_million_pixels_is_refused_for_the_decoder_limit_not_as_corrupt()
    {
        FluentActions.Invoking(() => ImageDecoder.Decode(PngHeader(1_000_001, 1), "thin.png")).Should().Throw<InvalidDataException>()
            .WithMessage("thin.png: the PNG is 1000001×1; a side of more than 1,000,000 pixels exceeds the decoder's limit.");
    }

    [Fact]
    public void Files_are_read_from_disk_and_a_missing_one_is_an_io_error()
    {
        string path = Path.Combine(Dir, "d.png");
        File.WriteAllBytes(path, Pictures.Encode(Pictures.Rgba(Grey3x2), 3, 2));
        ImageDecoder.DecodeFile(path).Pixels.Should().Equal(Grey3x2);
        FluentActions.Invoking(() => ImageDecoder.DecodeFile(Path.Combine(Dir, "missing.png"))).Should().Throw<IOException>();
    }

    internal static byte[] PngHeader(int width, int height)
    {
        var ihdr = new List<byte>("IHDR"u8.ToArray());
        ihdr.AddRange(BigEndian(width));
        ihdr.AddRange(BigEndian(height));
        ihdr.AddRange(new byte[] { 8, 0, 0, 0, 0 }); // 8-bit grey, no interlace
        var png = new List<byte> { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A };
        png.AddRange(BigEndian(13));
        png.AddRange(ihdr);
        png.AddRange(BigEndian((int)Crc32(ihdr.ToArray())));
        foreach (var (type, data) in new[] { ("IDAT", new byte[] { 0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01 }), ("IEND", Array.Empty<byte>()) })
        {
            var chunk = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            png.AddRange(BigEndian(data.Length));
            png.AddRange(chunk);
            png.AddRange(BigEndian((int)Crc32(chunk)));
        }

        return png.ToArray();
    }

    private static byte[] BigEndian(int v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }

        return ~crc;
    }
}
