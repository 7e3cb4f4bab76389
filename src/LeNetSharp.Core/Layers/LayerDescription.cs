using System.Globalization;

namespace LeNetSharp.Layers;

/// <summary>
/// What a layer is, without its weights: a type name and the numeric settings that rebuild it (e.g. "Conv" with
/// in = 1, out = 6, kh = 5, kw = 5, stride = 1, padding = 0). <see cref="ILayer{T}.Describe"/> makes one; model files store
/// it; <see cref="LayerRegistry"/> turns it back into a layer.
/// </summary>
public sealed class LayerDescription
{
    private readonly KeyValuePair<string, double>[] _settings;
    private readonly IReadOnlyList<KeyValuePair<string, double>> _view; // read-only: a cast cannot reach the array

    /// <summary>Creates a description.</summary>
    /// <param name="type">
    /// The registered type name: 1 to 255 UTF-8 bytes, not blank, without control characters, line or paragraph
    /// separators or lone surrogates (what a model file could not store or a one-line message could not show).
    /// </param>
    /// <param name="settings">Named finite numbers, names unique and as <paramref name="type"/>; at most <see cref="MaxSettings"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="type"/>, <paramref name="settings"/> or a setting's name is null.</exception>
    /// <exception cref="ArgumentException">A name is blank, too long, holds such a character or is repeated, a value is not finite, or there are too many settings.</exception>
    public LayerDescription(string type, params (string Name, double Value)[] settings)
    {
        CheckName(type, "layer type name", nameof(type));
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Length > MaxSettings)
        {
            throw new ArgumentException($"Layer '{type}': {settings.Length} settings, at most {MaxSettings}.", nameof(settings));
        }

        _settings = new KeyValuePair<string, double>[settings.Length];
        for (int i = 0; i < settings.Length; i++)
        {
            var (name, value) = settings[i];
            CheckName(name, $"setting name of layer '{type}'", nameof(settings));
            if (!double.IsFinite(value))
            {
                throw new ArgumentException($"Layer '{type}': setting '{name}' is {value}, expected a finite number.", nameof(settings));
            }

            for (int j = 0; j < i; j++)
            {
                if (_settings[j].Key == name) throw new ArgumentException($"Layer '{type}': setting '{name}' is given twice.", nameof(settings));
            }

            _settings[i] = new(name, value);
        }

        Type = type;
        _view = Array.AsReadOnly(_settings);
    }

    /// <summary>The most settings a description holds (64).</summary>
    public const int MaxSettings = 64;

    /// <summary>The registered type name, e.g. "Conv".</summary>
    public string Type { get; }

    /// <summary>The settings in the order given.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Settings => _view;

    /// <summary>The setting called <paramref name="name"/>.</summary>
    /// <param name="name">The setting's name.</param>
    /// <returns>Its value.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">There is no such setting (the message names the layer type and the settings it has).</exception>
    public double Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var (key, value) in _settings)
        {
            if (key == name) return value;
        }

        throw new ArgumentException($"Layer '{Type}' has no setting '{name}' (it has: {(_settings.Length == 0 ? "none" : string.Join(", ", _settings.Select(s => s.Key)))}).");
    }

    /// <summary>The setting called <paramref name="name"/> as a whole number from <paramref name="min"/> to <paramref name="max"/>.</summary>
    /// <param name="name">The setting's name.</param>
    /// <param name="min">Smallest allowed value.</param>
    /// <param name="max">Largest allowed value.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentException">No such setting, not a whole number, or out of range; the message names all three.</exception>
    public int GetInt(string name, int min = int.MinValue, int max = int.MaxValue)
    {
        double value = Get(name);
        if (value != Math.Floor(value) || value < min || value > max)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Layer '{Type}': setting '{name}' must be a whole number from {min} to {max}, found {value}."));
        }

        return (int)value;
    }

    /// <inheritdoc />
    public override string ToString() =>
        Type + "(" + string.Join(", ", _settings.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key}={s.Value}"))) + ")";

    /// <summary>
    /// Throws unless <paramref name="name"/> can be stored (1 to 255 UTF-8 bytes, which a lone surrogate has no form in)
    /// and shown on one line (no control characters, line or paragraph separators), and is not blank.
    /// </summary>
    /// <param name="name">The name.</param>
    /// <param name="what">What it names, for the message (e.g. "layer type name").</param>
    /// <param name="parameter">The argument it came from.</param>
    internal static void CheckName(string name, string what, string parameter)
    {
        ArgumentNullException.ThrowIfNull(name, parameter);
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"The {what} is empty or blank; expected 1 to 255 UTF-8 bytes.", parameter);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsControl(c) || c is '\u2028' or '\u2029')
            {
                throw new ArgumentException($"The {what} '{Shown(name)}' holds U+{(int)c:X4}, a control character or line break, which a one-line message could not show.", parameter);
            }

            if (char.IsSurrogate(c))
            {
                if (char.IsHighSurrogate(c) && i + 1 < name.Length && char.IsLowSurrogate(name[i + 1]))
                {
                    i++; // a pair: one character beyond the basic plane
                    continue;
                }

                throw new ArgumentException($"The {what} '{Shown(name)}' holds a lone surrogate U+{(int)c:X4}, which has no UTF-8 form.", parameter);
            }
        }

        int bytes = System.Text.Encoding.UTF8.GetByteCount(name);
        if (bytes > 255) throw new ArgumentException($"The {what} '{Shown(name)}' has {bytes:N0} UTF-8 bytes, at most 255.", parameter);
    }

    /// <summary>A name as a message shows it: control characters, separators, surrogates and bidirectional controls as \uXXXX, cut after 40 characters.</summary>
    internal static string Shown(string name)
    {
        const int Keep = 40;
        var sb = new System.Text.StringBuilder();
        foreach (char c in name.Length > Keep ? name[..Keep] : name)
        {
            if (char.IsControl(c) || char.IsSurrogate(c) || c is '\u2028' or '\u2029' || Data.ClassNames.IsBidiControl(c)) sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            else sb.Append(c);
        }

        if (name.Length > Keep) sb.Append(CultureInfo.InvariantCulture, $"… ({name.Length:N0} characters)");
        return sb.ToString();
    }
}
