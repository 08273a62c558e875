using System.Text.Json;

namespace SharpDiffusion.Loading;

/// <summary>A diffusers pipeline folder: model_index.json names the components, one sub-folder each.</summary>
public sealed class DiffusersFolder
{
    readonly Dictionary<string, string?> _components;

    public string Root { get; }
    /// <summary>model_index.json's _class_name: the diffusers pipeline class, which names the model family ("" when absent).</summary>
    public string ClassName { get; }
    /// <summary>The folder's name; for a Hugging Face cache snapshot (models--org--name/snapshots/&lt;sha&gt;) the repository's, org/name.</summary>
    public string Name
    {
        get
        {
            var dir = new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(Root)));
            if (dir.Parent is { Name: "snapshots", Parent: { } repo } && repo.Name.StartsWith("models--", StringComparison.Ordinal))
                return repo.Name["models--".Length..].Replace("--", "/");
            return dir.Name;
        }
    }

    /// <summary>SDXL pipelines' force_zeros_for_empty_prompt (model_index.json; diffusers' default true).</summary>
    public bool ForceZerosForEmptyPrompt { get; private init; } = true;

    /// <summary>SDXL img2img pipelines' requires_aesthetics_score (model_index.json; true for the refiner, diffusers' default false).</summary>
    public bool RequiresAestheticsScore { get; private init; }

    DiffusersFolder(string root, string className, Dictionary<string, string?> components)
    {
        Root = root;
        ClassName = className;
        _components = components;
    }

    public static DiffusersFolder Open(string root)
    {
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"Model folder not found: {root}");
        string index = Path.Combine(root, "model_index.json");
        if (!File.Exists(index))
            throw new FileNotFoundException($"{root} is not a diffusers model folder: model_index.json is missing. " +
                "Point --model at the folder of a diffusers download (it holds model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).", index);
        using var doc = ParseJson(index);
        var components = new Dictionary<string, string?>();
        string className = "";
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "_class_name") className = p.Value.GetString() ?? "";
            // A component is ["library", "ClassName"]; [null, null] marks an absent optional one.
            if (p.Value.ValueKind == JsonValueKind.Array && p.Value.GetArrayLength() == 2)
                components[p.Name] = p.Value[1].ValueKind == JsonValueKind.String ? p.Value[1].GetString() : null;
        }
        bool forceZeros = !doc.RootElement.TryGetProperty("force_zeros_for_empty_prompt", out var fz) || fz.ValueKind != JsonValueKind.False;
        bool aesthetics = doc.RootElement.TryGetProperty("requires_aesthetics_score", out var ra) && ra.ValueKind == JsonValueKind.True;
        return new DiffusersFolder(root, className, components) { ForceZerosForEmptyPrompt = forceZeros, RequiresAestheticsScore = aesthetics };
    }

    static JsonDocument ParseJson(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e); }
    }

    /// <summary>The folder of a required component, checked to exist.</summary>
    public string Component(string name)
    {
        string dir = Path.Combine(Root, name);
        if (_components.TryGetValue(name, out var cls) && cls is null)
            throw new InvalidDataException($"{Path.Combine(Root, "model_index.json")} lists no {name}, which this pipeline needs.");
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"The model folder {Root} has no {name}/ component folder (incomplete download?).");
        return dir;
    }

    /// <summary>The class model_index.json names for a component, if any.</summary>
    public string? ComponentClass(string name) => _components.GetValueOrDefault(name);
}
