using System.Text;

namespace SharpDiffusion.Imaging;

/// <summary>
/// Writing a set of files all or none: each goes to a temporary file beside its target, and only when every one is
/// written are they renamed into place, so an error (a full disk, a folder that turned read-only) never leaves half
/// a set or half a file. Errors name the user's path, not the temporary one.
/// </summary>
public static class AtomicFiles
{
    /// <summary>The longest file name most Linux/Windows file systems take, in UTF-8 bytes.</summary>
    public const int MaxNameBytes = 255;

    public static void WriteAll(IReadOnlyList<(string Path, byte[] Bytes)> files)
    {
        var temps = new List<(string Temp, string Target)>();
        try
        {
            foreach (var (path, bytes) in files)
            {
                string full = Path.GetFullPath(path);
                string temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Guid.NewGuid():N}.tmp");
                temps.Add((temp, full));
                Attempt(path, () => File.WriteAllBytes(temp, bytes));
            }
            foreach (var (temp, target) in temps)
                Attempt(target, () => File.Move(temp, target, overwrite: true));
        }
        finally
        {
            foreach (var (temp, _) in temps)
                if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Checks before any work that <paramref name="path"/> can be written: not a folder, a name the file
    /// system takes, an existing folder we may create files in (probed with a temporary file), not a read-only file.</summary>
    public static void CheckWritable(string path)
    {
        string shown = Printable(path);
        if (Directory.Exists(path))
            throw new ArgumentException($"The output {shown} is a folder; give a file name in it, e.g. {Printable(Path.Combine(path, "out.png"))}.");
        string name = Path.GetFileName(path);
        if (name.Length == 0)
            throw new ArgumentException($"The output {shown} names no file.");
        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
            throw new ArgumentException($"The output file name is {Encoding.UTF8.GetByteCount(name)} bytes long; file systems take at most {MaxNameBytes}. Choose a shorter name.");
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"The output folder {Printable(dir)} does not exist; create it or choose another path.");
        if (File.Exists(path) && new FileInfo(path).IsReadOnly)
            throw new UnauthorizedAccessException($"The output {shown} exists and is read-only; choose another name.");
        CheckFolderTakesFiles(dir, shown);
    }

    /// <summary>Checks before any work that files can be created in the existing folder <paramref name="dir"/>.</summary>
    public static void CheckWritableFolder(string dir) => CheckFolderTakesFiles(Path.GetFullPath(dir), Printable(dir));

    /// <summary>Creates and deletes a temporary file in <paramref name="dir"/>; the error names <paramref name="shown"/>, what
    /// the user asked for, and never the temporary name.</summary>
    static void CheckFolderTakesFiles(string dir, string shown)
    {
        string probe = Path.Combine(dir, $".{Guid.NewGuid():N}.probe");
        try
        {
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UnauthorizedAccessException($"Cannot write {shown}: {Why(e)} in {Printable(dir)}; choose another output path.");
        }
    }

    /// <summary>Why the file system refused a file, in its words but without the file's name (a temporary one the user
    /// never gave): "permission denied", "Read-only file system", "No space left on device".</summary>
    static string Why(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        FileNotFoundException or DirectoryNotFoundException => "no file can be created", // /proc, /sys: ENOENT on create
        _ => System.Text.RegularExpressions.Regex.Replace(e.Message, @"\s*:?\s*'[^']*'", "").Trim().TrimEnd('.'),
    };

    /// <summary>The text with control characters shown as \uXXXX, safe to print on a terminal.</summary>
    public static string Printable(string text) =>
        text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString())) : text;

    static void Attempt(string path, Action write)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Could not write {Printable(path)}: {Why(e)}", e);
        }
    }
}
