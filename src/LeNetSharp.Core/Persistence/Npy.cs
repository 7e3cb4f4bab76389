using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.IO.Hashing;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;
using LeNetSharp.Tensors;

namespace LeNetSharp.Persistence;

/// <summary>Element type of an <see cref="NpyArray"/>: the little-endian floats NumPy writes as '&lt;f4' and '&lt;f8'.</summary>
public enum NpyDType
{
    /// <summary>'&lt;f4', float32.</summary>
    Float32,

    /// <summary>'&lt;f8', float64.</summary>
    Float64,
}

/// <summary>
/// A C-order array read from or written to NumPy's .npy format. Values are held as doubles (exact for both
/// element types); <see cref="DType"/> says how they are stored on disk.
/// </summary>
public sealed class NpyArray
{
    /// <summary>Creates an array.</summary>
    /// <param name="shape">Dimensions, outermost first (empty for a scalar).</param>
    /// <param name="values">The product of <paramref name="shape"/> values, C order.</param>
    /// <param name="dtype">The on-disk element type.</param>
    /// <exception cref="ArgumentException">The value count does not match the shape.</exception>
    public NpyArray(int[] shape, double[] values, NpyDType dtype = NpyDType.Float64)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(values);
        long count = shape.Aggregate(1L, (a, d) => a * d);
        if (shape.Any(d => d < 0) || count != values.Length)
        {
            throw new ArgumentException($"Shape ({string.Join(", ", shape)}) needs {count} values, got {values.Length}.", nameof(values));
        }

        Shape = shape;
        Values = values;
        DType = dtype;
    }

    /// <summary>Dimensions, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The values in C order.</summary>
    public double[] Values { get; }

    /// <summary>How the values are stored on disk.</summary>
    public NpyDType DType { get; }

    /// <summary>The array as a tensor of <typeparamref name="T"/> (same shape; a scalar becomes shape (1)).</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new tensor.</returns>
    public Tensor<T> ToTensor<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
        new(Values.Select(T.CreateTruncating).ToArray(), Shape.Length == 0 ? [1] : Shape);

    /// <summary>An array with the tensor's shape and values.</summary>
    /// <param name="tensor">The source.</param>
    /// <param name="dtype">The on-disk element type (default float64, as the tutorial's files).</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>A new array.</returns>
    public static NpyArray FromTensor<T>(Tensor<T> tensor, NpyDType dtype = NpyDType.Float64) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return new NpyArray(tensor.Shape.ToArray(), tensor.Data.Select(double.CreateTruncating).ToArray(), dtype);
    }
}

