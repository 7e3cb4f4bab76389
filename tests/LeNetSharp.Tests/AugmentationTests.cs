using LeNetSharp.Data;
using LeNetSharp.Tensors;
using Distortion = LeNetSharp.Data.ImageAugmentation.Distortion;

namespace LeNetSharp.Tests;

/// <summary>ImageAugmentation: where the ink goes, that the draws are seeded, and that a batch allocates nothing.</summary>
public class AugmentationTests
{
    private static readonly ImageAugmentation Off = new() { MaxShift = 0, MaxRotation = 0, MinScale = 1, MaxScale = 1 };

    /// <summary>A size×size image, black but for the given pixels at 255.</summary>
    private static ImageDataset Dots(int size, params (int Row, int Column)[] dots)
    {
        var pixels = new byte[size * size];
        foreach (var (r, c) in dots) pixels[r * size + c] = 255;
        return new ImageDataset(pixels, [1], size, size, 1, 2);
    }

    private static float[,] Warped(ImageDataset data, Distortion d)
    {
        var out1 = new float[data.Height * data.Width];
        ImageAugmentation.Warp<float>(data, 0, d, out1);
        var grid = new float[data.Height, data.Width];
        for (int r = 0; r < data.Height; r++)
            for (int c = 0; c < data.Width; c++) grid[r, c] = out1[r * data.Width + c];
        return grid;
    }

    /// <summary>The pixels that are not 0, as (row, column, value).</summary>
    private static List<(int, int, float)> Ink(float[,] grid)
    {
        var ink = new List<(int, int, float)>();
        for (int r = 0; r < grid.GetLength(0); r++)
            for (int c = 0; c < grid.GetLength(1); c++)
                if (grid[r, c] != 0) ink.Add((r, c, grid[r, c]));
        return ink;
    }

    [Fact]
    public void A_shift_moves_a_single_pixel_by_that_many_pixels()
    {
        var dot = Dots(9, (4, 4));
        Ink(Warped(dot, new Distortion(2, -1, 0, 1))).Should().Equal((3, 6, 1f));   // 2 right, 1 up
        Ink(Warped(dot, new Distortion(-4, 4, 0, 1))).Should().Equal((8, 0, 1f));   // to the bottom-left corner
        Ink(Warped(dot, new Distortion(0.5, 0, 0, 1))).Should().Equal((4, 4, 0.5f), (4, 5, 0.5f)); // half a pixel: shared
        Ink(Warped(dot, new Distortion(5, 0, 0, 1))).Should().BeEmpty("shifted out of the image");
    }

    [Fact]
    public void A_quarter_turn_maps_pixels_onto_pixels_counter_clockwise()
    {
        // Right of the centre goes to the top, the top-left corner to the bottom-left, as on screen.
        Ink(Warped(Dots(5, (2, 4)), new Distortion(0, 0, 90, 1))).Should().Equal((0, 2, 1f));
        Ink(Warped(Dots(5, (0, 0)), new Distortion(0, 0, 90, 1))).Should().Equal((4, 0, 1f));
        Ink(Warped(Dots(5, (0, 0)), new Distortion(0, 0, -90, 1))).Should().Equal((0, 4, 1f));
        Ink(Warped(Dots(5, (1, 3)), new Distortion(0, 0, 180, 1))).Should().Equal((3, 1, 1f));
        // Even sizes turn about the centre between pixels.
        Ink(Warped(Dots(4, (0, 3)), new Distortion(0, 0, 90, 1))).Should().Equal((0, 0, 1f));
    }

