using SkiaSharp;

namespace LeNetSharp.Trainer;

/// <summary>
/// A slide-sized picture drawn with SkiaSharp, for the report's image grids (filters, feature maps, mistakes):
/// a white page with a title and subtitle, pixel images drawn as crisp blocks, captions and colour bars.
/// </summary>
internal sealed class Sheet : IDisposable
{
    private static readonly SKTypeface Regular = SKTypeface.FromFamilyName("DejaVu Sans") ?? SKTypeface.Default;
    private static readonly SKTypeface Bold = SKTypeface.FromFamilyName("DejaVu Sans", SKFontStyle.Bold) ?? Regular;
    private readonly SKSurface _surface;

    public Sheet(int width, int height, string title, string subtitle)
    {
        (Width, Height) = (width, height);
        _surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        Canvas.Clear(SKColors.White);
        Text(title, width / 2f, 52, 34, bold: true);
        Text(subtitle, width / 2f, 90, 20, color: new SKColor(80, 80, 80));
    }

    public int Width { get; }

    public int Height { get; }

    private SKCanvas Canvas => _surface.Canvas;

    /// <summary>Draws <paramref name="text"/> with its baseline at <paramref name="y"/>.</summary>
    public void Text(string text, float x, float y, float size, SKTextAlign align = SKTextAlign.Center, bool bold = false, SKColor? color = null)
    {
        using var font = new SKFont(bold ? Bold : Regular, size);
        using var paint = new SKPaint { Color = color ?? SKColors.Black, IsAntialias = true };
        Canvas.DrawText(text, x, y, align, font, paint);
    }

    /// <summary>Draws an <paramref name="rows"/> × <paramref name="columns"/> image as blocks filling <paramref name="area"/>, with a thin frame.</summary>
    public void Image(int rows, int columns, Func<int, int, float> value, Func<float, SKColor> color, SKRect area)
    {
        float cellWidth = area.Width / columns, cellHeight = area.Height / rows;
        using var paint = new SKPaint { IsAntialias = false, Style = SKPaintStyle.Fill };
        for (int y = 0; y < rows; y++)
        {
            for (int x = 0; x < columns; x++)
            {
                paint.Color = color(value(y, x));
                Canvas.DrawRect(area.Left + x * cellWidth, area.Top + y * cellHeight, cellWidth + 0.5f, cellHeight + 0.5f, paint);
            }
        }

        using var frame = new SKPaint { Color = new SKColor(150, 150, 150), Style = SKPaintStyle.Stroke, StrokeWidth = 1, IsAntialias = false };
        Canvas.DrawRect(area, frame);
    }

    /// <summary>A vertical colour bar from <paramref name="min"/> (bottom) to <paramref name="max"/> (top), with three tick labels and a caption.</summary>
    public void ColorBar(SKRect area, Func<float, SKColor> color, float min, float max, string caption)
    {
        const int Steps = 200;
        Image(Steps, 1, (y, _) => max - (max - min) * y / (Steps - 1), color, area);
        foreach (var (v, y) in new[] { (max, area.Top), ((min + max) / 2, area.MidY), (min, area.Bottom) })
        {
            Text(Format(v), area.Right + 8, y + 7, 18, SKTextAlign.Left);
        }

        Canvas.Save();
        Canvas.RotateDegrees(-90, area.Left - 14, area.MidY);
        Text(caption, area.Left - 14, area.MidY, 18);
        Canvas.Restore();
    }

    /// <summary>The picture as PNG bytes.</summary>
    public byte[] Png()
    {
        using var image = _surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    public void Dispose() => _surface.Dispose();

    /// <summary>A short number for a scale: 3 significant digits, a real minus sign.</summary>
    public static string Format(double v) => v.ToString(Math.Abs(v) >= 100 ? "F0" : "0.###", System.Globalization.CultureInfo.InvariantCulture).Replace('-', '−');

    /// <summary>Grey ink on white: 0 → white, 1 → black.</summary>
    public static SKColor Ink(float v)
    {
        byte g = (byte)Math.Clamp(255 - 255 * v, 0, 255);
        return new SKColor(g, g, g);
    }

    /// <summary>Blue for negative, white at 0, red for positive; <paramref name="v"/> in [−1, 1].</summary>
    public static SKColor Diverging(float v)
    {
        v = Math.Clamp(v, -1, 1);
        var (r, g, b) = v < 0 ? (33, 102, 172) : (178, 24, 43);
        float t = Math.Abs(v);
        return new SKColor((byte)(255 + (r - 255) * t), (byte)(255 + (g - 255) * t), (byte)(255 + (b - 255) * t));
    }

    /// <summary>Viridis (dark purple → yellow); <paramref name="v"/> in [0, 1].</summary>
    public static SKColor Viridis(float v)
    {
        var c = ViridisMap.GetColor(Math.Clamp(v, 0, 1));
        return new SKColor(c.R, c.G, c.B);
    }

    private static readonly ScottPlot.Colormaps.Viridis ViridisMap = new();
}
