using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.UNet;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Adapters;

/// <summary>A LoRA and the scale it is applied at (diffusers' <c>cross_attention_kwargs={"scale": s}</c>, AUTOMATIC1111's
/// <c>&lt;lora:name:s&gt;</c>).</summary>
public sealed record LoraWeight(LoraFile File, double Scale = 1.0)
{
    /// <summary>The text encoder's scale when it differs from the UNet's (AUTOMATIC1111's <c>&lt;lora:name:te:unet&gt;</c>);
    /// null = <see cref="Scale"/>, as diffusers.</summary>
    public double? TextEncoderScale { get; init; }

    internal double ScaleFor(LoraTarget target) => target == LoraTarget.Unet ? Scale : TextEncoderScale ?? Scale;
}

/// <summary>
/// Merges LoRAs into the weights for the length of one generation and restores them afterwards:
/// <c>W' = W + Σᵢ scaleᵢ · (alphaᵢ / rankᵢ) · upᵢ · downᵢ</c> on every patched weight, the UNet's and the text encoder's alike
/// (diffusers 0.25 scales both by the same <c>scale</c>). The original tensors are kept and copied back on
/// <see cref="Dispose"/>, so the base weights are bit-identical afterwards whatever the LoRAs or scales were.
/// Merging was chosen over a side branch (<c>W x + s·up(down(x))</c> in every forward) because it costs nothing per
/// UNet step; the merge itself is a few rank-r matmuls per weight, paid once per call.
/// A layer whose weight is kept compact (<see cref="Models.Linear.IsCompact"/>: float8, GGUF) has no float weight to merge
/// into: its LoRAs become side branches for the call instead (<c>y = W x + Σᵢ sᵢ · upᵢ(downᵢ x)</c>, the same update
/// to rounding), removed on <see cref="Dispose"/>; the compact weight is never touched.
/// Not thread-safe: the weights of the pipeline change for the call, so a pipeline runs one generation at a time.
/// </summary>
public sealed class LoraMerger : IDisposable
{
    readonly List<(Tensor Parameter, Tensor Original)> _patched = [];
    readonly List<IDisposable> _branches = [];

    LoraMerger() { }

    /// <summary>Merges <paramref name="loras"/> into the given modules' weights; dispose the result to restore them.
    /// Every layer must find its weight with a fitting shape, or nothing is changed and the error names the file and key.</summary>
    /// <param name="textEncoder2">SDXL's second text encoder (lora_te2_*, text_encoder_2.*); null for SD 1.x/2.x.</param>
    /// <param name="restores">whether a module's weights are restored at the end (default all); weights that leave
    /// memory after the call (<see cref="Loading.ComponentWeights"/>) need no copy of their originals.</param>
    public static LoraMerger Apply(IReadOnlyList<LoraWeight> loras, nn.Module unet, nn.Module textEncoder, nn.Module? textEncoder2 = null,
        Func<nn.Module, bool>? restores = null)
    {
        var merger = new LoraMerger();
        if (loras.Count == 0)
            return merger;
        var weights = new Dictionary<LoraTarget, Dictionary<string, Tensor>>
        {
            [LoraTarget.Unet] = WeightsByModule(unet),
            [LoraTarget.TextEncoder] = WeightsByModule(textEncoder),
            [LoraTarget.TextEncoder2] = textEncoder2 is null ? [] : WeightsByModule(textEncoder2),
        };

        var compact = new Dictionary<Tensor, Models.Linear>(ReferenceEqualityComparer.Instance);
        foreach (var layer in new[] { unet, textEncoder, textEncoder2 }.OfType<nn.Module>().SelectMany(CompactLayers))
            compact[layer.weight] = layer;

        // Check every layer first, so a bad file changes nothing.
        var deltas = new Dictionary<Tensor, List<(LoraLayer Layer, double Scale)>>(ReferenceEqualityComparer.Instance);
        var restored = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (target, module) in new[] { (LoraTarget.Unet, unet), (LoraTarget.TextEncoder, textEncoder), (LoraTarget.TextEncoder2, textEncoder2) })
            if (module is not null && restores?.Invoke(module) != false)
                restored.UnionWith(weights[target].Values);
        foreach (var lora in loras)
            foreach (var layer in lora.File.Layers.SelectMany(l => unet is Models.Transformers.FluxTransformer2DModel flux && l.Target == LoraTarget.Unet
                         ? FluxLoraLayers.Expand(l, flux) : [l]))
            {
                var file = lora.File;
                double scale = lora.ScaleFor(layer.Target);
                if (layer.Target == LoraTarget.TextEncoder2 && textEncoder2 is null)
                    throw new InvalidDataException($"{file.Path}: '{layer.SourceKey}' is for SDXL's second text encoder: the LoRA is for SDXL, this model is SD 1.x/2.x.");
                if (!weights[layer.Target].TryGetValue(layer.Module, out var weight))
                    throw new InvalidDataException($"{file.Path}: '{layer.SourceKey}' matches no weight of this model's " +
                        $"{layer.Target switch { LoraTarget.Unet => "UNet", LoraTarget.TextEncoder => "text encoder", _ => "second text encoder" }}: the LoRA is for another architecture.");
                long outFeatures = layer.Up.shape[0], inElements = layer.Down.numel() / layer.Rank;
                if (weight.shape[0] != outFeatures || weight.numel() / weight.shape[0] != inElements)
                    throw new InvalidDataException($"{file.Path}: '{layer.SourceKey}' makes a [{outFeatures}, {inElements}] update but " +
                        $"the weight is [{string.Join(", ", weight.shape)}]: the LoRA's shapes do not fit this model.");
                if (!deltas.TryGetValue(weight, out var list))
                    deltas[weight] = list = [];
                list.Add((layer, scale));
            }