    [Fact]
    public void A_flip_mirrors_left_to_right_before_the_rest_and_comes_to_about_half_the_images()
    {
        Ink(Warped(Dots(5, (1, 0)), new Distortion(0, 0, 0, 1, Mirror: true))).Should().Equal((1, 4, 1f));
        Ink(Warped(Dots(4, (2, 1)), new Distortion(0, 0, 0, 1, Mirror: true))).Should().Equal([(2, 2, 1f)], "even widths mirror about the middle between pixels");
        Ink(Warped(Dots(5, (1, 0)), new Distortion(1, 0, 0, 1, Mirror: true))).Should().BeEmpty("mirrored to column 4, then shifted right out of the image");
        Ink(Warped(Dots(5, (2, 4)), new Distortion(0, 0, 90, 1, Mirror: true))).Should().Equal([(4, 2, 1f)], "mirrored to the left of the centre, then turned to the bottom");

        var flips = new ImageAugmentation { FlipHorizontal = true };
        var draws = Enumerable.Range(0, 4000).Select(i => flips.Draw(i % 3, i)).ToList();
        draws.Count(d => d.Mirror).Should().BeInRange(1870, 2130, "½ of 4,000 (±4σ)");
        draws.Select(d => d with { Mirror = false }).Should().Equal(Enumerable.Range(0, 4000).Select(i => new ImageAugmentation().Draw(i % 3, i)),
            "the flip is a fifth draw: the others are those without it");
        new ImageAugmentation().Draw(3, 41).Mirror.Should().BeFalse();
    }

    [Fact]
    public void Scaling_is_about_the_centre()
    {
        // Doubling: the pixel one right of the centre lands two right, its neighbour towards the centre reads half of it.
        var grid = Warped(Dots(5, (2, 3)), new Distortion(0, 0, 0, 2));
        grid[2, 4].Should().Be(1f);
        grid[2, 3].Should().Be(0.5f);
        grid[2, 2].Should().Be(0f);
        Ink(Warped(Dots(5, (2, 2)), new Distortion(0, 0, 0, 0.5))).Should().Equal((2, 2, 1f));
    }

    [Fact]
    public void The_outside_is_background_also_when_normalised()
    {
        var white = new ImageDataset(Enumerable.Repeat((byte)255, 16).ToArray(), [0], 4, 4, 1, 2).Normalize(0.5f, 0.25f);
        var grid = Warped(white, new Distortion(2, 0, 0, 1));
        for (int r = 0; r < 4; r++)
        {
            grid[r, 0].Should().Be(-2f, "(0 − 0.5) / 0.25");
            grid[r, 1].Should().Be(-2f);
            grid[r, 2].Should().BeApproximately(2f, 1e-6f, "(1 − 0.5) / 0.25");
        }
    }

    [Fact]
    public void Without_distortion_the_batch_is_FillBatchs_bit_for_bit()
    {
        var bytes = TestData.RandomImages(6, 2);
        var floats = ImageDataset.FromFloats([.. Enumerable.Range(0, 6 * 64).Select(i => MathF.Sin(i))], [0, 1, 2, 0, 1, 2], 8, 8, 1, 3);
        foreach (var data in new[] { bytes, bytes.Normalize(0.3f, 0.7f), floats, floats.Normalize(-0.1f, 2f) })
        {
            int[] indices = [5, 0, 3];
            var expected = new Tensor<float>(3, 8, 8, 1);
            var actual = new Tensor<float>(3, 8, 8, 1);
            int[] expectedLabels = new int[3], labels = new int[3];
            data.FillBatch(indices, expected, expectedLabels);
            Off.FillBatch(data, indices, epoch: 4, actual, labels);
            actual.Data.Should().Equal(expected.Data);
            labels.Should().Equal(expectedLabels);
        }
    }

    [Fact]
    public void Draws_depend_on_seed_epoch_and_image_alone()
    {
        var data = TestData.RandomImages(12, 5);
        var augmentation = new ImageAugmentation();
        float[] Image(ImageAugmentation a, int[] indices, int position, int epoch)
        {
            var batch = new Tensor<float>(indices.Length, 8, 8, 1);
            var labels = new int[indices.Length];
            a.FillBatch(data, indices, epoch, batch, labels);
            labels.Should().Equal(indices.Select(data.Label), "labels are kept");
            return batch.Data.AsSpan(position * 64, 64).ToArray();
        }

        float[] image7 = Image(augmentation, [7], 0, epoch: 2);
        Image(augmentation, [3, 7, 1], 1, epoch: 2).Should().Equal(image7, "the batch around an image does not change its draw");
        Image(augmentation with { }, [7, 7], 1, epoch: 2).Should().Equal(image7);
        Image(augmentation, [7], 0, epoch: 3).Should().NotEqual(image7, "each epoch draws anew");
        Image(augmentation with { Seed = 2 }, [7], 0, epoch: 2).Should().NotEqual(image7);
        image7.Should().NotEqual(Image(Off, [7], 0, epoch: 2), "the default recipe distorts");
    }

