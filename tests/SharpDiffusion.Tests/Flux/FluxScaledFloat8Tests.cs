using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tests.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>ComfyUI's scaled float8 Flux files (a <c>scaled_fp8</c> marker, <c>X.scale_weight</c> beside each float8
/// <c>X.weight</c>: W = W₈·scale): the scales are applied, fused tensors before their split; a float8 weight whose scale
/// is missing is refused in one line naming it (issue 23 item 7).</summary>
public class FluxScaledFloat8Tests(ITestOutputHelper output)
{
    static FluxTransformer2DConfig FolderConfig => FluxTransformer2DConfig.From(SharpDiffusion.Configuration.JsonConfig.Load(
        Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer", "config.json")));

    /// <summary>The golden float8 file's tensors as float32 (float8 codes decode exactly), with a marker and a scale per
    /// 2-D weight (2 for the fused qkv of double block 0, 1 elsewhere), leaving out <paramref name="without"/>'s scale.</summary>
    static string Write(TempDir dir, string? without)
    {
        using var fp8 = SafetensorsFile.Open(FluxGolden.SingleFile(FluxGolden.Fp8File));
        var tensors = fp8.Tensors.Keys.ToDictionary(k => k, k => fp8.Load(k), StringComparer.Ordinal);
        foreach (var name in tensors.Keys.Where(k => tensors[k].dim() == 2).ToList())
            if (name != without)
                tensors[name[..^".weight".Length] + ".scale_weight"] = tensor(name == "double_blocks.0.img_attn.qkv.weight" ? 2f : 1f);
        tensors["scaled_fp8"] = zeros(0);
        string path = dir.File("flux1-dev-fp8-scaled.safetensors");
        Float8FileWriter.Write(path, tensors);
        return path;
    }

    [Fact]
    public void Scaled_float8_weights_are_multiplied_by_their_scale_before_the_qkv_split()
    {
        using var _ = inference_mode();
        using var dir = new TempDir();
        // Both decoded at load (kept compact, their parameters would be placeholders; the compact scaled weights are
        // checked against this decode in ScaledFloat8CompactTests).
        using var plain = (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(FluxGolden.SingleFile(FluxGolden.Fp8File), new LoadOptions { CompactWeights = false }, FolderConfig).Module;
        using var scaled = (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(Write(dir, without: null), new LoadOptions { CompactWeights = false }, FolderConfig).Module;
        var expected = plain.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, value) in scaled.named_parameters())
        {
            bool doubled = name is "transformer_blocks.0.attn.to_q.weight" or "transformer_blocks.0.attn.to_k.weight" or "transformer_blocks.0.attn.to_v.weight";
            Assert.True(Golden.MaxAbsDiff(value, doubled ? expected[name] * 2 : expected[name]) == 0, $"{name}");
        }
        output.WriteLine($"{expected.Count} parameters: q/k/v of double block 0 ×2, the rest as the unscaled file");
    }

    [Fact]
    public void A_float8_weight_whose_scale_is_missing_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        string path = Write(dir, without: "single_blocks.0.linear2.weight");
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.FluxTransformerFile(path, new LoadOptions(), FolderConfig));
        output.WriteLine(e.Message);
        Assert.Contains("'single_blocks.0.linear2.scale_weight' is missing", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
