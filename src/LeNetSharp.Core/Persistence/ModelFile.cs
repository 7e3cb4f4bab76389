using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Persistence;

/// <summary>
/// A model file (or stream) that cannot be loaded. The message names the file (or the name the stream was loaded
/// under) and what was expected and found.
/// </summary>
public sealed class ModelFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The offending file, or the name of the offending stream.</param>
    /// <param name="problem">What was wrong.</param>
    public ModelFormatException(string path, string problem) : base($"{path}: {EscapeControl(problem)}")
    {
        FilePath = path;
    }

    /// <summary>Creates the exception with the one that caused it (e.g. what a layer's registered factory threw).</summary>
    /// <param name="path">The offending file, or the name of the offending stream.</param>
    /// <param name="problem">What was wrong.</param>
    /// <param name="innerException">The cause.</param>
    public ModelFormatException(string path, string problem, Exception innerException) : base($"{path}: {EscapeControl(problem)}", innerException)
    {
        FilePath = path;
    }

    /// <summary>The offending file; for a stream, the name given to <see cref="ModelFile.Load{T}(Stream, string)"/> ("the stream" without one).</summary>
    public string FilePath { get; }

    /// <summary>Control characters and line or paragraph separators (a newline in a corrupt name, say) shown as \uXXXX: the message stays one line.</summary>
    internal static string EscapeControl(string text) =>
        text.Any(Breaks) ? string.Concat(text.Select(c => Breaks(c) ? $"\\u{(int)c:X4}" : c.ToString())) : text;

    private static bool Breaks(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';

}

/// <summary>
/// Saves and loads a <see cref="Sequential{T}"/>: architecture and weights in one little-endian file, checked by
/// SHA-256, written atomically.
/// <code>
/// "LNSM"                      4 bytes magic
/// version                     uint16 (1: the five layer types below only; 2: any built-in or registered layers;
///                             3: as 2, then the metadata below)
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
///                             elements (row-major); the layer's parameters, then its non-trainable state
///                             (<see cref="IStatefulLayer{T}.State"/>: BatchNorm's running_mean and running_var)
/// version 3 only, after the last layer:
///            input shape      uint8 (0: none; 1: three int32s follow: height, width, channels)
///            class names      int32 count (0: none), then per name: uint8 length + UTF-8
/// SHA-256                     32 bytes over everything before it
/// </code>
/// A network of Conv, Relu, MaxPool2x2, Flatten and Linear layers only is written as version 1 (which every reader
/// takes); any other, with another built-in layer (Tanh, Sigmoid, LeakyRelu, Dropout, MaxPool2d, AvgPool2d,
/// GlobalAvgPool2d, BatchNorm1d, BatchNorm2d) or one of your own, as version 2.
/// Layers of your own are stored by their <see cref="ILayer{T}.Describe"/> and loaded through <see cref="LayerRegistry"/>.
/// A network that carries metadata (<see cref="Sequential{T}.ClassNames"/> or <see cref="Sequential{T}.InputShape"/>)
/// is written as version 3; one without is written as version 1 or 2, byte for byte as before version 3 existed.
/// </summary>
public static class ModelFile
{
    /// <summary>The newest format version this library reads and writes.</summary>
    internal const int Version = 3;

    private static readonly byte[] Magic = "LNSM"u8.ToArray();
    private const int HashSize = 32;

    private enum Kind : byte { Conv = 1, Relu = 2, MaxPool2x2 = 3, Flatten = 4, Linear = 5 }