    [Fact]
    public void Draws_stay_within_the_ranges_and_fill_them()
    {
        var a = new ImageAugmentation { MaxShift = 2, MaxRotation = 10, MinScale = 0.9, MaxScale = 1.1, Seed = 9 };
        var draws = Enumerable.Range(0, 4000).Select(i => a.Draw(i % 7, i)).ToList();
        draws.Should().OnlyContain(d => Math.Abs(d.ShiftX) <= 2 && Math.Abs(d.ShiftY) <= 2 && Math.Abs(d.Degrees) <= 10 && d.Scale >= 0.9 && d.Scale <= 1.1);
        draws.Min(d => d.ShiftX).Should().BeLessThan(-1.95);
        draws.Max(d => d.ShiftY).Should().BeGreaterThan(1.95);
        draws.Min(d => d.Degrees).Should().BeLessThan(-9.9);
        draws.Max(d => d.Scale).Should().BeGreaterThan(1.099);
        draws.Average(d => d.Degrees).Should().BeApproximately(0, 0.5);
        // Pinned: SplitMix64's draws, the same on every machine and .NET version.
        var pinned = new ImageAugmentation().Draw(3, 41);
        pinned.ShiftX.Should().BeApproximately(-0.8236746879755832, 1e-12);
        pinned.ShiftY.Should().BeApproximately(-0.3951927832899469, 1e-12);
        pinned.Degrees.Should().BeApproximately(-8.39265605926046, 1e-12);
        pinned.Scale.Should().BeApproximately(1.0733420065654, 1e-12);
    }

    [Fact]
    public void Augmented_batches_allocate_nothing()
    {
        var data = TestData.RandomImages(64, 1).Normalize(0.5f, 0.3f);
        var augmentation = new ImageAugmentation();
        var batch = new Tensor<float>(16, 8, 8, 1);
        var labels = new int[16];
        int[] indices = [.. Enumerable.Range(0, 16)];
        for (int i = 0; i < 50; i++) augmentation.FillBatch(data, indices, i, batch, labels); // JIT tiers

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++) augmentation.FillBatch(data, indices, i, batch, labels);
        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
    }

    [Fact]
    public void Hostile_settings_are_refused_by_name()
    {
        (string Name, ImageAugmentation A)[] bad =
        [
            ("MaxShift", new ImageAugmentation { MaxShift = -1 }), ("MaxShift", new ImageAugmentation { MaxShift = double.NaN }),
            ("MaxShift", new ImageAugmentation { MaxShift = double.PositiveInfinity }), ("MaxRotation", new ImageAugmentation { MaxRotation = 181 }),
            ("MaxRotation", new ImageAugmentation { MaxRotation = double.NaN }), ("MinScale", new ImageAugmentation { MinScale = 0 }),
            ("MinScale", new ImageAugmentation { MinScale = double.NaN }), ("MaxScale", new ImageAugmentation { MaxScale = 0.8 }),
            ("MaxScale", new ImageAugmentation { MaxScale = double.PositiveInfinity }),
        ];
        var data = TestData.RandomImages(2, 1);
        foreach (var (name, a) in bad)
        {
            a.Invoking(x => x.Validate()).Should().Throw<ArgumentOutOfRangeException>().WithParameterName(name);
            a.Invoking(x => x.FillBatch(data, [0], 0, new Tensor<float>(1, 8, 8, 1), new int[1])).Should().Throw<ArgumentOutOfRangeException>().WithParameterName(name);
        }

        Off.Invoking(x => x.FillBatch(data, [0, 1], 0, new Tensor<float>(1, 8, 8, 1), new int[2])).Should().Throw<ArgumentException>().WithParameterName("batch");
        Off.Invoking(x => x.FillBatch(data, [0, 1], 0, new Tensor<float>(2, 8, 8, 1), new int[1])).Should().Throw<ArgumentException>().WithParameterName("labels");
        Off.Invoking(x => x.FillBatch(data, [2], 0, new Tensor<float>(1, 8, 8, 1), new int[1])).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("index");
    }
}
