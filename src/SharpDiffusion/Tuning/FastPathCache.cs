using System.Text.Json;
using System.Text.Json.Serialization;

namespace SharpDiffusion.Tuning;

/// <summary>
/// The measured fast-path choices on disk: one small JSON file in the user's cache folder with the choices of each
/// <see cref="MachineKey"/> (a laptop's thread counts, a libtorch upgrade), written whole through a temporary file
/// so a reader never sees half of it.
/// </summary>
public sealed class FastPathCache(string folder)
{
    public const string FileName = "fast-paths.json";

    public string Path { get; } = System.IO.Path.Combine(folder, FileName);

    /// <summary>$XDG_CACHE_HOME/sharpdiffusion, else ~/.cache/sharpdiffusion (on Windows, LocalApplicationData's).</summary>
    public static string DefaultFolder()
    {
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string root = !string.IsNullOrEmpty(xdg) && System.IO.Path.IsPathRooted(xdg) ? xdg
            : OperatingSystem.IsWindows() ? Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData)
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return System.IO.Path.Combine(root, "sharpdiffusion");
    }

    /// <summary>The choices stored for <paramref name="machine"/> (empty if none or no file).</summary>
    /// <exception cref="InvalidDataException">The file is not a cache file this version wrote.</exception>
    public IReadOnlyDictionary<string, CachedChoice> Read(MachineKey machine)
    {
        var entry = ReadFile()?.Machines.FirstOrDefault(m => m.Key == machine);
        return entry?.Choices ?? new Dictionary<string, CachedChoice>();
    }

    /// <summary>Adds or replaces one choice of <paramref name="machine"/>, keeping every other entry. A corrupt file
    /// is replaced. Throws the file system's exceptions (an unwritable folder).</summary>
    public void Save(MachineKey machine, string name, CachedChoice choice)
    {
        CacheFile file;
        try { file = ReadFile() ?? new CacheFile([]); }
        catch (InvalidDataException) { file = new CacheFile([]); }
        var entry = file.Machines.FirstOrDefault(m => m.Key == machine);
        if (entry is null)
            file.Machines.Add(entry = new MachineEntry(machine.Cpu, machine.Torch, machine.Threads, []));
        entry.Choices[name] = choice;
        Directory.CreateDirectory(folder);
        string temp = System.IO.Path.Combine(folder, $".{FileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllText(temp, JsonSerializer.Serialize(file, Json));
            File.Move(temp, Path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    CacheFile? ReadFile()
    {
        if (!File.Exists(Path)) return null;
        try
        {
            var file = JsonSerializer.Deserialize<CacheFile>(File.ReadAllText(Path), Json);
            if (file?.Machines is null || file.Machines.Any(m => m?.Cpu is null || m.Torch is null || m.Choices is null
                                                                   || m.Choices.Values.Any(c => c?.Value is null)))
                throw new InvalidDataException($"The fast-path cache {Path} is not one SharpDiffusion wrote.");
            return file;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The fast-path cache {Path} is not valid JSON ({e.Message}).", e);
        }
    }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    sealed record CacheFile(List<MachineEntry> Machines);

    sealed record MachineEntry(string Cpu, string Torch, int Threads, Dictionary<string, CachedChoice> Choices)
    {
        [JsonIgnore] public MachineKey Key => new(Cpu, Torch, Threads);
    }
}
