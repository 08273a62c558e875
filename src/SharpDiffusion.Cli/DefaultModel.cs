namespace SharpDiffusion.Cli;

/// <summary>The model that ships with the repository (models/sharp-shapes), used when no --model is given.</summary>
public static class DefaultModel
{
    public const string Name = "sharp-shapes";

    /// <summary>Beside the executable (copied there by the build), else in models/ of the current folder or a parent.</summary>
    public static string? Locate() => Locate("model_index.json");

    /// <summary>The first candidate folder that holds <paramref name="file"/> (a relative path).</summary>
    public static string? Locate(string file)
    {
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, "models", Name) };
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
            candidates.Add(Path.Combine(dir.FullName, "models", Name));
        return candidates.FirstOrDefault(c => File.Exists(Path.Combine(c, file)));
    }
}
