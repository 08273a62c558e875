using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>A diffusers folder written as one LDM-layout safetensors file with the key tables run forwards: single files
/// for the families the golden has only as folders (SD 2.x, inpainting).</summary>
static class LdmFileWriter
{
    /// <param name="openClip">write the text encoder as SD 2.x's OpenCLIP (fused in_proj, plus an unused last resblock,
    /// text_projection and logit_scale, as real files carry); else as SD 1.x's transformers names.</param>
    public static void Write(string folder, string path, bool openClip)
    {
        var tensors = new Dictionary<string, Tensor>();
        var unetConfig = UNet2DConditionConfig.From(JsonConfig.Load(Path.Combine(folder, "unet", "config.json")));
        using (var unet = SafetensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors")))
            foreach (var (name, ldm) in LdmKeyMap.UNet(unet.Tensors.Keys, unetConfig))
                tensors[ldm] = unet.Load(name);
        var vaeConfig = AutoencoderKLConfig.From(JsonConfig.Load(Path.Combine(folder, "vae", "config.json")));
        using (var vae = SafetensorsFile.Open(Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors")))
            foreach (var (name, ldm) in LdmKeyMap.Vae(vae.Tensors.Keys, vaeConfig.BlockOutChannels.Length, vaeConfig.LayersPerBlock))
            {
                var t = vae.Load(name);
                tensors[ldm] = ldm.Contains("mid.attn_1.") && ldm.EndsWith(".weight") && t.dim() == 2 ? t.reshape(t.shape[0], t.shape[1], 1, 1) : t;
            }
        using var text = SafetensorsFile.Open(Path.Combine(folder, "text_encoder", "model.safetensors"));
        var textNames = text.Tensors.Keys.Where(k => !k.EndsWith("position_ids")).ToList();
        if (!openClip)
        {
            foreach (var (name, ldm) in LdmKeyMap.Clip(textNames))
                tensors[ldm] = text.Load(name);
        }
        else
        {
            int layers = JsonConfig.Load(Path.Combine(folder, "text_encoder", "config.json")).GetInt("num_hidden_layers", 12);
            var parts = new Dictionary<string, Tensor[]>();
            foreach (var (name, ldm) in LdmKeyMap.OpenClip(textNames, layers))
            {
                int hash = ldm.IndexOf(LdmKeyMap.PartSeparator);
                if (hash < 0) { tensors[ldm] = text.Load(name); continue; }
                var fused = parts.TryGetValue(ldm[..hash], out var p) ? p : parts[ldm[..hash]] = new Tensor[3];
                fused["qkv".IndexOf(ldm[hash + 1])] = text.Load(name);
            }
            foreach (var (fusedName, qkv) in parts)
                tensors[fusedName] = cat(qkv, 0);
            string last = $".resblocks.{layers - 1}.";
            foreach (var key in tensors.Keys.Where(k => k.Contains(last)).ToList())
                tensors[key.Replace(last, $".resblocks.{layers}.")] = tensors[key].clone();
            long hidden = tensors[LdmKeyMap.OpenClipPrefix + "token_embedding.weight"].shape[1];
            tensors[LdmKeyMap.OpenClipPrefix + "text_projection"] = randn(hidden, hidden);
            tensors[LdmKeyMap.OpenClipPrefix + "logit_scale"] = tensor(4.6f);
        }
        SafetensorsWriter.Save(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }
}
