using LeNetSharp.Inference;

namespace LeNetSharp.Tests;

/// <summary>Golden tests of each MNIST preprocessing step on small hand-made images, with hand-computed results.</summary>
public class PreprocessingTests
{
    [Fact]
    public void Border_median_is_the_page_colour_even_when_strokes_touch_the_edge()
    {
        byte[] page =
        [
            200, 200, 200,
            200, 0, 10,
            200, 10, 200,
        ];
        // Border: 200 ×6 and 10 ×2 (the centre is not border); sorted, the lower middle (rank 3 of 8) is 200.
        MnistPreprocessing.BorderMedian(page, 3, 3).Should().Be(200);
        MnistPreprocessing.IsDarkOnLight(page, 3, 3).Should().BeTrue();
        // A single row is all border: 0, 0, 255, 255 → lower median 0: light ink on a dark page.
        MnistPreprocessing.BorderMedian([0, 0, 255, 255], 4, 1).Should().Be(0);
        MnistPreprocessing.IsDarkOnLight([0, 0, 255, 255], 4, 1).Should().BeFalse();
        MnistPreprocessing.BorderMedian([7], 1, 1).Should().Be(7);
    }

    [Fact]
    public void Dark_ink_on_a_light_page_is_inverted_and_stretched_to_a_black_page_and_full_ink()
    {
        byte[] grey =
        [
            200, 200, 200,
            200, 20, 110,
            200, 200, 200,
        ];
        // Border median 200 > 127: invert (page 55, ink 235, 110 → 145); background b = 55, max m = 235, range 180.
        // 235 → (180·255 + 90) / 180 = 255;  145 → (90·255 + 90) / 180 = 128;  55 → 0.
        MnistPreprocessing.ToWhiteOnBlack(grey, 3, 3).Should().Equal(0, 0, 0, 0, 255, 128, 0, 0, 0);
    }

    [Fact]
    public void Light_ink_on_a_grey_page_keeps_its_polarity_and_is_stretched()
    {
        byte[] grey =
        [
            30, 30, 30,
            30, 130, 80,
            30, 30, 10,
        ];
        // Border median 30: no inversion; b = 30, m = 130, range 100: 130 → 255, 80 → (50·255 + 50) / 100 = 128, 10 → 0.
        MnistPreprocessing.ToWhiteOnBlack(grey, 3, 3).Should().Equal(0, 0, 0, 0, 255, 128, 0, 0, 0);
        byte[] mnistLike = [0, 0, 0, 0, 255, 7, 0, 0, 0];
        MnistPreprocessing.ToWhiteOnBlack(mnistLike, 3, 3).Should().Equal(mnistLike, "pure white-on-black is left alone");
    }

    [Fact]
    public void Uniform_images_have_no_ink()
    {
        MnistPreprocessing.ToWhiteOnBlack([255, 255, 255, 255], 2, 2).Should().Equal(0, 0, 0, 0);
        MnistPreprocessing.ToWhiteOnBlack([0, 0, 0, 0], 2, 2).Should().Equal(0, 0, 0, 0);
        MnistPreprocessing.ToWhiteOnBlack([90], 1, 1).Should().Equal(0);
    }

    [Fact]
    public void Ink_bounds_are_the_smallest_box_around_pixels_above_the_threshold()
    {
        var ink = new byte[5 * 4];
        ink[1 * 5 + 1] = 255; // (x 1, y 1)
        ink[2 * 5 + 3] = 40;  // (x 3, y 2)
        ink[3 * 5 + 4] = 10;  // faint: only above threshold 0
        MnistPreprocessing.InkThreshold.Should().Be(80);
        MnistPreprocessing.InkBounds(ink, 5, 4, threshold: 0).Should().Be(new PixelBox(1, 1, 4, 3));
        MnistPreprocessing.InkBounds(ink, 5, 4, threshold: 10).Should().Be(new PixelBox(1, 1, 3, 2));
        MnistPreprocessing.InkBounds(ink, 5, 4).Should().Be(new PixelBox(1, 1, 1, 1), "the default threshold, 80, leaves only the 255");
        MnistPreprocessing.InkBounds(ink, 5, 4, threshold: 255).Should().BeNull();
        MnistPreprocessing.InkBounds(new byte[6], 3, 2).Should().BeNull();
    }

