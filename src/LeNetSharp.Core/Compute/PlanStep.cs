using System.Numerics;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Compute;

/// <summary>
/// One step of an <see cref="ExecutionPlan{T}"/>: a layer's own forward/backward, or a backend's kernel standing in for
/// one or more layers with the same results bit for bit.
/// </summary>
internal abstract class PlanStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>What runs, for summaries and benchmarks (e.g. "Conv 5x5 1→6 … → MaxPool2x2 (fused, Vector256)").</summary>
    public abstract string Name { get; }

    /// <summary>How many consecutive layers the step runs.</summary>
    public abstract int LayerCount { get; }

    /// <summary>True when the step is a backend's kernel rather than the layer's own code.</summary>
    public abstract bool IsKernel { get; }

    /// <summary>The step's output; without <paramref name="keepForBackward"/> nothing is kept for a backward.</summary>
    public abstract Tensor<T> Forward(Tensor<T> input, bool keepForBackward);

    /// <summary>∂loss/∂input from ∂loss/∂output, adding into the parameter gradients.</summary>
    public abstract Tensor<T> Backward(Tensor<T> outputGradient);
}

/// <summary>A layer run by its own (reference) forward and backward.</summary>
internal sealed class LayerStep<T>(ILayer<T> layer) : PlanStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    public ILayer<T> Layer { get; } = layer;

    public override string Name => Layer.Name;

    public override int LayerCount => 1;

    public override bool IsKernel => false;

    public override Tensor<T> Forward(Tensor<T> input, bool keepForBackward) => Layer.Forward(input);

    public override Tensor<T> Backward(Tensor<T> outputGradient) => Layer.Backward(outputGradient);
}

/// <summary>
/// A backend kernel in place of one or more layers: the checks <see cref="Layer{T}"/> makes (no backward before a
/// forward that kept its state, a gradient of the last output's shape), then the kernel.
/// </summary>
internal abstract class KernelStep<T> : PlanStep<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private Tensor<T>? _lastOutput; // the last forward's output when it kept what backward needs

    public override bool IsKernel => true;

    public sealed override Tensor<T> Forward(Tensor<T> input, bool keepForBackward)
    {
        var output = ForwardCore(input, keepForBackward);
        _lastOutput = keepForBackward ? output : null;
        return output;
    }

    public sealed override Tensor<T> Backward(Tensor<T> outputGradient)
    {
        if (_lastOutput is null) throw new InvalidOperationException($"{Name}: Backward was called before Forward.");
        if (!outputGradient.HasShape(_lastOutput.Shape))
        {
            throw new ArgumentException(
                $"{Name}: output gradient has shape {outputGradient.ShapeString}, expected {_lastOutput.ShapeString} (the last forward output).",
                nameof(outputGradient));
        }

        return BackwardCore(outputGradient);
    }

    protected abstract Tensor<T> ForwardCore(Tensor<T> input, bool keepForBackward);

    protected abstract Tensor<T> BackwardCore(Tensor<T> outputGradient);
}