/// <summary>
/// NumPy's .npy (one array) and .npz (a zip of .npy files, stored or deflated) formats: format versions 1.0,
/// 2.0 and 3.0, little-endian float32/float64, C order. Fortran order and other dtypes are refused with a
/// message that names the file and what was found.
/// </summary>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    private static readonly Regex DescrPattern = new(@"['""]descr['""]\s*:\s*['""]([^'""]*)['""]", RegexOptions.Compiled);
    private static readonly Regex FortranPattern = new(@"['""]fortran_order['""]\s*:\s*(True|False)", RegexOptions.Compiled);
    private static readonly Regex ShapePattern = new(@"['""]shape['""]\s*:\s*\(([^)]*)\)", RegexOptions.Compiled);

    /// <summary>The largest .npy header accepted (64 KiB; NumPy itself refuses headers above 10,000 bytes by default).</summary>
    internal const int MaxHeaderLength = 1 << 16;

    /// <summary>
    /// The largest compression ratio a deflated .npz entry may declare (1,032:1, deflate's own limit): an entry whose
    /// declared size exceeds its compressed size times this is refused before it is inflated.
    /// </summary>
    internal const int MaxCompressionRatio = 1032;

    /// <summary>The largest inflated size of one .npz entry (256 MiB), checked before and while inflating.</summary>
    internal const long MaxEntryBytes = 256L << 20;

    /// <summary>Reads a .npy file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The array.</returns>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="ModelFormatException">
    /// Not a regular file (a directory, FIFO or device is refused unread), not a .npy file, an unsupported version or
    /// dtype, Fortran order, a header over 64 KiB, a header or data size the file cannot hold (refused before
    /// allocating), or trailing bytes.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read (permission denied).</exception>
    public static NpyArray Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = SafeFile.OpenRead(path, problem => new ModelFormatException(path, problem));
        var array = Read(stream, path, stream.Length);
        if (stream.Position != stream.Length) throw new ModelFormatException(path, $"has {stream.Length - stream.Position} bytes after the array.");
        return array;
    }

    /// <summary>Reads one .npy array from a stream.</summary>
    /// <param name="stream">Positioned at the magic string; read to the end of the array.</param>
    /// <param name="name">The file (or file/entry) name for error messages.</param>
    /// <returns>The array.</returns>
    /// <exception cref="ModelFormatException">As <see cref="Read(string)"/>.</exception>
    public static NpyArray Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Read(stream, name, stream.CanSeek ? stream.Length - stream.Position : null);
    }

    /// <summary>
    /// Reads one array; <paramref name="available"/> is how many bytes the stream holds (or at most holds), when known.
    /// Unless the stream is seekable (a file, whose length is a fact), data buffers grow as bytes arrive.
    /// </summary>
    private static NpyArray Read(Stream stream, string name, long? available)
    {
        ModelFormatException Refuse(string problem) => new(name, problem);
        var prefix = new byte[8];
        if (stream.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8 || !prefix.AsSpan(0, 6).SequenceEqual(Magic))
        {
            throw Refuse("not a .npy file (expected the magic string \\x93NUMPY).");
        }

        int major = prefix[6], minor = prefix[7];
        if (major is not (1 or 2 or 3) || minor != 0)
        {
            throw Refuse($"expected .npy format version 1.0, 2.0 or 3.0, found {major}.{minor}.");
        }

        var lengthBytes = new byte[major == 1 ? 2 : 4];
        ReadExactly(stream, lengthBytes, name, "header length");
        long headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(lengthBytes) : BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
        long left = available is { } a ? a - 8 - lengthBytes.Length : long.MaxValue;
        if (headerLength > MaxHeaderLength || headerLength > left)
        {
            throw Refuse(headerLength > left
                ? $"truncated: the header declares {headerLength:N0} bytes, the file has {left:N0} left."
                : $"the header declares {headerLength:N0} bytes, above the {MaxHeaderLength:N0} accepted.");
        }

        var headerBytes = new byte[headerLength];
        ReadExactly(stream, headerBytes, name, "header");
        left -= headerLength;
        string header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(headerBytes);

        string descr = Match(DescrPattern, header, name, "descr");
        if (Match(FortranPattern, header, name, "fortran_order") == "True")
        {
            throw Refuse("Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray).");
        }

        var dtype = descr switch
        {
            "<f4" => NpyDType.Float32,
            "<f8" => NpyDType.Float64,
            _ => throw Refuse($"unsupported dtype '{Shorten(descr)}'; expected '<f4' (float32) or '<f8' (float64), little-endian."),
        };
        int[] shape = Match(ShapePattern, header, name, "shape")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => int.TryParse(d.TrimEnd('L'), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0
                ? v
                : throw Refuse($"bad dimension '{Shorten(d)}' in shape."))
            .ToArray();
        int size = dtype == NpyDType.Float32 ? 4 : 8;
        string shapeText = $"({string.Join(", ", shape)})";
        long count = ElementCount(shape, Array.MaxLength / size)
            ?? throw Refuse($"shape {shapeText} is too large (more than {Array.MaxLength / size:N0} elements of '{descr}').");
        long bytes = count * size;
        if (bytes > left)
        {
            throw Refuse($"truncated: shape {shapeText} of '{descr}' needs {bytes:N0} data bytes, the file has {left:N0}.");
        }

        bool lengthIsKnown = stream.CanSeek;
        byte[] data = lengthIsKnown ? new byte[bytes] : SafeFile.ReadUpTo(stream, bytes, initialCapacity: 1 << 16);
        long read = lengthIsKnown ? stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false) : data.Length;
        if (read < bytes)
        {
            throw Refuse($"truncated: shape {shapeText} of '{descr}' needs {bytes:N0} data bytes, found {read:N0}.");
        }

        var values = new double[count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = dtype == NpyDType.Float32
                ? BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(4 * i))
                : BinaryPrimitives.ReadDoubleLittleEndian(data.AsSpan(8 * i));
        }

        return new NpyArray(shape, values, dtype);
    }

    /// <summary>The product of <paramref name="shape"/>, or null when it exceeds <paramref name="max"/> (never overflows).</summary>
    private static long? ElementCount(int[] shape, long max)
    {
        if (shape.Contains(0)) return 0;
        long count = 1;
        foreach (int d in shape)
        {
            count *= d; // count ≤ max < 2^31 and d < 2^31 before this: no overflow
            if (count > max) return null;
        }

        return count;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    /// <summary>Writes a .npy file (format 1.0, as NumPy does for ordinary arrays) atomically.</summary>
    /// <param name="path">Destination.</param>
    /// <param name="array">The array.</param>
    public static void Write(string path, NpyArray array)
    {
        ArgumentNullException.ThrowIfNull(array);
        AtomicFile.Write(path, s => Write(s, array));
    }

    /// <summary>Writes one .npy array (format 1.0) to a stream.</summary>
    /// <param name="stream">Destination.</param>
    /// <param name="array">The array.</param>
    public static void Write(Stream stream, NpyArray array)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(array);
        string shape = array.Shape.Length == 1 ? $"({array.Shape[0]},)" : $"({string.Join(", ", array.Shape)})";
        string dict = $"{{'descr': '{(array.DType == NpyDType.Float32 ? "<f4" : "<f8")}', 'fortran_order': False, 'shape': {shape}, }}";
        int unpadded = Magic.Length + 2 + 2 + dict.Length + 1;
        string header = dict + new string(' ', (64 - unpadded % 64) % 64) + "\n"; // NumPy aligns the data to 64 bytes
        stream.Write(Magic);
        stream.Write([1, 0]);
        Span<byte> length = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(length, checked((ushort)header.Length));
        stream.Write(length);
        stream.Write(Encoding.Latin1.GetBytes(header));
        int size = array.DType == NpyDType.Float32 ? 4 : 8;
        var data = new byte[array.Values.Length * size];
        for (int i = 0; i < array.Values.Length; i++)
        {
            if (size == 4) BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4 * i), (float)array.Values[i]);
            else BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(8 * i), array.Values[i]);
        }

        stream.Write(data);
    }

    /// <summary>Reads every array of a .npz file (as written by np.savez or np.savez_compressed).</summary>
    /// <param name="path">The file.</param>
    /// <returns>The arrays by key (the entry name without ".npy").</returns>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="ModelFormatException">
    /// Not a regular file, not a zip archive, an entry that is not a supported .npy array, an entry whose CRC-32 does not
    /// match its content (as NumPy's "Bad CRC-32"), an entry that inflates to another size than it declares, or one
    /// that would inflate to more than 256 MiB or by more than 1,032:1 (deflate's own limit; refused before inflating,
    /// and bytes are counted while inflating), or two entries of the same name.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read (permission denied).</exception>
    public static IReadOnlyDictionary<string, NpyArray> ReadNpz(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = SafeFile.OpenRead(path, problem => new ModelFormatException(path, problem));
        try
        {
            using var zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
            var arrays = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
            foreach (var entry in zip.Entries)
            {
                string name = $"{path}:{entry.FullName}";
                string key = entry.FullName.EndsWith(".npy", StringComparison.Ordinal) ? entry.FullName[..^4] : entry.FullName;
                long declared = entry.Length, compressed = entry.CompressedLength;
                if (declared > MaxEntryBytes || declared > compressed * MaxCompressionRatio + 1024)
                {
                    throw new ModelFormatException(name,
                        $"declares {declared:N0} bytes from {compressed:N0} compressed; at most {MaxEntryBytes:N0} bytes and a ratio of {MaxCompressionRatio}:1 are accepted.");
                }

                using var checkedStream = new CheckedEntryStream(entry.Open(), declared);
                var array = Read(checkedStream, name, declared);
                checkedStream.Drain();
                if (checkedStream.Count != declared || checkedStream.Overflowed)
                {
                    throw new ModelFormatException(name, checkedStream.Overflowed
                        ? $"inflates to more than the {declared:N0} bytes it declares."
                        : $"inflates to {checkedStream.Count:N0} bytes, it declares {declared:N0}.");
                }

                if (checkedStream.Crc != entry.Crc32)
                {
                    throw new ModelFormatException(name,
                        $"Bad CRC-32: the archive records 0x{entry.Crc32:x8}, the content hashes to 0x{checkedStream.Crc:x8} (corrupt).");
                }

                if (!arrays.TryAdd(key, array)) throw new ModelFormatException(path, $"holds two entries named '{entry.FullName}'.");
            }

            return arrays;
        }
        catch (Exception e) when (e is InvalidDataException or NotSupportedException or ArgumentException or EndOfStreamException
            or OverflowException || e is IOException && e is not ModelFormatException)
        {
            throw new ModelFormatException(path, $"not a valid .npz (zip) archive ({ModelFile.OneLine(e.Message)}).");
        }
    }

    /// <summary>
    /// A zip entry's content stream that counts bytes and computes their CRC-32 as they are read, and stops at the
    /// entry's declared size (noting whether more was there), so an entry can never inflate past what it declares.
    /// </summary>
    private sealed class CheckedEntryStream(Stream inner, long limit) : Stream
    {
        private readonly Crc32 _crc = new(); // zip's CRC-32 (IEEE 802.3, as gzip and PNG)

        public long Count { get; private set; }

        public uint Crc => _crc.GetCurrentHashAsUInt32();

        public bool Overflowed { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => Count; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty) return 0;
            if (Count >= limit)
            {
                Span<byte> probe = stackalloc byte[1];
                if (inner.Read(probe) > 0) Overflowed = true;
                return 0;
            }

            int read = inner.Read(buffer[..(int)Math.Min(buffer.Length, limit - Count)]);
            _crc.Append(buffer[..read]);
            Count += read;
            return read;
        }

        /// <summary>Reads what is left up to the limit (bytes after the array), so the count and CRC cover the entry.</summary>
        public void Drain()
        {
            var scratch = new byte[4096];
            while (Read(scratch) > 0)
            {
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>Writes arrays to a .npz file atomically, like np.savez (stored) or np.savez_compressed (deflated).</summary>
    /// <param name="path">Destination.</param>
    /// <param name="arrays">The arrays by key; each becomes entry key + ".npy".</param>
    /// <param name="compressed">Deflate the entries.</param>
    public static void WriteNpz(string path, IEnumerable<KeyValuePair<string, NpyArray>> arrays, bool compressed = false)
    {
        ArgumentNullException.ThrowIfNull(arrays);
        var list = arrays.ToList();
        AtomicFile.Write(path, s =>
        {
            using var zip = new ZipArchive(s, ZipArchiveMode.Create, leaveOpen: true);
            foreach (var (key, array) in list)
            {
                var entry = zip.CreateEntry(key + ".npy", compressed ? CompressionLevel.Optimal : CompressionLevel.NoCompression);
                using var e = entry.Open();
                Write(e, array);
            }
        });
    }

    private static string Match(Regex pattern, string header, string name, string key) =>
        pattern.Match(header) is { Success: true } m
            ? m.Groups[1].Value
            : throw new ModelFormatException(name, $"the .npy header has no '{key}': {header.Trim()}");

    private static void ReadExactly(Stream stream, byte[] buffer, string name, string what)
    {
        if (stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) < buffer.Length)
        {
            throw new ModelFormatException(name, $"truncated: the file ends inside its {what}.");
        }
    }
}

