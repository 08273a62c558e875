using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Models.UNet;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// Loads a ControlNet from what users download: a diffusers folder (config.json + diffusion_pytorch_model.safetensors
/// or .bin), or one file in the original layout (<see cref="LdmControlNet"/>: .pth through the safe unpickler,
/// .safetensors, SD 1.x/2.x and SDXL). Built on the meta device and filled tensor by tensor, as the other components.
/// </summary>
public static class ControlNetLoader
{
    /// <summary>The config alone (no weights read), for checks before a generation.</summary>
    /// <param name="unet">the UNet it will serve: settles what a single file's shapes cannot tell (attention heads).</param>
    public static ControlNetModelConfig ReadConfig(string path, UNet2DConditionConfig? unet = null)
    {
        if (Directory.Exists(path))
            return ControlNetModelConfig.Load(Path.Combine(path, "config.json"));
        using var file = TensorFiles.Open(path);
        return LdmControlNet.Inspect(file, unet).Config;
    }

    public static ControlNetModel Load(string path, LoadOptions? options = null, UNet2DConditionConfig? unet = null)
    {
        options = (options ?? new LoadOptions()) with { LowMemory = false };
        var placement = new WeightPlacement(options.DType, new Device(options.Device), options.Layout().Value);
        if (Directory.Exists(path))
        {
            string configPath = Path.Combine(path, "config.json");
            var config = ControlNetModelConfig.Load(configPath);
            var weights = WeightFiles.Find(path, "diffusion_pytorch_model", options.Variant);
            WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
            return Attention((ControlNetModel)ComponentLoader.Create(() => new ControlNetModel(config), options,
                m => WeightFiles.LoadInto(m, weights, placement)).Module, options);
        }

        using var file = TensorFiles.Open(path);
        var ldm = LdmControlNet.Inspect(file, unet);
        return Attention((ControlNetModel)ComponentLoader.Create(() => new ControlNetModel(ldm.Config), options, m =>
        {
            var fromLdm = ldm.KeyMap(m.named_parameters().Select(p => p.name)).ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);
            StateDictLoader.Load(m, [file], placement, rename: key => fromLdm.GetValueOrDefault(LdmKeyMap.Normalize(key), key));
        }).Module, options);
    }

    /// <summary>The attention kernel choice of <paramref name="options"/>, as the UNet's.</summary>
    static ControlNetModel Attention(ControlNetModel model, LoadOptions options)
    {
        var choice = options.FastPaths.AttentionChoice(options.Attention);
        foreach (var attention in model.modules().OfType<Attention>()) attention.KernelChoice = choice;
        return model;
    }
}
