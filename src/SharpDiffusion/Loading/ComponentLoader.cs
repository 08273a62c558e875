using SharpDiffusion.Configuration;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Tuning;
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
    /// <summary>Convolution weights in channels-last layout, so conv activations follow (same results to rounding).
    /// Null: the layout <see cref="Tuning"/> finds faster on this machine for <see cref="DType"/>.</summary>
    public bool? ChannelsLast { get; init; }
    /// <summary>The UNet's attention kernel. Null: the one <see cref="Tuning"/> finds faster per head size and token count.</summary>
    public AttentionKernel? Attention { get; init; }
    /// <summary>Where the choices left null come from. Null: <see cref="FastPaths.Default"/> (the user's cache folder,
    /// measured at first use unless SHARPDIFFUSION_TUNING=off).</summary>
    public FastPaths? Tuning { get; init; }

    /// <summary>The fast-path source in effect.</summary>
    public FastPaths FastPaths => Tuning ?? FastPaths.Default;

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
        UseAttentionKernels(model, options);
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

    /// <summary>Gives each attention module of <paramref name="unet"/> the kernel choice of <paramref name="options"/>.</summary>
    internal static void UseAttentionKernels(UNet2DConditionModel unet, LoadOptions options)
    {
        var choice = options.FastPaths.AttentionChoice(options);
        foreach (var attention in unet.modules().OfType<Attention>()) attention.KernelChoice = choice;
    }

    /// <summary>Whether conv weights go channels-last for <paramref name="options"/> (forced, measured or default).</summary>
    internal static bool ChannelsLast(LoadOptions options) => options.FastPaths.ChannelsLast(options).Value;

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

    static WeightPlacement Placement(LoadOptions o, bool convs) => new(o.DType, new Device(o.Device), convs && ChannelsLast(o));

    static T Finish<T>(T model) where T : nn.Module
    {
        model.eval();
        return model;
    }
}
