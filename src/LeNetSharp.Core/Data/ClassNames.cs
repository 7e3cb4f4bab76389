using LeNetSharp.Layers;

namespace LeNetSharp.Data;

/// <summary>The rules a list of class names follows, wherever it is kept (a dataset, a network, a model file).</summary>
internal static class ClassNames
{
    /// <summary>The most class names a list holds (65,536, the model file's largest layer dimension).</summary>
    public const int MaxCount = 1 << 16;

    /// <summary>
    /// A read-only copy of <paramref name="names"/>, checked: 1 to <see cref="MaxCount"/> names, each 1 to 255 UTF-8
    /// bytes, not blank, with no control characters, line breaks or bidirectional controls (U+202A to U+202E, U+2066 to
    /// U+2069), all different (compared ordinally).
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
            if (names[i].FirstOrDefault(IsBidiControl) is var bidi and not '\0')
            {
                throw new ArgumentException(
                    $"The name of class {i} '{LayerDescription.Shown(names[i])}' holds U+{(int)bidi:X4}, a bidirectional embedding, override or isolate, which would reorder the text around it.", parameter);
            }

            if (!seen.TryAdd(names[i], i))
            {
                throw new ArgumentException($"Classes {seen[names[i]]} and {i} are both named '{LayerDescription.Shown(names[i])}'.", parameter);
            }

            copy[i] = names[i];
        }

        return Array.AsReadOnly(copy);
    }

    /// <summary>U+202A to U+202E (embeddings, overrides) and U+2066 to U+2069 (isolates): characters that reorder the text after them.</summary>
    internal static bool IsBidiControl(char c) => c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069');
}
