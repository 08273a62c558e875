using System.Globalization;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Adapters;

/// <summary>A <c>&lt;lora:name:te[:unet]&gt;</c> tag of an AUTOMATIC1111 prompt.</summary>
public sealed record LoraTag(string Name, double Scale, double TextEncoderScale);

/// <summary>
/// AUTOMATIC1111's extra-network tags (<c>extra_networks.parse_prompt</c>): every <c>&lt;kind:args&gt;</c> is cut out of
/// the prompt before emphasis is parsed; for <c>lora</c> the arguments are <c>name[:te_multiplier[:unet_multiplier]]</c>
/// (default 1; the UNet's defaults to the text encoder's).
/// </summary>
public static partial class LoraPromptTags
{
    [GeneratedRegex(@"<(\w+):([^>]+)>")]
    private static partial Regex ExtraNetwork();

    /// <summary>The prompt without its tags, and the lora tags in order (other kinds are removed and reported in
    /// <paramref name="ignored"/>, as A1111 removes tags of networks it does not know).</summary>
    public static string Extract(string prompt, List<LoraTag> tags, ICollection<string>? ignored = null) =>
        ExtraNetwork().Replace(prompt, m =>
        {
            string kind = m.Groups[1].Value;
            var args = m.Groups[2].Value.Split(':');
            if (kind is "lora" or "lyco")
            {
                double te = args.Length > 1 ? Number(args[1], m.Value) : 1.0;
                double unet = args.Length > 2 ? Number(args[2], m.Value) : te;
                tags.Add(new LoraTag(args[0], unet, te));
            }
            else
                ignored?.Add(m.Value);
            return "";
        });

    static double Number(string text, string tag) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v) ? v
            : throw new ArgumentException($"{tag}: '{text}' is not a number (the LoRA's multiplier).");

    /// <summary>The LoRA file for <paramref name="name"/> in <paramref name="directory"/>: NAME.safetensors (AUTOMATIC1111 looks
    /// the name up among the files of its Lora folder, without extension).</summary>
    public static string Locate(string name, string? directory)
    {
        if (directory is null)
            throw new ArgumentException($"The prompt asks for <lora:{name}> but no LoRA folder is set (--lora-dir DIR).");
        string path = Path.Combine(directory, name + ".safetensors");
        if (name.IndexOfAny(['/', '\\']) >= 0 || !File.Exists(path))
            throw new FileNotFoundException($"<lora:{name}>: no {name}.safetensors in {directory}.", path);
        return path;
    }

    /// <summary>The prompts without their tags, the LoRAs the tags ask for (loaded from <paramref name="directory"/>; the
    /// first mention of a name sets its scales), and a warning per other kind of tag removed.</summary>
    public static PromptLoras Resolve(IReadOnlyList<string> prompts, string? directory)
    {
        var (tags, ignored) = (new List<LoraTag>(), new List<string>());
        var cleaned = prompts.Select(p => Extract(p, tags, ignored)).ToList();
        var loras = new List<LoraWeight>();
        try
        {
            foreach (var tag in tags.DistinctBy(t => t.Name))
                loras.Add(new LoraWeight(LoraFile.Load(Locate(tag.Name, directory)), tag.Scale) { TextEncoderScale = tag.TextEncoderScale });
        }
        catch
        {
            loras.ForEach(l => l.File.Dispose());
            throw;
        }
        var warnings = ignored.Distinct().Select(t => $"{t}: only <lora:…> extra networks are supported; the tag was removed from the prompt.").ToList();
        return new PromptLoras(cleaned, loras, warnings);
    }
}

/// <summary>What a batch of A1111 prompts asks for through its tags; owns the LoRA files it loaded.</summary>
public sealed record PromptLoras(IReadOnlyList<string> Prompts, IReadOnlyList<LoraWeight> Loras, IReadOnlyList<string> Warnings) : IDisposable
{
    public void Dispose()
    {
        foreach (var lora in Loras) lora.File.Dispose();
    }
}
