using System.Buffers.Binary;
using System.IO.Compression;
using LeNetSharp.Persistence;

namespace LeNetSharp.Data;

/// <summary>A file that is not a valid IDX file of the expected kind. The message names the file, what was expected and what was found.</summary>
public sealed class IdxFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The offending file.</param>
    /// <param name="problem">What was expected and what was found.</param>
    public IdxFormatException(string path, string problem)
        : base($"{path}: {problem}")
    {
        FilePath = path;
    }

    /// <summary>The offending file.</summary>
    public string FilePath { get; }
}

/// <summary>
/// Reads and writes IDX files of unsigned bytes (the MNIST format), raw or gzip-compressed.
/// <code>
/// offset 0 : int32 big-endian magic = 0x0000_08_0D  (0x08: unsigned byte, D: number of dimensions)
///            2049 for label files (1 dimension), 2051 for image files (3 dimensions)
/// offset 4 : D int32 big-endian sizes, outermost first (count, rows, columns)
/// then     : the product of the sizes in bytes, row-major
/// </code>
/// </summary>
public static class IdxFile
{
    /// <summary>Magic number of a one-dimensional unsigned-byte IDX file (MNIST labels).</summary>
    public const int LabelsMagic = 0x0801;

    /// <summary>Magic number of a three-dimensional unsigned-byte IDX file (MNIST images).</summary>
    public const int ImagesMagic = 0x0803;

    /// <summary>Reads an IDX file and checks its magic number.</summary>
    /// <param name="path">The file, raw or gzip (detected from its first two bytes, whatever its name).</param>
    /// <param name="expectedMagic"><see cref="LabelsMagic"/>, <see cref="ImagesMagic"/>, or another 0x08xx value.</param>
    /// <returns>The sizes (outermost first) and the data bytes.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="IdxFormatException">Wrong magic, a truncated header or body, trailing bytes, or a corrupt gzip stream.</exception>
    public static (int[] Dimensions, byte[] Data) Read(string path, int expectedMagic)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: file not found.", path);
        using var file = File.OpenRead(path);
        Stream stream = file;
        Span<byte> sniff = stackalloc byte[2];
        int got = file.ReadAtLeast(sniff, 2, throwOnEndOfStream: false);
        file.Position = 0;
        if (got == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b) stream = new GZipStream(file, CompressionMode.Decompress);
        try
        {
            using (stream)
            {
                return ReadFrom(stream, path, expectedMagic);
            }
        }
        catch (InvalidDataException e)
        {
            throw new IdxFormatException(path, $"corrupt gzip stream ({e.Message}).");
        }
    }

    /// <summary>Writes an IDX file of unsigned bytes atomically (temporary file + rename).</summary>
    /// <param name="path">The destination.</param>
    /// <param name="dimensions">Sizes, outermost first (1 to 255 of them).</param>
    /// <param name="data">Exactly the product of <paramref name="dimensions"/> bytes.</param>
    /// <param name="gzip">Compress with gzip.</param>
    /// <exception cref="ArgumentException">The data length does not match the dimensions.</exception>
    public static void Write(string path, int[] dimensions, ReadOnlySpan<byte> data, bool gzip = false)
    {
        ArgumentNullException.ThrowIfNull(dimensions);
        if (dimensions.Length is < 1 or > 255) throw new ArgumentException("An IDX file has 1 to 255 dimensions.", nameof(dimensions));
        long expected = dimensions.Aggregate(1L, (a, d) => a * d);
        if (expected != data.Length)
        {
            throw new ArgumentException($"Dimensions ({string.Join(", ", dimensions)}) need {expected} bytes, got {data.Length}.", nameof(data));
        }

        byte[] bytes = new byte[4 + 4 * dimensions.Length + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, 0x0800 | dimensions.Length);
        for (int i = 0; i < dimensions.Length; i++) BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + 4 * i), dimensions[i]);
        data.CopyTo(bytes.AsSpan(4 + 4 * dimensions.Length));
        AtomicFile.Write(path, stream =>
        {
            if (gzip)
            {
                using var z = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true);
                z.Write(bytes);
            }
            else
            {
                stream.Write(bytes);
            }
        });
    }

    private static (int[] Dimensions, byte[] Data) ReadFrom(Stream stream, string path, int expectedMagic)
    {
        Span<byte> word = stackalloc byte[4];
        if (stream.ReadAtLeast(word, 4, throwOnEndOfStream: false) < 4)
        {
            throw new IdxFormatException(path, "truncated: the file ends before its 4-byte magic number.");
        }

        int magic = BinaryPrimitives.ReadInt32BigEndian(word);
        if (magic != expectedMagic)
        {
            throw new IdxFormatException(path, $"expected magic {expectedMagic} (0x{expectedMagic:X8}), found {magic} (0x{magic:X8}).");
        }

        int rank = magic & 0xff;
        var dims = new int[rank];
        long length = 1;
        for (int i = 0; i < rank; i++)
        {
            if (stream.ReadAtLeast(word, 4, throwOnEndOfStream: false) < 4)
            {
                throw new IdxFormatException(path, $"truncated: the header should hold {rank} sizes, the file ends after {i}.");
            }

            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0) throw new IdxFormatException(path, $"size {i} is negative ({dims[i]}).");
            length *= dims[i];
            if (length > Array.MaxLength) throw new IdxFormatException(path, $"sizes ({string.Join(", ", dims[..(i + 1)])}) are too large.");
        }

        var data = new byte[length];
        int read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (read < data.Length)
        {
            throw new IdxFormatException(path,
                $"truncated: sizes ({string.Join(", ", dims)}) need {data.Length} data bytes, the file has {read}.");
        }

        if (stream.ReadByte() >= 0)
        {
            throw new IdxFormatException(path, $"has bytes after the {data.Length} data bytes that sizes ({string.Join(", ", dims)}) announce.");
        }

        return (dims, data);
    }
}
