using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Configuration;

namespace SharpDiffusion.Tests.Loading;

/// <summary>The key tables against real LDM-layout files written by diffusers' own converters (golden "Single-file checkpoint"
/// and "SDXL single-file checkpoint"): every name they produce, and for OpenCLIP the fused q/k/v values.</summary>
public class LdmKeyMapTests
{
    [Fact]
    public void Sd15_tables_name_every_tensor_of_the_converted_file()
    {
        using var file = SafetensorsFile.Open(Golden.Path("single_file", "small-sd15.safetensors"));
        var keys = file.Tensors.Keys.ToHashSet();
        string folder = Golden.Path("models", "small-sd15");
        using var unet = SafetensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"));
        var config = UNet2DConditionConfig.From(JsonConfig.Load(Path.Combine(folder, "unet", "config.json")));
        var unetMap = LdmKeyMap.UNet(unet.Tensors.Keys, config);
        using var vae = SafetensorsFile.Open(Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors"));
        var vaeMap = LdmKeyMap.Vae(vae.Tensors.Keys, 4, 2);
        using var text = SafetensorsFile.Open(Path.Combine(folder, "text_encoder", "model.safetensors"));
        var textMap = LdmKeyMap.Clip(text.Tensors.Keys);
        var mapped = unetMap.Values.Concat(vaeMap.Values).Concat(textMap.Values).ToHashSet();
        Assert.Empty(mapped.Except(keys));
        Assert.Empty(keys.Except(mapped));
        Assert.Equal("model.diffusion_model.output_blocks.2.1.conv.weight", unetMap["up_blocks.0.upsamplers.0.conv.weight"]);
        Assert.Equal("model.diffusion_model.output_blocks.5.2.conv.weight", unetMap["up_blocks.1.upsamplers.0.conv.weight"]);
        Assert.Equal("first_stage_model.decoder.up.0.block.0.nin_shortcut.weight", vaeMap["decoder.up_blocks.3.resnets.0.conv_shortcut.weight"]);
        Assert.Equal("first_stage_model.encoder.mid.attn_1.proj_out.weight", vaeMap["encoder.mid_block.attentions.0.to_out.0.weight"]);
    }

    [Fact]
    public void OpenClip_tables_split_the_fused_projection_as_the_sdxl_file_stores_it()
    {
        // tiny-sdxl.safetensors stores text_encoder_2 as OpenCLIP under conditioner.embedders.1.model.
        const string sdxlPrefix = "conditioner.embedders.1.model.";
        using var file = SafetensorsFile.Open(Golden.Path("single_file", "tiny-sdxl.safetensors"));
        using var split = new FusedQkvSplitFile(file);
        using var folder = SafetensorsFile.Open(Golden.Path("models", "tiny-sdxl", "text_encoder_2", "model.safetensors"));
        var names = folder.Tensors.Keys.Where(k => k.StartsWith("text_model.", StringComparison.Ordinal) && !k.EndsWith("position_ids")).ToList();
        var map = LdmKeyMap.OpenClip(names, layers: 5);
        foreach (var name in names)
        {
            string key = sdxlPrefix + map[name][LdmKeyMap.OpenClipPrefix.Length..];
            Assert.True(split.Contains(key), $"{name} -> {key} not in the file");
            using var expected = folder.Load(name);
            using var actual = split.Load(key);
            Assert.True(expected.shape.SequenceEqual(actual.shape) && expected.bytes.SequenceEqual(actual.bytes), $"{name} differs from {key}");
        }
    }
}
