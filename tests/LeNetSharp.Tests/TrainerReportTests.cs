using System.Text.Json;
using LeNetSharp.Trainer;
using LeNetSharp.Training;
using SkiaSharp;

namespace LeNetSharp.Tests;

public class TrainerReportTests : TempDirectoryTest
{
    private static readonly string[] TrainFigures = ["loss.png", "accuracy.png", "confusion.png", "mistakes.png", "conv1-filters.png", "feature-maps.png"];

    [Fact]
    public void Train_and_eval_reports_write_every_picture_and_the_metrics_behind_them()
    {
        string model = Path.Combine(Dir, "small.model"), trained = Path.Combine(Dir, "train-report"), evaluated = Path.Combine(Dir, "eval-report");
        var (code, output, err) = TrainerCliTests.Run("train", "--data", TestData.MnistDirectory(), "--limit", "600", "--epochs", "2", "--model", model, "--report", trained);
        code.Should().Be(0, err);
        output.TrimEnd().Split('\n')[^1].Should().MatchRegex(@"^test accuracy: \d+\.\d\d% \(\d+/10000\)$", "the report comes before the last line");
        foreach (var file in TrainFigures.Append("metrics.json")) output.Should().Contain($"report: {Path.Combine(trained, file)}");
        var metrics = CheckReport(trained, TrainFigures, output);

        var training = metrics.GetProperty("training");
        var epochs = training.GetProperty("epochs").EnumerateArray().ToList();
        epochs.Should().HaveCount(2);
        epochs.Select(e => e.GetProperty("epoch").GetInt32()).Should().Equal(1, 2);
        epochs[^1].GetProperty("test_accuracy").GetDouble().Should().Be(metrics.GetProperty("test").GetProperty("accuracy").GetDouble(),
            "the test accuracy after the last epoch is the model's");
        var points = training.GetProperty("points").EnumerateArray().ToList();
        points.Should().HaveCount(2 * 40, "200 batches per epoch, a point every 5");
        points.Select(p => p.GetProperty("batches").GetInt64()).Should().BeInAscendingOrder();

        var (evalCode, evalOutput, evalErr) = TrainerCliTests.Run("eval", "--data", TestData.MnistDirectory(), "--model", model, "--report", evaluated);
        evalCode.Should().Be(0, evalErr);
        var evalMetrics = CheckReport(evaluated, TrainFigures[2..], evalOutput);
        evalMetrics.GetProperty("training").ValueKind.Should().Be(JsonValueKind.Null);
        File.Exists(Path.Combine(evaluated, "loss.png")).Should().BeFalse();
        evalMetrics.GetProperty("confusion").GetRawText().Should().Be(metrics.GetProperty("confusion").GetRawText(), "same model, same test set");
        Directory.GetFiles(evaluated).Should().OnlyContain(f => !Path.GetFileName(f).StartsWith('.'), "no temporary files are left behind");
    }

