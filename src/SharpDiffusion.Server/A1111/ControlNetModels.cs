using System.Security.Cryptography;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// The ControlNets of <c>serve --controlnet-dir</c>, as sd-webui-controlnet lists them (global_state.get_all_models):
/// every .pt/.pth/.ckpt/.safetensors/.bin file under the folder (sub-folders too), named "stem [hash]" with A1111's
/// legacy model_hash (sha256 of the 64 KiB at offset 1 MiB, 8 hex digits), sorted by file name; also diffusers ControlNet
/// folders (config.json beside the weights), hashed by their weights file.
/// </summary>
public static class ControlNetModels
{
    static readonly string[] Extensions = [".pt", ".pth", ".ckpt", ".safetensors", ".bin"];

    /// <summary>(title "name [hash]", path) of every ControlNet under <paramref name="dir"/>; empty without a folder.</summary>
    public static IReadOnlyList<(string Title, string Path)> List(string? dir)
    {
        if (dir is null || !Directory.Exists(dir)) return [];
        var found = new List<string>();
        Walk(dir, found);
        return found.Select(p => (Name: Path.GetFileNameWithoutExtension(p.TrimEnd(Path.DirectorySeparatorChar)), Path: p))
            .Where(m => m.Name != "None") // the extension's "no model" entry
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .Select(m => ($"{m.Name} [{Hash(m.Path)}]", m.Path)).ToList();
    }

    static void Walk(string dir, List<string> found)
    {
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            if (File.Exists(entry))
            {
                if (Extensions.Contains(Path.GetExtension(entry), StringComparer.OrdinalIgnoreCase)) found.Add(entry);
            }
            else if (File.Exists(Path.Combine(entry, "config.json")) && WeightsOf(entry) is not null)
                found.Add(entry);                                   // a diffusers ControlNet folder: one model
            else
                Walk(entry, found);
        }
    }

    static string? WeightsOf(string folder) =>
        Directory.EnumerateFiles(folder).Where(f => Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase))
            .OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();

    /// <summary>A1111's sd_models.model_hash: sha256 over bytes [0x100000, 0x110000) (fewer when the file is shorter), 8 hex digits.</summary>
    public static string Hash(string path)
    {
        string file = Directory.Exists(path) ? WeightsOf(path)! : path;
        using var stream = File.OpenRead(file);
        var buffer = new byte[0x10000];
        int read = 0;
        if (stream.Length > 0x100000)
        {
            stream.Position = 0x100000;
            for (int n; read < buffer.Length && (n = stream.Read(buffer, read, buffer.Length - read)) > 0;) read += n;
        }
        return Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, read)))[..8];
    }

    /// <summary>The model a unit names: its title "name [hash]", or its name alone (as the extension's
    /// cls_match_model, which also accepts the name without the hash); null when none matches.</summary>
    public static (string Title, string Path)? Find(IReadOnlyList<(string Title, string Path)> models, string name)
    {
        foreach (var m in models)
            if (m.Title == name || m.Title[..m.Title.LastIndexOf(" [", StringComparison.Ordinal)] == name)
                return m;
        return null;
    }
}
