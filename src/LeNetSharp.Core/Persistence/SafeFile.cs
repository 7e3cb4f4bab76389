using System.Formats.Tar;

namespace LeNetSharp.Persistence;

/// <summary>What a path names, following symbolic links.</summary>
internal enum FileKind
{
    Missing,
    Regular,
    Directory,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,
    Inaccessible,
    LinkLoop,
    Other,
}

/// <summary>
/// File checks shared by every reader and by <see cref="AtomicFile"/>: what kind of file a path is (checked
/// before it is opened, so a FIFO never blocks and a device is never read), and reads bounded by the file's length.
/// </summary>
/// <remarks>
/// <para>
/// Only public .NET APIs are used. Symbolic links are followed with <see cref="File.ResolveLinkTarget"/>, and
/// <see cref="File.GetAttributes(string)"/> tells a directory, a missing path and a denied one apart. It cannot tell a
/// regular file from a FIFO, a device or a socket (all are <see cref="FileAttributes.Normal"/>), and .NET has no
/// public API for the file type (st_mode's S_IFMT). Those special files all have a length of 0, so a non-empty file
/// is regular. For an empty one the type comes from <see cref="TarWriter.WriteEntry(string, string?)"/>: to archive
/// a path it lstat(2)s it and writes a header whose type flag is the file's type (FIFO, character or block device,
/// directory, regular file), and it refuses a socket. It opens and reads only a regular file (which never blocks),
/// so a FIFO or a device is never opened.
/// </para>
/// <para>On Windows the public API's answer (directory, file or missing) is used.</para>
/// </remarks>
internal static class SafeFile
{
    /// <summary>The HResult of an <see cref="IOException"/> made from a message alone (COR_E_IO); one from errno carries the errno.</summary>
    private const int PlainIOExceptionHResult = unchecked((int)0x80131620);

    /// <summary>The kind of file at <paramref name="path"/>, following symbolic links.</summary>
    public static FileKind KindOf(string path)
    {
        if (OperatingSystem.IsWindows()) return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;

        string target;
        FileAttributes attributes;
        try
        {
            // The final target of a chain of links (null when path is no link); a dangling link gives a missing target.
            target = File.ResolveLinkTarget(path, returnFinalTarget: true)?.FullName ?? path;
            attributes = File.GetAttributes(target);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or PathTooLongException)
        {
            return FileKind.Missing; // ENOENT, ENOTDIR (a file where a folder should be), ENAMETOOLONG
        }
        catch (UnauthorizedAccessException)
        {
            return FileKind.Inaccessible; // EACCES: a folder on the way may not be searched
        }
        catch (IOException)
        {
            // What is left in practice is ELOOP, "Too many levels of symbolic links": a loop of links, in the name or in
            // a folder on the way, or more links in a row than the system follows.
            return FileKind.LinkLoop;
        }

        if ((attributes & FileAttributes.Directory) != 0) return FileKind.Directory;
        try
        {
            if (new FileInfo(target).Length > 0) return FileKind.Regular;
            return KindOfEmpty(target);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return FileKind.Missing; // removed meanwhile
        }
        catch (UnauthorizedAccessException)
        {
            return FileKind.Inaccessible;
        }
    }

