namespace LeNetSharp.Compute;

/// <summary>How a plan's vector widths are listed in names and messages ("Vector512 and Vector256", "512-, 256- and 128-bit").</summary>
internal static class WidthNames
{
    /// <summary>The widths among <paramref name="bits"/>, once each, widest first (0, the reference backend's, left out).</summary>
    public static int[] Distinct(IEnumerable<int> bits) => bits.Where(b => b > 0).Distinct().OrderDescending().ToArray();

    /// <summary>The items as an English list: "a", "a and b", "a, b and c".</summary>
    public static string List(IEnumerable<string> items)
    {
        string[] all = items.ToArray();
        return all.Length <= 1 ? string.Concat(all) : $"{string.Join(", ", all[..^1])} and {all[^1]}";
    }

    /// <summary>
    /// Widths in bits (widest first) as a compound adjective: "256-bit", "512- and 256-bit", "512-, 256- and 128-bit".
    /// </summary>
    public static string Bits(IReadOnlyList<int> bits) =>
        List(bits.Select((b, i) => i == bits.Count - 1 ? $"{b}-bit" : $"{b}-"));
}
