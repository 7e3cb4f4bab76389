using LeNetSharp.Inference;
using SkiaSharp;
using Xunit.Abstractions;

namespace LeNetSharp.Tests;

/// <summary>
/// The issue's acceptance test: MNIST test digits rendered to PNG at other sizes and both polarities, then decoded,
/// preprocessed and predicted, agree with the prediction on the raw 28×28 images.
/// </summary>
public class PredictFromPicturesTests(ITestOutputHelper output)
{
    /// <summary>
    /// Draws a 28×28 MNIST digit scaled (bicubic, as an image viewer would) to fill the shorter side of a
    /// width×height canvas, centred, white on black or black on white, and encodes it as PNG.
    /// </summary>
    internal static byte[] Render(ReadOnlySpan<byte> mnist, int width, int height, bool darkOnLight, bool linear = false)
    {
        using var digit = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
        var pixels = digit.GetPixelSpan();
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
            {
                byte v = mnist[y * 28 + x];
                pixels[y * digit.RowBytes + x] = darkOnLight ? (byte)(255 - v) : v;
            }

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(darkOnLight ? SKColors.White : SKColors.Black);
        int side = Math.Min(width, height);
        using var image = SKImage.FromBitmap(digit);
        canvas.DrawImage(image, SKRect.Create((width - side) / 2f, (height - side) / 2f, side, side), linear ? new SKSamplingOptions(SKFilterMode.Linear) : new SKSamplingOptions(SKCubicResampler.Mitchell));
        using var snapshot = surface.Snapshot();
        using var png = snapshot.Encode(SKEncodedImageFormat.Png, 50); // lossless whatever the level; 50 compresses faster
        return png.ToArray();
    }

    public static TheoryData<int, int, bool> Renderings => new()
    {
        { 56, 56, false },
        { 56, 56, true },
        { 100, 140, false },
        { 100, 140, true },
        { 300, 300, false },
        { 300, 300, true },
    };

    [Theory]
    [MemberData(nameof(Renderings))]
    public void Predictions_on_1000_rendered_pictures_agree_with_the_raw_images(int width, int height, bool darkOnLight)
    {
        var net = TrainedMnist.Network.Clone();
        var test = TrainedMnist.Test.Take(1000);
        var raw = net.Predict(test);
        string? keep = Environment.GetEnvironmentVariable("LENETSHARP_KEEP_RENDERINGS");

        int agree = 0;
        var disagreements = new List<int>();
        for (int i = 0; i < test.Count; i++)
        {
            string name = $"mnist-test-{i}-{width}x{height}-{(darkOnLight ? "dark-on-light" : "light-on-dark")}.png";
            var png = Render(test.Pixels(i), width, height, darkOnLight);
            if (keep is not null && i < 3) File.WriteAllBytes(Path.Combine(keep, name), png);
            var (grey, w, h) = ImageDecoder.Decode(png, name);
            (w, h).Should().Be((width, height));
            var prediction = net.Predict(MnistPreprocessing.Preprocess(grey, w, h));
            if (prediction.Label == raw[i].Label) agree++;
            else disagreements.Add(i);
        }

        output.WriteLine($"{width}x{height} {(darkOnLight ? "dark on light" : "light on dark")}: {agree}/{test.Count} agree; differ on {string.Join(", ", disagreements)}");
        // The issue asks for 99 %. Measured with this network: 99.4 % at 56×56, 99.1 % at 100×140, 99.3 % at 300×300, in
        // both polarities (99.2–99.6 % on test images 1,000–2,999 too).
        // The 11 images that flip in some drawing are mostly ones the raw prediction gets wrong (9 of them) and mostly close
        // calls (7 have the raw top two within 25 points, e.g. image 674: 3 at 50.6 % against 5 at 49.4 %).
        agree.Should().BeGreaterThanOrEqualTo(990, "differing on images {0}", string.Join(", ", disagreements));
    }
}
