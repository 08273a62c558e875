using System.Security.Cryptography;
using TorchSharp;
using SharpDiffusion.Families;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// The VAE between pixels and the loop's latents, in the family's <see cref="LatentFormat"/> (scale and shift): images
/// [B, 3, H, W] in [−1, 1] → latents [B, C, H/f, W/f] and back. Its dtype is float32 when a float16 model's VAE must be
/// upcast (force_upcast). <see cref="UseVae"/> swaps in another VAE (A1111's and ComfyUI's separate VAE files, TAESD):
/// encode and decode then go through it, with its own scaling factor.
/// </summary>
public sealed class VaeCodec(ComponentWeights weights, LatentFormat format, Device device, ScalarType dtype)
{
    ComponentWeights? _replacement;
    LatentFormat _format = format;
    ComponentWeights Active => _replacement ?? weights;

    /// <summary>The model's own VAE (what the model was loaded with, whatever <see cref="UseVae"/> put in its place).</summary>
    public ComponentWeights Weights => weights;
    public AutoencoderKL Model => (AutoencoderKL)weights.Module;

    /// <summary>The VAE encode and decode use: the model's, or the one <see cref="UseVae"/> loaded.</summary>
    public IAutoencoder Autoencoder => (IAutoencoder)Active.Module;
    public LatentFormat Format => _format;
    /// <summary>The VAE's dtype: float32 when a float16 model's VAE was upcast, else the compute dtype.</summary>
    public ScalarType DType => Active.Module.parameters().FirstOrDefault()?.dtype ?? dtype;

    /// <summary>The file name of a VAE given by <see cref="UseVae"/> (A1111's infotext "VAE"), else null.</summary>
    public string? VaeName { get; private set; }
    /// <summary>A1111's "VAE hash": the first 10 hex digits of the SHA-256 of that file (of a folder's weights file).</summary>
    public string? VaeHash { get; private set; }

    /// <summary>Image [1, 3, H, W] in [−1, 1] → the format's latents of one sample of the VAE posterior, [1, C, h, w] float32
    /// (diffusers' retrieve_latents(sample_mode="sample") with the pipeline generator: one draw; TAESD draws nothing).</summary>
    public Tensor Encode(Tensor image, Generator generator)
    {
        using var scope = NewDisposeScope();
        using var use = Active.Use();
        var sample = Autoencoder.EncodeSample(image.to(DType).to(device), generator).to(ScalarType.Float32);
        return _format.FromVae(sample).MoveToOuterDisposeScope();
    }

