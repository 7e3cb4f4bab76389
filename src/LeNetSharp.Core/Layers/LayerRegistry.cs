using System.Collections.Concurrent;
using System.Numerics;

namespace LeNetSharp.Layers;

/// <summary>
/// Turns a <see cref="LayerDescription"/> back into a layer: how <see cref="Persistence.ModelFile"/> loads a network and
/// how <see cref="Layer{T}.Clone"/> copies one. The built-in layers are registered already; register a layer of your
/// own once per element type, before loading or cloning a network that holds it.
/// </summary>
/// <example>
/// <code>
/// // Scale&lt;T&gt;: a Layer&lt;T&gt; of your own whose Describe() gives new("Scale", ("features", n), ("initial", v)).
/// LayerRegistry.Register&lt;float&gt;("Scale", d =&gt; new Scale&lt;float&gt;(d.GetInt("features", min: 1), d.Get("initial")));
/// </code>
/// </example>
/// <remarks>Thread-safe.</remarks>
public static class LayerRegistry
{
    /// <summary>The type names of the built-in layers, which cannot be registered again.</summary>
    public static IReadOnlyList<string> BuiltInTypes { get; } =
    [
        "Conv", "Relu", "MaxPool2x2", "Flatten", "Linear",
        "Tanh", "Sigmoid", "LeakyRelu", "Dropout", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "BatchNorm1d", "BatchNorm2d",
    ];

    /// <summary>Registers (or replaces) the factory for layers of type <paramref name="type"/> and element type <typeparamref name="T"/>.</summary>
    /// <param name="type">The name the layer's <see cref="ILayer{T}.Describe"/> gives (a name <see cref="LayerDescription"/> takes).</param>
    /// <param name="create">
    /// Builds a layer from its description: a new layer each call, which describes itself with the same type name; its
    /// parameters are overwritten afterwards when loading or cloning. <see cref="Persistence.ModelFile.Load{T}(string)"/> calls it
    /// with the settings a file holds, before the file is shown to hold the layer's weights: check them (ranges, sizes)
    /// before allocating, as the built-in layers are checked.
    /// </param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentNullException"><paramref name="type"/> or <paramref name="create"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="type"/> names a built-in layer, or is a name no description could hold (blank, longer than 255 UTF-8 bytes, with a control character, line break or lone surrogate).</exception>
    public static void Register<T>(string type, Func<LayerDescription, ILayer<T>> create) where T : unmanaged, IFloatingPointIeee754<T>
    {
        LayerDescription.CheckName(type, "layer type name", nameof(type));
        ArgumentNullException.ThrowIfNull(create);
        if (BuiltInTypes.Contains(type)) throw new ArgumentException($"'{type}' is a built-in layer type and cannot be registered again.", nameof(type));
        Factories<T>.All[type] = create;
    }

    /// <summary>Whether layers of type <paramref name="type"/> can be built for element type <typeparamref name="T"/>.</summary>
    /// <param name="type">A type name.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>True for the built-in layers and registered ones.</returns>
    public static bool IsRegistered<T>(string type) where T : unmanaged, IFloatingPointIeee754<T> =>
        type is not null && Factories<T>.All.ContainsKey(type);