    /// <summary>The kind of an empty non-directory that is not a link, from the type flag of its tar header.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static FileKind KindOfEmpty(string path)
    {
        var header = new FirstHeader();
        try
        {
            // Only a regular file is opened, and its content (none, or what a /proc file holds) is read and discarded.
            using var tar = new TarWriter(header, TarEntryFormat.Ustar, leaveOpen: true);
            tar.WriteEntry(path, "entry");
        }
        catch (UnauthorizedAccessException)
        {
            // Its lstat worked a moment ago (File.GetAttributes), so this is the open that only a regular file gets.
            return FileKind.Regular;
        }
        catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException))
        {
            // With a header written, the content could not be read (/proc/self/mem): the reader reports that. Without
            // one: TarWriter gives every file type but one an entry, and refuses the other, a socket, before opening
            // anything ("not supported for tar archiving", a plain IOException); any other failure names no type.
            if (header.EntryType is null) return e.HResult == PlainIOExceptionHResult ? FileKind.Socket : FileKind.Other;
        }

        return header.EntryType switch
        {
            TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile => FileKind.Regular,
            TarEntryType.Directory => FileKind.Directory,
            TarEntryType.Fifo => FileKind.Fifo,
            TarEntryType.CharacterDevice => FileKind.CharacterDevice,
            TarEntryType.BlockDevice => FileKind.BlockDevice,
            _ => FileKind.Other, // a link that appeared since it was resolved, or no header
        };
    }

    /// <summary>The archive stream <see cref="KindOfEmpty"/> gives <see cref="TarWriter"/>: it keeps the first header and discards the rest.</summary>
    private sealed class FirstHeader : Stream
    {
        private const int HeaderSize = 512, TypeFlagOffset = 156; // POSIX ustar: a 512-byte header, the type flag at 156
        private readonly byte[] _header = new byte[HeaderSize];
        private int _filled;

        /// <summary>The header's type flag (the <see cref="TarEntryType"/> values are the flag characters); null before a whole header.</summary>
        public TarEntryType? EntryType => _filled == HeaderSize ? (TarEntryType)_header[TypeFlagOffset] : null;

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            int take = Math.Min(buffer.Length, HeaderSize - _filled);
            buffer[..take].CopyTo(_header.AsSpan(_filled));
            _filled += take;
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    /// <summary>"a directory", "a FIFO (named pipe)", … for messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Regular => "a regular file",
        FileKind.Directory => "a directory",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        FileKind.Missing => "nothing (no such file)",
        FileKind.Inaccessible => "a path that cannot be examined (permission denied)",
        FileKind.LinkLoop => "a loop of symbolic links",
        _ => "not a regular file",
    };

    /// <summary>
    /// Opens a regular file for reading after checking, without opening it, that it is one.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="refuse">Builds the format's exception from a problem description (the path is added by it).</param>
    /// <param name="notFound">The message of the <see cref="FileNotFoundException"/> for a missing file.</param>
    /// <exception cref="FileNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">Not a regular file (from <paramref name="refuse"/>), or unreadable.</exception>
    public static FileStream OpenRead(string path, Func<string, Exception> refuse, string? notFound = null)
    {
        var kind = KindOf(path);
        switch (kind)
        {
            case FileKind.Regular:
                break;
            case FileKind.Missing:
                throw new FileNotFoundException(notFound ?? $"{path}: file not found.", path);
            case FileKind.Inaccessible:
                throw new IOException($"{path}: cannot be read (permission denied).");
            default:
                throw refuse($"expected a regular file, found {Describe(kind)}; nothing was read.");
        }

        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        }
        catch (UnauthorizedAccessException)
        {
            throw new IOException($"{path}: cannot be read (permission denied).");
        }
    }

    /// <summary>Reads the rest of a file whose length is known, refusing one above <paramref name="maxBytes"/> before allocating.</summary>
    public static byte[] ReadRest(FileStream file, long maxBytes, Func<string, Exception> refuse)
    {
        long left = file.Length - file.Position;
        if (left > maxBytes) throw refuse($"is {file.Length:N0} bytes, above the {maxBytes:N0} this format accepts.");
        var bytes = new byte[left];
        int read = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        if (read < bytes.Length) throw refuse($"shrank while being read ({file.Length:N0} bytes announced, {file.Position:N0} read).");
        return bytes;
    }

    /// <summary>
    /// Reads up to <paramref name="count"/> bytes from a stream of unknown length (gzip, zip entry), growing the buffer
    /// only as bytes arrive: memory follows what the stream really holds, never what a header declares.
    /// </summary>
    /// <returns>The bytes read; shorter than <paramref name="count"/> when the stream ended first.</returns>
    public static byte[] ReadUpTo(Stream stream, long count, long initialCapacity) => ReadUpTo(stream, [], count, initialCapacity);

    /// <summary>
    /// Reads a caller's stream from where it stands to its end, after <paramref name="head"/> (what was already read
    /// from it), refusing more than <paramref name="maxBytes"/> in all; the stream is not closed. A seekable stream
    /// whose length says it holds more is refused before anything is read; any stream is read only as bytes arrive
    /// (short reads are fine), and the read stops one byte past the ceiling, whatever its length said: memory follows
    /// what the stream really holds, up to the ceiling.
    /// </summary>
    /// <param name="stream">A readable stream, seekable or not; left positioned after the last byte read.</param>
    /// <param name="head">The stream's first bytes, already read (a magic number checked before the rest); they start the result.</param>
    /// <param name="maxBytes">The most bytes accepted, head included.</param>
    /// <param name="tooLarge">The exception for a stream above the ceiling, given its size: "20,000,000 bytes" or "at least 1,025 bytes".</param>
    /// <returns>The head, then the rest of the stream.</returns>
    public static byte[] ReadStream(Stream stream, ReadOnlySpan<byte> head, long maxBytes, Func<string, Exception> tooLarge)
    {
        long initialCapacity = 1 << 16;
        if (stream.CanSeek)
        {
            long size = head.Length + Math.Max(0, stream.Length - stream.Position);
            if (size > maxBytes) throw tooLarge($"{size:N0} bytes");
            initialCapacity = Math.Min(size + 1, 1 << 20); // a hint only: the buffer grows with what arrives
        }

        byte[] bytes = ReadUpTo(stream, head, maxBytes + 1, initialCapacity);
        if (bytes.Length > maxBytes) throw tooLarge($"at least {maxBytes + 1:N0} bytes");
        return bytes;
    }

    /// <summary><see cref="ReadUpTo(Stream, long, long)"/> after <paramref name="head"/>, which starts the result and counts in <paramref name="count"/>.</summary>
    private static byte[] ReadUpTo(Stream stream, ReadOnlySpan<byte> head, long count, long initialCapacity)
    {
        long capacity = Math.Clamp(Math.Max(initialCapacity, head.Length), 0, count);
        var buffer = new byte[capacity];
        head.CopyTo(buffer);
        long filled = head.Length;
        while (filled < count)
        {
            if (filled == buffer.Length)
            {
                long grown = Math.Min(count, Math.Max(4096, 2 * (long)buffer.Length));
                Array.Resize(ref buffer, (int)grown);
            }

            int read = stream.Read(buffer, (int)filled, (int)(buffer.Length - filled));
            if (read == 0) break;
            filled += read;
        }

        if (filled < buffer.Length) Array.Resize(ref buffer, (int)filled);
        return buffer;
    }
}
