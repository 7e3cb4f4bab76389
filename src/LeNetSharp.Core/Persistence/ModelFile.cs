using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Persistence;

/// <summary>A model file that cannot be loaded. The message names the file and what was expected and found.</summary>
public sealed class ModelFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The offending file.</param>
    /// <param name="problem">What was wrong.</param>
    public ModelFormatException(string path, string problem) : base($"{path}: {EscapeControl(problem)}")
    {
        FilePath = path;
    }

    /// <summary>The offending file.</summary>
    public string FilePath { get; }

    /// <summary>Control characters (a newline in a corrupt name, say) shown as \uXXXX: the message stays one line.</summary>
    internal static string EscapeControl(string text) =>
        text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString())) : text;

}

/// <summary>
/// Saves and loads a <see cref="Sequential{T}"/>: architecture and weights in one little-endian file, checked by
/// SHA-256, written atomically.
/// <code>
/// "LNSM"                      4 bytes magic
/// version                     uint16 (1: built-in layers only; 2: any registered layers)
/// element size                uint8 (4: float32, 8: float64)
/// layer count                 int32
/// per layer, version 1:
///            kind             uint8 (1 Conv, 2 Relu, 3 MaxPool2x2, 4 Flatten, 5 Linear)
///            hyper-parameters int32s: Conv (in, out, kh, kw, stride, padding); Linear (in, out); others none
/// per layer, version 2:
///            type             uint8 length + UTF-8 (the name <see cref="ILayer{T}.Describe"/> gives)
///            settings         uint8 count, then per setting: name (uint8 length + UTF-8), value (float64)
/// per layer, both:
///            tensor count     uint8, then per tensor: name (uint8 length + UTF-8), rank (uint8), dims (int32 each),
///                             elements (row-major)
/// SHA-256                     32 bytes over everything before it
/// </code>
/// A network of built-in layers only is written as version 1 (which every reader takes); any other as version 2.
/// Layers of your own are stored by their <see cref="ILayer{T}.Describe"/> and loaded through <see cref="LayerRegistry"/>.
/// </summary>
public static class ModelFile
{
    /// <summary>The newest format version this library reads and writes.</summary>
    internal const int Version = 2;

    private static readonly byte[] Magic = "LNSM"u8.ToArray();
    private const int HashSize = 32;

    private enum Kind : byte { Conv = 1, Relu = 2, MaxPool2x2 = 3, Flatten = 4, Linear = 5 }

