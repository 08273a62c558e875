using System.Text.RegularExpressions;
using SharpDiffusion.Loading;
using SharpDiffusion.Tests.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>
/// A golden Flux folder written as the component files people download: the transformer in BFL's layout
/// (flux1-*.safetensors; the table is diffusers' convert_flux_to_diffusers read backwards, written independently of the
/// library's BflKeyMap: q/k/v (and a single block's MLP input) fused along rows, the final modulation back to
/// [shift | scale]), clip_l.safetensors and t5xxl_fp16.safetensors in transformers' layout, ae.safetensors (the LDM VAE
/// without prefix), T5's spiece.model beside the T5 file, and a config folder with only what the tiny model's shapes
/// cannot tell (the transformer's rotary axes, the VAE's norm groups, CLIP's heads of a width that is not a multiple of 64).
/// </summary>
static class FluxComponentFileWriter
{
    /// <summary>(diffusers name pattern, BFL replacement); a named group "p" is that part of a fused tensor (q, k, v, m = the MLP input).</summary>
    static readonly (string Pattern, string Bfl)[] Table =
    [
        (@"^time_text_embed\.timestep_embedder\.linear_1\.(\w+)$", "time_in.in_layer.$1"),
        (@"^time_text_embed\.timestep_embedder\.linear_2\.(\w+)$", "time_in.out_layer.$1"),
        (@"^time_text_embed\.guidance_embedder\.linear_1\.(\w+)$", "guidance_in.in_layer.$1"),
        (@"^time_text_embed\.guidance_embedder\.linear_2\.(\w+)$", "guidance_in.out_layer.$1"),
        (@"^time_text_embed\.text_embedder\.linear_1\.(\w+)$", "vector_in.in_layer.$1"),
        (@"^time_text_embed\.text_embedder\.linear_2\.(\w+)$", "vector_in.out_layer.$1"),
        (@"^context_embedder\.(\w+)$", "txt_in.$1"),
        (@"^x_embedder\.(\w+)$", "img_in.$1"),
        (@"^proj_out\.(\w+)$", "final_layer.linear.$1"),
        (@"^norm_out\.linear\.(\w+)$", "final_layer.adaLN_modulation.1.$1"),
        (@"^transformer_blocks\.(\d+)\.norm1\.linear\.(\w+)$", "double_blocks.$1.img_mod.lin.$2"),
        (@"^transformer_blocks\.(\d+)\.norm1_context\.linear\.(\w+)$", "double_blocks.$1.txt_mod.lin.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_(?<p>[qkv])\.(\w+)$", "double_blocks.$1.img_attn.qkv.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.add_(?<p>[qkv])_proj\.(\w+)$", "double_blocks.$1.txt_attn.qkv.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_q\.weight$", "double_blocks.$1.img_attn.norm.query_norm.scale"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_k\.weight$", "double_blocks.$1.img_attn.norm.key_norm.scale"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_added_q\.weight$", "double_blocks.$1.txt_attn.norm.query_norm.scale"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_added_k\.weight$", "double_blocks.$1.txt_attn.norm.key_norm.scale"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_out\.0\.(\w+)$", "double_blocks.$1.img_attn.proj.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_add_out\.(\w+)$", "double_blocks.$1.txt_attn.proj.$2"),
        (@"^transformer_blocks\.(\d+)\.ff\.net\.0\.proj\.(\w+)$", "double_blocks.$1.img_mlp.0.$2"),
        (@"^transformer_blocks\.(\d+)\.ff\.net\.2\.(\w+)$", "double_blocks.$1.img_mlp.2.$2"),
        (@"^transformer_blocks\.(\d+)\.ff_context\.net\.0\.proj\.(\w+)$", "double_blocks.$1.txt_mlp.0.$2"),
        (@"^transformer_blocks\.(\d+)\.ff_context\.net\.2\.(\w+)$", "double_blocks.$1.txt_mlp.2.$2"),
        (@"^single_transformer_blocks\.(\d+)\.norm\.linear\.(\w+)$", "single_blocks.$1.modulation.lin.$2"),
        (@"^single_transformer_blocks\.(\d+)\.attn\.to_(?<p>[qkv])\.(\w+)$", "single_blocks.$1.linear1.$2"),
        (@"^single_transformer_blocks\.(\d+)\.proj_(?<p>m)lp\.(\w+)$", "single_blocks.$1.linear1.$2"),
        (@"^single_transformer_blocks\.(\d+)\.attn\.norm_q\.weight$", "single_blocks.$1.norm.query_norm.scale"),
        (@"^single_transformer_blocks\.(\d+)\.attn\.norm_k\.weight$", "single_blocks.$1.norm.key_norm.scale"),
        (@"^single_transformer_blocks\.(\d+)\.proj_out\.(\w+)$", "single_blocks.$1.linear2.$2"),
    ];

