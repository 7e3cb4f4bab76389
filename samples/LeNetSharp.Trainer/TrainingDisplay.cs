using System.Collections.Concurrent;
using System.Globalization;
using LeNetSharp.Training;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace LeNetSharp.Trainer;

/// <summary>
/// Shows training progress: on an interactive terminal a live Spectre.Console bar per epoch (batches, running loss
/// and accuracy, images/s, ETA); otherwise (pipes, CI, tests) a plain line about every 10 % of an epoch. Both print
/// the same line at the end of each epoch. The library only reports through <see cref="IProgress{T}"/>.
/// </summary>
internal static class TrainingDisplay
{
    /// <summary>How often the trainer reports, in batches: ~40 points per epoch, at least every 250 batches (curves and bar).</summary>
    public static int ReportEvery(int batches) => Math.Clamp(batches / 40, 1, 250);

    /// <summary>True when <paramref name="stdout"/> is an interactive terminal (not redirected, not CI).</summary>
    public static bool IsLive(TextWriter stdout) =>
        ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive
        && AnsiConsole.Profile.Capabilities.Ansi;

    /// <summary>Runs <paramref name="train"/> with a progress sink that displays and also forwards to <paramref name="observer"/>.</summary>
    /// <param name="stdout">Where plain lines go (and, when it is the terminal, where the bar is drawn).</param>
    /// <param name="batchSize">Images per batch (for the ETA).</param>
    /// <param name="observer">Also called with every report (the report's history), or null.</param>
    /// <param name="train">The training run, given the sink.</param>
    public static void Run(TextWriter stdout, int batchSize, Action<TrainingProgress>? observer, Action<IProgress<TrainingProgress>> train)
    {
        if (!IsLive(stdout))
        {
            int lastDecile = 0;
            train(new SynchronousProgress<TrainingProgress>(p =>
            {
                observer?.Invoke(p);
                if (p.IsEpochEnd)
                {
                    stdout.WriteLine(EpochLine(p));
                    lastDecile = 0;
                    return;
                }

                int decile = (int)(10L * p.Batch / p.Batches);
                if (decile <= lastDecile) return;
                lastDecile = decile;
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {p.Epoch}/{p.Epochs}  {100.0 * p.Batch / p.Batches,3:F0}% ({p.Batch:N0}/{p.Batches:N0} batches)  {Figures(p, batchSize)}"));
            }));
            return;
        }

        var console = AnsiConsole.Console;
        var info = new InfoColumn();
        console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 30 }, new PercentageColumn(), info)
            .Start(context =>
            {
                ProgressTask? task = null;
                train(new SynchronousProgress<TrainingProgress>(p =>
                {
                    observer?.Invoke(p);
                    if (task is null || task.IsFinished)
                    {
                        task = context.AddTask($"epoch {p.Epoch}/{p.Epochs}", maxValue: p.Batches);
                    }

                    task.Value = p.Batch;
                    info.Set(task, p.IsEpochEnd
                        ? EpochLine(p)[$"epoch {p.Epoch}/{p.Epochs}  ".Length..]
                        : string.Create(CultureInfo.InvariantCulture, $"{p.Batch:N0}/{p.Batches:N0} batches  {Figures(p, batchSize)}"));
                    if (p.IsEpochEnd) task.StopTask();
                    context.Refresh();
                }));
            });
    }

    /// <summary>
    /// The line printed at the end of every epoch (the same on a terminal and in a pipe); with validation data, the
    /// validation loss and accuracy follow the training ones.
    /// </summary>
    public static string EpochLine(TrainingProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{p.Epochs}  loss {p.Loss:F4}  train acc {100 * p.Accuracy:F2}%  {Validation(p)}lr {p.LearningRate:G4}  {p.Elapsed.TotalSeconds:F1} s  {p.ImagesPerSecond:F0} img/s");

    private static string Validation(TrainingProgress p) => p.ValidationLoss is { } loss
        ? string.Create(CultureInfo.InvariantCulture, $"val loss {loss:F4}  val acc {100 * p.ValidationAccuracy.GetValueOrDefault():F2}%  ")
        : "";

    private static string Figures(TrainingProgress p, int batchSize)
    {
        double seconds = (p.Batches - p.Batch) * (double)batchSize / Math.Max(1, p.ImagesPerSecond);
        var eta = TimeSpan.FromSeconds(Math.Ceiling(Math.Min(seconds, TimeSpan.MaxValue.TotalSeconds / 2)));
        return string.Create(CultureInfo.InvariantCulture,
            $"loss {p.Loss:F4}  acc {100 * p.Accuracy:F2}%  {p.ImagesPerSecond:N0} img/s  ETA {(int)eta.TotalMinutes}:{eta.Seconds:D2}");
    }

    /// <summary>A column with each task's figures (set from the training thread, drawn by Spectre's).</summary>
    private sealed class InfoColumn : ProgressColumn
    {
        private readonly ConcurrentDictionary<int, string> _text = new();

        public void Set(ProgressTask task, string text) => _text[task.Id] = text;

        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(_text.TryGetValue(task.Id, out var text) ? text : "");
    }
}
