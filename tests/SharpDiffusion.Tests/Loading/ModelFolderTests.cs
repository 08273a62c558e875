using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Loading real folders: variants, and errors that name the file and the fix.</summary>
public class ModelFolderTests
{
    internal static void CopyDir(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDir(d, Path.Combine(to, Path.GetFileName(d)));
    }

    [Fact]
    public void Folder_without_model_index_is_reported()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("model_index.json", e.Message);
    }

    [Fact]
    public void Missing_component_is_reported()
    {
        using var dir = new TempDir();
        CopyDir(Golden.Path("models", "tiny-sd"), dir.Path);
        Directory.Delete(Path.Combine(dir.Path, "vae"), recursive: true);
        var e = Assert.Throws<DirectoryNotFoundException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("vae", e.Message);
    }

    [Fact]
    public void Config_that_does_not_match_the_weights_names_the_parameters()
    {
        using var dir = new TempDir();
        CopyDir(Golden.Path("models", "tiny-sd", "unet"), dir.Path);
        string config = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"layers_per_block\": 2", "\"layers_per_block\": 1"));
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet(dir.Path));
        Assert.Contains("down_blocks.0.resnets.1", e.Message);
    }

    [Fact]
    public void Legacy_vae_attention_names_and_conv_shaped_projections_load()
    {
        // VAEs saved before diffusers 0.14 (e.g. the SD v1-4/v1-5 downloads) name the mid-block attention
        // query/key/value/proj_attn; some store those projections as 1×1 conv kernels.
        using var dir = new TempDir();
        CopyDir(Golden.Path("models", "tiny-sd", "vae"), dir.Path);
        string weights = Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors");
        using (var file = SafetensorsFile.Open(weights))
        {
            var legacy = file.Tensors.Keys.ToDictionary(
                k => k.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."),
                k =>
                {
                    var t = file.Load(k);
                    return k.Contains(".attentions.") && k.EndsWith(".weight") && t.dim() == 2 ? t.unsqueeze(-1).unsqueeze(-1) : t;
                });
            Assert.Contains(legacy.Keys, k => k.Contains(".proj_attn."));
            SafetensorsWriter.Save(weights + ".legacy", legacy);
        }
        File.Move(weights + ".legacy", weights, overwrite: true);

        using var _ = TorchSharp.torch.inference_mode();
        using var vae = ComponentLoader.LoadVae(dir.Path);
        using var reference = ComponentLoader.LoadVae(Golden.Path("models", "tiny-sd", "vae"));
        var z = Golden.Load("vae", "tiny-sd_square.safetensors")["decode_in_z"];
        Assert.Equal(0.0, Golden.MaxAbsDiff(vae.Decode(z), reference.Decode(z)));
    }

    [Fact]
    public void Fp16_variant_loads_and_matches_fp32_weights_to_half_precision()
    {
        using var dir = new TempDir();
        CopyDir(Golden.Path("models", "tiny-sd", "vae"), dir.Path);
        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors")))
        {
            var tensors = file.Tensors.Keys.ToDictionary(k => k, k => file.Load(k).to(TorchSharp.torch.ScalarType.Float16));
            SafetensorsWriter.Save(Path.Combine(dir.Path, "diffusion_pytorch_model.fp16.safetensors"), tensors);
        }
        File.Delete(Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors"));

        var missing = Assert.Throws<FileNotFoundException>(() => ComponentLoader.LoadVae(dir.Path));
        Assert.Contains("fp16", missing.Message);

        using var vae = ComponentLoader.LoadVae(dir.Path, new LoadOptions { Variant = "fp16" });
        using var reference = ComponentLoader.LoadVae(Golden.Path("models", "tiny-sd", "vae"));
        var ours = vae.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in reference.named_parameters())
            Assert.True(Golden.MaxAbsDiff(ours[name], p) <= 1e-3 * Math.Max(1, Golden.MaxAbs(p)), name);
    }
}