/// <summary>
/// The tutorial's weight file: an .npz with k1 (5,5,1,6), b1 (6), k2 (5,5,6,16), b2 (16), w3 (256,10), b3 (10),
/// float64, kernels as (kh, kw, cin, cout). LeNetSharp's LeNet uses the very same layouts, so the arrays map one
/// to one onto its parameters.
/// </summary>
public static class TutorialWeights
{
    private static readonly (string Key, int Layer, string Parameter)[] Map =
    [
        ("k1", 0, "weight"), ("b1", 0, "bias"), ("k2", 3, "weight"), ("b2", 3, "bias"), ("w3", 7, "weight"), ("b3", 7, "bias"),
    ];

    /// <summary>Builds a LeNet (see <see cref="Layers.LeNet"/>) holding the weights of a tutorial .npz file.</summary>
    /// <param name="path">The .npz file.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <returns>The network.</returns>
    /// <exception cref="ModelFormatException">A key is missing, an array has the wrong shape (the message names both shapes) or holds a value that is not a finite number in <typeparamref name="T"/>.</exception>
    public static Layers.Sequential<T> Import<T>(string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var arrays = Npy.ReadNpz(path);
        var network = Layers.LeNet.Create<T>(0);
        foreach (var (key, layer, name) in Map)
        {
            if (!arrays.TryGetValue(key, out var array))
            {
                throw new ModelFormatException(path, $"missing array '{key}'; a tutorial weight file has k1, b1, k2, b2, w3 and b3.");
            }

            var target = network.Layers[layer].Parameters.Single(p => p.Name == name).Value;
            if (!target.HasShape(array.Shape))
            {
                throw new ModelFormatException(path, $"array '{key}' should be {target.ShapeString}, found {Tensor<T>.ShapeToString(array.Shape)}.");
            }

            for (int i = 0; i < target.Length; i++)
            {
                T value = T.CreateTruncating(array.Values[i]);
                if (!T.IsFinite(value))
                {
                    throw new ModelFormatException(path, string.Create(CultureInfo.InvariantCulture,
                        $"array '{key}' element {i} is {array.Values[i]}{(double.IsFinite(array.Values[i]) ? $", beyond the range of {typeof(T).Name}" : "")}, expected a finite number."));
                }

                target.Data[i] = value;
            }
        }

        // LeNet is within every ceiling; checked here as every loader checks what it builds.
        Layers.NetworkLimits.Check(network.Layers, [Layers.LeNet.ImageSize, Layers.LeNet.ImageSize, 1], problem => new ModelFormatException(path, problem));
        return network;
    }