    /// <summary>Writes <paramref name="network"/> to <paramref name="path"/> atomically: a crash mid-save leaves the previous file intact.</summary>
    /// <param name="network">A network of built-in layers, or of layers registered with <see cref="LayerRegistry"/>.</param>
    /// <param name="path">Destination file.</param>
    /// <typeparam name="T">Element type; stored as is.</typeparam>
    /// <exception cref="NotSupportedException">A layer's type is not registered, so the file could not be loaded back (nothing is written).</exception>
    public static void Save<T>(Sequential<T> network, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        byte[] bytes = Serialize(network);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads a network saved by <see cref="Save{T}"/>, converting the weights to <typeparamref name="T"/> if needed.</summary>
    /// <param name="path">The model file.</param>
    /// <typeparam name="T">Element type wanted.</typeparam>
    /// <returns>The network, ready for inference or further training.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ModelFormatException">
    /// Not a regular file (a directory, FIFO or device is refused without being read), larger than 1 GiB (checked
    /// before anything is allocated), wrong magic (checked on the first bytes, before the rest is read) or version,
    /// checksum mismatch (a flipped byte), truncation, hyper-parameters out of range (channels, features, kernel
    /// sizes, stride or padding above 65,536), or inconsistent shapes. A layer is built only once the file is shown to
    /// hold its weights.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read (permission denied).</exception>
    public static Sequential<T> Load<T>(string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        using (var file = SafeFile.OpenRead(path, problem => new ModelFormatException(path, problem), $"{path}: model file not found."))
        {
            var magic = new byte[Magic.Length];
            int got = file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
            if (got < Magic.Length && Magic.AsSpan().StartsWith(magic.AsSpan(0, got)))
            {
                throw new ModelFormatException(path, $"truncated: {got} bytes, a model file has at least {Magic.Length + 2 + 1 + 4 + HashSize}.");
            }

            if (got < Magic.Length || !magic.AsSpan().SequenceEqual(Magic))
            {
                throw new ModelFormatException(path,
                    $"expected magic \"LNSM\", found {Printable(magic.AsSpan(0, got))} (not a LeNetSharp model).");
            }

            file.Position = 0;
            bytes = SafeFile.ReadRest(file, MaxFileBytes, problem => new ModelFormatException(path, problem));
        }

        return Deserialize<T>(bytes, path);
    }

    /// <summary>The largest model file <see cref="Load{T}"/> reads (1 GiB): a size check made before anything is allocated.</summary>
    internal const long MaxFileBytes = 1L << 30;

    /// <summary>
    /// The largest hyper-parameter a model file may declare: channels, features, kernel sizes, stride and padding
    /// (65,536). Anything above is refused as corrupt before a layer is built.
    /// </summary>
    internal const int MaxDimension = 1 << 16;

    private static string Printable(ReadOnlySpan<byte> bytes) =>
        bytes.Length == 0 ? "an empty file"
        : bytes.ToArray().All(b => b is >= 0x20 and < 0x7f) ? $"\"{Encoding.ASCII.GetString(bytes)}\""
        : "bytes " + Convert.ToHexString(bytes);

    internal static byte[] Serialize<T>(Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            bool builtIn = network.Layers.All(l => l is Conv<T> or Relu<T> or MaxPool2x2<T> or Flatten<T> or Linear<T>);
            w.Write(Magic);
            w.Write((ushort)(builtIn ? 1 : 2));
            w.Write((byte)ElementSize<T>());
            w.Write(network.Layers.Count);
            foreach (var layer in network.Layers)
            {
                if (!builtIn)
                {
                    WriteDescription(w, layer);
                    WriteTensors(w, layer);
                    continue;
                }

                switch (layer)
                {
                    case Conv<T> c:
                        w.Write((byte)Kind.Conv);
                        foreach (int v in new[] { c.InChannels, c.OutChannels, c.KernelHeight, c.KernelWidth, c.Stride, c.Padding }) w.Write(v);
                        break;
                    case Relu<T>: w.Write((byte)Kind.Relu); break;
                    case MaxPool2x2<T>: w.Write((byte)Kind.MaxPool2x2); break;
                    case Flatten<T>: w.Write((byte)Kind.Flatten); break;
                    case Linear<T> l:
                        w.Write((byte)Kind.Linear);
                        w.Write(l.InFeatures);
                        w.Write(l.OutFeatures);
                        break;
                    default:
                        throw new NotSupportedException($"The model format cannot store layer '{layer.Name}' ({layer.GetType().Name}).");
                }

                WriteTensors(w, layer);
            }
        }

        ms.Write(SHA256.HashData(ms.GetBuffer().AsSpan(0, (int)ms.Length)));
        return ms.ToArray();
    }

    /// <summary>Version 2's type name and settings; refuses a type no registry entry could load back.</summary>
    private static void WriteDescription<T>(BinaryWriter w, ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = layer.Describe() ?? throw new NotSupportedException($"The model format cannot store layer '{layer.Name}': its Describe returned null.");
        if (!LayerRegistry.IsRegistered<T>(d.Type))
        {
            throw new NotSupportedException(
                $"The model format cannot store layer '{layer.Name}' ({layer.GetType().Name}): its type '{d.Type}' is not registered, so the file could not be loaded back. Call LayerRegistry.Register first.");
        }

        WriteName(w, d.Type);
        w.Write((byte)d.Settings.Count);
        foreach (var (name, value) in d.Settings)
        {
            WriteName(w, name);
            w.Write(value);
        }
    }