    [Fact]
    public void Crop_copies_the_box_row_by_row()
    {
        byte[] grey =
        [
            1, 2, 3, 4,
            5, 6, 7, 8,
            9, 10, 11, 12,
        ];
        MnistPreprocessing.Crop(grey, 4, 3, new PixelBox(1, 1, 2, 2)).Should().Equal(6, 7, 10, 11);
        MnistPreprocessing.Crop(grey, 4, 3, new PixelBox(0, 0, 4, 3)).Should().Equal(grey);
        FluentActions.Invoking(() => MnistPreprocessing.Crop(grey, 4, 3, new PixelBox(3, 0, 2, 1))).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Shrinking_averages_the_area_each_output_pixel_covers()
    {
        byte[] grey =
        [
            0, 255, 255, 0,
            255, 255, 0, 0,
        ];
        // ×1/2: each output pixel is a 2×2 block: (0 + 255·3) / 4 = 191.25 → 191, 255 / 4 = 63.75 → 64.
        var (pixels, w, h) = MnistPreprocessing.ScaleLongerSide(grey, 4, 2, size: 2);
        (w, h).Should().Be((2, 1));
        pixels.Should().Equal(191, 64);
    }

    [Fact]
    public void A_fractional_factor_weights_partly_covered_pixels_and_pads_the_short_side_with_background()
    {
        // 3×1 → longer side 2: factor 2/3, each output pixel covers 1.5×1.5 input pixels; the short side becomes
        // ⌈1·2/3⌉ = 1 pixel, of which only 1 of 1.5 rows is inside the image.
        // left:  (0·1 + 90·0.5)·1 / 2.25 = 20;   right: (90·0.5 + 255·1)·1 / 2.25 = 133.3 → 133.
        var (pixels, w, h) = MnistPreprocessing.ScaleLongerSide([0, 90, 255], 3, 1, size: 2);
        (w, h).Should().Be((2, 1));
        pixels.Should().Equal(20, 133);
    }

    [Fact]
    public void Enlarging_turns_pixels_into_blocks_and_keeps_the_aspect_ratio()
    {
        var (pixels, w, h) = MnistPreprocessing.ScaleLongerSide([255, 0], 2, 1, size: 4);
        (w, h).Should().Be((4, 2));
        pixels.Should().Equal(255, 255, 0, 0, 255, 255, 0, 0);

        var (one, w1, h1) = MnistPreprocessing.ScaleLongerSide([255], 1, 1);
        (w1, h1).Should().Be((20, 20));
        one.Should().OnlyContain(v => v == 255);

        var (wide, w2, h2) = MnistPreprocessing.ScaleLongerSide(Enumerable.Repeat((byte)255, 40 * 10).ToArray(), 40, 10);
        (w2, h2).Should().Be((20, 5));
        wide.Should().OnlyContain(v => v == 255);
    }

    [Fact]
    public void A_shifted_grid_starts_a_fraction_of_a_pixel_before_the_image()
    {
        // Factor 1 (longer side 2 → 2). phaseX 4: the grid starts 4/8 = 0.5 pixel left of the image, so the row has
        // ⌈2 + 0.5⌉ = 3 pixels covering [−0.5, 0.5), [0.5, 1.5), [1.5, 2.5): 255·0.5 = 127.5 → 128, 127.5 → 128, 0.
        var (row, w, h) = MnistPreprocessing.ScaleLongerSide([255, 0], 2, 1, size: 2, phaseX: 4);
        (w, h).Should().Be((3, 1));
        row.Should().Equal(128, 128, 0);

        // phaseY 2 as well: the grid starts 0.25 above, rows cover [−0.25, 0.75) and [0.75, 1.75) of the one input row:
        // 127.5·0.75 = 95.625 → 96 and 127.5·0.25 = 31.875 → 32. The ink, 255, is kept: 96 + 96 + 32 + 32 = 256.
        var (block, w2, h2) = MnistPreprocessing.ScaleLongerSide([255, 0], 2, 1, size: 2, phaseX: 4, phaseY: 2);
        (w2, h2).Should().Be((3, 2));
        block.Should().Equal(96, 96, 0, 32, 32, 0);

        MnistPreprocessing.PhaseSteps.Should().Be(8);
        FluentActions.Invoking(() => MnistPreprocessing.ScaleLongerSide([255, 0], 2, 1, 2, phaseX: 8)).Should().Throw<ArgumentException>();
        FluentActions.Invoking(() => MnistPreprocessing.ScaleLongerSide([255, 0], 2, 1, 2, phaseY: -1)).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Scaling_equals_the_area_average_formula_at_every_phase_for_wide_tall_and_square_pictures()
    {
        // The definition, pixel by pixel: Σ v·overlapX·overlapY over every input pixel, in units of 1/(size·L·P) of an
        // input pixel, divided by (L·P)², rounded half up. The implementation runs its two passes in either order and
        // weights only the two end pixels of a span; this must not change a bit.
        const int P = MnistPreprocessing.PhaseSteps;
        var random = new Random(12);
        foreach (var (w, h, size) in new[] { (1, 1, 20), (3, 47, 20), (47, 3, 20), (31, 31, 20), (5, 9, 29), (60, 13, 7), (1, 90, 20), (90, 1, 3) })
        {
            var grey = new byte[w * h];
            random.NextBytes(grey);
            long longer = Math.Max(w, h), unitIn = (long)size * P, unitOut = longer * P, area = unitOut * unitOut;
            long Overlap(int i, int j, int phase, int n)
            {
                long lo = Math.Max(j * unitOut - phase * longer, 0), hi = Math.Min((j + 1) * unitOut - phase * longer, n * unitIn);
                return Math.Max(0, Math.Min(hi, (i + 1) * unitIn) - Math.Max(lo, i * unitIn));
            }

            var sharpest = MnistPreprocessing.ScaleSharpest(grey, w, h, size);
            long bestEnergy = -1;
            (int, int) bestPhase = default;
            for (int px = 0; px < P; px++)
            {
                for (int py = 0; py < P; py++)
                {
                    var (got, ow, oh) = MnistPreprocessing.ScaleLongerSide(grey, w, h, size, px, py);
                    ow.Should().Be((int)((w * unitIn + px * longer + unitOut - 1) / unitOut));
                    oh.Should().Be((int)((h * unitIn + py * longer + unitOut - 1) / unitOut));
                    var expected = new byte[ow * oh];
                    for (int j = 0; j < oh; j++)
                    {
                        for (int x = 0; x < ow; x++)
                        {
                            long sum = 0;
                            for (int y = 0; y < h; y++)
                            {
                                for (int i = 0; i < w; i++) sum += grey[y * w + i] * Overlap(i, x, px, w) * Overlap(y, j, py, h);
                            }

                            expected[j * ow + x] = (byte)((sum + area / 2) / area);
                        }
                    }

                    got.Should().Equal(expected, $"{w}×{h} to {size} at phase ({px}, {py})");
                    long energy = expected.Sum(v => (long)v * v);
                    if (energy > bestEnergy) (bestEnergy, bestPhase) = (energy, (px, py));
                }
            }

            (sharpest.PhaseX, sharpest.PhaseY).Should().Be(bestPhase, "ties keep the first placement in (phaseX, phaseY) order");
        }
    }

    [Fact]
    public void Scaling_a_tall_thin_picture_allocates_in_proportion_to_the_output_not_the_rows()
    {
        // 1×2,000,000: per-row tables or per-row sums would take ≥ 16 MB per phase; the output is 1×20.
        var grey = new byte[2_000_000];
        new Random(3).NextBytes(grey);
        MnistPreprocessing.ScaleSharpest(grey.AsSpan(0, 20_000), 1, 20_000); // JIT and warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        var (pixels, w, h, _, _) = MnistPreprocessing.ScaleSharpest(grey, 1, grey.Length);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        (w, h).Should().Be((1, 20));
        pixels.Should().Equal(MnistPreprocessing.ScaleLongerSide(grey, 1, grey.Length).Pixels); // phase (0, 0), all 0: a 1/100,000-pixel-wide line
        allocated.Should().BeLessThan(1_000_000);
        long wideBefore = GC.GetAllocatedBytesForCurrentThread();
        MnistPreprocessing.ScaleSharpest(grey, grey.Length, 1);
        (GC.GetAllocatedBytesForCurrentThread() - wideBefore).Should().BeLessThan(1_000_000);
    }

    [Fact]
    public void The_sharpest_grid_placement_lines_up_with_the_blocks_of_an_enlarged_picture()
    {
        // A 4-pixel block at columns 2–5 of an 8×4 picture (every row alike), scaled to longer side 2: an output pixel
        // covers 4×4 input pixels, a phase step 0.5 input pixel.
        var grey = new byte[8 * 4];
        for (int y = 0; y < 4; y++)
            for (int x = 2; x < 6; x++) grey[y * 8 + x] = 255;

        // Phase (0, 0): [0, 4) and [4, 8) each hold half the block: 127.5 → 128, 128; Σ v² = 2·128² = 32,768.
        MnistPreprocessing.ScaleLongerSide(grey, 8, 4, size: 2).Pixels.Should().Equal(128, 128);
        // Phase (2, 0), 1 pixel: [−1, 3) holds 1 column → 64, [3, 7) holds 3 → 191, [7, 11) none; Σ v² = 40,577.
        MnistPreprocessing.ScaleLongerSide(grey, 8, 4, size: 2, phaseX: 2).Pixels.Should().Equal(64, 191, 0);
        // Phase (4, 0), 2 pixels: [2, 6) is exactly the block → 0, 255, 0; Σ v² = 65,025, the largest. A vertical
        // phase splits the 4 rows over two output rows, which only blurs.
        var (pixels, w, h, phaseX, phaseY) = MnistPreprocessing.ScaleSharpest(grey, 8, 4, size: 2);
        (phaseX, phaseY, w, h).Should().Be((4, 0, 3, 1));
        pixels.Should().Equal(0, 255, 0);

        // A picture with nothing to line up (one pixel enlarged) keeps phase (0, 0), which is ScaleLongerSide's result.
        var (one, w1, h1, px, py) = MnistPreprocessing.ScaleSharpest([255], 1, 1);
        (px, py, w1, h1).Should().Be((0, 0, 20, 20));
        one.Should().OnlyContain(v => v == 255);
    }

    [Fact]
    public void The_centre_of_mass_lands_on_pixel_14_14()
    {
        MnistPreprocessing.CenterOfMass([255, 255], 2, 1).Should().Be((0.5, 0.0));
        MnistPreprocessing.CenterOfMass([0, 0], 2, 1).Should().BeNull();

        // Centre of mass (0.5, 0): shift by round(14 − 0.5) = 14 (halves round up) and 14: pixels at (14, 14) and (15, 14).
        var two = MnistPreprocessing.CenterByMass([255, 255], 2, 1);
        two.Should().HaveCount(784);
        two.Select((v, i) => (v, i)).Where(p => p.v != 0).Select(p => p.i).Should().Equal(14 * 28 + 14, 14 * 28 + 15);

        // One pixel at (2, 0) of a 3×3: shift (12, 14).
        var one = new byte[9];
        one[2] = 100;
        MnistPreprocessing.CenterByMass(one, 3, 3).Select((v, i) => (v, i)).Where(p => p.v != 0).Should().Equal((100, 14 * 28 + 14));

        // Mass (1·3 + 3·1) / 4 = 1.5 along x in a 4×1 row [0, 100, 0, 100]... heavier on the right: weights 0,100,0,100 → x̄ = 2.
        MnistPreprocessing.CenterOfMass([0, 100, 0, 100], 4, 1).Should().Be((2.0, 0.0));
    }

    [Fact]
    public void Blank_tiny_uniform_and_all_ink_images_have_no_ink()
    {
        void NoInk(byte[] grey, int w, int h, string reason) =>
            FluentActions.Invoking(() => MnistPreprocessing.Preprocess(grey, w, h)).Should().Throw<NoInkException>().WithMessage($"no ink found (*{reason}*)");

        NoInk(Enumerable.Repeat((byte)255, 50 * 40).ToArray(), 50, 40, "differs from the page's grey level by 0 of 255");
        NoInk([0], 1, 1, "by 0 of 255");
        NoInk([255], 1, 1, "by 0 of 255");
        NoInk(new byte[30 * 30], 30, 30, "by 0 of 255");
        NoInk(Enumerable.Repeat((byte)128, 30 * 30).ToArray(), 30, 30, "by 0 of 255");
        var faint = Enumerable.Repeat((byte)200, 30 * 30).ToArray();
        for (int i = 300; i < 600; i++) faint[i] = 170; // 30 levels darker: paper grain, not ink
        NoInk(faint, 30, 30, "by 30 of 255; ink must differ by at least 32");
        faint[450] = 168; // 32 levels: ink
        MnistPreprocessing.Preprocess(faint, 30, 30).Max().Should().BeGreaterThan(200);
        FluentActions.Invoking(() => MnistPreprocessing.Preprocess(new byte[10], 3, 3)).Should().Throw<ArgumentException>().WithMessage("*3×3*9*10*");
    }

    [Theory]
    [InlineData(MnistPreprocessing.MaxSize + 1)]
    [InlineData(30000)]
    [InlineData(46341)]
    [InlineData(65536)]
    [InlineData(int.MaxValue)]
    public void An_output_side_above_MaxSize_is_refused_before_any_work(int size)
    {
        byte[] one = [255];
        FluentActions.Invoking(() => MnistPreprocessing.ScaleLongerSide(one, 1, 1, size)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be("size");
        FluentActions.Invoking(() => MnistPreprocessing.ScaleSharpest(one, 1, 1, size)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be("size");
        FluentActions.Invoking(() => MnistPreprocessing.CenterByMass(one, 1, 1, size)).Should().Throw<ArgumentOutOfRangeException>()
            .Which.ParamName.Should().Be("size");
    }

    [Fact]
    public void MaxSize_itself_is_accepted()
    {
        byte[] one = [255];
        MnistPreprocessing.ScaleLongerSide(one, 1, 1, MnistPreprocessing.MaxSize).Width.Should().Be(MnistPreprocessing.MaxSize);
        var centred = MnistPreprocessing.CenterByMass(one, 1, 1, MnistPreprocessing.MaxSize);
        centred.Length.Should().Be(MnistPreprocessing.MaxSize * MnistPreprocessing.MaxSize);
        centred[MnistPreprocessing.MaxSize / 2 * MnistPreprocessing.MaxSize + MnistPreprocessing.MaxSize / 2].Should().Be(255);
    }

    [Fact]
    public void A_crop_box_whose_right_edge_overflows_int_is_refused()
    {
        FluentActions.Invoking(() => MnistPreprocessing.Crop(new byte[4], 2, 2, new PixelBox(1, 0, int.MaxValue, 1))).Should().Throw<ArgumentException>()
            .WithMessage("*not inside the 2×2 image*");
        FluentActions.Invoking(() => MnistPreprocessing.Crop(new byte[4], 2, 2, new PixelBox(0, 1, 1, int.MaxValue))).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void A_speck_under_1_25th_of_the_picture_is_no_ink_but_a_small_real_digit_is_read()
    {
        var page = Enumerable.Repeat((byte)255, 300 * 300).ToArray();
        page[150 * 300 + 150] = 0;
        FluentActions.Invoking(() => MnistPreprocessing.Preprocess(page, 300, 300)).Should().Throw<NoInkException>()
            .WithMessage("no ink found (the only ink is a 1×1 speck in a 300×300 picture*1/25*)");
        for (int y = 100; y < 111; y++) page[y * 300 + 150] = 0; // a line 12 pixels tall: 12·25 = 300, enough
        MnistPreprocessing.Preprocess(page, 300, 300).Max().Should().BeGreaterThan(0);

        // An MNIST digit at its own size (about 20 pixels) on a 500×500 page is still a digit.
        var digit = TrainedMnist.Test.Pixels(0);
        var big = Enumerable.Repeat((byte)255, 500 * 500).ToArray();
        for (int y = 0; y < 28; y++) for (int x = 0; x < 28; x++) big[(200 + y) * 500 + 300 + x] = (byte)(255 - digit[y * 28 + x]);
        MnistPreprocessing.Preprocess(big, 500, 500).Should().Equal(MnistPreprocessing.Preprocess(digit, 28, 28));
    }

    [Fact]
    public void A_single_ink_pixel_becomes_a_20x20_block_centred_at_14_14()
    {
        var grey = Enumerable.Repeat((byte)255, 4).ToArray();
        grey[3] = 0; // black dot on white, bottom-right of a 2×2
        var digit = MnistPreprocessing.Preprocess(grey, 2, 2);
        // Box 1×1 → 20×20 of 255, centre of mass 9.5 → shift round(4.5) = 5 (halves up): columns and rows 5..24.
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++)
                digit[y * 28 + x].Should().Be(x is >= 5 and < 25 && y is >= 5 and < 25 ? (byte)255 : (byte)0, "pixel ({0}, {1})", x, y);
    }

    [Fact]
    public void A_huge_photo_like_page_is_reduced_to_a_centred_20_pixel_digit()
    {
        const int width = 4000, height = 3000;
        var grey = new byte[width * height];
        Array.Fill(grey, (byte)190); // grey paper
        for (int y = 1000; y < 2600; y++)
            for (int x = 2000; x < 2400; x++) grey[y * width + x] = 40; // a dark bar 400 wide, 1600 tall: a "1"

        var digit = MnistPreprocessing.Preprocess(grey, width, height);
        var box = MnistPreprocessing.InkBounds(digit, 28, 28)!.Value;
        box.Height.Should().Be(20);
        box.Width.Should().Be(5); // 400 · 20/1600
        var (cx, cy) = MnistPreprocessing.CenterOfMass(digit, 28, 28)!.Value;
        cx.Should().BeApproximately(14, 0.5);
        cy.Should().BeApproximately(14, 0.5);
        digit.Max().Should().Be(255);
    }

    [Fact]
    public void On_mnist_digits_with_threshold_0_crop_scale_and_centre_give_the_image_back()
    {
        var test = TrainedMnist.Test;
        int identical = 0;
        for (int i = 0; i < 1000; i++)
        {
            var image = test.Pixels(i);
            var result = MnistPreprocessing.Preprocess(image, 28, 28, inkThreshold: 0);
            result.Should().Equal(MnistPreprocessing.ToWhiteOnBlack(image, 28, 28), "image {0} is already 20 pixels tall or wide and centred by mass", i);
            if (result.AsSpan().SequenceEqual(image)) identical++;
        }

        identical.Should().Be(892, "only the 108 of the first 1,000 whose brightest pixel is below 255 are changed, by the contrast stretch");
    }

    [Fact]
    public void Page_levels_follow_uneven_lighting_block_by_block()
    {
        // 32×32 → blocks of 16: a 2×2 grid. Left half 10, right half 50: block levels 10 | 50, centres at x = 7.5 and
        // 23.5; u = (x + 0.5)/16 − 0.5 from the left centre, level 10 + 40·u (extrapolated beyond the centres).
        var grey = new byte[32 * 32];
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) grey[y * 32 + x] = x < 16 ? (byte)10 : (byte)50;
        grey[20 * 32 + 20] = 250; // a speck of ink: contrast 240, so levels up to 10 + 120 are paper; it moves no percentile
        var page = MnistPreprocessing.PageLevels(grey, 32, 32);
        page[5 * 32 + 0].Should().Be(0);   // u = −0.46875: −8.75, clamped
        page[5 * 32 + 15].Should().Be(29); // u = 0.46875: 28.75
        page[5 * 32 + 23].Should().Be(49); // u = 0.96875: 48.75
        page[20 * 32 + 31].Should().Be(69); // u = 1.46875: 68.75, the same on every row
    }

    [Fact]
    public void An_even_page_has_one_level_and_a_block_of_solid_ink_is_not_taken_for_paper()
    {
        var flat = Enumerable.Repeat((byte)7, 32 * 32).ToArray();
        flat[40] = 12; // within PageFlatness: one level, the border median
        MnistPreprocessing.PageLevels(flat, 32, 32).Should().OnlyContain(v => v == 7);

        // The top-left block is all ink (255): its level, 255, is more than half the contrast (255 − 0) above the
        // border median 0, so it is ink and replaced by 0; all blocks are then 0: one level, nothing hollowed.
        var bold = new byte[32 * 32];
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) bold[y * 32 + x] = 255;
        MnistPreprocessing.PageLevels(bold, 32, 32).Should().OnlyContain(v => v == 0);
        MnistPreprocessing.PageLevels([9, 200, 9, 9], 2, 2).Should().Equal(9, 9, 9, 9); // one block: the border median
    }

    [Fact]
    public void Noise_is_the_median_neighbour_difference_and_raises_the_ink_threshold()
    {
        // Every horizontal neighbour differs by 2: σ = 2 / (0.6745·√2) = 2.0967.
        var stripes = new byte[10 * 3];
        for (int i = 0; i < stripes.Length; i++) stripes[i] = (byte)(100 + 2 * (i % 2));
        MnistPreprocessing.NoiseLevel(stripes, 10, 3).Should().BeApproximately(2.0967, 1e-4);
        // A clean page with one stroke: most differences are 0.
        var clean = new byte[10 * 3];
        clean[4] = clean[14] = clean[24] = 255;
        MnistPreprocessing.NoiseLevel(clean, 10, 3).Should().Be(0);
        MnistPreprocessing.NoiseLevel([1, 2, 3], 1, 3).Should().Be(0);

        MnistPreprocessing.NoiseThreshold(0, 200).Should().Be(80, "a clean picture keeps the floor");
        MnistPreprocessing.NoiseThreshold(2, 200).Should().Be(80, "6·2·255/200 = 15.3 is below the floor");
        MnistPreprocessing.NoiseThreshold(9, 150).Should().Be(92, "6·9·255/150 = 91.8, rounded up");
        MnistPreprocessing.NoiseThreshold(9, 150, floor: 100).Should().Be(100);
        MnistPreprocessing.NoiseThreshold(50, 10).Should().Be(254);
        MnistPreprocessing.NoiseThreshold(9, 0).Should().Be(80, "no contrast: nothing to scale");
    }
}