    /// <summary>Builds a layer from its description, with freshly initialised parameters.</summary>
    /// <param name="description">The layer's type name and settings.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>The new layer.</returns>
    /// <exception cref="NotSupportedException">No factory is registered for the type.</exception>
    /// <exception cref="InvalidOperationException">The factory returned null, or a layer that describes itself as another type.</exception>
    /// <exception cref="ArgumentException">A setting is missing or out of range (the factory's message).</exception>
    public static ILayer<T> Create<T>(LayerDescription description) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(description);
        var create = FactoryOf<T>(description.Type) ?? throw new NotSupportedException(
            $"No layer type '{description.Type}' is registered for {typeof(T).Name}: call LayerRegistry.Register<{typeof(T).Name}>(\"{description.Type}\", …) first.");
        return Checked(description, create(description));
    }

    /// <summary>The factory registered for <paramref name="type"/>, or null.</summary>
    internal static Func<LayerDescription, ILayer<T>>? FactoryOf<T>(string type) where T : unmanaged, IFloatingPointIeee754<T> =>
        Factories<T>.All.TryGetValue(type, out var create) ? create : null;

    /// <summary>What a factory built for <paramref name="description"/>, once shown to be a layer of that type.</summary>
    /// <exception cref="InvalidOperationException">It is null, or describes itself as another type (or as nothing).</exception>
    internal static ILayer<T> Checked<T>(LayerDescription description, ILayer<T>? layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layer is null) throw new InvalidOperationException($"The factory of layer type '{description.Type}' returned null.");
        string? type = layer.Describe()?.Type;
        if (type != description.Type)
        {
            throw new InvalidOperationException(
                $"The factory of layer type '{description.Type}' built a {TypeName(layer.GetType())}, which describes itself as {(type is null ? "nothing (Describe returned null)" : $"'{type}'")}.");
        }

        return layer;
    }

    /// <summary>Whether <paramref name="layer"/> is the built-in class of the built-in type <paramref name="type"/> (a Relu&lt;T&gt; for "Relu").</summary>
    internal static bool IsBuiltInLayer<T>(ILayer<T> layer, string type) where T : unmanaged, IFloatingPointIeee754<T> => type switch
    {
        "Conv" => layer is Conv<T>,
        "Relu" => layer is Relu<T>,
        "MaxPool2x2" => layer is MaxPool2x2<T>,
        "Flatten" => layer is Flatten<T>,
        "Linear" => layer is Linear<T>,
        "Tanh" => layer is Tanh<T>,
        "Sigmoid" => layer is Sigmoid<T>,
        "LeakyRelu" => layer is LeakyRelu<T>,
        "Dropout" => layer is Dropout<T>,
        "MaxPool2d" => layer is MaxPool2d<T>,
        "AvgPool2d" => layer is AvgPool2d<T>,
        "GlobalAvgPool2d" => layer is GlobalAvgPool2d<T>,
        "BatchNorm1d" => layer is BatchNorm1d<T>,
        "BatchNorm2d" => layer is BatchNorm2d<T>,
        _ => false,
    };

    /// <summary>A type's name as C# writes it, e.g. "Relu&lt;Single&gt;".</summary>
    internal static string TypeName(Type type) =>
        type.IsGenericType ? $"{type.Name.Split('`')[0]}<{string.Join(", ", type.GetGenericArguments().Select(a => a.Name))}>" : type.Name;

    private static class Factories<T> where T : unmanaged, IFloatingPointIeee754<T>
    {
        public static readonly ConcurrentDictionary<string, Func<LayerDescription, ILayer<T>>> All = new(StringComparer.Ordinal)
        {
            ["Conv"] = Conv<T>.FromDescription,
            ["Relu"] = _ => new Relu<T>(),
            ["MaxPool2x2"] = _ => new MaxPool2x2<T>(),
            ["Flatten"] = _ => new Flatten<T>(),
            ["Linear"] = Linear<T>.FromDescription,
            ["Tanh"] = _ => new Tanh<T>(),
            ["Sigmoid"] = _ => new Sigmoid<T>(),
            ["LeakyRelu"] = LeakyRelu<T>.FromDescription,
            ["Dropout"] = Dropout<T>.FromDescription,
            ["MaxPool2d"] = MaxPool2d<T>.FromDescription,
            ["AvgPool2d"] = AvgPool2d<T>.FromDescription,
            ["GlobalAvgPool2d"] = _ => new GlobalAvgPool2d<T>(),
            ["BatchNorm1d"] = BatchNorm1d<T>.FromDescription,
            ["BatchNorm2d"] = BatchNorm2d<T>.FromDescription,
        };
    }
}
