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
    public ModelFormatException(string path, string problem) : base($"{path}: {problem}")
    {
        FilePath = path;
    }

    /// <summary>The offending file.</summary>
    public string FilePath { get; }
}

/// <summary>
/// Saves and loads a <see cref="Sequential{T}"/> of built-in layers: architecture and weights in one
/// little-endian file, checked by SHA-256, written atomically.
/// <code>
/// "LNSM"                      4 bytes magic
/// version                     uint16 (1)
/// element size                uint8 (4: float32, 8: float64)
/// layer count                 int32
/// per layer: kind             uint8 (1 Conv, 2 Relu, 3 MaxPool2x2, 4 Flatten, 5 Linear)
///            hyper-parameters int32s: Conv (in, out, kh, kw, stride, padding); Linear (in, out); others none
///            tensor count     uint8, then per tensor: name (uint8 length + UTF-8), rank (uint8), dims (int32 each),
///                             elements (row-major)
/// SHA-256                     32 bytes over everything before it
/// </code>
/// </summary>
public static class ModelFile
{
    /// <summary>The current format version.</summary>
    public const int Version = 1;

    private static readonly byte[] Magic = "LNSM"u8.ToArray();
    private const int HashSize = 32;

    private enum Kind : byte { Conv = 1, Relu = 2, MaxPool2x2 = 3, Flatten = 4, Linear = 5 }

    /// <summary>Writes <paramref name="network"/> to <paramref name="path"/> atomically: a crash mid-save leaves the previous file intact.</summary>
    /// <param name="network">A network made of Conv, Relu, MaxPool2x2, Flatten and Linear layers.</param>
    /// <param name="path">Destination file.</param>
    /// <typeparam name="T">Element type; stored as is.</typeparam>
    /// <exception cref="NotSupportedException">The network has a layer type this format does not know.</exception>
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
    /// <exception cref="ModelFormatException">Wrong magic or version, checksum mismatch (a flipped byte), truncation or inconsistent shapes.</exception>
    public static Sequential<T> Load<T>(string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: model file not found.", path);
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Deserialize<T>(bytes, path);
        }
        catch (Exception e) when (e is ArgumentException or EndOfStreamException or IndexOutOfRangeException)
        {
            throw new ModelFormatException(path, $"inconsistent content ({e.Message}).");
        }
    }

    internal static byte[] Serialize<T>(Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write((ushort)Version);
            w.Write((byte)ElementSize<T>());
            w.Write(network.Layers.Count);
            foreach (var layer in network.Layers)
            {
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

                w.Write((byte)layer.Parameters.Count);
                foreach (var p in layer.Parameters)
                {
                    byte[] name = Encoding.UTF8.GetBytes(p.Name);
                    w.Write((byte)name.Length);
                    w.Write(name);
                    w.Write((byte)p.Value.Rank);
                    foreach (int d in p.Value.Shape) w.Write(d);
                    foreach (T v in p.Value.Span)
                    {
                        if (typeof(T) == typeof(float)) w.Write(float.CreateTruncating(v));
                        else w.Write(double.CreateTruncating(v));
                    }
                }
            }
        }

        ms.Write(SHA256.HashData(ms.GetBuffer().AsSpan(0, (int)ms.Length)));
        return ms.ToArray();
    }

    internal static Sequential<T> Deserialize<T>(byte[] bytes, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int headerSize = Magic.Length + 2 + 1 + 4;
        if (bytes.Length < headerSize + HashSize)
        {
            throw new ModelFormatException(path, $"truncated: {bytes.Length} bytes, a model file has at least {headerSize + HashSize}.");
        }

        if (!bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new ModelFormatException(path, $"expected magic \"LNSM\", found \"{Encoding.ASCII.GetString(bytes, 0, Magic.Length)}\" (not a LeNetSharp model).");
        }

        int version = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(Magic.Length));
        if (version != Version) throw new ModelFormatException(path, $"expected format version {Version}, found {version}.");
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
            var kind = (Kind)r.ReadByte();
            layers[i] = kind switch
            {
                Kind.Conv => ReadConv(r, dummy),
                Kind.Relu => new Relu<T>(),
                Kind.MaxPool2x2 => new MaxPool2x2<T>(),
                Kind.Flatten => new Flatten<T>(),
                Kind.Linear => new Linear<T>(r.ReadInt32(), r.ReadInt32(), dummy),
                _ => throw new ModelFormatException(path, $"layer {i}: unknown layer kind {(byte)kind}."),
            };
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

        static Conv<T> ReadConv(BinaryReader r, Random dummy)
        {
            int inC = r.ReadInt32(), outC = r.ReadInt32(), kh = r.ReadInt32(), kw = r.ReadInt32(), stride = r.ReadInt32(), pad = r.ReadInt32();
            return new Conv<T>(inC, outC, kh, kw, dummy, stride, pad);
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
