namespace SharpDiffusion.Server.Catalog;

/// <summary>
/// The separate VAEs of <c>serve --vae-dir</c> (A1111's models/VAE), as GET /sdapi/v1/sd-vae lists them: files
/// (.safetensors, .pt, .ckpt, .pth: full VAEs and TAESD decoders) and diffusers folders (config.json), each named by its
/// file or folder name as A1111 names them ("vae-ft-mse-840000-ema-pruned.safetensors"). The sd_vae option and
/// override_settings take one of these names, or "Automatic"/"None" for the model's own VAE.
/// </summary>
public sealed class VaeCatalog(string? directory)
{
    static readonly string[] Extensions = [".safetensors", ".pt", ".ckpt", ".pth"];

    /// <summary>A gateway's: the VAEs its workers announce (<c>worker --vae-dir</c>), read at every use; a name resolves to
    /// the path on a worker's machine (the worker resolves it again in its own folder).</summary>
    public static VaeCatalog OfWorkers(Func<IReadOnlyList<(string Name, string Path)>> workers) => new(null) { _workers = workers };

    Func<IReadOnlyList<(string Name, string Path)>>? _workers;

    public string? Directory => directory;

    /// <summary>Names that mean the model's own VAE (A1111: "Automatic" would pick a VAE named after the checkpoint; this
    /// server has no such files, so both are the model's).</summary>
    public static bool IsModelsOwn(string? name) => string.IsNullOrWhiteSpace(name) || name.Trim() is "Automatic" or "None";

    public IReadOnlyList<(string Name, string Path)> Entries()
    {
        if (_workers is not null) return _workers();
        if (directory is null || !System.IO.Directory.Exists(directory)) return [];
        var files = System.IO.Directory.GetFiles(directory)
            .Where(f => Extensions.Contains(System.IO.Path.GetExtension(f), StringComparer.OrdinalIgnoreCase));
        var folders = System.IO.Directory.GetDirectories(directory)
            .Where(d => File.Exists(System.IO.Path.Combine(d, "config.json")) || File.Exists(System.IO.Path.Combine(d, "vae", "config.json")));
        return files.Concat(folders).Select(p => (System.IO.Path.GetFileName(p), p)).OrderBy(e => e.Item1, StringComparer.Ordinal).ToList();
    }

    /// <summary>The path of the VAE called <paramref name="name"/> (its file name, or that name without extension); null for
    /// the model's own; an unknown name is refused in one line pointing at the list.</summary>
    public string? Resolve(string? name)
    {
        if (IsModelsOwn(name)) return null;
        string wanted = name!.Trim();
        var entries = Entries();
        var hit = entries.FirstOrDefault(e => e.Name == wanted);
        if (hit.Path is null)
            hit = entries.FirstOrDefault(e => System.IO.Path.GetFileNameWithoutExtension(e.Name) == wanted);
        return hit.Path ?? throw new ArgumentException(_workers is not null
            ? $"sd_vae '{wanted}': no worker has it; GET /sdapi/v1/sd-vae lists the workers' VAEs (worker --vae-dir DIR), or \"Automatic\" for the model's own VAE."
            : directory is null
            ? $"sd_vae '{wanted}': this server has no VAE folder (serve --vae-dir DIR); use \"Automatic\" for the model's own VAE."
            : $"sd_vae '{wanted}' not found; GET /sdapi/v1/sd-vae lists the names (or \"Automatic\" for the model's own VAE).");
    }
}
