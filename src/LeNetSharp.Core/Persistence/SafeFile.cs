using System.Runtime.InteropServices;

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
/// .NET's public file API cannot tell an empty regular file from a FIFO or a device (both report length 0 and
/// <see cref="FileAttributes.Normal"/>), so on Unix the kind comes from stat(2) through the runtime's own native
/// shim (libSystem.Native, shipped with every .NET runtime; no extra dependency). Where that is unavailable the
/// public API's answer (directory, file or missing) is used.
/// </remarks>
internal static class SafeFile
{
    private const int SIfmt = 0xF000, SIfifo = 0x1000, SIfchr = 0x2000, SIfdir = 0x4000, SIfblk = 0x6000, SIfreg = 0x8000, SIfsock = 0xC000;
    private const int ENOENT = 2, EACCES = 13, ENOTDIR = 20, ELOOP = 40;
    private static bool _nativeUnavailable;

    /// <summary>The kind of file at <paramref name="path"/>, following symbolic links.</summary>
    public static FileKind KindOf(string path)
    {
        if (!OperatingSystem.IsWindows() && !_nativeUnavailable)
        {
            try
            {
                var status = new byte[256]; // the shim's FileStatus is about 100 bytes; Mode is the int32 at offset 4
                if (Native.Stat(path, status) == 0)
                {
                    return (BitConverter.ToInt32(status, 4) & SIfmt) switch
                    {
                        SIfreg => FileKind.Regular,
                        SIfdir => FileKind.Directory,
                        SIfifo => FileKind.Fifo,
                        SIfchr => FileKind.CharacterDevice,
                        SIfblk => FileKind.BlockDevice,
                        SIfsock => FileKind.Socket,
                        _ => FileKind.Other,
                    };
                }

                int errno = Marshal.GetLastPInvokeError(); // stat's errno, as the platform numbers it
                return errno switch
                {
                    EACCES => FileKind.Inaccessible,
                    ENOENT or ENOTDIR => FileKind.Missing,
                    ELOOP when OperatingSystem.IsLinux() => FileKind.LinkLoop,
                    _ => Fallback(path),
                };
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                _nativeUnavailable = true;
            }
        }

        return Fallback(path);

        static FileKind Fallback(string path) =>
            Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;
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
    public static byte[] ReadUpTo(Stream stream, long count, long initialCapacity)
    {
        long capacity = Math.Clamp(initialCapacity, 0, count);
        var buffer = new byte[capacity];
        long filled = 0;
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

    /// <summary>The runtime's own POSIX shim (libSystem.Native, part of every .NET runtime on Unix).</summary>
    private static class Native
    {
        [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
        public static extern int Stat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, [Out] byte[] status);
    }
}
