using TorchSharp;
using System.Text.Json.Nodes;
using SharpDiffusion.Families;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// Full-resolution live previews through a TAESD (<c>--preview-vae</c>, A1111's "TAESD" preview type): x̂₀ of a step →
/// AutoencoderTiny decode → [0, 1] → uint8, as diffusers decodes with a TAESD as the pipeline's VAE:
/// image = clamp(decode(x̂₀ / s + shift) / 2 + ½, 0, 1) with TAESD's own scaling s and shift (1 and 0 for taesd/taesdxl:
/// its latents are the denoiser's). The model's VAE is not touched: the final image still decodes with it.
/// </summary>
public sealed class TaesdPreview : ILatentPreview
{
    readonly AutoencoderTiny _vae;
    readonly LatentFormat _format;
    readonly Device _device;

    TaesdPreview(AutoencoderTiny vae, LatentFormat format, Device device) => (_vae, _format, _device) = (vae, format, device);

    /// <summary>The TAESD's decoder in float32.</summary>
    public AutoencoderTiny Vae => _vae;

    /// <summary>The format x̂₀ is read in: the model's channels with TAESD's scaling and shift.</summary>
    public LatentFormat Format => _format;

    /// <summary>Loads the TAESD at <paramref name="path"/> (a diffusers AutoencoderTiny folder, or taesd_decoder.safetensors/.pth,
    /// taesdxl, taesd3, taef1) for a model whose latents are <paramref name="model"/>; another channel count or factor is refused
    /// in one line naming the TAESD that fits.</summary>
    public static TaesdPreview Load(string path, LatentFormat model, string device = "cpu")
    {
        string full = Path.GetFullPath(path);
        AutoencoderTiny vae;
        if (Directory.Exists(full))
        {
            string dir = File.Exists(Path.Combine(full, "config.json")) ? full : Path.Combine(full, "vae");
            string configPath = Path.Combine(dir, "config.json");
            if (!File.Exists(configPath))
                throw new FileNotFoundException($"--preview-vae {path}: no config.json there or in vae/; give a diffusers AutoencoderTiny folder or a taesd_decoder file.");
            var json = JsonNode.Parse(File.ReadAllText(configPath))?.AsObject() ?? throw new InvalidDataException($"{configPath}: not a JSON object.");
            string cls = json["_class_name"]?.GetValue<string>() ?? "";
            if (cls != "AutoencoderTiny")
                throw new ArgumentException($"--preview-vae {configPath}: _class_name '{cls}' is not a TAESD (AutoencoderTiny); previews decode with a TAESD, the full VAE goes to --vae.");
            vae = AutoencoderTinyFiles.LoadFolder(dir, json);
        }
        else if (!File.Exists(full))
            throw new FileNotFoundException($"--preview-vae {path}: no such file or folder.");
        else if (!AutoencoderTinyFiles.IsOriginalLayout(full))
            throw new ArgumentException($"--preview-vae {path}: not a TAESD file (taesd_decoder.safetensors/.pth: keys N.weight); previews decode with a TAESD, a full VAE goes to --vae.");
        else
            vae = AutoencoderTinyFiles.LoadOriginal(full);
        if (vae.LatentChannels != model.Channels || vae.SpatialFactor != model.SpatialFactor)
        {
            int channels = vae.LatentChannels, factor = vae.SpatialFactor;
            vae.Dispose();
            throw new ArgumentException($"--preview-vae {path}: this TAESD takes {channels}-channel latents at 1/{factor} size, the model makes {model.Channels} at " +
                $"1/{model.SpatialFactor}; use taesd/taesdxl for 4-channel models (SD 1.x/2.x/XL), taesd3/taef1 for 16 (SD3/Flux).");
        }
        var target = new Device(device);
        vae.to(target);
        return new TaesdPreview(vae, model with { ScalingFactor = vae.Config.ScalingFactor, ShiftFactor = vae.Config.ShiftFactor }, target);
    }

    /// <summary>x̂₀ [B, C, h, w] → image [B, H, W, 3] float32 in [0, 1] on the CPU.</summary>
    public Tensor Decode(Tensor latents)
    {
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var z = _format.ToVae(latents.to(ScalarType.Float32)).to(_device);                   // [B, C, h, w]
        var image = (_vae.Decode(z).to(ScalarType.Float32) / 2 + 0.5).clamp(0.0, 1.0);     // [B, 3, H, W]
        return image.permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();     // [B, H, W, 3]
    }

    /// <inheritdoc/>
    public IReadOnlyList<RgbImage> ToImages(Tensor latents)
    {
        using var image = Decode(latents);
        using var bytes = ImageTensors.ToUInt8(image);
        int b = (int)bytes.shape[0], h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        return Enumerable.Range(0, b).Select(i => new RgbImage(w, h, all[(i * h * w * 3)..((i + 1) * h * w * 3)])).ToList();
    }

    public void Dispose() => _vae.Dispose();
}
