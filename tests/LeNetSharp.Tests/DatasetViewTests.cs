using LeNetSharp.Data;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>Take, Skip and Split: views over the same arrays, seeded, refusing what would make no sense.</summary>
public class DatasetViewTests
{
    private static readonly ImageDataset Data = TestData.RandomImages(50, 3);

    /// <summary>Each image's pixels and label, to compare datasets by content.</summary>
    private static List<(byte[] Pixels, int Label)> Content(ImageDataset d) =>
        [.. Enumerable.Range(0, d.Count).Select(i => (d.Pixels(i).ToArray(), d.Label(i)))];

    /// <summary>A key for each image of <see cref="Data"/> (its index there), found by its pixels.</summary>
    private static int[] Origins(ImageDataset part)
    {
        var all = Content(Data);
        return [.. Content(part).Select(c => all.FindIndex(a => a.Pixels.AsSpan().SequenceEqual(c.Pixels)))];
    }

    [Fact]
    public void Take_and_Skip_are_the_two_ends_of_the_set()
    {
        var head = Data.Take(20);
        var tail = Data.Skip(20);

        (head.Count, tail.Count).Should().Be((20, 30));
        Origins(head).Should().Equal(Enumerable.Range(0, 20));
        Origins(tail).Should().Equal(Enumerable.Range(20, 30));
        tail.Label(0).Should().Be(Data.Label(20));
        Data.Take(50).Should().BeSameAs(Data);
        Data.Take(1000).Should().BeSameAs(Data, "clipped to the count");
        Data.Skip(0).Should().BeSameAs(Data);

        // Views of views.
        Origins(tail.Skip(5).Take(10)).Should().Equal(Enumerable.Range(25, 10));
        Origins(tail.Take(10).Skip(5)).Should().Equal(Enumerable.Range(25, 5));
    }

    [Fact]
    public void A_view_reaches_only_its_own_images()
    {
        var tail = Data.Skip(40); // 10 images, stored after 40 others
        FluentActions.Invoking(() => tail.Pixels(10).ToArray()).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("index");
        FluentActions.Invoking(() => tail.Label(-1)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("index");
        FluentActions.Invoking(() => Data.Take(5).Label(5)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("index");
        FluentActions.Invoking(() => Data.Take(5).FillBatch([5], new Tensor<float>(1, 8, 8, 1), new int[1]))
            .Should().Throw<ArgumentOutOfRangeException>("image 5 of the view does not exist, though the arrays hold it");
    }

    [Fact]
    public void Views_fill_batches_and_statistics_as_copies_do()
    {
        var copy = new ImageDataset([.. Enumerable.Range(20, 30).SelectMany(i => Data.Pixels(i).ToArray())],
            [.. Enumerable.Range(20, 30).Select(i => (byte)Data.Label(i))], 8, 8, 1, 3);
        var view = Data.Skip(20);
        view.PixelStatistics().Should().Be(copy.PixelStatistics());

        var (mean, std) = view.PixelStatistics();
        var a = new Tensor<float>(3, 8, 8, 1);
        var b = new Tensor<float>(3, 8, 8, 1);
        int[] la = new int[3], lb = new int[3];
        view.Normalize(mean, std).FillBatch([29, 0, 7], a, la);
        copy.Normalize(mean, std).FillBatch([29, 0, 7], b, lb);
        a.Data.Should().Equal(b.Data);
        la.Should().Equal(lb);
        view.Normalize(mean, std).Take(4).Should().Match<ImageDataset>(d => d.Mean == mean && d.StandardDeviation == std && d.Count == 4);

        // Training on a view and on a copy of the same images ends with the same weights.
        float[] Train(ImageDataset d)
        {
            var net = TestData.SmallNet<float>(2);
            using var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 2, BatchSize = 5 });
            trainer.Train(d);
            return [.. net.Parameters.SelectMany(p => p.Value.Data)];
        }

        Train(view).Should().Equal(Train(copy));
    }

    [Fact]
    public void Float_views_read_their_own_images()
    {
        var floats = ImageDataset.FromFloats([0f, 1f, 2f, 3f, 4f, 5f], [0, 1, 0], 1, 2, 1, 2);
        floats.Skip(1).FloatPixels(0).ToArray().Should().Equal(2f, 3f);
        floats.Skip(1).PixelStatistics().Mean.Should().Be(3.5f);
        var (train, validation) = floats.Split(1 / 3.0, seed: 1);
        (train.Count, validation.Count).Should().Be((2, 1));
    }