    private static void WriteName(BinaryWriter w, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        if (bytes.Length > byte.MaxValue) throw new NotSupportedException($"The model format stores names of up to 255 UTF-8 bytes; '{name}' has {bytes.Length}.");
        w.Write((byte)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteTensors<T>(BinaryWriter w, ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (layer.Parameters.Count > byte.MaxValue) throw new NotSupportedException($"The model format stores up to 255 tensors a layer; '{layer.Name}' has {layer.Parameters.Count}.");
        w.Write((byte)layer.Parameters.Count);
        foreach (var p in layer.Parameters)
        {
            WriteName(w, p.Name);
            w.Write((byte)p.Value.Rank);
            foreach (int d in p.Value.Shape) w.Write(d);
            foreach (T v in p.Value.Span)
            {
                if (typeof(T) == typeof(float)) w.Write(float.CreateTruncating(v));
                else w.Write(double.CreateTruncating(v));
            }
        }
    }

    internal static Sequential<T> Deserialize<T>(byte[] bytes, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        try
        {
            return DeserializeChecked<T>(bytes, path);
        }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or IndexOutOfRangeException or OverflowException)
        {
            throw new ModelFormatException(path, $"inconsistent content ({OneLine(e.Message)}).");
        }
    }

    /// <summary>Folds a multi-line runtime message ("…\nActual value was 0.") into one line.</summary>
    internal static string OneLine(string message) => string.Join(" ", message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private static Sequential<T> DeserializeChecked<T>(byte[] bytes, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headerSize = Magic.Length + 2 + 1 + 4;
        if (bytes.Length < headerSize + HashSize)
        {
            throw new ModelFormatException(path, $"truncated: {bytes.Length} bytes, a model file has at least {headerSize + HashSize}.");
        }

        if (!bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new ModelFormatException(path, $"expected magic \"LNSM\", found {Printable(bytes.AsSpan(0, Magic.Length))} (not a LeNetSharp model).");
        }

        int version = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(Magic.Length));
        if (version is < 1 or > Version) throw new ModelFormatException(path, $"expected format version 1 to {Version}, found {version}.");
        var payload = bytes.AsSpan(0, bytes.Length - HashSize);
        string expected = Convert.ToHexStringLower(bytes.AsSpan(bytes.Length - HashSize));
        string actual = Convert.ToHexStringLower(SHA256.HashData(payload));
        if (expected != actual)
        {
            throw new ModelFormatException(path, $"checksum mismatch: the file records SHA-256 {expected}, its content hashes to {actual} (corrupt or truncated).");
        }

        var r = new BinaryReader(new MemoryStream(bytes, Magic.Length + 2, payload.Length - Magic.Length - 2));
        int elementSize = r.ReadByte();
        if (elementSize is not (4 or 8)) throw new ModelFormatException(path, $"expected element size 4 or 8, found {elementSize}.");
        int layerCount = r.ReadInt32();
        if (layerCount is < 1 or > 1024) throw new ModelFormatException(path, $"expected 1 to 1024 layers, found {layerCount}.");
        var dummy = new Random(0); // weights are overwritten below
        var layers = new ILayer<T>[layerCount];
        for (int i = 0; i < layerCount; i++)
        {
            if (version >= 2)
            {
                layers[i] = ReadDescribed<T>(r, elementSize, path, i);
            }
            else
            {
                var kind = (Kind)r.ReadByte();
                layers[i] = kind switch
                {
                    Kind.Conv => ReadConv(r, dummy, elementSize, path, i),
                    Kind.Relu => new Relu<T>(),
                    Kind.MaxPool2x2 => new MaxPool2x2<T>(),
                    Kind.Flatten => new Flatten<T>(),
                    Kind.Linear => ReadLinear(r, dummy, elementSize, path, i),
                    _ => throw new ModelFormatException(path, $"layer {i}: unknown layer kind {(byte)kind}."),
                };
            }

            int tensors = r.ReadByte();
            if (tensors != layers[i].Parameters.Count)
            {
                throw new ModelFormatException(path, $"layer {i} ({layers[i].Name}): expected {layers[i].Parameters.Count} tensors, found {tensors}.");
            }

            foreach (var p in layers[i].Parameters) ReadTensor(r, p, elementSize, path, i);
        }

        if (r.BaseStream.Position != r.BaseStream.Length)
        {
            throw new ModelFormatException(path, $"{r.BaseStream.Length - r.BaseStream.Position} unexpected bytes after the last layer.");
        }

        return new Sequential<T>(layers);

        static Conv<T> ReadConv(BinaryReader r, Random dummy, int elementSize, string path, int layer)
        {
            int inC = r.ReadInt32(), outC = r.ReadInt32(), kh = r.ReadInt32(), kw = r.ReadInt32(), stride = r.ReadInt32(), pad = r.ReadInt32();
            string what = $"layer {layer} (Conv in {inC}, out {outC}, kernel {kh}x{kw}, stride {stride}, padding {pad})";
            CheckRange(path, what, ("in channels", inC, 1), ("out channels", outC, 1), ("kernel height", kh, 1), ("kernel width", kw, 1),
                ("stride", stride, 1), ("padding", pad, 0));
            EnsureHolds(r, path, what, (Int128)outC * inC * kh * kw + outC, elementSize);
            return new Conv<T>(inC, outC, kh, kw, dummy, stride, pad);
        }

        static Linear<T> ReadLinear(BinaryReader r, Random dummy, int elementSize, string path, int layer)
        {
            int inF = r.ReadInt32(), outF = r.ReadInt32();
            string what = $"layer {layer} (Linear {inF} → {outF})";
            CheckRange(path, what, ("in features", inF, 1), ("out features", outF, 1));
            EnsureHolds(r, path, what, (Int128)inF * outF + outF, elementSize);
            return new Linear<T>(inF, outF, dummy);
        }
    }

    /// <summary>
    /// A version-2 layer: its description, the built-in layers' range and size checks (before anything is allocated),
    /// then the registered factory.
    /// </summary>
    private static ILayer<T> ReadDescribed<T>(BinaryReader r, int elementSize, string path, int layer)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string type = ReadName(r);
        int count = r.ReadByte();
        if (count > LayerDescription.MaxSettings)
        {
            throw new ModelFormatException(path, $"layer {layer} ('{type}'): {count} settings, at most {LayerDescription.MaxSettings}.");
        }

        var settings = new (string, double)[count];
        for (int s = 0; s < count; s++) settings[s] = (ReadName(r), r.ReadDouble());
        var description = new LayerDescription(type, settings);
        string what = $"layer {layer} ({description})";
        switch (type)
        {
            case "Conv":
                int inC = description.GetInt("in"), outC = description.GetInt("out"), kh = description.GetInt("kh"), kw = description.GetInt("kw");
                CheckRange(path, what, ("in channels", inC, 1), ("out channels", outC, 1), ("kernel height", kh, 1), ("kernel width", kw, 1),
                    ("stride", description.GetInt("stride"), 1), ("padding", description.GetInt("padding"), 0));
                EnsureHolds(r, path, what, (Int128)outC * inC * kh * kw + outC, elementSize);
                break;
            case "Linear":
                int inF = description.GetInt("in"), outF = description.GetInt("out");
                CheckRange(path, what, ("in features", inF, 1), ("out features", outF, 1));
                EnsureHolds(r, path, what, (Int128)inF * outF + outF, elementSize);
                break;
        }

        try
        {
            return LayerRegistry.Create<T>(description);
        }
        catch (NotSupportedException e)
        {
            throw new ModelFormatException(path, $"{what}: {e.Message}");
        }
    }

