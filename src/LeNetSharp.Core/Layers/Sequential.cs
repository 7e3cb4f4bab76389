using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;
using LeNetSharp.Compute;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// A network that runs its layers in order: forward from first to last, backward from last to first.
/// It owns the layers and lists all their parameters; how they run (which kernels, fused or not) is its
/// <see cref="Backend"/>'s business, planned once per input shape.
/// </summary>
/// <remarks>
/// A network holds the buffers of its last forward pass, so one instance must be used by one thread at a time.
/// <see cref="Forward"/> and <see cref="Backward"/> check this (no allocation) and throw
/// <see cref="InvalidOperationException"/> when a second thread enters while the first is still inside, rather than
/// letting the two overwrite each other's buffers. For concurrent inference give each thread its own
/// <see cref="Clone"/>, or use <see cref="Inference.Predictor"/>.
/// </remarks>
/// <typeparam name="T">Element type: <see cref="float"/> or <see cref="double"/>.</typeparam>
public sealed class Sequential<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ILayer<T>[] _layers;
    private readonly Parameter<T>[] _parameters;
    private readonly StateTensor<T>[] _state;

    /// <summary>Creates a network from layers applied in the given order, in training mode (its layers' too).</summary>
    /// <param name="layers">At least one layer.</param>
    /// <exception cref="ArgumentException">
    /// No layers were given, one is null, or one object is given twice (a layer holds the buffers of its own place in
    /// one pass: two places need two layers), or the network is over the library's ceilings: more than 1,024 layers or
    /// more than 67,108,864 parameters and running statistics (what no loader would read back).
    /// </exception>
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is neither float nor double.</exception>
    public Sequential(params ILayer<T>[] layers)
    {
        ElementTypes.Require<T>($"Sequential<{typeof(T).Name}>");
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Length == 0) throw new ArgumentException("A network needs at least one layer.", nameof(layers));
        if (layers.Any(l => l is null)) throw new ArgumentException("A layer is null.", nameof(layers));
        var seen = new Dictionary<ILayer<T>, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < layers.Length; i++)
        {
            if (!seen.TryAdd(layers[i], i))
            {
                throw new ArgumentException(
                    $"Layer {i} ({layers[i].Name}) is the same object as layer {seen[layers[i]]}: a layer holds one pass's buffers, so give each place its own (layer.Clone()).",
                    nameof(layers));
            }
        }

        NetworkLimits.Check(layers, [], problem => new ArgumentException($"The network is over the library's ceilings: {problem}", nameof(layers)));
        _layers = (ILayer<T>[])layers.Clone();
        foreach (var layer in _layers)
        {
            // The network starts in training mode, and so do its layers, whatever mode a layer was left in (the
            // trainer goes by the network's mode: a layer left in evaluation would otherwise train as if evaluating).
            if (layer is ITrainingMode mode) mode.Training = true;
        }

        _parameters = _layers.SelectMany(l => l.Parameters).ToArray();
        _state = _layers.OfType<IStatefulLayer<T>>().SelectMany(l => l.State).ToArray();
        Runner = new NetworkRunner<T>(this, ComputeBackend.Default);
    }

    /// <summary>
    /// Where the arithmetic runs (default <see cref="ComputeBackend.Default"/>): <see cref="ComputeBackend.Reference"/>,
    /// <see cref="ComputeBackend.Simd"/> or one fixed width. It belongs to this network alone (copies made for threads,
    /// replicas and clones carry it), so two networks in one process never change each other's arithmetic.
    /// </summary>
    /// <remarks>
    /// It may be switched between a <see cref="Forward"/> and its <see cref="Backward"/>: the backward follows the forward
    /// that ran, and the next forward runs on the new backend.
    /// </remarks>
    /// <exception cref="ArgumentNullException">The value is null.</exception>
    /// <exception cref="InvalidOperationException">Another thread is using the network.</exception>
    public ComputeBackend Backend
    {
        get => Runner.Backend;
        set => Runner.Backend = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>
    /// Training (true, the default) or evaluation (false) mode, as PyTorch's <c>train()</c>/<c>eval()</c>: setting it sets
    /// <see cref="ITrainingMode.Training"/> on every layer that has one. <see cref="Training.Trainer{T}"/> turns it on for
    /// each step; evaluation and prediction (<see cref="Training.Evaluator"/>, <see cref="Inference.NetworkInference"/>,
    /// <see cref="Inference.Predictor"/>) run with it off and put it back, so a network is never left in the wrong mode.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another thread is using the network.</exception>
    public bool Training
    {
        get;
        set
        {
            int previous = Runner.Enter();
            try
            {
                field = value;
                foreach (var layer in _layers)
                {
                    if (layer is ITrainingMode mode) mode.Training = value;
                }
            }
            finally
            {
                Runner.Exit(previous);
            }
        }
    } = true;

    /// <summary>
    /// The name of each class the network's outputs stand for (name i for output i), e.g. the folder names of the
    /// image folder it was trained on; null when the outputs are only numbered (MNIST's digits). Metadata only: it
    /// changes no arithmetic. <see cref="Persistence.ModelFile"/> stores it (format version 3), <see cref="Clone"/>
    /// carries it.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A name is blank, has more than 255 UTF-8 bytes or a control character, or two names are the same; or more than
    /// 65,536 names (or none) are given.
    /// </exception>
    public IReadOnlyList<string>? ClassNames
    {
        get;
        set => field = value is null ? null : Data.ClassNames.Checked(value, nameof(value));
    }

    /// <summary>
    /// The image size of a call that takes (<paramref name="height"/>, <paramref name="width"/>,
    /// <paramref name="channels"/>), where 0 means not given: three zeros give <see cref="InputShape"/>, else 28x28x1;
    /// a height and width with channels 0 take <see cref="InputShape"/>'s channels, else 1.
    /// </summary>
    /// <exception cref="ArgumentException">One of height and width is 0 and the other is not, or channels alone is given.</exception>
    internal (int Height, int Width, int Channels) ImageShape(int height, int width, int channels)
    {
        if (height == 0 && width == 0 && channels == 0) return InputShape ?? (LeNet.ImageSize, LeNet.ImageSize, 1);
        if (height == 0 || width == 0)
        {
            throw new ArgumentException($"Give the image's height and width together ({height}, {width} given), or neither (0) for the network's InputShape.");
        }

        return (height, width, channels == 0 ? InputShape?.Channels ?? 1 : channels);
    }

    /// <summary>
    /// The image size the network was trained for, (height, width, channels) of one NHWC image, or null when not
    /// recorded (the tutorial's LeNet takes 28x28x1). Stored by <see cref="Persistence.ModelFile"/> (format version 3)
    /// and carried by <see cref="Clone"/>; prediction, <c>Predictor</c> and ONNX export take it as their image size
    /// when they are given none.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is below 1 or above 65,536.</exception>
    public (int Height, int Width, int Channels)? InputShape
    {
        get;
        set
        {
            if (value is var (h, w, c) && (Math.Min(h, Math.Min(w, c)) < 1 || Math.Max(h, Math.Max(w, c)) > Persistence.ModelFile.MaxDimension))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"Each dimension must be 1 to {Persistence.ModelFile.MaxDimension:N0}.");
            }

            field = value;
        }
    }

    /// <summary>The layers, first to last.</summary>
    public IReadOnlyList<ILayer<T>> Layers => _layers;

    /// <summary>Every trainable parameter, layer by layer, in order.</summary>
    public IReadOnlyList<Parameter<T>> Parameters => _parameters;

    /// <summary>The total number of trainable scalars.</summary>
    public int ParameterCount => _parameters.Sum(p => p.Value.Length);

    /// <summary>
    /// Every non-trainable state tensor (the running statistics of BatchNorm layers), layer by layer, in
    /// order. No optimizer is given them; model files, checkpoints and <see cref="Clone"/> carry them.
    /// </summary>
    public IReadOnlyList<StateTensor<T>> State => _state;

    /// <summary>The total number of non-trainable scalars (<see cref="State"/>): <see cref="Summary"/>'s "Non-trainable params".</summary>
    public int NonTrainableParameterCount => _state.Sum(s => s.Value.Length);

    /// <summary>Plans, runs and guards this network.</summary>
    internal NetworkRunner<T> Runner { get; }

    /// <summary>
    /// Runs every layer forward. The backend may run a kernel in place of some layers (e.g. Conv → Relu → MaxPool2x2 as
    /// one pass): the same results bit for bit, but those layers' own Forward/Backward state is not updated (call the
    /// layers one by one to inspect intermediate outputs).
    /// </summary>
    /// <param name="input">Input batch, the first layer's expected shape (for LeNet: (N, 28, 28, 1)).</param>
    /// <returns>The last step's output (a buffer the network owns, overwritten by the next call: copy it to keep it).</returns>
    /// <exception cref="ArgumentException">The input's shape does not fit the first layer; the message names both shapes.</exception>
    /// <exception cref="InvalidOperationException">Another thread is using this network at the same time.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Forward(Tensor<T> input) => Runner.Forward(input, PlanMode.Training);

    /// <summary>
    /// <see cref="Forward"/> for inference only: kernels skip what backward would need and may fuse more, and a
    /// <see cref="Backward"/> after it throws as if no forward had run. The same output bits as <see cref="Forward"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    internal Tensor<T> Infer(Tensor<T> input) => Evaluating(input, PlanMode.Inference, null);

    /// <summary>A forward in evaluation mode (<see cref="Training"/> off for its duration, then as it was).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    private Tensor<T> Evaluating(Tensor<T> input, PlanMode mode, Action<int, Tensor<T>>? observe)
    {
        if (!Training) return Runner.Forward(input, mode, observe);
        int previous = Runner.Enter();
        try
        {
            Training = false;
            return Runner.Forward(input, mode, observe);
        }
        finally
        {
            Training = true;
            Runner.Exit(previous);
        }
    }

    /// <summary>Back-propagates from the output gradient through every layer, adding into parameter gradients.</summary>
    /// <param name="outputGradient">∂loss/∂output of the last forward.</param>
    /// <returns>∂loss/∂input.</returns>
    /// <exception cref="InvalidOperationException">Called before <see cref="Forward"/>, or another thread is using this network at the same time.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // full speed from the first training step
    public Tensor<T> Backward(Tensor<T> outputGradient) => Runner.Backward(outputGradient);

    /// <summary>Sets every parameter gradient to zero.</summary>
    public void ZeroGradients()
    {
        foreach (var p in _parameters) p.ZeroGradient();
    }

    /// <summary>
    /// A deep, independent copy: every layer's <see cref="ILayer{T}.Clone"/> (the same kinds and settings, copies of every
    /// parameter's value and gradient and of the non-trainable <see cref="State"/>, buffers of their own), the same
    /// <see cref="Backend"/> and <see cref="Training"/> mode, the same <see cref="ClassNames"/> and <see cref="InputShape"/>. Training or running the
    /// copy never affects this network, and the two can be used from two threads at once.
    /// </summary>
    /// <returns>The copy.</returns>
    /// <exception cref="NotSupportedException">
    /// A layer cannot be copied (a layer type of your own that is not registered with <see cref="LayerRegistry"/> and
    /// does not override Clone), or its Clone returned null, the layer itself, or a copy whose parameters or state differ
    /// in number or shape or are the original's own objects.
    /// </exception>
    public Sequential<T> Clone()
    {
        var layers = new ILayer<T>[_layers.Length];
        for (int i = 0; i < layers.Length; i++)
        {
            try
            {
                layers[i] = _layers[i].Clone();
            }
            catch (NotSupportedException e)
            {
                throw new NotSupportedException($"Cannot copy layer '{_layers[i].Name}' ({_layers[i].GetType().Name}): {e.Message}", e);
            }

            if (layers[i] is null || ReferenceEquals(layers[i], _layers[i]))
            {
                throw new NotSupportedException($"Layer '{_layers[i].Name}' ({_layers[i].GetType().Name}): Clone returned {(layers[i] is null ? "null" : "the layer itself")}, not a copy.");
            }

            RequireIndependentCopy(_layers[i], layers[i]);
        }

        return new Sequential<T>(layers) { Backend = Backend, Training = Training, ClassNames = ClassNames, InputShape = InputShape };
    }

    /// <summary>Throws unless <paramref name="copy"/>'s parameters and state match <paramref name="original"/>'s in number and shape and share no storage with them.</summary>
    private static void RequireIndependentCopy(ILayer<T> original, ILayer<T> copy)
    {
        string layer = $"Layer '{original.Name}' ({original.GetType().Name})";
        IReadOnlyList<Parameter<T>> from = original.Parameters, to = copy.Parameters;
        if (to.Count != from.Count) throw new NotSupportedException($"{layer}: it has {from.Count} parameters, its copy {to.Count}.");
        for (int p = 0; p < from.Count; p++)
        {
            if (ReferenceEquals(to[p], from[p]) || ReferenceEquals(to[p].Value.Data, from[p].Value.Data) || ReferenceEquals(to[p].Gradient.Data, from[p].Gradient.Data))
            {
                throw new NotSupportedException($"{layer}: its copy shares parameter '{from[p].Name}' with it, not a copy of it.");
            }

            if (!to[p].Value.HasShape(from[p].Value.Shape))
            {
                throw new NotSupportedException($"{layer}: parameter '{from[p].Name}' is {from[p].Value.ShapeString}, its copy's {to[p].Value.ShapeString}.");
            }
        }

        IReadOnlyList<StateTensor<T>> fromState = (original as IStatefulLayer<T>)?.State ?? [], toState = (copy as IStatefulLayer<T>)?.State ?? [];
        if (toState.Count != fromState.Count) throw new NotSupportedException($"{layer}: it has {fromState.Count} state tensors, its copy {toState.Count}.");
        for (int s = 0; s < fromState.Count; s++)
        {
            if (ReferenceEquals(toState[s], fromState[s]) || ReferenceEquals(toState[s].Value.Data, fromState[s].Value.Data))
            {
                throw new NotSupportedException($"{layer}: its copy shares state '{fromState[s].Name}' with it, not a copy of it.");
            }

            if (!toState[s].Value.HasShape(fromState[s].Value.Shape))
            {
                throw new NotSupportedException($"{layer}: state '{fromState[s].Name}' is {fromState[s].Value.ShapeString}, its copy's {toState[s].Value.ShapeString}.");
            }
        }
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
    /// shown as "None") and its parameter count (trainable and non-trainable, as Keras counts a batch normalisation's
    /// moving mean and variance), then the totals: all, trainable (<see cref="ParameterCount"/>) and non-trainable
    /// (<see cref="NonTrainableParameterCount"/>). For LeNet and (28, 28, 1):
    /// <code>
    /// Layer (type)                   Output Shape            Param #
    /// ==============================================================
    /// Conv 5x5 1→6 stride 1 pad 0    (None, 24, 24, 6)           156
    /// Relu                           (None, 24, 24, 6)             0
    /// …
    /// Linear 256→10                  (None, 10)                2,570
    /// ==============================================================
    /// Total params: 5,142
    /// Trainable params: 5,142
    /// Non-trainable params: 0
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
            int state = _layers[i] is IStatefulLayer<T> stateful ? stateful.State.Sum(s => s.Value.Length) : 0;
            rows.Add((_layers[i].Name, shape, Count(_layers[i].Parameters.Sum(p => p.Value.Length) + state)));
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
        sb.Append("Total params: ").Append(Count(ParameterCount + NonTrainableParameterCount)).Append('\n');
        sb.Append("Trainable params: ").Append(Count(ParameterCount)).Append('\n');
        sb.Append("Non-trainable params: ").Append(Count(NonTrainableParameterCount)).Append('\n');
        return sb.ToString();
    }

    /// <summary>One line: element type, layer and parameter counts, and the layers in order.</summary>
    /// <returns>E.g. "Sequential&lt;Single&gt;: 8 layers, 5,142 parameters: Conv 5x5 1→6 stride 1 pad 0 → Relu → … → Linear 256→10".</returns>
    public override string ToString() =>
        $"Sequential<{typeof(T).Name}>: {_layers.Length} layers, {Count(ParameterCount)} parameters: {string.Join(" → ", _layers.Select(l => l.Name))}";

    /// <summary>
    /// Runs forward layer by layer in evaluation mode, handing <paramref name="observe"/> each layer's output (a
    /// layer-owned buffer) as it is made.
    /// </summary>
    internal Tensor<T> ForwardObserved(Tensor<T> input, Action<int, Tensor<T>> observe) => Evaluating(input, PlanMode.LayerByLayer, observe);

    private static string Count(int n) => n.ToString("N0", CultureInfo.InvariantCulture);
}

/// <summary>A layer that multiplies matrices through a <see cref="GemmProvider"/> the execution plan sets.</summary>
internal interface IUsesGemm
{
    GemmProvider GemmProvider { get; set; }
}
