using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>Where and how a model's weights should live once loaded.</summary>
public sealed record LoadOptions
{
    /// <summary>diffusers' weight variant, e.g. "fp16" for <c>diffusion_pytorch_model.fp16.safetensors</c>.</summary>
    public string? Variant { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>Compute dtype; weights stored in another dtype are converted once at load.</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>Convolution weights in channels-last layout (the fast oneDNN path on CPU; same results to rounding).</summary>
    public bool ChannelsLast { get; init; } = true;
}

/// <summary>Builds each diffusers/transformers component from its folder (config.json + safetensors).</summary>
public static class ComponentLoader
{
    public static ClipTextModel LoadTextEncoder(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var config = ClipTextConfig.From(JsonConfig.Load(ConfigPath(dir)));
        var model = new ClipTextModel(config);
        // position_ids was a non-persistent buffer that older transformers versions saved anyway.
        WeightFiles.LoadInto(model, WeightFiles.Find(dir, "model", options.Variant), ignore: k => k.EndsWith("position_ids", StringComparison.Ordinal));
        return Finish(model, options);
    }

    public static UNet2DConditionModel LoadUNet(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var model = new UNet2DConditionModel(UNet2DConditionConfig.From(JsonConfig.Load(ConfigPath(dir))));
        WeightFiles.LoadInto(model, WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant));
        return Finish(model, options);
    }

    public static AutoencoderKL LoadVae(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var model = new AutoencoderKL(AutoencoderKLConfig.From(JsonConfig.Load(ConfigPath(dir))));
        WeightFiles.LoadInto(model, WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant), rename: VaeAttention.RenameLegacyKey);
        return Finish(model, options);
    }

    static string ConfigPath(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Component folder not found: {dir}");
        return Path.Combine(dir, "config.json");
    }

    static T Finish<T>(T model, LoadOptions options) where T : nn.Module
    {
        model.eval();
        foreach (var (_, p) in model.named_parameters()) p.requires_grad = false;
        if (options.DType != ScalarType.Float32) model.to(options.DType);
        if (options.Device != "cpu") model.to(new Device(options.Device));
        if (options.ChannelsLast) Models.MemoryLayout.UseChannelsLast(model);
        return model;
    }
}
