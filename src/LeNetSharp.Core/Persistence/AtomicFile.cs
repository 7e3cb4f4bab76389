using System.Diagnostics;
using System.Text.RegularExpressions;

namespace LeNetSharp.Persistence;

/// <summary>
/// Writes files so that readers see either the old complete file or the new complete file, never a torn one:
/// the content goes to a temporary file in the same folder, is flushed to disk, then renamed over the target and
/// flushed again so the rename is on disk too.
/// </summary>
/// <remarks>
/// A symbolic link is written through: its final target is replaced and the link stays. Only regular files are
/// replaced: a directory, device, FIFO or socket at the path is refused before anything is written. The file keeps
/// its permission bits (a 600 file stays 600). The temporary file (".NAME.tmp-PID-GUID") is removed on every
/// failure; those left by a killed process are removed by the next save to the same file.
/// </remarks>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> atomically with the bytes <paramref name="write"/> produces.</summary>
    /// <param name="path">The destination file (or a symbolic link to it); its folder is created if missing.</param>
    /// <param name="write">Writes the whole content to the given stream. If it throws, the destination is untouched.</param>
    /// <exception cref="IOException">
    /// The destination is not a regular file (directory, device, FIFO, socket), or could not be written or renamed; the
    /// message names the destination (the link's target for a link), and the previous file, if any, is intact.
    /// </exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var (target, kind) = Target(path);
        string directory = Path.GetDirectoryName(target)!;
        string name = Path.GetFileName(target);
        string temp = Path.Combine(directory, $".{name}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{target}: cannot create its folder {directory} ({e.Message}).", e);
        }

        try
        {
            RemoveStaleTemporaries(directory, name);
            UnixFileMode? mode = kind == FileKind.Regular && !OperatingSystem.IsWindows() ? File.GetUnixFileMode(target) : null;
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(stream);
                if (mode is { } keep && !OperatingSystem.IsWindows()) File.SetUnixFileMode(stream.SafeFileHandle, keep);
                stream.Flush(flushToDisk: true); // content and mode on disk before the name points at them
                if (!OperatingSystem.IsWindows())
                {
                    File.Move(temp, target, overwrite: true);

                    // POSIX makes a rename durable by an fsync(2) of the folder, and .NET has no public API for that
                    // (File.OpenHandle and FileStream refuse to open a directory). The best public substitute: flush
                    // the renamed file again through the handle still open. ext4 and XFS journal the rename with the
                    // file's inode (its ctime changed), so this commits the rename there; elsewhere it is at least not
                    // torn: readers see the old complete file until the file system commits the rename. Best effort,
                    // as the folder's flush was: the new file is complete and in place, so a failure here is not
                    // reported as a failed save.
                    try
                    {
                        stream.Flush(flushToDisk: true);
                    }
                    catch (IOException)
                    {
                    }
                }
            }

            // Windows cannot rename a file that is open without sharing; there the rename follows the close.
            if (OperatingSystem.IsWindows()) File.Move(temp, target, overwrite: true);
        }
        catch (Exception e) when (e is UnauthorizedAccessException || (e is IOException && e.Message.Contains(temp, StringComparison.Ordinal)))
        {
            // The runtime's messages name the temporary file; the caller knows only the destination.
            string reason = e is UnauthorizedAccessException ? "permission denied" : e.Message.Replace(temp, target, StringComparison.Ordinal);
            throw new IOException($"{target}: could not be written ({reason}); the previous file, if any, is intact.", e);
        }
        finally
        {
            try
            {
                if (File.Exists(temp)) File.Delete(temp);
            }
            catch (IOException)
            {
                // Best effort: the next save removes it.
            }
        }
    }

    /// <summary>
    /// Checks, without writing anything, that <see cref="Write"/> could replace or create <paramref name="path"/>: it is
    /// (or links to) a regular file or nothing, its folder exists or can be created, and a file can be created in that
    /// folder. Call it before long work whose result goes there.
    /// </summary>
    /// <param name="path">The destination file.</param>
    /// <exception cref="IOException">The destination cannot be written; the message names it and why.</exception>
    public static void EnsureWritable(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (target, _) = Target(path);
        string? folder = Path.GetDirectoryName(target);
        while (folder is not null && SafeFile.KindOf(folder) == FileKind.Missing) folder = Path.GetDirectoryName(folder);
        if (folder is null) return;
        var kind = SafeFile.KindOf(folder);
        if (kind != FileKind.Directory) throw new IOException($"{target}: cannot be written: {folder} is {SafeFile.Describe(kind)}, not a folder.");
        string probe = Path.Combine(folder, $".lenetsharp-write-check-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string reason = e is UnauthorizedAccessException ? "permission denied" : e.Message.Replace(probe, folder, StringComparison.Ordinal);
            throw new IOException($"{target}: cannot be written: no file can be created in {folder} ({reason}).", e);
        }
    }

    /// <summary>The real destination of <paramref name="path"/> and what is there now; refuses what must not be replaced.</summary>
    private static (string Target, FileKind Kind) Target(string path)
    {
        string target = ResolveTarget(path);
        var kind = SafeFile.KindOf(target);
        if (kind is not (FileKind.Regular or FileKind.Missing))
        {
            string via = target == Path.GetFullPath(path) ? "" : $" (the target of {path})";
            throw new IOException($"{target}{via}: is {SafeFile.Describe(kind)}, not a regular file; refusing to replace it.");
        }

        if (Path.GetFileName(target).Length == 0) throw new IOException($"{path}: names a folder, not a file to write.");
        return (target, kind);
    }

    /// <summary>The path the content should land at: the final target when <paramref name="path"/> is a symbolic link.</summary>
    private static string ResolveTarget(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            if (new FileInfo(full).LinkTarget is null) return full; // not a link (or nothing there yet)
            return File.ResolveLinkTarget(full, returnFinalTarget: true) is { } target ? Path.GetFullPath(target.FullName) : full;
        }
        catch (IOException e)
        {
            throw new IOException($"{full}: cannot follow the symbolic link ({e.Message}).", e);
        }
    }

    private static readonly Regex OwnTemporary = new(@"^\.(?<name>.+)\.tmp-(?:(?<pid>\d+)-)?[0-9a-f]{32}$", RegexOptions.CultureInvariant);

    /// <summary>Deletes temporary files of ours for <paramref name="name"/> whose writing process is gone (kill -9 leftovers).</summary>
    private static void RemoveStaleTemporaries(string directory, string name)
    {
        foreach (string file in Directory.EnumerateFiles(directory, $".{name}.tmp-*"))
        {
            var m = OwnTemporary.Match(Path.GetFileName(file));
            if (!m.Success || m.Groups["name"].Value != name) continue;
            bool stale = m.Groups["pid"].Success
                ? !IsRunning(int.Parse(m.Groups["pid"].Value, System.Globalization.CultureInfo.InvariantCulture))
                : File.GetLastWriteTimeUtc(file) < DateTime.UtcNow.AddMinutes(-10); // older naming, without a process id
            if (!stale) continue;
            try
            {
                File.Delete(file);
            }
            catch (IOException)
            {
                // Another save may be removing it too.
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        if (pid == Environment.ProcessId) return true; // another save in this process, still writing (or its finally will clean up)
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }
}
