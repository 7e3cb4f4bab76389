using System.Globalization;
using System.Text.Json;
using LeNetSharp.Data;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;
using ScottPlot;
using SkiaSharp;

namespace LeNetSharp.Trainer;

/// <summary>
/// <c>train --report DIR</c> and <c>eval --report DIR</c>: slide-sized PNGs (training curves, confusion matrix, most
/// confident mistakes, conv1 filters, feature maps of one test image) and <c>metrics.json</c> with every number they
/// show. Every file is written atomically (temporary file in the same folder, then renamed).
/// </summary>
internal static class Report
{
    /// <summary>Size of every picture: 16:9, readable on a slide at 100 %.</summary>
    public const int Width = 1600, Height = 900;

    /// <summary>Mistakes shown in the grid (8 per row).</summary>
    public const int MistakeCount = 24;

    private static readonly string[] DigitLabels = [.. Enumerable.Range(0, 10).Select(d => d.ToString(CultureInfo.InvariantCulture))];

    /// <summary>One picture of the report.</summary>
    /// <param name="File">File name inside the report folder.</param>
    /// <param name="Title">The title drawn on it.</param>
    /// <param name="Width">Width in pixels.</param>
    /// <param name="Height">Height in pixels.</param>
    public sealed record Figure(string File, string Title, int Width, int Height);

    private const string LossFile = "loss.png", AccuracyFile = "accuracy.png", ConfusionFile = "confusion.png", MistakesFile = "mistakes.png",
        FiltersFile = "conv1-filters.png", FeatureMapsFile = "feature-maps.png", MetricsFile = "metrics.json";

    /// <summary>Every file a report may write (loss and accuracy curves only after training), in writing order.</summary>
    public static readonly IReadOnlyList<string> Files = [LossFile, AccuracyFile, ConfusionFile, MistakesFile, FiltersFile, FeatureMapsFile, MetricsFile];

    /// <summary>Checks, writing nothing, that every file of a report could be written into <paramref name="directory"/> (which may not exist yet).</summary>
    /// <param name="directory">The report folder.</param>
    /// <exception cref="IOException">One of them cannot be written; the message names it.</exception>
    public static void EnsureWritable(string directory)
    {
        foreach (string file in Files) AtomicFile.EnsureWritable(Path.Combine(directory, file));
    }

    /// <summary>
    /// Checks, before any work, that a report can be drawn for <paramref name="network"/>: its filters picture shows
    /// the first convolution, so a network without one (a perceptron from --arch or --model) is refused.
    /// </summary>
    /// <param name="network">The network the report is about.</param>
    /// <param name="model">Its file, for the message.</param>
    /// <exception cref="InvalidDataException">The network has no Conv layer; the message names the file.</exception>
    public static void EnsureDrawable(Sequential<float> network, string model)
    {
        if (!network.Layers.OfType<Conv<float>>().Any())
        {
            throw new InvalidDataException($"{model}: --report draws the first convolution's filters, and this network has no Conv layer; leave out --report.");
        }
    }

    /// <summary>Writes rendered files (see <see cref="Render"/>) into <paramref name="directory"/>, created if missing, each atomically.</summary>
    /// <param name="directory">The report folder.</param>
    /// <param name="files">File names and contents.</param>
    /// <param name="stdout">Where the written files are listed.</param>
    public static void Write(string directory, IReadOnlyList<(string File, byte[] Content)> files, TextWriter stdout)
    {
        Directory.CreateDirectory(directory);
        foreach (var (file, content) in files)
        {
            string path = Path.Combine(directory, file);
            AtomicFile.Write(path, stream => stream.Write(content));
            stdout.WriteLine($"report: {path}");
        }
    }

