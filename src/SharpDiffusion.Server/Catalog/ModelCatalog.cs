using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading.SingleFile;

namespace SharpDiffusion.Server.Catalog;

/// <summary>One model the server can load: a diffusers folder or a single-file checkpoint.</summary>
public sealed record ModelEntry(string Name, string Path, bool IsFile)
{
    /// <summary>AUTOMATIC1111's title: "name.safetensors [hash]" for files once hashed, the name otherwise.</summary>
    public string Title(string? hash) => IsFile ? $"{System.IO.Path.GetFileName(Path)}{(hash is null ? "" : $" [{hash}]")}" : Name;
    public string FileName => IsFile ? System.IO.Path.GetFileName(Path) : Name;

    /// <summary>Family, sampling and T5 as read when the catalog was scanned (a single file: a diffusion model without T5);
    /// null when unknown (a folder that does not read, or a gateway's entry). The loaded pipeline's own traits decide.</summary>
    public ModelTraits? Traits { get; init; }

    /// <summary>A Flux transformer file's component files (text encoders, VAE) as the scan found them (<see cref="FluxComponentSearch"/>).</summary>
    public SingleFileOptions? Components { get; init; }
}

/// <summary>
/// The models a client may name: the one given at start and those in the models folder (folders holding
/// model_index.json, .safetensors/.ckpt/.gguf files; Flux text encoder and VAE files are components, not models:
/// <see cref="FluxComponentSearch"/>). A name is looked up among these entries only, never joined to a
/// path, so "../x" or "/etc/passwd" can only fail to match.
/// </summary>
public sealed class ModelCatalog
{
    readonly object _gate = new();
    readonly Func<IReadOnlyList<ModelEntry>> _scan;
    readonly bool _live;
    IReadOnlyList<ModelEntry> _entries;

    public ModelCatalog(string startModel, string? modelsDir) : this(() => Scan(startModel, modelsDir), live: false) { }

    /// <summary>Entries from elsewhere; <paramref name="live"/>: read at every use (a gateway: the models its workers
    /// serve, from the worker list it keeps), else once and on <see cref="Refresh"/>.</summary>
    public ModelCatalog(Func<IReadOnlyList<ModelEntry>> scan, bool live) => (_scan, _live, _entries) = (scan, live, scan());

    public IReadOnlyList<ModelEntry> Entries { get { if (_live) return _scan(); lock (_gate) return _entries; } }

    public ModelEntry Start => Entries[0];

    /// <summary>Scans the folder again (POST /sdapi/v1/refresh-checkpoints).</summary>
    public void Refresh()
    {
        var entries = _scan();
        lock (_gate) _entries = entries;
    }

    /// <summary>The entry <paramref name="name"/> names: its title ("v1-5.safetensors [6ce0161689]"), file name or name;
    /// a title's "[hash]" may be left out, as AUTOMATIC1111 allows.</summary>
    public ModelEntry? Find(string name)
    {
        string bare = StripHash(name.Trim());
        return Entries.FirstOrDefault(e => string.Equals(e.FileName, bare, StringComparison.Ordinal) || string.Equals(e.Name, bare, StringComparison.Ordinal))
            ?? Entries.FirstOrDefault(e => string.Equals(e.FileName, bare, StringComparison.OrdinalIgnoreCase) || string.Equals(e.Name, bare, StringComparison.OrdinalIgnoreCase));
    }

    static string StripHash(string title)
    {
        int open = title.LastIndexOf(" [", StringComparison.Ordinal);
        return open > 0 && title.EndsWith(']') ? title[..open] : title;
    }

    static IReadOnlyList<ModelEntry> Scan(string startModel, string? modelsDir)
    {
        var entries = new List<ModelEntry> { Entry(startModel) };
        if (modelsDir is not null && Directory.Exists(modelsDir))
        {
            foreach (var dir in Directory.GetDirectories(modelsDir).Order(StringComparer.Ordinal))
                if (File.Exists(System.IO.Path.Combine(dir, "model_index.json")))
                    entries.Add(Entry(dir));
            foreach (var file in Directory.GetFiles(modelsDir).Order(StringComparer.Ordinal))
                if (System.IO.Path.GetExtension(file).ToLowerInvariant() is ".safetensors" or ".ckpt" or ".gguf" && !FluxComponentSearch.IsComponent(file))
                    entries.Add(Entry(file, modelsDir));
        }
        return entries.DistinctBy(e => System.IO.Path.GetFullPath(e.Path)).ToList();
    }

    static ModelEntry Entry(string path, string? modelsDir = null)
    {
        bool isFile = File.Exists(path);
        string name = isFile ? System.IO.Path.GetFileNameWithoutExtension(path) : new DirectoryInfo(path).Name;
        var fluxDefaults = isFile ? FluxDefaults.Of(path) : null;
        bool flux = fluxDefaults is not null;
        return new ModelEntry(name, path, isFile)
        {
            Traits = flux ? ModelTraits.Flux(fluxDefaults == FluxDefaults.Dev) : isFile ? ModelTraits.SingleFile : ModelTraits.OfFolder(path),
            Components = flux ? FluxComponentSearch.Find(path, modelsDir) : null,
        };
    }
}
