namespace SharpDiffusion.Models.Upscalers;

/// <summary>
/// The upscaler models of a folder as AUTOMATIC1111 lists them (its ESRGAN folder): every .pth, .pt and .safetensors
/// file directly in it, named by its file stem ("4x-UltraSharp" for 4x-UltraSharp.pth), sorted by name. A missing
/// folder holds none.
/// </summary>
public static class UpscalerModels
{
    static readonly string[] Extensions = [".pth", ".pt", ".safetensors"];

    /// <summary>True for a name that ends like an upscaler model file (a path rather than a model's name).</summary>
    public static bool IsModelFileName(string name) => Extensions.Contains(Path.GetExtension(name), StringComparer.OrdinalIgnoreCase);

    /// <summary>(name, path) of each model in <paramref name="directory"/>.</summary>
    public static IReadOnlyList<(string Name, string Path)> List(string? directory)
    {
        if (string.IsNullOrEmpty(directory) || !Directory.Exists(directory)) return [];
        return Directory.EnumerateFiles(directory)
            .Where(IsModelFileName)
            .Select(p => (Name: Path.GetFileNameWithoutExtension(p), Path: p))
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The path of the model named <paramref name="name"/> (its stem, case-insensitive) in
    /// <paramref name="directory"/>; null when none.</summary>
    public static string? Find(string? directory, string name)
    {
        var models = List(directory);
        foreach (var (n, p) in models)
            if (n == name) return p;
        foreach (var (n, p) in models)
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase)) return p;
        return null;
    }
}