    /// <summary>The golden folder's transformer in BFL's layout, its names under <paramref name="prefix"/> (ComfyUI's
    /// model.diffusion_model., or none as BFL ships it).</summary>
    public static Dictionary<string, Tensor> BflTransformer(string model, string prefix = "")
    {
        using var file = SafetensorsFile.Open(Path.Combine(FluxGolden.ModelDir(model), "transformer", "diffusion_pytorch_model.safetensors"));
        var into = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var fused = new Dictionary<string, Tensor?[]>(StringComparer.Ordinal);
        foreach (var name in file.Tensors.Keys)
        {
            var (pattern, bfl) = Table.Single(r => Regex.IsMatch(name, r.Pattern));
            var match = Regex.Match(name, pattern);
            string key = prefix + match.Result(bfl);
            var t = file.Load(name);
            if (name.StartsWith("norm_out.linear.", StringComparison.Ordinal))
            {
                var halves = t.chunk(2, 0); // diffusers' [scale | shift] → BFL's [shift | scale]
                var swapped = cat([halves[1], halves[0]], 0);
                foreach (var half in halves) half.Dispose();
                t.Dispose();
                t = swapped;
            }
            if (match.Groups["p"].Success)
                (fused.TryGetValue(key, out var parts) ? parts : fused[key] = new Tensor?[4])["qkvm".IndexOf(match.Groups["p"].Value[0])] = t;
            else
                into[key] = t;
        }
        foreach (var (key, parts) in fused)
            into[key] = cat(parts.OfType<Tensor>().ToArray(), 0);
        return into;
    }

    /// <summary>The files of <paramref name="model"/> in <paramref name="dir"/>; returns the transformer file's path.</summary>
    public static (string Transformer, string Clip, string T5, string Vae, string Config) Write(string model, string dir, string prefix = "")
    {
        string transformer = Path.Combine(dir, $"flux1-{model}.safetensors");
        var tensors = BflTransformer(model, prefix);
        SafetensorsWriter.Save(transformer, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        string clip = Path.Combine(dir, "clip_l.safetensors"), t5 = Path.Combine(dir, "t5", "t5xxl_fp16.safetensors"), vae = Path.Combine(dir, "ae.safetensors");
        Directory.CreateDirectory(Path.GetDirectoryName(t5)!);
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder", clip);
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder_2", t5);
        File.Copy(Path.Combine(FluxGolden.ModelDir(model), "tokenizer_2", "spiece.model"), Path.Combine(dir, "t5", "spiece.model"));
        Sd3FileWriter.WriteVae(model, vae);
        string config = Path.Combine(dir, "config");
        foreach (string component in (string[])["transformer", "vae", "text_encoder"])
            File.Copy(Path.Combine(FluxGolden.ModelDir(model), component, "config.json"), Path.Combine(Directory.CreateDirectory(Path.Combine(config, component)).FullName, "config.json"));
        return (transformer, clip, t5, vae, config);
    }
}
