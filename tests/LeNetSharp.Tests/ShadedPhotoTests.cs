using LeNetSharp.Inference;
using Xunit.Abstractions;

namespace LeNetSharp.Tests;

/// <summary>
/// Phone-style photos: a big page lit unevenly (grey 200 on the left to 150 on the right, darker towards the corners)
/// with sensor noise, and an MNIST test digit written on it in dark ink. Generated here, no fixtures.
/// </summary>
public class ShadedPhotoTests(ITestOutputHelper output)
{
    /// <summary>
    /// Draws the 28×28 MNIST digit enlarged (bilinear) to a 560-pixel square, centred on a width×height page whose
    /// grey goes from 200 (left) to 150 (right), minus 35·r⁴ towards the corners (r = distance from the centre over
    /// the half-diagonal), as ink of grey 30 with the digit's values as coverage, plus Gaussian noise of σ
    /// <paramref name="sigma"/> from a seeded generator; rounded and clamped to bytes.
    /// </summary>
    internal static byte[] ShadedNoisyPage(ReadOnlySpan<byte> mnist, int width, int height, double sigma, int seed)
    {
        const int side = 560;
        var page = new byte[width * height];
        var random = new Random(seed);
        int left = (width - side) / 2, top = (height - side) / 2;
        for (int y = 0; y < height; y++)
        {
            double fy = (double)y / (height - 1) - 0.5;
            for (int x = 0; x < width; x++)
            {
                double fx = (double)x / (width - 1) - 0.5;
                double r2 = (fx * fx + fy * fy) / 0.5;
                double paper = 200 - 50.0 * x / (width - 1) - 35 * r2 * r2;
                double coverage = 0;
                int dx = x - left, dy = y - top;
                if (dx >= 0 && dx < side && dy >= 0 && dy < side) coverage = Bilinear(mnist, (dx + 0.5) * 28 / side - 0.5, (dy + 0.5) * 28 / side - 0.5) / 255;
                double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
                double noise = sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
                page[y * width + x] = (byte)Math.Clamp(Math.Round(paper * (1 - coverage) + 30 * coverage + noise), 0, 255);
            }
        }

        return page;
    }

    private static double Bilinear(ReadOnlySpan<byte> image, double u, double v)
    {
        int x0 = (int)Math.Floor(u), y0 = (int)Math.Floor(v);
        double s = u - x0, t = v - y0;
        return (At(image, x0, y0) * (1 - s) + At(image, x0 + 1, y0) * s) * (1 - t) + (At(image, x0, y0 + 1) * (1 - s) + At(image, x0 + 1, y0 + 1) * s) * t;

        static double At(ReadOnlySpan<byte> image, int x, int y) => x is >= 0 and < 28 && y is >= 0 and < 28 ? image[y * 28 + x] : 0;
    }

    [Fact]
    public void Digits_on_shaded_noisy_1200x1600_photos_are_read_like_the_raw_images()
    {
        var net = TrainedMnist.Network.Clone();
        var test = TrainedMnist.Test;
        const int count = 20;
        int agree = 0;
        var results = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var raw = net.Predict(test.Pixels(i));
            var photo = ShadedNoisyPage(test.Pixels(i), 1200, 1600, sigma: 9, seed: i);
            var prediction = net.Predict(MnistPreprocessing.Preprocess(photo, 1200, 1600));
            if (prediction.Label == raw.Label) agree++;
            results.Add($"{i}: raw {raw.Label}, photo {prediction.Label} at {prediction.Confidence:P0}");
        }

        output.WriteLine($"shaded noisy 1200x1600 photos: {agree}/{count} read as the raw image; {string.Join("; ", results)}");
        // Measured: 19 of 20 (image 18, a 3, is read as a 6); with one page level and the fixed threshold 80, 4 of 20
        // (the noise on the darker paper grew the crop box over the page).
        agree.Should().BeGreaterThanOrEqualTo(16, "{0}", string.Join("; ", results));
    }
}
