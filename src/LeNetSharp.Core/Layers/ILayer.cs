using System.Numerics;
using LeNetSharp.Tensors;

namespace LeNetSharp.Layers;

/// <summary>
/// One differentiable step of a network. <see cref="Forward"/> caches what <see cref="Backward"/> needs;
/// <see cref="Backward"/> returns the gradient with respect to the input and adds parameter gradients into
/// <see cref="Parameter{T}.Gradient"/>; it never changes parameter values.
/// </summary>
/// <remarks>
/// A layer is reference maths: plain loops and GEMMs, the same on every CPU. The network's
/// <see cref="Compute.ComputeBackend"/> may run a faster kernel in its place, which must give the same bits.
/// The tensors a layer returns are buffers it owns and reuses on the next call with the same batch size: copy
/// them if you need them later. A layer instance is not thread-safe.
/// </remarks>
/// <typeparam name="T">Element type.</typeparam>
public interface ILayer<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>A short description, e.g. "Conv 5x5 1→6 stride 1 pad 0".</summary>
    string Name { get; }

    /// <summary>The trainable parameters (empty for layers without weights).</summary>
    IReadOnlyList<Parameter<T>> Parameters { get; }

    /// <summary>The output shape for an input of shape <paramref name="inputShape"/>.</summary>
    /// <param name="inputShape">Input dimensions, batch first.</param>
    /// <returns>Output dimensions, batch first.</returns>
    /// <exception cref="ArgumentException">The layer cannot take that input; the message names both shapes.</exception>
    int[] OutputShape(ReadOnlySpan<int> inputShape);

    /// <summary>Computes the output for <paramref name="input"/> and remembers what backward needs.</summary>
    /// <param name="input">Input batch, batch first.</param>
    /// <returns>The output (a buffer owned by the layer).</returns>
    /// <exception cref="ArgumentException">The input has the wrong shape; the message says what was expected.</exception>
    Tensor<T> Forward(Tensor<T> input);

    /// <summary>Back-propagates <paramref name="outputGradient"/> through the last <see cref="Forward"/> call.</summary>
    /// <param name="outputGradient">∂loss/∂output, the shape forward returned.</param>
    /// <returns>∂loss/∂input, the shape forward was given (a buffer owned by the layer).</returns>
    /// <exception cref="InvalidOperationException">Called before <see cref="Forward"/>.</exception>
    /// <exception cref="ArgumentException">The gradient's shape differs from the last output's.</exception>
    Tensor<T> Backward(Tensor<T> outputGradient);

    /// <summary>
    /// The layer's type name and the settings that rebuild it (not its weights): what a model file stores, and what
    /// <see cref="LayerRegistry.Create{T}"/> turns back into a layer.
    /// </summary>
    /// <returns>The description.</returns>
    LayerDescription Describe();

    /// <summary>
    /// A deep, independent copy: the same kind and settings, copies of every parameter's value and gradient and of any
    /// <see cref="IStatefulLayer{T}.State"/>, buffers of its own. The copy and the original can run on two threads at once.
    /// </summary>
    /// <returns>The copy.</returns>
    /// <exception cref="NotSupportedException">The layer cannot be copied (e.g. its type is not registered).</exception>
    ILayer<T> Clone();
}
