namespace SharpDiffusion.Loading;

/// <summary>
/// Finds a component's weight files the way diffusers/transformers name them: <c>{stem}.safetensors</c>,
/// <c>{stem}.{variant}.safetensors</c>, or sharded weights behind their index (<c>{stem}.safetensors.index.json</c>; for a
/// variant <c>{stem}.safetensors.index.{variant}.json</c> as save_pretrained writes it, or <c>{stem}.{variant}.safetensors.index.json</c>),
/// opened as one file by <see cref="ShardedTensorFile"/>; failing those, the same as PyTorch pickles (<c>{stem}.bin</c>, ...).
/// </summary>
public static class WeightFiles
{
    public static IReadOnlyList<string> Find(string componentDir, string stem, string? variant)
    {
        if (!Directory.Exists(componentDir))
            throw new DirectoryNotFoundException($"Component folder not found: {componentDir}");

        string name = variant is null ? stem : $"{stem}.{variant}";
        string single = Path.Combine(componentDir, name + ".safetensors");
        // What older diffusers/transformers save_pretrained wrote (safe_serialization=False) comes after safetensors:
        // torch pickles, read without running anything from them (TorchPickleFile).
        foreach (string ext in new[] { ".safetensors", ".bin" })
        {
            string file = Path.Combine(componentDir, name + ext);
            if (File.Exists(file))
                return [file];
            foreach (string index in IndexNames(stem, ext, variant))
                if (File.Exists(Path.Combine(componentDir, index)))
                    return [Path.Combine(componentDir, index)];
        }

        var present = Directory.GetFiles(componentDir, "*.safetensors").Select(Path.GetFileName).ToArray();
        string hint = present.Length > 0
            ? $" Found: {string.Join(", ", present)}" + (variant is null ? " (pass the variant, e.g. --variant fp16)" : "")
            : "";
        throw new FileNotFoundException($"No weights named {name}.safetensors (or {name}.bin, or a shard index {IndexNames(stem, ".safetensors", variant).First()}) in {componentDir}.{hint}", single);
    }

    /// <summary>A shard index's names: without a variant {stem}{ext}.index.json; with one, diffusers' and transformers'
    /// {stem}{ext}.index.{variant}.json, then {stem}.{variant}{ext}.index.json.</summary>
    static IEnumerable<string> IndexNames(string stem, string ext, string? variant) => variant is null
        ? [$"{stem}{ext}.index.json"]
        : [$"{stem}{ext}.index.{variant}.json", $"{stem}.{variant}{ext}.index.json"];

    /// <summary>
    /// Refuses, before the model is built, a config that describes more parameters than the weight files hold
    /// values (every parameter must be filled from them): a wrong config, or one with a size such as
    /// layers_per_block or num_hidden_layers far too large, would otherwise build millions of modules first.
    /// </summary>
    public static void RequireRoomFor(double minimumParameters, IReadOnlyList<string> paths, string configPath)
    {
        long stored = 0;
        foreach (var path in paths)
        {
            using var file = TensorFiles.Open(path);
            foreach (var header in file.Headers)
                stored += header.ElementCount;   // each checked against the file's bytes when it was opened, so no overflow
        }
        if (minimumParameters > stored)
            throw new InvalidDataException($"Config {configPath} describes at least {minimumParameters:0} parameters but " +
                $"{string.Join(", ", paths)} hold{(paths.Count == 1 ? "s" : "")} only {stored} values; the config does not belong to these weights " +
                "or a size in it (channels, layers_per_block, num_hidden_layers) is far too large.");
    }

    /// <summary>Opens the files, loads them into the module, closes them.</summary>
    public static void LoadInto(TorchSharp.torch.nn.Module module, IReadOnlyList<string> paths, WeightPlacement? placement = null,
        Func<string, string>? rename = null, Func<string, bool>? ignore = null)
    {
        var files = new List<ITensorFile>();
        try
        {
            foreach (var p in paths) files.Add(TensorFiles.Open(p));
            StateDictLoader.Load(module, files, placement, rename, ignore);
        }
        finally
        {
            foreach (var f in files) f.Dispose();
        }
    }
}