    /// <summary>How <paramref name="network"/> differs from the tutorial's LeNet (its layers, a weight's shape), or null when it is one.</summary>
    private static string? NotLeNet<T>(Layers.Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var reference = Layers.LeNet.Create<T>(0);
        string classes = network.ClassNames is { } names ? $", {names.Count} classes" : "";
        string taking = network.InputShape is var (h, w, c) ? $" (it takes {h}x{w}x{c} images{classes})" : "";
        int common = Math.Min(network.Layers.Count, reference.Layers.Count);
        if (Enumerable.Range(0, common).FirstOrDefault(k => network.Layers[k].Name != reference.Layers[k].Name, -1) is var i and >= 0)
        {
            return $"has {network.Layers[i].Name} as layer {i} where LeNet has {reference.Layers[i].Name}{taking}";
        }

        if (network.Layers.Count != reference.Layers.Count) return $"has {network.Layers.Count} layers, LeNet {reference.Layers.Count}{taking}";

        foreach (var (_, layer, parameter) in Map)
        {
            var expected = reference.Layers[layer].Parameters.Single(p => p.Name == parameter).Value;
            var actual = network.Layers[layer].Parameters.FirstOrDefault(p => p.Name == parameter)?.Value;
            if (actual is null || !actual.HasShape(expected.Shape))
            {
                return $"has a {network.Layers[layer].Name} {parameter} of shape {actual?.ShapeString ?? "(none)"}, LeNet's is {expected.ShapeString}{taking}";
            }
        }

        return null;
    }