        using var noGrad = no_grad();
        foreach (var (weight, layers) in deltas)
        {
            using var scope = NewDisposeScope();
            if (compact.TryGetValue(weight, out var linear))
            {
                foreach (var (layer, scale) in layers)
                    merger._branches.Add(linear.AddSideBranch(layer.Down.flatten(1), layer.Up.flatten(1), scale * layer.AlphaScale));
                continue;
            }
            bool restore = restored.Contains(weight);
            var original = restore ? weight.detach().clone().MoveToOuterDisposeScope() : weight;
            var merged = original.to(ScalarType.Float32, copy: true);
            foreach (var (layer, scale) in layers)
            {
                var up = layer.Up.to(merged.device).flatten(1);                       // [out, r]
                var down = layer.Down.to(merged.device).flatten(1);                   // [r, in·k·k]
                merged.add_(up.matmul(down).reshape(weight.shape), alpha: scale * layer.AlphaScale);
            }
            weight.copy_(merged);
            if (restore) merger._patched.Add((weight, original));
        }
        return merger;
    }

    /// <summary>Linear and conv weights by module path with '_' for '.', the spelling <see cref="LoraLayer.Module"/> uses.
    /// A UNet's weights are also listed under their LDM names (<c>input_blocks_1_1_…</c>), which older kohya LoRAs
    /// trained on single-file checkpoints use, mapped by the single-file loader's key tables.</summary>
    static Dictionary<string, Tensor> WeightsByModule(nn.Module module)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var weights = module.named_parameters()
            .Where(p => p.name.EndsWith(".weight", StringComparison.Ordinal) && p.parameter.dim() is 2 or 4)
            .ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        foreach (var (name, parameter) in weights)
            result[Spelling(name)] = parameter;
        if (module is UNet2DConditionModel unet)
            foreach (var (name, ldm) in LdmKeyMap.UNet(weights.Keys, unet.Config))
                result.TryAdd(Spelling(ldm[LdmKeyMap.UNetPrefix.Length..]), weights[name]);
        return result;
    }

    /// <summary>The layers whose weight is compact now (their weight is a placeholder: branched, not merged).</summary>
    static IEnumerable<Models.Linear> CompactLayers(nn.Module module) =>
        module.named_modules().Select(m => m.module).OfType<Models.Linear>().Where(l => l.IsCompact).Distinct(ReferenceEqualityComparer.Instance).Cast<Models.Linear>();

    static string Spelling(string weightName) => weightName[..^".weight".Length].Replace('.', '_');

    /// <summary>The weights that were patched (for tests and diagnostics).</summary>
    public int PatchedCount => _patched.Count;

    /// <summary>The side branches added to compact layers (for tests and diagnostics).</summary>
    public int BranchCount => _branches.Count;

    /// <summary>Copies the original tensors back: the weights are bit-identical to before <see cref="Apply"/>.</summary>
    public void Dispose()
    {
        using var noGrad = no_grad();
        foreach (var (parameter, original) in _patched)
        {
            parameter.copy_(original);
            original.Dispose();
        }
        _patched.Clear();
        foreach (var branch in _branches) branch.Dispose();
        _branches.Clear();
    }
}
