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

    /// <summary>Creates a description.</summary>
    /// <param name="type">The registered type name (1 to 255 UTF-8 bytes, no control characters).</param>
    /// <param name="settings">Named finite numbers, names unique (1 to 255 UTF-8 bytes each); at most <see cref="MaxSettings"/>.</param>
    /// <exception cref="ArgumentException">A name is empty, too long or repeated, a value is not finite, or there are too many settings.</exception>
    public LayerDescription(string type, params (string Name, double Value)[] settings)
    {
        CheckName(type, nameof(type));
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Length > MaxSettings)
        {
            throw new ArgumentException($"Layer '{type}': {settings.Length} settings, at most {MaxSettings}.", nameof(settings));
        }

        _settings = new KeyValuePair<string, double>[settings.Length];
        for (int i = 0; i < settings.Length; i++)
        {
            var (name, value) = settings[i];
            CheckName(name, nameof(settings));
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
    }

    /// <summary>The most settings a description holds (64).</summary>
    public const int MaxSettings = 64;

    /// <summary>The registered type name, e.g. "Conv".</summary>
    public string Type { get; }

    /// <summary>The settings in the order given.</summary>
    public IReadOnlyList<KeyValuePair<string, double>> Settings => _settings;

    /// <summary>The setting called <paramref name="name"/>.</summary>
    /// <param name="name">The setting's name.</param>
    /// <returns>Its value.</returns>
    /// <exception cref="ArgumentException">There is no such setting (the message names the layer type and the settings it has).</exception>
    public double Get(string name)
    {
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

    private static void CheckName(string name, string parameter)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name, parameter);
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 255 || name.Any(char.IsControl))
        {
            throw new ArgumentException($"The name '{Persistence.ModelFormatException.EscapeControl(name)}' is longer than 255 UTF-8 bytes or holds a control character.", parameter);
        }
    }
}
