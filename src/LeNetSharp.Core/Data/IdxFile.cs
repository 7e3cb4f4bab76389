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
        : base($"{path}: {EscapeControl(problem)}")
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
    /// <exception cref="IdxFormatException">
    /// Not a regular file (a directory, FIFO or device is refused without being opened or read), wrong magic, a
    /// truncated header or body, trailing bytes, or a corrupt gzip stream. Nothing is allocated for the data until
    /// the file is shown to hold it (raw: compared with the file's length; gzip: the buffer grows as bytes arrive).
    /// </exception>
    /// <exception cref="IOException">The file cannot be read (permission denied).</exception>
    public static (int[] Dimensions, byte[] Data) Read(string path, int expectedMagic)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = SafeFile.OpenRead(path, problem => new IdxFormatException(path, problem));
        Span<byte> sniff = stackalloc byte[2];
        int got = file.ReadAtLeast(sniff, 2, throwOnEndOfStream: false);
        file.Position = 0;
        if (got == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b)
        {
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            try
            {
                return ReadFrom(gzip, path, expectedMagic, compressedLength: file.Length);
            }
            catch (InvalidDataException e)
            {
                throw new IdxFormatException(path, $"corrupt gzip stream ({e.Message}).");
            }
            catch (IdxFormatException) when (IsCorruptGzip(gzip))
            {
                // Corrupt deflate data inflates to garbage before the gzip checksum can say so: report the cause.
                throw new IdxFormatException(path, "corrupt gzip stream (its content fails the gzip CRC-32 or cannot be inflated).");
            }
        }

        return ReadFrom(file, path, expectedMagic, compressedLength: null);
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

    /// <summary>Reads a gzip stream to its end (into a small scratch buffer) to see whether it is corrupt.</summary>
    private static bool IsCorruptGzip(GZipStream gzip)
    {
        var scratch = new byte[1 << 16];
        try
        {
            while (gzip.Read(scratch) > 0)
            {
            }

            return false;
        }
        catch (InvalidDataException)
        {
            return true;
        }
    }

    /// <summary>Parses the IDX content of <paramref name="stream"/>: the raw file, or the gzip stream over it.</summary>
    /// <param name="stream">The content, positioned at the magic number.</param>
    /// <param name="path">The file, for messages.</param>
    /// <param name="expectedMagic">The magic number wanted.</param>
    /// <param name="compressedLength">The gzip file's length, or null when <paramref name="stream"/> is the raw file (seekable).</param>
    private static (int[] Dimensions, byte[] Data) ReadFrom(Stream stream, string path, int expectedMagic, long? compressedLength)
    {
        string content = compressedLength is null ? "the file" : "the decompressed content";
        Span<byte> word = stackalloc byte[4];
        if (stream.ReadAtLeast(word, 4, throwOnEndOfStream: false) < 4)
        {
            throw new IdxFormatException(path, $"truncated: {content} ends before its 4-byte magic number.");
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
                throw new IdxFormatException(path, $"truncated: the header should hold {rank} sizes, {content} ends after {i}.");
            }

            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0) throw new IdxFormatException(path, $"size {i} is negative ({dims[i]}).");
            length *= dims[i];
            if (length > Array.MaxLength) throw new IdxFormatException(path, $"sizes ({string.Join(", ", dims[..(i + 1)])}) are too large.");
        }

        string sizes = string.Join(", ", dims);
        byte[] data;
        if (compressedLength is null)
        {
            // Raw: the file's length is known, so a size that the file cannot hold is refused before allocating.
            long left = stream.Length - stream.Position;
            if (left != length)
            {
                throw new IdxFormatException(path, left < length
                    ? $"truncated: sizes ({sizes}) need {length} data bytes, the file has {left}."
                    : $"has bytes after the {length} data bytes that sizes ({sizes}) announce ({left - length} more).");
            }

            data = new byte[length];
            stream.ReadExactly(data);
            return (dims, data);
        }

        // Gzip: the inflated length is unknown until read, so the buffer grows with the bytes that really arrive.
        data = SafeFile.ReadUpTo(stream, length, initialCapacity: 4 * compressedLength.Value + 65536);
        if (data.Length < length)
        {
            throw new IdxFormatException(path, $"truncated: sizes ({sizes}) need {length} data bytes, the file has {data.Length}.");
        }

        if (stream.ReadByte() >= 0)
        {
            throw new IdxFormatException(path, $"has bytes after the {length} data bytes that sizes ({sizes}) announce.");
        }

        return (dims, data);
    }
}