    /// <summary>Latents → image in [0, 1], [B, H, W, 3] float32 on the CPU; <paramref name="tiled"/> decodes in overlapping
    /// tiles (the AutoencoderKL; TAESD is small enough to decode whole).</summary>
    public Tensor Decode(Tensor latents, bool tiled = false)
    {
        using var scope = NewDisposeScope();
        using var use = Active.Use();
        var z = _format.ToVae(latents).to(DType);
        var decoded = (tiled && Autoencoder is AutoencoderKL kl ? TiledDecoder.Decode(kl, z) : Autoencoder.Decode(z)).to(ScalarType.Float32);
        var image = (decoded / 2 + 0.5).clamp(0.0, 1.0);
        return image.permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Decodes and encodes with the VAE at <paramref name="path"/> from now on (<c>--vae</c>): a TAESD (a diffusers
    /// AutoencoderTiny folder, or taesd_decoder/taesd_encoder files: taesd, taesdxl, taesd3, taef1) or an AutoencoderKL
    /// (a diffusers vae/ folder, or a single file in the LDM or diffusers layout: vae-ft-mse-840000-ema-pruned.safetensors,
    /// sdxl_vae.safetensors, .ckpt/.pt). Its latent channels and factor must be the model's. Not thread-safe: call it
    /// before generating, as <see cref="StableDiffusionPipeline.LoadTextualInversion"/>.</summary>
    public void UseVae(string path, LoadOptions options)
    {
        string full = Path.GetFullPath(path);
        var (loaded, scaling, shift, hashed) = Load(full, options, Model.Config);
        try
        {
            var vae = (IAutoencoder)loaded.Module;
            if (vae.LatentChannels != _format.Channels || vae.SpatialFactor != _format.SpatialFactor)
                throw new ArgumentException($"--vae {path}: this VAE makes {vae.LatentChannels}-channel latents at 1/{vae.SpatialFactor} size, " +
                    $"the model works on {_format.Channels} channels at 1/{_format.SpatialFactor}; use a VAE of the model's family (taesd/taesdxl: 4 channels, taesd3/taef1: 16).");
        }
        catch
        {
            loaded.Module.Dispose();
            throw;
        }
        _replacement?.Module.Dispose();
        _replacement = loaded;
        _format = _format with { ScalingFactor = scaling ?? _format.ScalingFactor, ShiftFactor = shift ?? _format.ShiftFactor };
        VaeName = Path.GetFileName(full.TrimEnd(Path.DirectorySeparatorChar));
        VaeHash = Sha256Prefix(hashed);
    }

    /// <summary>The VAE at <paramref name="path"/>, its scaling and shift factors when it has its own (TAESD, a diffusers
    /// folder), and the file its hash is taken of.</summary>
    static (ComponentWeights Weights, double? Scaling, double? Shift, string HashedFile) Load(string path, LoadOptions options, AutoencoderKLConfig modelVae)
    {
        var resident = options with { LowMemory = false };
        if (Directory.Exists(path))
        {
            string dir = File.Exists(Path.Combine(path, "config.json")) ? path : Path.Combine(path, "vae");
            string configPath = Path.Combine(dir, "config.json");
            if (!File.Exists(configPath))
                throw new FileNotFoundException($"--vae {path}: no config.json there or in vae/; give a diffusers VAE folder or a VAE file.");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))?.AsObject()
                ?? throw new InvalidDataException($"{configPath}: not a JSON object.");
            string cls = json["_class_name"]?.GetValue<string>() ?? "AutoencoderKL";
            if (cls == "AutoencoderTiny")
            {
                var tiny = AutoencoderTinyFiles.LoadFolder(dir, json);
                tiny.to(new Device(options.Device));
                return (ComponentWeights.Loaded(tiny), tiny.Config.ScalingFactor, tiny.Config.ShiftFactor, WeightFiles.Find(dir, "diffusion_pytorch_model", null)[0]);
            }
            if (cls != "AutoencoderKL")
                throw new NotSupportedException($"--vae {configPath}: _class_name '{cls}' is not a VAE this pipeline runs (AutoencoderKL or AutoencoderTiny).");
            var kl = ComponentLoader.Vae(dir, resident);
            var config = ((AutoencoderKL)kl.Module).Config;
            return (kl, config.ScalingFactor, config.ShiftFactor, WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant)[0]);
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"--vae {path}: no such file or folder.");
        if (AutoencoderTinyFiles.IsOriginalLayout(path))
        {
            var tiny = AutoencoderTinyFiles.LoadOriginal(path);
            tiny.to(new Device(options.Device));
            return (ComponentWeights.Loaded(tiny), tiny.Config.ScalingFactor, tiny.Config.ShiftFactor, path);
        }
        return (LoadKLFile(path, resident, modelVae), null, null, path);
    }

    /// <summary>An AutoencoderKL single file, of the model's own VAE architecture <paramref name="config"/> (a file holds no
    /// config; SD 1.x/2.x and SDXL VAEs share one), keys in the LDM layout (<c>encoder.down.0.block.0…</c>, with or without
    /// <c>first_stage_model.</c>) or the diffusers one.</summary>
    internal static ComponentWeights LoadKLFile(string path, LoadOptions options, AutoencoderKLConfig config)
    {
        // As the model's own VAE is placed (channels-last convs when the layout choice says so): the same kernels run.
        var placement = new WeightPlacement(options.DType, new Device(options.Device), options.Layout().Value);
        return ComponentLoader.Create(() => new AutoencoderKL(config), options, m =>
        {
            using var file = TensorFiles.Open(path);
            var names = m.named_parameters().Select(p => p.name).ToList();
            var toOurs = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (ours, ldm) in LdmKeyMap.Vae(names, config.BlockOutChannels.Length, config.LayersPerBlock))
                toOurs[ldm[LdmKeyMap.VaePrefix.Length..]] = ours;
            StateDictLoader.Load(m, [file], placement,
                rename: key =>
                {
                    string k = LdmKeyMap.Normalize(key);
                    k = k.StartsWith(LdmKeyMap.VaePrefix, StringComparison.Ordinal) ? k[LdmKeyMap.VaePrefix.Length..] : k;
                    return toOurs.GetValueOrDefault(k, VaeAttention.RenameLegacyKey(k));
                },
                ignore: key => LdmKeyMap.Normalize(key) is var k && (k.StartsWith("loss.", StringComparison.Ordinal) || k.StartsWith("model_ema.", StringComparison.Ordinal)));
            ComponentLoader.UpcastIfNeeded((AutoencoderKL)m, options);
        });
    }

    static string Sha256Prefix(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..10];
    }
}