    /// <summary>
    /// Renders the report of <paramref name="network"/> on <paramref name="test"/> in memory: nothing is written, so a
    /// failure here leaves no file behind (the caller writes them with <see cref="Write(string, IReadOnlyList{ValueTuple{string, byte[]}}, TextWriter)"/>).
    /// </summary>
    /// <param name="network">The trained network.</param>
    /// <param name="test">The test images.</param>
    /// <param name="model">The model's path, for the titles.</param>
    /// <param name="history">The training curves (train), or null (eval).</param>
    /// <param name="inferBatch">Images per inference batch.</param>
    /// <returns>Each file's name (one of <see cref="Files"/>) and content, in <see cref="Files"/> order.</returns>
    public static IReadOnlyList<(string File, byte[] Content)> Render(Sequential<float> network, ImageDataset test, string model, TrainingHistory? history, int inferBatch)
    {
        var rendered = new List<(string File, byte[] Content)>();
        var figures = new List<Figure>();
        void Save(string file, string title, byte[] png)
        {
            rendered.Add((file, png));
            figures.Add(new Figure(file, title, Width, Height));
        }

        var predictions = network.Predict(test, inferBatch);
        var probabilities = Array.ConvertAll(predictions, p => p.Probabilities);
        var predicted = Array.ConvertAll(predictions, p => p.Label);
        var confusion = new int[10][];
        for (int i = 0; i < 10; i++) confusion[i] = new int[10];
        for (int i = 0; i < test.Count; i++) confusion[test.Label(i)][predicted[i]]++;
        int correct = Enumerable.Range(0, 10).Sum(d => confusion[d][d]);
        string name = Path.GetFileName(model);

        object? training = null;
        if (history is { Epochs.Count: > 0 })
        {
            Save(LossFile, LossTitle, LossCurve(history, name));
            Save(AccuracyFile, AccuracyTitle, AccuracyCurve(history, name));
            training = new
            {
                points = history.Points.Select(p => new { epoch = Math.Round(p.Epoch, 4), p.Batches, loss = Math.Round(p.Loss, 5), accuracy = Math.Round(p.Accuracy, 5) }),
                epochs = history.Epochs.Select(e => new
                {
                    e.Epoch, loss = Math.Round(e.Loss, 5), train_accuracy = Math.Round(e.TrainAccuracy, 5), test_accuracy = e.TestAccuracy,
                    seconds = Math.Round(e.Seconds, 2), images_per_second = Math.Round(e.ImagesPerSecond), learning_rate = e.LearningRate,
                }),
            };
        }

        double accuracy = (double)correct / test.Count;
        Save(ConfusionFile, ConfusionTitle, ConfusionMatrix(confusion, name, accuracy, correct, test.Count));

        var mistakes = Enumerable.Range(0, test.Count).Where(i => predicted[i] != test.Label(i))
            .OrderByDescending(i => probabilities[i][predicted[i]]).ThenBy(i => i).Take(MistakeCount)
            .Select(i => new Mistake(i, test.Label(i), predicted[i], probabilities[i][predicted[i]], probabilities[i][test.Label(i)])).ToList();
        Save(MistakesFile, MistakesTitle, Mistakes(test, mistakes, name, test.Count - correct));

        var conv1 = network.Layers.OfType<Conv<float>>().First();
        var filters = Filters(conv1);
        var bias = conv1.Bias.Value.Data;
        Save(FiltersFile, FiltersTitle, FilterGrid(filters, bias, name));

        const int Sample = 0;
        var maps = FeatureMaps(network, test, Sample);
        Save(FeatureMapsFile, FeatureMapsTitle, FeatureMapGrid(test, Sample, predicted[Sample], maps, name));

        var metrics = new
        {
            model,
            test = new { images = test.Count, correct, accuracy },
            confusion = new { rows = "true digit", columns = "predicted digit", counts = confusion },
            per_class = Enumerable.Range(0, 10).Select(d => new
            {
                digit = d, images = confusion[d].Sum(),
                recall = Math.Round((double)confusion[d][d] / Math.Max(1, confusion[d].Sum()), 5),
                precision = Math.Round((double)confusion[d][d] / Math.Max(1, confusion.Sum(row => row[d])), 5),
            }),
            training,
            mistakes = mistakes.Select(m => new { index = m.Index, true_digit = m.True, predicted = m.Predicted, probability = m.Probability, probability_of_true = m.ProbabilityOfTrue }),
            conv1_filters = new { shape = new[] { filters.Length, conv1.KernelHeight, conv1.KernelWidth }, weights = filters, bias },
            feature_maps = new
            {
                test_index = Sample, label = test.Label(Sample), predicted = predicted[Sample],
                layers = maps.Select(m => new { name = m.Name, shape = new[] { m.Height, m.Width, m.Channels }, min = m.Min, max = m.Max, values = m.Values }),
            },
            figures = figures.Select(f => new { file = f.File, title = f.Title, width = f.Width, height = f.Height }),
        };
        string json = JsonSerializer.Serialize(metrics, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower });
        rendered.Add((MetricsFile, System.Text.Encoding.UTF8.GetBytes(json + "\n")));
        return rendered;
    }

    private const string LossTitle = "Training loss";
    private const string AccuracyTitle = "Accuracy during training";
    private const string ConfusionTitle = "Confusion matrix on the 10,000 test images";
    private const string MistakesTitle = "The most confident mistakes";
    private const string FiltersTitle = "The 6 learned conv1 filters (5×5)";
    private const string FeatureMapsTitle = "Feature maps of one test image";

    private sealed record Mistake(int Index, int True, int Predicted, float Probability, float ProbabilityOfTrue);

    private sealed record FeatureMap(string Name, string Caption, int Height, int Width, int Channels, float[] Values, bool Signed)
    {
        public float Min => Values.Min();

        public float Max => Values.Max();

        public float At(int channel, int y, int x) => Values[(y * Width + x) * Channels + channel];
    }

    private static byte[] LossCurve(TrainingHistory history, string model)
    {
        var plot = NewPlot($"{LossTitle} ({model})", "epoch", "cross-entropy loss");
        var line = plot.Add.Scatter(history.Points.Select(p => p.Epoch).ToArray(), history.Points.Select(p => p.Loss).ToArray());
        line.LegendText = $"mean over each {BatchesPerPoint(history)} batches";
        line.LineWidth = 2;
        line.MarkerSize = 4;
        var epochs = plot.Add.Scatter(history.Epochs.Select(e => (double)e.Epoch).ToArray(), history.Epochs.Select(e => e.Loss).ToArray());
        epochs.LegendText = "mean over the epoch";
        epochs.LineWidth = 0;
        epochs.MarkerSize = 14;
        epochs.MarkerShape = MarkerShape.FilledSquare;
        plot.Axes.SetLimitsY(0, history.Points.Max(p => p.Loss) * 1.05);
        EpochTicks(plot, history);
        plot.ShowLegend(Alignment.UpperRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    private static byte[] AccuracyCurve(TrainingHistory history, string model)
    {
        var plot = NewPlot($"{AccuracyTitle} ({model})", "epoch", "images classified right (%)");
        var train = plot.Add.Scatter(history.Points.Select(p => p.Epoch).ToArray(), history.Points.Select(p => 100 * p.Accuracy).ToArray());
        train.LegendText = $"training images, over each {BatchesPerPoint(history)} batches (before each step)";
        train.LineWidth = 2;
        train.MarkerSize = 4;
        var test = plot.Add.Scatter(history.Epochs.Select(e => (double)e.Epoch).ToArray(), history.Epochs.Select(e => 100 * e.TestAccuracy).ToArray());
        test.LegendText = "10,000 test images, after each epoch";
        test.LineWidth = 2;
        test.MarkerSize = 16;
        test.MarkerShape = MarkerShape.FilledCircle;
        foreach (var e in history.Epochs)
        {
            var label = plot.Add.Text(string.Create(CultureInfo.InvariantCulture, $"{100 * e.TestAccuracy:F2}%"), e.Epoch, 100 * e.TestAccuracy);
            label.LabelFontSize = 20;
            label.LabelBold = true;
            label.LabelFontColor = test.Color;
            label.LabelAlignment = Alignment.LowerRight;
            label.LabelBackgroundColor = Colors.White.WithAlpha(0.85);
            label.LabelBorderColor = test.Color;
            label.LabelPadding = 4;
            label.OffsetX = -12;
            label.OffsetY = -14;
        }

        double low = Math.Min(history.Points.Min(p => p.Accuracy), history.Epochs.Min(e => e.TestAccuracy)) * 100;
        plot.Axes.SetLimitsY(Math.Max(0, low - 3), 100.5);
        EpochTicks(plot, history);
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    private static int BatchesPerPoint(TrainingHistory history) =>
        history.Points.Count < 2 ? 1 : (int)(history.Points[1].Batches - history.Points[0].Batches);

    private static void EpochTicks(Plot plot, TrainingHistory history)
    {
        int epochs = history.Epochs.Count;
        plot.Axes.SetLimitsX(0, epochs + 0.02);
        double step = epochs <= 4 ? 0.25 : epochs <= 10 ? 1 : Math.Ceiling(epochs / 10.0);
        var ticks = Enumerable.Range(0, (int)(epochs / step) + 1).Select(i => i * step).ToArray();
        plot.Axes.Bottom.SetTicks(ticks, [.. ticks.Select(t => t.ToString("0.##", CultureInfo.InvariantCulture))]);
    }

    private static Plot NewPlot(string title, string x, string y)
    {
        var plot = new Plot();
        plot.Font.Set("DejaVu Sans");
        plot.Title(title, 34);
        plot.XLabel(x, 24);
        plot.YLabel(y, 24);
        plot.Axes.Bottom.TickLabelStyle.FontSize = 20;
        plot.Axes.Left.TickLabelStyle.FontSize = 20;
        plot.Legend.FontSize = 20;
        return plot;
    }

    private static byte[] ConfusionMatrix(int[][] confusion, string model, double accuracy, int correct, int total)
    {
        var plot = NewPlot(
            string.Create(CultureInfo.InvariantCulture, $"{ConfusionTitle}: {100 * accuracy:F2}% right ({correct:N0}/{total:N0}, {model})"),
            "predicted digit", "true digit");
        plot.Title(plot.Axes.Title.Label.Text, 30);

        // Colour: log10(1 + count), so that the off-diagonal errors (a few to tens) stay visible next to the ~1,000 right answers.
        var intensities = new double[10, 10];
        for (int t = 0; t < 10; t++) for (int p = 0; p < 10; p++) intensities[t, p] = Math.Log10(1 + confusion[t][p]);
        var heatmap = plot.Add.Heatmap(intensities);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        var bar = plot.Add.ColorBar(heatmap);
        bar.Label = "images (log scale)";
        bar.LabelStyle.FontSize = 20;
        int[] tickCounts = [0, 1, 10, 100, 1000]; // round counts, placed where their colour is
        bar.Axis.SetTicks(tickCounts.Select(c => Math.Log10(1 + c)).ToArray(), tickCounts.Select(c => c.ToString("N0", CultureInfo.InvariantCulture)).ToArray());
        bar.Axis.TickLabelStyle.FontSize = 18;

        double max = intensities.Cast<double>().Max();
        for (int t = 0; t < 10; t++)
        {
            for (int p = 0; p < 10; p++)
            {
                var text = plot.Add.Text(confusion[t][p].ToString(CultureInfo.InvariantCulture), p, 9 - t); // row t is drawn at y = 9 − t
                text.LabelFontSize = t == p ? 22 : 20;
                text.LabelBold = t == p;
                text.LabelAlignment = Alignment.MiddleCenter;
                text.LabelFontColor = intensities[t, p] > 0.6 * max ? Colors.Black : Colors.White;
            }
        }

        plot.Axes.SetLimits(-0.5, 9.5, -0.5, 9.5);
        double[] positions = [.. Enumerable.Range(0, 10).Select(i => (double)i)];
        plot.Axes.Bottom.SetTicks(positions, DigitLabels);
        plot.Axes.Left.SetTicks(positions, [.. DigitLabels.Reverse()]); // row 0 at the top, as a matrix is read
        plot.Grid.IsVisible = false;
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    private static byte[] Mistakes(ImageDataset test, List<Mistake> mistakes, string model, int errors)
    {
        using var sheet = new Sheet(Width, Height, $"{MistakesTitle} ({model})",
            $"{mistakes.Count} of the {errors:N0} wrong answers on the test images, most confident first: true digit → predicted, with the network's probability for it");
        const int Columns = 8, Tile = 168, CellWidth = Width / Columns, CellHeight = 248, Top = 138;
        for (int k = 0; k < mistakes.Count; k++)
        {
            var m = mistakes[k];
            float left = k % Columns * CellWidth + (CellWidth - Tile) / 2f, top = Top + k / Columns * CellHeight;
            var pixels = test.Pixels(m.Index).ToArray();
            int w = test.Width;
            sheet.Image(test.Height, w, (y, x) => pixels[y * w + x] / 255f, Sheet.Ink, new SKRect(left, top, left + Tile, top + Tile));
            float middle = left + Tile / 2f;
            sheet.Text($"true {m.True} → {m.Predicted}", middle, top + Tile + 26, 21, bold: true);
            sheet.Text(string.Create(CultureInfo.InvariantCulture, $"p = {100 * m.Probability:F2}%  (#{m.Index})"), middle, top + Tile + 50, 17,
                color: new SKColor(70, 70, 70));
        }

        return sheet.Png();
    }

    /// <summary>conv1's weights as [filter][row][column] (single input channel).</summary>
    private static float[][][] Filters(Conv<float> conv)
    {
        var w = conv.Weight.Value.Data; // (KH, KW, C, OC)
        int kh = conv.KernelHeight, kw = conv.KernelWidth, c = conv.InChannels, oc = conv.OutChannels;
        return [.. Enumerable.Range(0, oc).Select(f => Enumerable.Range(0, kh).Select(y => Enumerable.Range(0, kw).Select(x => w[((y * kw + x) * c) * oc + f]).ToArray()).ToArray())];
    }

    private static byte[] FilterGrid(float[][][] filters, float[] bias, string model)
    {
        using var sheet = new Sheet(Width, Height, $"{FiltersTitle} ({model})",
            "Each filter slides over the 28×28 image; red weights add the ink under them, blue ones subtract it (one colour scale for all six)");
        float scale = filters.SelectMany(f => f.SelectMany(r => r)).Max(Math.Abs);
        const int Tile = 270, GapX = 90, GapY = 100, Columns = 3, Top = 140;
        int n = filters.Length, rows = (n + Columns - 1) / Columns;
        float left0 = (Width - 160 - (Columns * Tile + (Columns - 1) * GapX)) / 2f;
        for (int f = 0; f < n; f++)
        {
            var filter = filters[f];
            float left = left0 + f % Columns * (Tile + GapX), top = Top + f / Columns * (Tile + GapY);
            sheet.Image(filter.Length, filter[0].Length, (y, x) => filter[y][x] / scale, Sheet.Diverging, new SKRect(left, top, left + Tile, top + Tile));
            sheet.Text($"filter {f + 1}", left + Tile / 2f, top + Tile + 34, 24, bold: true);
            sheet.Text($"bias {Sheet.Format(bias[f])}", left + Tile / 2f, top + Tile + 62, 20, color: new SKColor(70, 70, 70));
        }

        float barLeft = left0 + Columns * (Tile + GapX) + 20, barTop = Top + 40, barBottom = Top + rows * Tile + (rows - 1) * GapY - 40;
        sheet.ColorBar(new SKRect(barLeft, barTop, barLeft + 28, barBottom), v => Sheet.Diverging(v / scale), -scale, scale, "weight");
        return sheet.Png();
    }
    private static List<FeatureMap> FeatureMaps(Sequential<float> network, ImageDataset test, int index)
    {
        var outputs = network.Activations(test.Pixels(index), test.Height, test.Width, test.Channels);
        var maps = new List<FeatureMap>();
        int convs = 0, pools = 0;
        for (int l = 0; l < network.Layers.Count; l++)
        {
            var t = outputs[l];
            if (t.Rank != 4) continue;
            var (h, w, c) = (t.Dim(1), t.Dim(2), t.Dim(3));
            var values = t.Data.AsSpan(0, h * w * c).ToArray();
            switch (network.Layers[l])
            {
                case Conv<float>:
                    convs++;
                    maps.Add(new FeatureMap($"conv{convs}", $"conv{convs}: {c} maps of {h}×{w}, before ReLU", h, w, c, values, Signed: true));
                    break;
                case MaxPool2x2<float>:
                    pools++;
                    maps.Add(new FeatureMap($"pool{pools}", $"pool{pools}: after ReLU and 2×2 max-pool, {c} maps of {h}×{w}", h, w, c, values, Signed: false));
                    break;
            }
        }

        return maps;
    }

    private static byte[] FeatureMapGrid(ImageDataset test, int index, int predicted, List<FeatureMap> maps, string model)
    {
        using var sheet = new Sheet(Width, Height, $"{FeatureMapsTitle} ({model})",
            "What each layer passes on: before ReLU blue < 0 < red; after pooling dark = 0 → yellow = the largest value (each row has its own scale)");
        var pixels = test.Pixels(index).ToArray();
        int w0 = test.Width;
        const int InputTile = 252, InputLeft = 50, Top = 170;
        sheet.Image(test.Height, w0, (y, x) => pixels[y * w0 + x] / 255f, Sheet.Ink, new SKRect(InputLeft, Top, InputLeft + InputTile, Top + InputTile));
        sheet.Text($"input: test image #{index}", InputLeft + InputTile / 2f, Top + InputTile + 34, 22, bold: true);
        sheet.Text($"true {test.Label(index)}, predicted {predicted}", InputLeft + InputTile / 2f, Top + InputTile + 62, 20, color: new SKColor(70, 70, 70));

        const float AreaLeft = 360, AreaRight = Width - 40;
        float top = 140;
        foreach (var map in maps)
        {
            int perRow = map.Channels <= 8 ? map.Channels : 16;
            float gap = perRow > 8 ? 8 : 22;
            float tile = Math.Min(map.Channels <= 8 ? 150 : 64, (AreaRight - AreaLeft - (perRow - 1) * gap) / perRow);
            float scale = map.Signed ? Math.Max(Math.Abs(map.Min), Math.Abs(map.Max)) : Math.Max(map.Max, 1e-6f);
            sheet.Text($"{map.Caption}   (scale {(map.Signed ? "±" : "0 … ")}{Sheet.Format(scale)})", AreaLeft, top + 22, 21, SKTextAlign.Left, bold: true);
            float rowTop = top + 34;
            for (int c = 0; c < map.Channels; c++)
            {
                float left = AreaLeft + c % perRow * (tile + gap), y0 = rowTop + c / perRow * (tile + gap);
                int channel = c;
                sheet.Image(map.Height, map.Width, (y, x) => map.At(channel, y, x) / scale, map.Signed ? Sheet.Diverging : Sheet.Viridis,
                    new SKRect(left, y0, left + tile, y0 + tile));
            }

            top = rowTop + (map.Channels + perRow - 1) / perRow * (tile + gap) + 30;
        }

        return sheet.Png();
    }
}