    private static string ReadName(BinaryReader r) => Encoding.UTF8.GetString(r.ReadBytes(r.ReadByte()));

    private static void CheckRange(string path, string what, params (string Name, int Value, int Min)[] values)
    {
        foreach (var (name, value, min) in values)
        {
            if (value < min || value > MaxDimension)
            {
                throw new ModelFormatException(path, $"{what}: {name} must be {min} to {MaxDimension}, found {value}.");
            }
        }
    }

    /// <summary>Refuses a layer whose weights the rest of the file cannot hold, before the layer allocates them.</summary>
    private static void EnsureHolds(BinaryReader r, string path, string what, Int128 elements, int elementSize)
    {
        long left = r.BaseStream.Length - r.BaseStream.Position;
        if (elements * elementSize > left)
        {
            throw new ModelFormatException(path,
                $"truncated: {what} needs {elements:N0} weights ({elements * elementSize:N0} bytes), the file has {left:N0} bytes left.");
        }
    }

    private static void ReadTensor<T>(BinaryReader r, Parameter<T> p, int elementSize, string path, int layer)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string name = Encoding.UTF8.GetString(r.ReadBytes(r.ReadByte()));
        int rank = r.ReadByte();
        var dims = new int[rank];
        for (int d = 0; d < rank; d++) dims[d] = r.ReadInt32();
        if (name != p.Name || !p.Value.HasShape(dims))
        {
            throw new ModelFormatException(path,
                $"layer {layer}: expected tensor '{p.Name}' {p.Value.ShapeString}, found '{name}' {Tensor<T>.ShapeToString(dims)}.");
        }

        Span<T> values = p.Value.Span;
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = elementSize == 4 ? T.CreateTruncating(r.ReadSingle()) : T.CreateTruncating(r.ReadDouble());
        }
    }

    private static int ElementSize<T>() =>
        typeof(T) == typeof(float) ? 4 : typeof(T) == typeof(double) ? 8
        : throw new NotSupportedException($"Models store float or double, not {typeof(T).Name}.");
}