    [Fact]
    public void Split_draws_disjoint_parts_covering_the_set_in_its_order()
    {
        var (train, validation) = Data.Split(0.2, seed: 7);

        (train.Count, validation.Count).Should().Be((40, 10));
        int[] t = Origins(train), v = Origins(validation);
        t.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        v.Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        t.Intersect(v).Should().BeEmpty();
        t.Concat(v).Should().BeEquivalentTo(Enumerable.Range(0, 50));
        v.Should().NotEqual(Enumerable.Range(40, 10), "the validation images are drawn, not the last ones");
        for (int i = 0; i < validation.Count; i++) validation.Label(i).Should().Be(Data.Label(v[i]));
    }

    [Fact]
    public void Split_depends_on_its_seed_alone()
    {
        Origins(Data.Split(0.2, 7).Validation).Should().Equal(Origins(Data.Split(0.2, 7).Validation));
        Origins(Data.Split(0.2, 7).Validation).Should().NotEqual(Origins(Data.Split(0.2, 8).Validation));
        // Pinned: the draw is SplitMix64's, the same on every machine and .NET version.
        Origins(Data.Split(0.1, 1).Validation).Should().Equal(10, 18, 31, 40, 49);
        Data.Split(0.1, int.MinValue).Validation.Count.Should().Be(5);
    }

    [Theory]
    [InlineData(50, 0.1, 5)]
    [InlineData(50, 0.01, 1)]     // 0.5 rounds up: one image
    [InlineData(50, 0.98, 49)]
    [InlineData(2, 0.5, 1)]
    [InlineData(60_000, 0.1, 6000)]
    public void Split_rounds_the_validation_count(int count, double fraction, int expected)
    {
        var data = new ImageDataset(new byte[count], new byte[count], 1, 1, 1, 2);
        var (train, validation) = data.Split(fraction, 3);
        (train.Count, validation.Count).Should().Be((count - expected, expected));
    }

    [Fact]
    public void A_split_of_a_view_maps_to_the_views_images()
    {
        var tail = Data.Skip(30).Normalize(0.5f, 0.25f);
        var (train, validation) = tail.Split(0.5, 2);
        Origins(train).Concat(Origins(validation)).Should().BeEquivalentTo(Enumerable.Range(30, 20));
        (validation.Mean, validation.StandardDeviation).Should().Be((0.5f, 0.25f));
        Origins(validation.Skip(2)).Should().Equal(Origins(validation).Skip(2));
    }

    [Fact]
    public void Views_copy_no_pixels()
    {
        var big = new ImageDataset(new byte[20_000 * 784], new byte[20_000], 28, 28);
        big.Take(1).Count.Should().Be(1); // JIT the methods before measuring
        big.Skip(1).Split(0.5, 1).Train.Count.Should().Be(9_999);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var views = (big.Take(10_000), big.Skip(10_000), big.Normalize(0.1f, 0.3f));
        long viewBytes = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        var split = big.Split(0.1, 1);
        long splitBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        viewBytes.Should().BeLessThan(1_000);
        splitBytes.Should().BeLessThan(20_000 * 9, "two indices per image at most, against 784 bytes of pixels");
        GC.KeepAlive(views);
        GC.KeepAlive(split);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(0.0)]
    [InlineData(1.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0.005)] // rounds to no validation image of 50
    [InlineData(0.995)] // rounds to no training image
    public void Split_refuses_a_fraction_that_leaves_a_part_empty(double fraction)
    {
        FluentActions.Invoking(() => Data.Split(fraction, 1)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("fraction");
    }

    [Fact]
    public void Take_Skip_and_Split_refuse_hostile_counts()
    {
        FluentActions.Invoking(() => Data.Take(0)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count");
        FluentActions.Invoking(() => Data.Take(int.MinValue)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count");
        FluentActions.Invoking(() => Data.Skip(-1)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count");
        FluentActions.Invoking(() => Data.Skip(50)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count")
            .WithMessage("Skipping 50 of 50 images would leave none.*");
        FluentActions.Invoking(() => Data.Skip(int.MaxValue)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("count");
        FluentActions.Invoking(() => Data.Take(1).Split(0.5, 1)).Should().Throw<ArgumentOutOfRangeException>().WithParameterName("fraction")
            .WithMessage("A fraction 0.5 of 1 images leaves no image for training.*");
    }
}