    /// <summary>Writes a LeNet's weights as a tutorial .npz (float64, np.savez layout) that its numpy code can load.</summary>
    /// <param name="network">A network built by <see cref="Layers.LeNet"/> (or loaded from such a model).</param>
    /// <param name="path">Destination .npz.</param>
    /// <typeparam name="T">Element type.</typeparam>
    /// <exception cref="ArgumentException">The network does not have LeNet's layers or weight shapes (28x28x1 images, 10 classes); the message names <paramref name="path"/>, LeNet's and the network's.</exception>
    /// <exception cref="InvalidOperationException">A weight is not a finite number, so the file would not load back (nothing is written).</exception>
    public static void Export<T>(Layers.Sequential<T> network, string path) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (NotLeNet(network) is { } actual)
        {
            throw new ArgumentException(
                $"{path}: the tutorial's weight file holds only LeNet's weights for 28x28x1 images and {Layers.LeNet.Classes} classes; the network {actual}.", nameof(network));
        }

        for (int i = 0; i < network.Layers.Count; i++)
        {
            if (Layers.NetworkLimits.NonFiniteValue(network.Layers[i]) is { } problem)
            {
                throw new InvalidOperationException($"The tutorial's weight file cannot store layer {i} ({network.Layers[i].Name}): {problem} A file holding it would not load back.");
            }
        }

        Npy.WriteNpz(path, Map.Select(m => KeyValuePair.Create(
            m.Key, NpyArray.FromTensor(network.Layers[m.Layer].Parameters.Single(p => p.Name == m.Parameter).Value))));
    }
}
