using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>
/// Flux LoRAs merged into the transformer's float weights (<see cref="LoraMerger"/>): the same update written in BFL's
/// names as kohya/sd-scripts save it (lora_unet_double_blocks_0_img_attn_qkv: one up for the fused q|k|v rows;
/// single_blocks linear1: q|k|v|mlp; final_layer.adaLN_modulation.1: [shift | scale]) and in diffusers/PEFT names
/// (transformer.transformer_blocks.0.attn.to_q.lora_A ...) patches the same weights identically, each to
/// W + (α/r)·up_part·down, and disposing the merger restores them bit for bit.
/// </summary>
public class FluxLoraTests(ITestOutputHelper output)
{
    const int Rank = 4;

    [Fact]
    public void Bfl_and_peft_flux_loras_patch_the_split_weights_as_the_formula_says()
    {
        using var _ = inference_mode();
        using var transformer = ComponentLoader.LoadFluxTransformer(Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer"));
        var config = transformer.Config;
        long d = config.InnerDim, mlp = transformer.named_parameters().Single(p => p.name == "single_transformer_blocks.0.proj_mlp.weight").parameter.shape[0];
        using var generator = new Generator(5);
        Tensor Random(params long[] shape) => randn(shape, generator: generator) * 0.1;

        // (BFL layer, its diffusers weights in row order, rows of each, input width)
        var layers = new (string Bfl, string[] Diffusers, long[] Rows, long In, bool Swap)[]
        {
            ("double_blocks.0.img_attn.qkv", ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v"], [d, d, d], d, false),
            ("single_blocks.0.linear1", ["single_transformer_blocks.0.attn.to_q", "single_transformer_blocks.0.attn.to_k", "single_transformer_blocks.0.attn.to_v", "single_transformer_blocks.0.proj_mlp"], [d, d, d, mlp], d, false),
            ("double_blocks.0.img_mod.lin", ["transformer_blocks.0.norm1.linear"], [6 * d], d, false),
            ("final_layer.adaLN_modulation.1", ["norm_out.linear"], [2 * d], d, true),
        };
        var bfl = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var peft = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var expectedDelta = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, diffusers, rows, inFeatures, swap) in layers)
        {
            var down = Random(Rank, inFeatures);
            var ups = rows.Select(r => Random(r, Rank)).ToArray();
            var stored = cat(ups, 0);
            if (swap) { var h = stored.chunk(2, 0); stored = cat([h[1], h[0]], 0); } // BFL keeps [shift | scale]; diffusers [scale | shift]
            string kohya = "lora_unet_" + name.Replace('.', '_');
            (bfl[kohya + ".lora_down.weight"], bfl[kohya + ".lora_up.weight"], bfl[kohya + ".alpha"]) = (down, stored, tensor((float)Rank));
            for (int i = 0; i < diffusers.Length; i++)
            {
                (peft[$"transformer.{diffusers[i]}.lora_A.weight"], peft[$"transformer.{diffusers[i]}.lora_B.weight"]) = (down, ups[i]);
                expectedDelta[diffusers[i] + ".weight"] = ups[i].matmul(down);
            }
        }
        using var dir = new TempDir();
        SafetensorsWriter.Save(dir.File("bfl.safetensors"), bfl);
        SafetensorsWriter.Save(dir.File("peft.safetensors"), peft);
        var weights = transformer.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var before = expectedDelta.Keys.ToDictionary(k => k, k => weights[k].clone());

        Dictionary<string, Tensor> Merged(string file)
        {
            using var lora = LoraFile.Load(dir.File(file));
            using var merger = LoraMerger.Apply([new LoraWeight(lora, 0.75)], transformer, transformer);
            Assert.Equal(expectedDelta.Count, merger.PatchedCount);
            return expectedDelta.Keys.ToDictionary(k => k, k => weights[k].clone());
        }
        var fromBfl = Merged("bfl.safetensors");
        foreach (var (name, value) in before) Assert.Equal(0, Golden.MaxAbsDiff(weights[name], value)); // restored
        var fromPeft = Merged("peft.safetensors");

        double worst = 0;
        foreach (var (name, delta) in expectedDelta)
        {
            Assert.Equal(0, Golden.MaxAbsDiff(fromBfl[name], fromPeft[name]));
            worst = Math.Max(worst, Golden.AssertClose(fromBfl[name], before[name] + 0.75 * delta, rel: 0, abs: 1e-6, what: name));
        }
        output.WriteLine($"{expectedDelta.Count} weights patched identically from BFL and PEFT names; max |W' − (W + s·up·down)| {worst:E2}");
    }
}
