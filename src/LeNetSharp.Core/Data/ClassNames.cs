using LeNetSharp.Layers;

namespace LeNetSharp.Data;

/// <summary>The rules a list of class names follows, wherever it is kept (a dataset, a network, a model file).</summary>
internal static class ClassNames
{
    /// <summary>The most class names a list holds (65,536, the model file's largest layer dimension).</summary>
    public const int MaxCount = 1 << 16;

    /// <summary>
    /// A read-only copy of <paramref name="names"/>, checked: 1 to <see cref="MaxCount"/> names, each 1 to 255 UTF-8
    /// bytes, not blank, with no control characters or line breaks, all different (compared ordinally).
    /// </summary>
    /// <exception cref="ArgumentException">A rule is broken; the message names the class and the rule.</exception>
    public static IReadOnlyList<string> Checked(IReadOnlyList<string> names, string parameter)
    {
        ArgumentNullException.ThrowIfNull(names, parameter);
        if (names.Count is 0 or > MaxCount)
        {
            throw new ArgumentException($"Expected 1 to {MaxCount:N0} class names, got {names.Count:N0}.", parameter);
        }

        var copy = new string[names.Count];
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < copy.Length; i++)
        {
            LayerDescription.CheckName(names[i], $"name of class {i}", parameter);
            if (!seen.TryAdd(names[i], i))
            {
                throw new ArgumentException($"Classes {seen[names[i]]} and {i} are both named '{LayerDescription.Shown(names[i])}'.", parameter);
            }

            copy[i] = names[i];
        }

        return Array.AsReadOnly(copy);
    }
}
