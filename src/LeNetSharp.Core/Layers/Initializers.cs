using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>Weight initialisation from an explicit <see cref="Random"/>, so that a seed fixes every weight.</summary>
public static class Initializers
{
    /// <summary>
    /// He (Kaiming) normal initialisation: samples N(0, 2 / fanIn), the variance that keeps activations'
    /// scale through ReLU layers.
    /// </summary>
    /// <param name="values">The weights to fill.</param>
    /// <param name="fanIn">Inputs feeding each output unit (KH·KW·C for a convolution, in-features for a linear layer).</param>
    /// <param name="random">The random source; its state advances.</param>
    /// <typeparam name="T">Element type.</typeparam>
    public static void HeNormal<T>(Span<T> values, int fanIn, Random random) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(fanIn, 1);
        double std = Math.Sqrt(2.0 / fanIn);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = T.CreateChecked(std * StandardNormal(random));
        }
    }

    /// <summary>One N(0, 1) sample by the Box–Muller transform.</summary>
    /// <param name="random">The random source.</param>
    /// <returns>A standard normal sample.</returns>
    public static double StandardNormal(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        double u1 = 1.0 - random.NextDouble(); // (0, 1]: keeps Log finite
        double u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
