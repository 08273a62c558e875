using SharpDiffusion.Configuration;
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

/// <summary>
/// Builds each diffusers/transformers component from its folder (config.json + safetensors). The model is
/// built on the meta device (no memory, no random initialisation) and each stored tensor becomes its parameter
/// directly in the requested dtype, device and layout.
/// </summary>
public static class ComponentLoader
{
    static readonly Device Meta = new("meta");

    public static ClipTextModel LoadTextEncoder(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        string configPath = ConfigPath(dir);
        var config = ClipTextConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        var model = Build(() => new ClipTextModel(config));
        // position_ids was a non-persistent buffer that older transformers versions saved anyway.
        WeightFiles.LoadInto(model, weights, Placement(options, convs: false),
            ignore: k => k.EndsWith("position_ids", StringComparison.Ordinal));
        return Finish(model);
    }

    public static UNet2DConditionModel LoadUNet(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        string configPath = ConfigPath(dir);
        var config = UNet2DConditionConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        var model = Build(() => new UNet2DConditionModel(config));
        WeightFiles.LoadInto(model, weights, Placement(options, convs: true));
        return Finish(model);
    }

    public static AutoencoderKL LoadVae(string dir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        string configPath = ConfigPath(dir);
        var config = AutoencoderKLConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        var model = Build(() => new AutoencoderKL(config));
        WeightFiles.LoadInto(model, weights, Placement(options, convs: true),
            rename: VaeAttention.RenameLegacyKey);
        UpcastIfNeeded(model, options);
        return Finish(model);
    }

    /// <summary>diffusers' force_upcast: a float16 model's VAE runs in float32 (SDXL's overflows in float16), its weights
    /// the float16 ones upcast, as diffusers' vae.to(float32).</summary>
    internal static void UpcastIfNeeded(AutoencoderKL vae, LoadOptions options)
    {
        if (options.DType == ScalarType.Float16 && vae.Config.ForceUpcast)
            vae.to(ScalarType.Float32);
    }

    static string ConfigPath(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Component folder not found: {dir}");
        return Path.Combine(dir, "config.json");
    }

    static T Build<T>(Func<T> construct)
    {
        using var _ = Models.Layers.Placement(Meta);
        return construct();
    }

    static WeightPlacement Placement(LoadOptions o, bool convs) => new(o.DType, new Device(o.Device), convs && o.ChannelsLast);

    static T Finish<T>(T model) where T : nn.Module
    {
        model.eval();
        return model;
    }
}
