using System.Collections.Concurrent;

namespace SharpDiffusion.Server.Hosting;

/// <summary>Generated PNGs served by URL for a while (OpenAI's response_format "url"): kept by name, never on disk.</summary>
public interface IImageFiles
{
    /// <summary>How long a file stays readable.</summary>
    static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    /// <summary>Keeps the PNG; its new name ("….png").</summary>
    string Add(byte[] png);

    /// <summary>The PNG, or null if there is none of that name (never was, or expired).</summary>
    byte[]? Get(string name);

    static string NewName() => $"{Guid.NewGuid():N}.png";
}

/// <summary>In this process's memory: the newest 256 files, each for an hour.</summary>
public sealed class MemoryImageFiles : IImageFiles
{
    const int MaxFiles = 256;
    readonly ConcurrentDictionary<string, (byte[] Png, DateTimeOffset Expires)> _files = new();

    public string Add(byte[] png)
    {
        Purge();
        string name = IImageFiles.NewName();
        _files[name] = (png, DateTimeOffset.UtcNow + IImageFiles.Lifetime);
        return name;
    }

    public byte[]? Get(string name) => _files.TryGetValue(name, out var f) && f.Expires > DateTimeOffset.UtcNow ? f.Png : null;

    void Purge()
    {
        var now = DateTimeOffset.UtcNow;
        foreach (var (name, file) in _files)
            if (file.Expires <= now) _files.TryRemove(name, out _);
        foreach (var (name, _) in _files.OrderBy(f => f.Value.Expires).Take(Math.Max(0, _files.Count - MaxFiles + 1)))
            _files.TryRemove(name, out _);
    }
}
