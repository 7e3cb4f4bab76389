using System.Numerics;
using System.Runtime.CompilerServices;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Training;

/// <summary>
/// One network replica with its own buffers: fills a (sub-)batch, runs forward, loss and backward, leaving the
/// gradients of that (sub-)batch's mean loss in its parameters. Allocates only when the batch size changes.
/// </summary>
internal sealed class GradientWorker<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly SoftmaxCrossEntropy<T> _loss = new();
    private Tensor<T>? _batch;
    private int[] _labels = [];
    private int[] _predictions = [];

    private readonly IStochasticLayer[] _stochastic;

    public GradientWorker(Sequential<T> network)
    {
        Network = network;
        _stochastic = [.. network.Layers.OfType<IStochasticLayer>()];
    }

    public Sequential<T> Network { get; }

    /// <summary>The last run's mean loss and right answers (before the update).</summary>
    public double Loss { get; private set; }

    public int Correct { get; private set; }

    /// <summary>
    /// Fills the batch (distorted by <paramref name="augmentation"/> as in epoch <paramref name="epoch"/> when there is
    /// one), then forward, loss, backward; random layers draw for step <paramref name="step"/> and images from
    /// <paramref name="firstImage"/> of the whole batch on (see <see cref="IStochasticLayer"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public void Run(ImageDataset data, ReadOnlySpan<int> indices, ImageAugmentation? augmentation, int epoch, long step, int firstImage)
    {
        int n = indices.Length;
        var batch = Tensor<T>.Reuse(ref _batch, n, data.Height, data.Width, data.Channels);
        if (_labels.Length != n)
        {
            _labels = new int[n];
            _predictions = new int[n];
        }

        if (augmentation is null) data.FillBatch(indices, batch, _labels);
        else augmentation.FillBatch(data, indices, epoch, batch, _labels);
        foreach (var layer in _stochastic) layer.SetStream(step, firstImage);
        var logits = Network.Forward(batch);
        Loss = double.CreateChecked(_loss.Forward(logits, _labels));
        SoftmaxCrossEntropy<T>.ArgMaxRows(logits, _predictions);
        int correct = 0;
        for (int i = 0; i < n; i++) if (_predictions[i] == _labels[i]) correct++;
        Correct = correct;
        Network.Backward(_loss.Backward());
    }
}

/// <summary>
/// Persistent threads that run one action per worker index in lock-step with the caller (who runs index 0), with
/// no allocation per round. Used for data-parallel training; the split of work is fixed, so results are
/// deterministic for a given thread count.
/// <para>
/// A round is started by bumping a counter and ended when a count of running workers reaches zero. Waiting spins
/// (yielding the core when others want it) rather than parking the thread at once: the gap between two training steps
/// is microseconds, while waking a parked thread costs tens of them. A worker that has waited longer than
/// <see cref="SpinRounds"/> spins parks on a monitor until the next round (training paused, evaluation running).
/// </para>
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    /// <summary>Spins (the later ones yield the core) a waiting worker makes before it parks: some tens of microseconds.</summary>
    private const int SpinRounds = 200;

    private readonly Thread[] _threads;
    private readonly object _gate = new();
    private Action<int>? _work;
    private int _round;   // bumped to start a round
    private int _running; // workers other than the caller still in the round
    private volatile bool _stopping;
    private Exception? _failure;

    public WorkerPool(int workers)
    {
        Workers = workers;
        _threads = new Thread[workers - 1];
        for (int i = 1; i < workers; i++)
        {
            int index = i;
            _threads[i - 1] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"LeNetSharp worker {index}" };
            _threads[i - 1].Start();
        }
    }

    public int Workers { get; }

    /// <summary>Runs <paramref name="work"/>(i) for every worker i, index 0 on the calling thread; returns when all are done.</summary>
    /// <exception cref="ObjectDisposedException">The pool was disposed (its threads have stopped).</exception>
    public void Run(Action<int> work)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        _work = work;
        _failure = null;
        Volatile.Write(ref _running, Workers - 1);
        StartRound();
        try
        {
            work(0);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _failure, e, null);
        }

        var spin = default(SpinWait);
        while (Volatile.Read(ref _running) != 0) spin.SpinOnce(sleep1Threshold: -1);
        // The worker's exception as it was thrown (its own stack trace kept), not wrapped in an AggregateException.
        if (_failure is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        StartRound();
        foreach (var t in _threads) t.Join();
    }

    private void StartRound()
    {
        lock (_gate)
        {
            _round++;
            Monitor.PulseAll(_gate); // wakes only workers that have parked
        }
    }

    private void Loop(int index)
    {
        int seen = 0;
        while (true)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _round) == seen)
            {
                if (spin.Count < SpinRounds)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                    continue;
                }

                lock (_gate)
                {
                    while (_round == seen) Monitor.Wait(_gate);
                }
            }

            seen = Volatile.Read(ref _round);
            if (_stopping) return;
            try
            {
                _work!(index);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, e, null);
            }

            Interlocked.Decrement(ref _running);
        }
    }
}
