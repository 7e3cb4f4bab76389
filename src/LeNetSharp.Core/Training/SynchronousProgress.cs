namespace LeNetSharp.Training;

/// <summary>
/// An <see cref="IProgress{T}"/> that calls its handler at once, on the thread that reports, in the order of the
/// reports: every report has been handled when <see cref="Trainer{T}.Train(Data.ImageDataset, IProgress{TrainingProgress}?, CancellationToken)"/>
/// returns. Use it for console output and logging. (<see cref="Progress{T}"/> instead posts each report to the
/// synchronisation context it was made on, or to the thread pool in a console app, so reports can arrive late and out of
/// order; it suits a UI thread.)
/// </summary>
/// <example><code>trainer.Train(train, new SynchronousProgress&lt;TrainingProgress&gt;(p =&gt; Console.WriteLine(p)));</code></example>
/// <typeparam name="T">The report type.</typeparam>
public sealed class SynchronousProgress<T> : IProgress<T>
{
    private readonly Action<T> _handler;

    /// <summary>Creates the progress sink.</summary>
    /// <param name="handler">Called with each report, on the reporting thread; an exception it throws stops training.</param>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    public SynchronousProgress(Action<T> handler) => _handler = handler ?? throw new ArgumentNullException(nameof(handler));

    /// <summary>Calls the handler with <paramref name="value"/>.</summary>
    /// <param name="value">The report.</param>
    public void Report(T value) => _handler(value);
}
