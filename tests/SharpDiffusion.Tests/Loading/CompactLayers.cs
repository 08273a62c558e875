using SharpDiffusion.Models;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>A module's compact layers and the bytes its weights should hold, counted from what the test wrote to the file
/// (not from <see cref="SharpDiffusion.Loading.CompactWeight"/>'s own accounting).</summary>
static class CompactLayers
{
    /// <summary>Each compact layer once, by its parameter name prefix (TorchSharp's named_modules lists a module under its
    /// registered name and again under its field name, "_attn._toQ": those are left out).</summary>
    public static Dictionary<string, Linear> Of(nn.Module module)
    {
        var seen = new HashSet<Linear>(ReferenceEqualityComparer.Instance);
        var layers = new Dictionary<string, Linear>(StringComparer.Ordinal);
        foreach (var (name, m) in module.named_modules())
            if (m is Linear { IsCompact: true } layer && !name.Split('.').Any(s => s.StartsWith('_')) && seen.Add(layer))
                layers[name] = layer;
        return layers;
    }

    /// <summary>The compact-capable layers (compact or not) whose registered names start with <paramref name="prefix"/>.</summary>
    public static int CountCompactCapable(nn.Module module, string prefix) => module.named_modules()
        .Where(m => m.module is Linear { CompactCapable: true } && m.name.StartsWith(prefix, StringComparison.Ordinal) && !m.name.Split('.').Any(s => s.StartsWith('_')))
        .Select(m => m.module).Distinct(ReferenceEqualityComparer.Instance).Count();

    /// <summary>Every parameter's bytes: a compact layer's weight at <paramref name="storedBytesPerValue"/> of its stored
    /// type (by name), every other parameter at its float size.</summary>
    public static long ExpectedBytes(nn.Module module, Func<string, int> storedBytesPerValue) =>
        ExpectedBytes(module, owner => (1, storedBytesPerValue(owner)));

    /// <summary>Every parameter's bytes: a compact layer's weight in blocks of <c>Elements</c> values stored in <c>Bytes</c>
    /// bytes (GGUF's quantized types: Q8_0 is 32 values in 34 bytes; float8 is (1, 1)), every other parameter at its float size.</summary>
    public static long ExpectedBytes(nn.Module module, Func<string, (int Elements, int Bytes)> storedBlock)
    {
        var compact = Of(module);
        long bytes = 0;
        foreach (var (name, p) in module.named_parameters())
        {
            string owner = name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^".weight".Length] : "";
            if (compact.ContainsKey(owner))
            {
                var (elements, blockBytes) = storedBlock(owner);
                bytes += p.numel() / elements * blockBytes;
            }
            else bytes += p.numel() * p.ElementSize;
        }
        return bytes;
    }
}