    /// <summary>Every listed PNG decodes at its stated size and is not blank; metrics.json agrees with the printed accuracy.</summary>
    private static JsonElement CheckReport(string dir, string[] figures, string output)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "metrics.json")));
        var metrics = json.RootElement.Clone();
        foreach (var key in new[] { "model", "test", "confusion", "per_class", "training", "mistakes", "conv1_filters", "feature_maps", "figures" })
        {
            metrics.TryGetProperty(key, out _).Should().BeTrue($"metrics.json has '{key}'");
        }

        var listed = metrics.GetProperty("figures").EnumerateArray().ToList();
        listed.Select(f => f.GetProperty("file").GetString()).Should().BeEquivalentTo(figures);
        foreach (var figure in listed)
        {
            string path = Path.Combine(dir, figure.GetProperty("file").GetString()!);
            File.ReadAllBytes(path).Take(8).Should().Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, $"{path} is a PNG");
            using var bitmap = SKBitmap.Decode(path);
            bitmap.Should().NotBeNull($"{path} decodes");
            bitmap.Width.Should().Be(figure.GetProperty("width").GetInt32());
            bitmap.Height.Should().Be(figure.GetProperty("height").GetInt32());
            (bitmap.Width, bitmap.Height).Should().Be((1600, 900));
            LuminanceStdDev(bitmap).Should().BeGreaterThan(10, $"{path} is not blank");
            InkFraction(bitmap, 0, 110).Should().BeGreaterThan(0.002, $"{path} has a title");
        }

        var test = metrics.GetProperty("test");
        int correct = test.GetProperty("correct").GetInt32();
        output.Should().Contain($"({correct}/10000)");
        var confusion = metrics.GetProperty("confusion").GetProperty("counts").EnumerateArray().Select(r => r.EnumerateArray().Select(c => c.GetInt32()).ToArray()).ToArray();
        confusion.Should().HaveCount(10).And.OnlyContain(r => r.Length == 10);
        confusion.Sum(r => r.Sum()).Should().Be(10000);
        Enumerable.Range(0, 10).Sum(d => confusion[d][d]).Should().Be(correct);

        var mistakes = metrics.GetProperty("mistakes").EnumerateArray().ToList();
        mistakes.Should().HaveCount(Math.Min(Report.MistakeCount, 10000 - correct));
        mistakes.Should().OnlyContain(m => m.GetProperty("true_digit").GetInt32() != m.GetProperty("predicted").GetInt32());
        mistakes.Select(m => m.GetProperty("probability").GetDouble()).Should().BeInDescendingOrder();
        metrics.GetProperty("conv1_filters").GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).Should().Equal(6, 5, 5);
        metrics.GetProperty("feature_maps").GetProperty("layers").EnumerateArray().Select(l => l.GetProperty("name").GetString())
            .Should().Equal("conv1", "pool1", "conv2", "pool2");
        return metrics;
    }

    private static double LuminanceStdDev(SKBitmap bitmap)
    {
        double sum = 0, sumSquares = 0;
        int n = 0;
        for (int y = 0; y < bitmap.Height; y += 3)
        {
            for (int x = 0; x < bitmap.Width; x += 3)
            {
                var c = bitmap.GetPixel(x, y);
                double l = 0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue;
                sum += l;
                sumSquares += l * l;
                n++;
            }
        }

        double mean = sum / n;
        return Math.Sqrt(Math.Max(0, sumSquares / n - mean * mean));
    }

    private static double InkFraction(SKBitmap bitmap, int top, int bottom)
    {
        int dark = 0, total = 0;
        for (int y = top; y < bottom; y++)
        {
            for (int x = 0; x < bitmap.Width; x += 2)
            {
                var c = bitmap.GetPixel(x, y);
                if (c.Red + c.Green + c.Blue < 300) dark++;
                total++;
            }
        }

        return (double)dark / total;
    }

    [Fact]
    public void History_turns_running_means_into_the_means_between_reports()
    {
        // 10 images, batch 3 → 4 batches (the last has 1 image). Batch losses 4, 2, 1, 1; right answers 1, 2, 3, 1.
        int tests = 0;
        var history = new TrainingHistory(images: 10, batchSize: 3, testAccuracy: () => ++tests / 10.0);
        TrainingProgress Report(int epoch, int batch, double lossSum, int correct, bool end) =>
            new(epoch, 2, batch, 4, lossSum / batch, (double)correct / Math.Min(batch * 3, 10), 0.01, TimeSpan.FromSeconds(1), 10, end);
        history.Observe(Report(1, 2, 6, 3, false));
        history.Observe(Report(1, 4, 8, 7, true));
        history.Observe(Report(2, 2, 1, 5, false));
        history.Observe(Report(2, 4, 2, 9, true));

        history.Points.Should().Equal(
            new CurvePoint(0.5, 2, 3, 0.5), new CurvePoint(1, 4, 1, 1.0), new CurvePoint(1.5, 6, 0.5, 5 / 6.0), new CurvePoint(2, 8, 0.5, 1.0));
        history.Epochs.Select(e => (e.Epoch, e.Loss, e.TrainAccuracy, e.TestAccuracy)).Should().Equal((1, 2.0, 0.7, 0.1), (2, 0.5, 0.9, 0.2));
    }
}
