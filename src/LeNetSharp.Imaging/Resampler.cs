namespace LeNetSharp.Imaging;

/// <summary>
/// Resizes 8-bit (H, W, C) pixels with a triangle (bilinear) filter widened by the shrink factor when shrinking, so
/// every source pixel counts (antialiased, as PIL's <c>Image.resize(…, BILINEAR)</c> and torchvision's
/// <c>Resize(antialias=True)</c>). Two separable passes in double precision, rounded to the nearest byte: the same
/// bytes on every machine.
/// </summary>
internal static class Resampler
{
    /// <summary>
    /// <paramref name="pixels"/> (height·width·channels bytes) at <paramref name="newHeight"/>×<paramref name="newWidth"/>;
    /// the same array when the size does not change.
    /// </summary>
    public static byte[] Resize(byte[] pixels, int width, int height, int channels, int newWidth, int newHeight)
    {
        if (width == newWidth && height == newHeight) return pixels;
        var columns = Taps(width, newWidth);
        var rows = Taps(height, newHeight);

        // Horizontal pass: every source row to newWidth pixels.
        var across = new double[(long)height * newWidth * channels];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < newWidth; x++)
            {
                var (start, weights) = columns[x];
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int k = 0; k < weights.Length; k++) sum += weights[k] * pixels[((long)y * width + start + k) * channels + c];
                    across[((long)y * newWidth + x) * channels + c] = sum;
                }
            }
        }

        // Vertical pass.
        var result = new byte[(long)newHeight * newWidth * channels];
        int stride = newWidth * channels;
        for (int y = 0; y < newHeight; y++)
        {
            var (start, weights) = rows[y];
            for (int i = 0; i < stride; i++)
            {
                double sum = 0;
                for (int k = 0; k < weights.Length; k++) sum += weights[k] * across[(long)(start + k) * stride + i];
                result[(long)y * stride + i] = (byte)Math.Clamp(Math.Round(sum, MidpointRounding.AwayFromZero), 0, 255);
            }
        }

        return result;
    }

    /// <summary>For each output position, the first source position it reads and the normalised weights of the ones it reads.</summary>
    private static (int Start, double[] Weights)[] Taps(int size, int newSize)
    {
        double scale = (double)size / newSize, support = Math.Max(scale, 1);
        var taps = new (int, double[])[newSize];
        for (int o = 0; o < newSize; o++)
        {
            double centre = (o + 0.5) * scale;
            int first = Math.Max(0, (int)Math.Floor(centre - support)), last = Math.Min(size - 1, (int)Math.Ceiling(centre + support));
            var weights = new double[last - first + 1];
            double total = 0;
            for (int i = first; i <= last; i++)
            {
                double w = Math.Max(0, 1 - Math.Abs((i + 0.5 - centre) / support));
                weights[i - first] = w;
                total += w;
            }

            for (int k = 0; k < weights.Length; k++) weights[k] /= total;
            taps[o] = (first, weights);
        }

        return taps;
    }
}
