namespace SharpDiffusion.Server.Catalog;

/// <summary>The LoRA files of the configured folder, by name (file name without extension), as /sdapi/v1/loras lists them.
/// Prompt tags are resolved by the library within the same folder (it refuses names with path separators).</summary>
public sealed class LoraCatalog(string? directory)
{
    public string? Directory => directory;

    public IReadOnlyList<(string Name, string Path)> Entries() =>
        directory is null || !System.IO.Directory.Exists(directory) ? []
            : System.IO.Directory.GetFiles(directory, "*.safetensors").Order(StringComparer.Ordinal)
                .Select(f => (System.IO.Path.GetFileNameWithoutExtension(f), f)).ToList();
}