    /// <summary>Writes <paramref name="network"/> to <paramref name="path"/> atomically: a crash mid-save leaves the previous file intact.</summary>
    /// <param name="network">A network of built-in layers, or of layers registered with <see cref="LayerRegistry"/>.</param>
    /// <param name="path">Destination file.</param>
    /// <typeparam name="T">Element type; stored as is.</typeparam>
    /// <exception cref="NotSupportedException">A layer's type is not registered, so the file could not be loaded back (nothing is written).</exception>
    /// <exception cref="InvalidOperationException">
    /// A weight or BatchNorm running statistic is not a finite number, or a running variance is negative (training
    /// diverged), so the file would not load back (nothing is written).
    /// </exception>
    public static void Save<T>(Sequential<T> network, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        byte[] bytes = Serialize(network);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads a network saved by <see cref="Save{T}(Sequential{T}, string)"/> (or to a stream), converting the weights to <typeparamref name="T"/> if needed.</summary>
    /// <param name="path">The model file.</param>
    /// <typeparam name="T">Element type wanted.</typeparam>
    /// <returns>The network, ready for inference or further training.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ModelFormatException">
    /// Not a regular file (a directory, FIFO or device is refused without being read), larger than 1 GiB (checked
    /// before anything is allocated), wrong magic (checked on the first bytes, before the rest is read) or version,
    /// checksum mismatch (a flipped byte), truncation, hyper-parameters out of range (channels, features, a
    /// convolution's kernel sizes, stride or padding above 65,536; a pool's kernel or stride below 1 or padding above
    /// half its kernel; a dropout probability outside [0, 1); a setting that is not a finite number), inconsistent
    /// shapes, a weight or running statistic that is not a finite number (also one that float32 cannot hold, read as
    /// float), a negative running variance, more than 1,024 layers or more than 67,108,864 weights and statistics in all
    /// (the library's ceilings). A built-in layer is built only once the file is shown to hold its weights and they fit
    /// the ceiling. A layer of your own is built by its registered factory from
    /// the file's settings (check them there: see <see cref="LayerRegistry.Register{T}"/>); whatever the factory throws
    /// is reported as this exception, with the factory's as its inner exception.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read (permission denied).</exception>
    public static Sequential<T> Load<T>(string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes;
        using (var file = SafeFile.OpenRead(path, problem => new ModelFormatException(path, problem), $"{path}: model file not found."))
        {
            ReadMagic(file, path);
            file.Position = 0;
            bytes = SafeFile.ReadRest(file, MaxFileBytes, problem => new ModelFormatException(path, problem));
        }

        return Deserialize<T>(bytes, path);
    }

    /// <summary>
    /// Writes <paramref name="network"/> to <paramref name="stream"/>: the bytes <see cref="Save{T}(Sequential{T}, string)"/>
    /// writes to a file (a blob, an HTTP response, a <see cref="MemoryStream"/>). The stream is flushed and left open,
    /// positioned after the model.
    /// </summary>
    /// <param name="network">A network of built-in layers, or of layers registered with <see cref="LayerRegistry"/>.</param>
    /// <param name="stream">A writable stream; seeking is not needed.</param>
    /// <typeparam name="T">Element type; stored as is.</typeparam>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be written.</exception>
    /// <exception cref="NotSupportedException">A layer's type is not registered, so the model could not be loaded back (nothing is written).</exception>
    /// <exception cref="InvalidOperationException">
    /// A BatchNorm layer's running statistics are not finite, or a running variance is negative (training diverged), so
    /// the model would not load back (nothing is written).
    /// </exception>
    /// <exception cref="IOException">The stream failed while being written.</exception>
    public static void Save<T>(Sequential<T> network, Stream stream) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanWrite) throw new ArgumentException("The stream cannot be written.", nameof(stream));
        byte[] bytes = Serialize(network); // every check before the first byte
        stream.Write(bytes);
        stream.Flush();
    }

    /// <summary>
    /// Reads a network from <paramref name="stream"/> (an embedded resource, a blob, an HTTP body) with the checks and
    /// messages of <see cref="Load{T}(string)"/>, the messages naming <paramref name="name"/> where they name the file.
    /// The model is the rest of the stream: it is read from where it stands to its end, as bytes arrive (a stream that
    /// cannot seek, or returns a few bytes a read, is fine), and left open, positioned after the last byte read.
    /// </summary>
    /// <param name="stream">A readable stream, seekable or not.</param>
    /// <param name="name">What messages call the stream (a resource or blob name); null: "the stream".</param>
    /// <typeparam name="T">Element type wanted.</typeparam>
    /// <returns>The network, ready for inference or further training.</returns>
    /// <exception cref="ArgumentException"><paramref name="stream"/> cannot be read.</exception>
    /// <exception cref="ModelFormatException">
    /// What <see cref="Load{T}(string)"/> refuses in a file's content: wrong magic (checked on the first 4 bytes, before
    /// the rest is read), more than 1 GiB (a seekable stream whose length says so is refused before anything is read;
    /// any other stream once the 1 GiB + 1st byte arrives, whatever it announced), wrong version, checksum mismatch,
    /// truncation, values out of range or inconsistent shapes. <see cref="ModelFormatException.FilePath"/> is
    /// <paramref name="name"/>.
    /// </exception>
    /// <exception cref="IOException">The stream failed while being read.</exception>
    public static Sequential<T> Load<T>(Stream stream, string? name = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanRead) throw new ArgumentException("The stream cannot be read.", nameof(stream));
        string shown = string.IsNullOrEmpty(name) ? "the stream" : name;
        byte[] magic = ReadMagic(stream, shown);
        byte[] bytes = SafeFile.ReadStream(stream, magic, MaxFileBytes,
            size => new ModelFormatException(shown, $"is {size}, above the {MaxFileBytes:N0} this format accepts."));
        return Deserialize<T>(bytes, shown);
    }

    /// <summary>Reads the first 4 bytes and refuses anything but "LNSM" before the rest is read; returns them.</summary>
    private static byte[] ReadMagic(Stream stream, string path)
    {
        var magic = new byte[Magic.Length];
        int got = stream.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false);
        if (got < Magic.Length && Magic.AsSpan().StartsWith(magic.AsSpan(0, got)))
        {
            // A stream is read from where it stands: one just written is at its end.
            string rewind = got == 0 && stream.CanSeek && stream.Length > 0 ? $" (the stream is at its end, position {stream.Position:N0}: rewind it to read what was written)" : "";
            throw new ModelFormatException(path, $"truncated: {got} bytes, a model file has at least {Magic.Length + 2 + 1 + 4 + HashSize}{rewind}.");
        }

        if (got < Magic.Length || !magic.AsSpan().SequenceEqual(Magic))
        {
            throw new ModelFormatException(path,
                $"expected magic \"LNSM\", found {Printable(magic.AsSpan(0, got))} (not a LeNetSharp model).");
        }

        return magic;
    }

    /// <summary>The largest model file <see cref="Load{T}(string)"/> reads (1 GiB), and the most bytes <see cref="Load{T}(Stream, string)"/> takes from a stream.</summary>
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
            bool metadata = network.ClassNames is not null || network.InputShape is not null;
            if (metadata) CheckMetadata(network, problem => new InvalidOperationException($"The model format cannot store the network's metadata: {problem}"));
            bool builtIn = !metadata && network.Layers.All(IsVersion1Layer);
            w.Write(Magic);
            w.Write((ushort)(metadata ? 3 : builtIn ? 1 : 2));
            w.Write((byte)ElementSize<T>());
            w.Write(network.Layers.Count);
            for (int i = 0; i < network.Layers.Count; i++)
            {
                var layer = network.Layers[i];
                if (NetworkLimits.ValueProblem(layer) is { } problem)
                {
                    throw new InvalidOperationException($"The model format cannot store layer {i} ({layer.Name}): {problem} A model file holding it would not load back.");
                }

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

            if (metadata) WriteMetadata(w, network);
        }

        ms.Write(SHA256.HashData(ms.GetBuffer().AsSpan(0, (int)ms.Length)));
        return ms.ToArray();
    }

    /// <summary>Version 3's metadata: the input shape, then the class names (see the format above).</summary>
    private static void WriteMetadata<T>(BinaryWriter w, Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (network.InputShape is var (h, width, c))
        {
            w.Write((byte)1);
            w.Write(h);
            w.Write(width);
            w.Write(c);
        }
        else
        {
            w.Write((byte)0);
        }

        var names = network.ClassNames ?? [];
        w.Write(names.Count);
        foreach (string name in names) WriteName(w, name);
    }

    /// <summary>
    /// Reads version 3's metadata into <paramref name="network"/>: a shape outside 1 to <see cref="MaxDimension"/>,
    /// more names than the bytes left can hold, or a name a network refuses, is the file's fault.
    /// </summary>
    private static void ReadMetadata<T>(BinaryReader r, string path, Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int hasShape = r.ReadByte();
        if (hasShape > 1) throw new ModelFormatException(path, $"metadata: expected an input-shape flag of 0 or 1, found {hasShape}.");
        if (hasShape == 1)
        {
            int h = r.ReadInt32(), w = r.ReadInt32(), c = r.ReadInt32();
            CheckRange(path, "metadata: input shape", ("height", h, 1), ("width", w, 1), ("channels", c, 1));
            network.InputShape = (h, w, c);
        }

        int count = r.ReadInt32();
        long left = r.BaseStream.Length - r.BaseStream.Position;
        if (count < 0 || count > Data.ClassNames.MaxCount || 2L * count > left)
        {
            throw new ModelFormatException(path, $"metadata: expected 0 to {Data.ClassNames.MaxCount:N0} class names that the {left:N0} bytes left can hold, found a count of {count:N0}.");
        }

        if (count > 0)
        {
            var names = new string[count];
            for (int i = 0; i < count; i++) names[i] = ReadClassName(r, path, i);
            try
            {
                network.ClassNames = names;
            }
            catch (ArgumentException e)
            {
                throw new ModelFormatException(path, $"metadata: {Problem(e)}");
            }
        }

        CheckMetadata(network, problem => new ModelFormatException(path, $"metadata: {problem}"));
    }

    /// <summary>With both an input shape and class names, the network must give one output per name for that shape.</summary>
    private static void CheckMetadata<T>(Sequential<T> network, Func<string, Exception> refuse) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (network.InputShape is not var (h, w, c) || network.ClassNames is not { } names) return;
        string shape = $"{h}x{w}x{c}";
        int[] output;
        try
        {
            var shapes = network.OutputShapes([1, h, w, c]);
            output = shapes[^1];
        }
        catch (ArgumentException e)
        {
            throw refuse($"the network does not take its recorded {shape} input ({Problem(e)})");
        }

        if (output.Length != 2 || output[1] != names.Count)
        {
            throw refuse($"{names.Count} class names, but the network gives ({string.Join(", ", output[1..])}) outputs for its recorded {shape} input");
        }
    }

    /// <summary>Version 2's type name and settings; refuses a type no registry entry could load back.</summary>
    private static void WriteDescription<T>(BinaryWriter w, ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = layer.Describe() ?? throw new NotSupportedException($"The model format cannot store layer '{layer.Name}': its Describe returned null.");
        if (LayerRegistry.BuiltInTypes.Contains(d.Type) && !LayerRegistry.IsBuiltInLayer(layer, d.Type))
        {
            throw new NotSupportedException(
                $"The model format cannot store layer '{layer.Name}' ({LayerRegistry.TypeName(layer.GetType())}): it describes itself as the built-in type '{d.Type}' but is not a {d.Type}<{typeof(T).Name}>, so it would load as one.");
        }

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

    /// <summary>One of the five layer types version 1 stores (the tutorial's); any other makes the file version 2.</summary>
    private static bool IsVersion1Layer<T>(ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T> =>
        layer is Conv<T> or Relu<T> or MaxPool2x2<T> or Flatten<T> or Linear<T>;

    /// <summary>What a model file stores of a layer: its parameters' values, then its state, by name.</summary>
    private static List<(string Name, Tensor<T> Value)> StoredTensors<T>(ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tensors = layer.Parameters.Select(p => (p.Name, p.Value)).ToList();
        if (layer is IStatefulLayer<T> stateful) tensors.AddRange(stateful.State.Select(s => (s.Name, s.Value)));
        return tensors;
    }

    /// <summary>A name of at most 255 UTF-8 bytes (checked by <see cref="LayerDescription"/> or <see cref="WriteTensors"/>).</summary>
    private static void WriteName(BinaryWriter w, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        w.Write((byte)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteTensors<T>(BinaryWriter w, ILayer<T> layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tensors = StoredTensors(layer);
        if (tensors.Count > byte.MaxValue) throw new NotSupportedException($"The model format stores up to 255 tensors a layer; '{layer.Name}' has {tensors.Count}.");
        foreach (var p in tensors)
        {
            // What would not load back as written: a name a description could not hold (too long, a lone surrogate, a
            // line break), a rank above a byte.
            try
            {
                LayerDescription.CheckName(p.Name, "parameter name", "name");
            }
            catch (ArgumentException e)
            {
                throw new NotSupportedException($"The model format cannot store layer '{layer.Name}': {Problem(e)}", e);
            }

            if (p.Value.Rank > byte.MaxValue)
            {
                throw new NotSupportedException($"The model format cannot store layer '{layer.Name}': parameter '{p.Name}' has rank {p.Value.Rank}, at most 255.");
            }
        }

        w.Write((byte)tensors.Count);
        foreach (var p in tensors)
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
        if (layerCount is < 1 or > NetworkLimits.MaxLayers) throw new ModelFormatException(path, $"expected 1 to {NetworkLimits.MaxLayers:N0} layers, found {layerCount}.");
        var dummy = new Random(0); // weights are overwritten below
        var tally = new NetworkTally([], problem => new ModelFormatException(path, problem)); // no input shape: layers and parameters
        var layers = new ILayer<T>[layerCount];
        for (int i = 0; i < layerCount; i++)
        {
            try
            {
                string what;
                if (version >= 2)
                {
                    (layers[i], what) = ReadDescribed(r, elementSize, path, i, layers, tally);
                }
                else
                {
                    var kind = (Kind)r.ReadByte();
                    layers[i] = kind switch
                    {
                        Kind.Conv => ReadConv(r, dummy, elementSize, path, i, tally),
                        Kind.Relu => new Relu<T>(),
                        Kind.MaxPool2x2 => new MaxPool2x2<T>(),
                        Kind.Flatten => new Flatten<T>(),
                        Kind.Linear => ReadLinear(r, dummy, elementSize, path, i, tally),
                        _ => throw new ModelFormatException(path, $"layer {i}: unknown layer kind {(byte)kind}."),
                    };
                    what = NetworkLimits.Describe(i, layers[i]);
                }

                if (tally.Layers == i) tally.Reserve(i, what, NetworkLimits.StoredElements(layers[i])); // not reserved before it was built: no weights, or a layer of your own

                var stored = StoredTensors(layers[i]);
                int tensors = r.ReadByte();
                if (tensors != stored.Count)
                {
                    throw new ModelFormatException(path, $"layer {i} ({layers[i].Name}): expected {stored.Count} tensors, found {tensors}.");
                }

                foreach (var (name, value) in stored) ReadTensor(r, name, value, elementSize, path, i, what);
                if (NetworkLimits.ValueProblem(layers[i]) is { } problem)
                {
                    throw new ModelFormatException(path, $"{what}: {problem}");
                }
            }
            catch (EndOfStreamException)
            {
                throw new ModelFormatException(path,
                    $"truncated: the file ends inside layer {i} of the {layerCount} it declares ({bytes.Length:N0} bytes in all).");
            }
        }

        var network = new Sequential<T>(layers);
        try
        {
            if (version >= 3) ReadMetadata(r, path, network);
        }
        catch (EndOfStreamException)
        {
            throw new ModelFormatException(path, $"truncated: the file ends inside the metadata after the last layer ({bytes.Length:N0} bytes in all).");
        }

        if (r.BaseStream.Position != r.BaseStream.Length)
        {
            throw new ModelFormatException(path, $"{r.BaseStream.Length - r.BaseStream.Position} unexpected bytes after the {(version >= 3 ? "metadata" : "last layer")}.");
        }

        return network;

        static Conv<T> ReadConv(BinaryReader r, Random dummy, int elementSize, string path, int layer, NetworkTally tally)
        {
            int inC = r.ReadInt32(), outC = r.ReadInt32(), kh = r.ReadInt32(), kw = r.ReadInt32(), stride = r.ReadInt32(), pad = r.ReadInt32();
            string what = $"layer {layer} (Conv in {inC}, out {outC}, kernel {kh}x{kw}, stride {stride}, padding {pad})";
            CheckRange(path, what, ("in channels", inC, 1), ("out channels", outC, 1), ("kernel height", kh, 1), ("kernel width", kw, 1),
                ("stride", stride, 1), ("padding", pad, 0));
            EnsureHolds(r, path, what, (Int128)outC * inC * kh * kw + outC, elementSize);
            tally.Reserve(layer, what, (long)outC * inC * kh * kw + outC);
            return new Conv<T>(inC, outC, kh, kw, dummy, stride, pad);
        }

        static Linear<T> ReadLinear(BinaryReader r, Random dummy, int elementSize, string path, int layer, NetworkTally tally)
        {
            int inF = r.ReadInt32(), outF = r.ReadInt32();
            string what = $"layer {layer} (Linear {inF} → {outF})";
            CheckRange(path, what, ("in features", inF, 1), ("out features", outF, 1));
            EnsureHolds(r, path, what, (Int128)inF * outF + outF, elementSize);
            tally.Reserve(layer, what, (long)inF * outF + outF);
            return new Linear<T>(inF, outF, dummy);
        }
    }

    /// <summary>
    /// A version-2 layer and how messages name it: its description (refused as the file's fault when a name or value is
    /// not one a description takes), the built-in layers' range and size checks (before anything is allocated), then the
    /// registered factory, whose failures, null or another kind of layer, or a layer already in the network, are the
    /// file's fault too.
    /// </summary>
    private static (ILayer<T> Layer, string What) ReadDescribed<T>(BinaryReader r, int elementSize, string path, int layer, ILayer<T>[] earlier, NetworkTally tally)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string type = ReadName(r);
        int count = r.ReadByte();
        if (count > LayerDescription.MaxSettings)
        {
            throw new ModelFormatException(path, $"layer {layer} ('{LayerDescription.Shown(type)}'): expected at most {LayerDescription.MaxSettings} settings, found {count}.");
        }

        var settings = new (string, double)[count];
        for (int s = 0; s < count; s++) settings[s] = (ReadName(r), r.ReadDouble());
        LayerDescription description;
        try
        {
            description = new LayerDescription(type, settings);
        }
        catch (ArgumentException e)
        {
            throw new ModelFormatException(path, $"layer {layer}: {Problem(e)}");
        }

        string shown = description.ToString();
        string what = $"layer {layer} ({(shown.Length <= 200 ? shown : $"{shown[..200]}… ({shown.Length:N0} characters)")})";
        try
        {
            switch (type)
            {
                case "Conv":
                    int inC = description.GetInt("in", 1, MaxDimension), outC = description.GetInt("out", 1, MaxDimension);
                    int kh = description.GetInt("kh", 1, MaxDimension), kw = description.GetInt("kw", 1, MaxDimension);
                    description.GetInt("stride", 1, MaxDimension);
                    description.GetInt("padding", 0, MaxDimension);
                    EnsureHolds(r, path, what, (Int128)outC * inC * kh * kw + outC, elementSize);
                    tally.Reserve(layer, what, (long)outC * inC * kh * kw + outC);
                    break;
                case "Linear":
                    int inF = description.GetInt("in", 1, MaxDimension), outF = description.GetInt("out", 1, MaxDimension);
                    EnsureHolds(r, path, what, (Int128)inF * outF + outF, elementSize);
                    tally.Reserve(layer, what, (long)inF * outF + outF);
                    break;
                case "BatchNorm1d" or "BatchNorm2d":
                    int channels = description.GetInt(type == "BatchNorm1d" ? "features" : "channels", 1, MaxDimension);
                    BatchNorm<T>.CheckSettings(description.Get("eps"), description.Get("momentum"));
                    bool affine = description.GetInt("affine", 0, 1) == 1;
                    EnsureHolds(r, path, what, (Int128)channels * (affine ? 4 : 2), elementSize);
                    tally.Reserve(layer, what, (long)channels * (affine ? 4 : 2));
                    break;
                case "MaxPool2d" or "AvgPool2d": // nothing is allocated by these settings: what the constructor takes, a saved pool loads
                    int kernel = description.GetInt("kernel", 1);
                    description.GetInt("stride", 1);
                    description.GetInt("padding", 0, kernel / 2);
                    break;
                case "Dropout":
                    double p = description.Get("p");
                    if (!(p >= 0 && p < 1)) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"Layer 'Dropout': setting 'p' must be at least 0 and below 1, found {p}."));
                    description.GetInt("seed");
                    break;
                case "LeakyRelu":
                    description.Get("slope"); // any finite number, which a description holds
                    break;
            }
        }
        catch (ArgumentException e)
        {
            throw new ModelFormatException(path, $"{what}: {Problem(e)}");
        }

        var create = LayerRegistry.FactoryOf<T>(type) ?? throw new ModelFormatException(path,
            $"{what}: expected a built-in layer type ({string.Join(", ", LayerRegistry.BuiltInTypes)}) or one registered for {typeof(T).Name} with LayerRegistry.Register, found '{type}'.");
        ILayer<T>? made;
        try
        {
            made = create(description);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelFormatException(path, $"{what}: cannot be built: the factory registered for '{type}' threw {e.GetType().Name}: {OneLine(e.Message)}", e);
        }

        ILayer<T> built;
        try
        {
            built = LayerRegistry.Checked(description, made); // null, or another kind of layer
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelFormatException(path, $"{what}: cannot be built: {OneLine(e.Message)}", e);
        }

        int same = Array.FindIndex(earlier, 0, layer, l => ReferenceEquals(l, built));
        if (same >= 0)
        {
            throw new ModelFormatException(path, $"{what}: the factory registered for '{type}' returned the layer it built for layer {same}, expected a new one.");
        }

        return (built, what);
    }

    /// <summary>An argument exception's message without its "(Parameter '…')" suffix, on one line.</summary>
    private static string Problem(ArgumentException e) =>
        OneLine(e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message);

    /// <summary>A name: a length byte and that many UTF-8 bytes (<see cref="EndOfStreamException"/> when the file has fewer).</summary>
    private static string ReadName(BinaryReader r) => Encoding.UTF8.GetString(ReadNameBytes(r));

    private static byte[] ReadNameBytes(BinaryReader r)
    {
        int length = r.ReadByte();
        byte[] bytes = r.ReadBytes(length);
        if (bytes.Length < length) throw new EndOfStreamException();
        return bytes;
    }

    /// <summary>Decodes class names strictly: an invalid byte sequence is refused, not turned into U+FFFD.</summary>
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>Class <paramref name="index"/>'s name; bytes that are not valid UTF-8 (an overlong form, a surrogate, a stray byte) are the file's fault.</summary>
    private static string ReadClassName(BinaryReader r, string path, int index)
    {
        byte[] bytes = ReadNameBytes(r);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            string shown = Convert.ToHexString(bytes.AsSpan(0, Math.Min(bytes.Length, 32))) + (bytes.Length > 32 ? "…" : "");
            throw new ModelFormatException(path, $"metadata: the name of class {index} is not valid UTF-8 (bytes {shown}).");
        }
    }

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

    private static void ReadTensor<T>(BinaryReader r, string expectedName, Tensor<T> tensor, int elementSize, string path, int layer, string what)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        string name = ReadName(r);
        int rank = r.ReadByte();
        var dims = new int[rank];
        for (int d = 0; d < rank; d++) dims[d] = r.ReadInt32();
        if (name != expectedName || !tensor.HasShape(dims))
        {
            throw new ModelFormatException(path,
                $"layer {layer}: expected tensor '{expectedName}' {tensor.ShapeString}, found '{name}' {Tensor<T>.ShapeToString(dims)}.");
        }

        EnsureHolds(r, path, $"{what}: tensor '{expectedName}' {tensor.ShapeString}", tensor.Length, elementSize);

        Span<T> values = tensor.Span;
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = elementSize == 4 ? T.CreateTruncating(r.ReadSingle()) : T.CreateTruncating(r.ReadDouble());
        }
    }

    private static int ElementSize<T>() =>
        typeof(T) == typeof(float) ? 4 : typeof(T) == typeof(double) ? 8
        : throw new NotSupportedException($"Models store float or double, not {typeof(T).Name}.");
}
