using SharpDiffusion.Loading.SingleFile;

namespace SharpDiffusion.Server.Catalog;

/// <summary>
/// The component files of a Flux.1 transformer file in the models folder, where stable-diffusion.cpp and ComfyUI users
/// keep them: beside it, or in text_encoders/, clip/ and vae/ folders there or one level up (ComfyUI's models/ layout).
/// CLIP-L is clip_l*.safetensors, T5 t5xxl*.safetensors (fp16 before fp8), the VAE ae.safetensors (or flux*vae*); T5's
/// spiece.model is then looked for beside the T5 file. Those files are components, never listed as models. What is not
/// found is refused when the model loads, naming the file to download.
/// </summary>
public static class FluxComponentSearch
{
    static readonly string[] Folders = ["text_encoders", "clip", "vae"];

    /// <summary>Whether <paramref name="file"/> is named as a text encoder or VAE file, not a model.</summary>
    public static bool IsComponent(string file)
    {
        string name = Path.GetFileName(file).ToLowerInvariant();
        return name.StartsWith("clip_l", StringComparison.Ordinal) || name.StartsWith("clip_g", StringComparison.Ordinal)
            || name.StartsWith("t5xxl", StringComparison.Ordinal) || name == "ae.safetensors" || IsFluxVae(name);
    }

    static bool IsFluxVae(string name) => name.StartsWith("flux", StringComparison.Ordinal) && name.Contains("vae", StringComparison.Ordinal);

    /// <summary>The text encoders and VAE found for <paramref name="model"/>.</summary>
    public static SingleFileOptions Find(string model, string? modelsDir)
    {
        var roots = new List<string> { Path.GetDirectoryName(Path.GetFullPath(model))! };
        if (modelsDir is not null) roots.Add(Path.GetFullPath(modelsDir));
        var dirs = roots.Distinct().SelectMany(r => new[] { r }.Concat(Folders.Select(f => Path.Combine(r, f)))
                .Concat(Path.GetDirectoryName(r) is { } up ? Folders.Select(f => Path.Combine(up, f)) : []))
            .Distinct().Where(Directory.Exists).ToList();
        var files = dirs.SelectMany(d => Directory.GetFiles(d, "*.safetensors").Order(StringComparer.Ordinal)).ToList();
        string? First(Func<string, bool> match) => files.FirstOrDefault(f => match(Path.GetFileName(f).ToLowerInvariant()));
        string? clip = First(n => n.StartsWith("clip_l", StringComparison.Ordinal));
        string? t5 = First(n => n.StartsWith("t5xxl", StringComparison.Ordinal) && n.Contains("fp16", StringComparison.Ordinal))
            ?? First(n => n.StartsWith("t5xxl", StringComparison.Ordinal));
        string? vae = First(n => n == "ae.safetensors") ?? First(IsFluxVae);
        return new SingleFileOptions { TextEncoders = new[] { clip, t5 }.OfType<string>().ToList(), Vae = vae };
    }
}
