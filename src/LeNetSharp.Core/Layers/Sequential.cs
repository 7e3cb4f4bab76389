using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// A network that runs its layers in order: forward from first to last, backward from last to first.
/// It owns the layers and lists all their parameters.
/// </summary>
/// <remarks>
/// A network holds the buffers of its last forward pass, so one instance must be used by one thread at a time.
/// <see cref="Forward"/> and <see cref="Backward"/> check this (one interlocked compare-exchange per call, no
/// allocation) and throw <see cref="InvalidOperationException"/> when a second thread enters while the first is still
/// inside, rather than letting the two overwrite each other's buffers. For concurrent inference give each thread
/// its own <see cref="Clone"/>, or use <see cref="Inference.Predictor"/>.
/// </remarks>
/// <typeparam name="T">Element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Sequential<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ILayer<T>[] _layers;
    private readonly Parameter<T>[] _parameters;
    private readonly FusedConvReluPool<T>?[] _fused; // at i: Conv → Relu → MaxPool2x2 starting there, run as one pass
    private readonly int[] _steps;                   // the last forward's steps: layer i, or ~i for the fused block at i
    private int _stepCount;
    private int _owner; // managed id of the thread inside Forward/Backward (or holding the network for an evaluation), 0 when idle

    /// <summary>Creates a network from layers applied in the given order.</summary>
    /// <param name="layers">At least one layer.</param>
    /// <exception cref="ArgumentException">No layers were given, or one is null.</exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    public Sequential(params ILayer<T>[] layers)
    {
        ElementTypes.Require<T>($"Sequential<{typeof(T).Name}>");
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0) throw new ArgumentException("A network needs at least one layer.", nameof(layers));
        if (layers.Any(l => l is null)) throw new ArgumentException("A layer is null.", nameof(layers));
        _layers = (ILayer<T>[])layers.Clone();
        _parameters = _layers.SelectMany(l => l.Parameters).ToArray();
        _fused = new FusedConvReluPool<T>?[_layers.Length];
        for (int i = 0; i < _layers.Length; i++)
        {
            if (FusedConvReluPool<T>.Matches(_layers, i)) _fused[i] = new FusedConvReluPool<T>((Conv<T>)_layers[i]);
        }

        _steps = new int[_layers.Length];
        GemmProvider = GemmProvider.Default;
    }

    /// <summary>
    /// The matrix multiply of this network: setting it sets it on every layer that multiplies matrices (Conv, Linear).
    /// It belongs to this network alone (copies made for threads, replicas and clones carry it), so two networks in one
    /// process never change each other's arithmetic. Default <see cref="GemmProvider.Default"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException">The value is null.</exception>
    public GemmProvider GemmProvider
    {
        get;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            field = value;
            foreach (var layer in _layers)
            {
                if (layer is IUsesGemm user) user.GemmProvider = value;
            }
        }
    }

    /// <summary>The layers, first to last.</summary>
    public IReadOnlyList<ILayer<T>> Layers => _layers;

    /// <summary>Every trainable parameter, layer by layer, in order.</summary>
    public IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>The total number of trainable scalars.</summary>
    public int ParameterCount => _parameters.Sum(p => p.Value.Length);

    /// <summary>
    /// Runs every layer forward. With a SIMD <see cref="GemmProvider"/>, a single-channel Conv (stride 1, no padding,
    /// no input gradient) followed by Relu and MaxPool2x2 runs as one fused pass that never writes the convolution's
    /// output: the same results bit for bit, but those three layers' own Forward/Backward state is not updated (call
    /// the layers one by one to inspect intermediate outputs).
    /// </summary>
    /// <param name="input">Input batch, the first layer's expected shape (for LeNet: (N, 28, 28, 1)).</param>
    /// <returns>The last layer's output (a buffer owned by that layer, overwritten by the next call: copy it to keep it).</returns>
    /// <exception cref="InvalidOperationException">Another thread is using this network at the same time.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Run(input, inference: false);
    }

    /// <summary>
    /// <see cref="Forward"/> for inference only: fused passes skip what backward would need (pooling positions, an
    /// input copy), and a <see cref="Backward"/> after it throws as if no forward had run.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal Tensor<T> Infer(Tensor<T> input) => Run(input, inference: true);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private Tensor<T> Run(Tensor<T> input, bool inference)
    {
        int previous = Enter();
        try
        {
            var x = input;
            _stepCount = 0;
            for (int i = 0; i < _layers.Length;)
            {
                if (_fused[i] is { } fused && fused.Applies(GemmProvider, x.Shape))
                {
                    x = fused.Forward(x, keepForBackward: !inference);
                    _steps[_stepCount++] = ~i;
                    i += 3;
                }
                else
                {
                    x = _layers[i].Forward(x);
                    _steps[_stepCount++] = i++;
                }
            }

            if (inference) _stepCount = 0;
            return x;
        }
        finally
        {
            Exit(previous);
        }
    }

    /// <summary>How many fused Conv → Relu → MaxPool2x2 passes the last forward ran (for tests and benchmarks).</summary>
    internal int FusedPassesInLastForward
    {
        get
        {
            int count = 0;
            for (int s = 0; s < _stepCount; s++) if (_steps[s] < 0) count++;
            return count;
        }
    }

    /// <summary>Back-propagates from the output gradient through every layer, adding into parameter gradients.</summary>
    /// <param name="outputGradient">∂loss/∂output of the last forward.</param>
    /// <returns>∂loss/∂input.</returns>
    /// <exception cref="InvalidOperationException">Called before <see cref="Forward"/>, or another thread is using this network at the same time.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient)
    {
        int previous = Enter();
        try
        {
            if (_stepCount == 0) throw new InvalidOperationException("Sequential: Backward was called before Forward.");
            var g = outputGradient;
            for (int s = _stepCount - 1; s >= 0; s--)
            {
                int step = _steps[s];
                g = step >= 0 ? _layers[step].Backward(g) : _fused[~step]!.Backward(g);
            }

            return g;
        }
        finally
        {
            Exit(previous);
        }
    }

    /// <summary>Sets every parameter gradient to zero.</summary>
    public void ZeroGradients()
    {
        foreach (var p in _parameters) p.ZeroGradient();
    }

    /// <summary>
    /// A deep, independent copy: new layers of the same kinds and sizes, with copies of every parameter's value and
    /// gradient, the same <see cref="GemmProvider"/>, and their own buffers. Training or running the copy never affects this network, and the two can be
    /// used from two threads at once.
    /// </summary>
    /// <returns>The copy.</returns>
    /// <exception cref="NotSupportedException">
    /// A layer is not one of the built-in kinds (Conv, Relu, MaxPool2x2, Flatten, Linear) and does not implement
    /// <see cref="ICloneable"/> returning an <see cref="ILayer{T}"/>.
    /// </exception>
    public Sequential<T> Clone()
    {
        var layers = new ILayer<T>[_layers.Length];
        for (int i = 0; i < layers.Length; i++) layers[i] = CloneLayer(_layers[i]);
        var copy = new Sequential<T>(layers) { GemmProvider = GemmProvider };
        if (copy._parameters.Length != _parameters.Length)
        {
            throw new NotSupportedException("A cloned layer has a different number of parameters than its original.");
        }

        for (int p = 0; p < _parameters.Length; p++)
        {
            copy._parameters[p].Value.CopyFrom(_parameters[p].Value);
            copy._parameters[p].Gradient.CopyFrom(_parameters[p].Gradient);
        }

        return copy;
    }

    /// <summary>The shape after each layer for an input of the given shape, e.g. to print a summary.</summary>
    /// <param name="inputShape">Input dimensions, batch first.</param>
    /// <returns>One shape per layer.</returns>
    /// <exception cref="ArgumentException">A layer cannot take the shape it would be given; the message names both.</exception>
    public IReadOnlyList<int[]> OutputShapes(ReadOnlySpan<int> inputShape)
    {
        var shapes = new List<int[]>(_layers.Length);
        int[] s = inputShape.ToArray();
        foreach (var layer in _layers)
        {
            s = layer.OutputShape(s);
            shapes.Add(s);
        }

        return shapes;
    }

    /// <summary>
    /// A table of the layers as Keras's <c>model.summary()</c> prints it: each layer, its output shape (the batch
    /// shown as "None") and its parameter count, then the totals. For LeNet and (28, 28, 1):
    /// <code>
    /// Layer (type)                   Output Shape            Param #
    /// ==============================================================
    /// Conv 5x5 1→6 stride 1 pad 0    (None, 24, 24, 6)           156
    /// Relu                           (None, 24, 24, 6)             0
    /// …
    /// Linear 256→10                  (None, 10)                2,570
    /// ==============================================================
    /// Total params: 5,142
    /// </code>
    /// </summary>
    /// <param name="inputShape">One example's dimensions without the batch, like Keras's input_shape: (H, W, C) for images, e.g. (28, 28, 1).</param>
    /// <returns>The table, lines separated by '\n', ending with a newline.</returns>
    /// <exception cref="ArgumentException">A layer cannot take the shape it would be given; the message names both.</exception>
    public string Summary(params int[] inputShape)
    {
        ArgumentNullException.ThrowIfNull(inputShape);
        int[] batched = [1, .. inputShape];
        var shapes = OutputShapes(batched);
        var rows = new List<(string Layer, string Shape, string Params)>(_layers.Length);
        for (int i = 0; i < _layers.Length; i++)
        {
            string shape = "(None" + string.Concat(shapes[i].Skip(1).Select(d => ", " + d.ToString(CultureInfo.InvariantCulture))) + ")";
            rows.Add((_layers[i].Name, shape, Count(_layers[i].Parameters.Sum(p => p.Value.Length))));
        }

        int w0 = Math.Max("Layer (type)".Length, rows.Max(r => r.Layer.Length)) + 4;
        int w1 = Math.Max("Output Shape".Length, rows.Max(r => r.Shape.Length)) + 4;
        int w2 = Math.Max("Param #".Length, rows.Max(r => r.Params.Length));
        string rule = new('=', w0 + w1 + w2);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"Model: {ToString()}\n");
        sb.Append(CultureInfo.InvariantCulture, $"Input: (None, {string.Join(", ", inputShape)})\n");
        sb.Append("Layer (type)".PadRight(w0)).Append("Output Shape".PadRight(w1)).Append("Param #".PadLeft(w2)).Append('\n');
        sb.Append(rule).Append('\n');
        foreach (var (layer, shape, count) in rows) sb.Append(layer.PadRight(w0)).Append(shape.PadRight(w1)).Append(count.PadLeft(w2)).Append('\n');
        sb.Append(rule).Append('\n');
        sb.Append("Total params: ").Append(Count(ParameterCount)).Append('\n');
        sb.Append("Trainable params: ").Append(Count(ParameterCount)).Append('\n');
        sb.Append("Non-trainable params: 0\n");
        return sb.ToString();
    }

    /// <summary>One line: element type, layer and parameter counts, and the layers in order.</summary>
    /// <returns>E.g. "Sequential&lt;Single&gt;: 8 layers, 5,142 parameters: Conv 5x5 1→6 stride 1 pad 0 → Relu → … → Linear 256→10".</returns>
    public override string ToString() =>
        $"Sequential<{typeof(T).Name}>: {_layers.Length} layers, {Count(ParameterCount)} parameters: {string.Join(" → ", _layers.Select(l => l.Name))}";

    /// <summary>Runs forward, handing <paramref name="observe"/> each layer's output (a layer-owned buffer) as it is made.</summary>
    internal Tensor<T> ForwardObserved(Tensor<T> input, Action<int, Tensor<T>> observe)
    {
        int previous = Enter();
        try
        {
            var x = input;
            _stepCount = 0;
            for (int i = 0; i < _layers.Length; i++)
            {
                x = _layers[i].Forward(x);
                _steps[_stepCount++] = i; // layer by layer: every output is observed, nothing fused
                observe(i, x);
            }

            return x;
        }
        finally
        {
            Exit(previous);
        }
    }

    /// <summary>
    /// Marks the network as used by the calling thread; returns the previous owner (0 when it was idle, the caller's
    /// own id on a nested call) for <see cref="Exit"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another thread is inside.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal int Enter()
    {
        int me = Environment.CurrentManagedThreadId;
        int previous = Interlocked.CompareExchange(ref _owner, me, 0);
        if (previous != 0 && previous != me) ThrowConcurrentUse();
        return previous;
    }

    /// <summary>Takes the network for the calling thread unless another thread has it; pair a true result with <see cref="Exit"/>(0).</summary>
    /// <param name="previous">What <see cref="Exit"/> must be given.</param>
    /// <returns>False when another thread is using the network.</returns>
    internal bool TryEnter(out int previous)
    {
        int me = Environment.CurrentManagedThreadId;
        previous = Interlocked.CompareExchange(ref _owner, me, 0);
        return previous == 0 || previous == me;
    }

    /// <summary>Releases what <see cref="Enter"/> took.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal void Exit(int previous)
    {
        if (previous == 0) Volatile.Write(ref _owner, 0);
    }

    private static void ThrowConcurrentUse() => throw new InvalidOperationException(
        "This network is used from two threads at once (its layers hold the buffers of one forward/backward pass at a time); "
        + "give each thread its own network.Clone(), or use LeNetSharp.Inference.Predictor.");

    private static string Count(int n) => n.ToString("N0", CultureInfo.InvariantCulture);

    private static ILayer<T> CloneLayer(ILayer<T> layer) => layer switch
    {
        Conv<T> c => new Conv<T>(c.InChannels, c.OutChannels, c.KernelHeight, c.KernelWidth, new Random(0), c.Stride, c.Padding)
        {
            ComputeInputGradient = c.ComputeInputGradient,
        },
        Relu<T> => new Relu<T>(),
        MaxPool2x2<T> => new MaxPool2x2<T>(),
        Flatten<T> => new Flatten<T>(),
        Linear<T> l => new Linear<T>(l.InFeatures, l.OutFeatures, new Random(0)),
        ICloneable c when c.Clone() is ILayer<T> copy && !ReferenceEquals(copy, layer) => copy,
        _ => throw new NotSupportedException(
            $"Cannot clone layer '{layer.Name}' ({layer.GetType().Name}): only the built-in layers, or layers implementing ICloneable, can be copied."),
    };
}

/// <summary>A layer that multiplies matrices through a <see cref="Tensors.GemmProvider"/> of its own.</summary>
internal interface IUsesGemm
{
    GemmProvider GemmProvider { get; set; }
}
