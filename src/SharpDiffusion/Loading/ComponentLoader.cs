using SharpDiffusion.Configuration;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.Transformers;
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

    /// <summary>Whether conv weights go channels-last: <see cref="ChannelsLast"/>, else $SHARPDIFFUSION_LAYOUT, else measured.</summary>
    public Choice<bool> Layout() => FastPaths.ChannelsLast(ChannelsLast, DType, new Device(Device));

    /// <summary>A pipeline's components keep their weights in memory only while they run: the text encoder's are read
    /// for the prompts and freed, the UNet's for the denoising loop, the VAE's for encoding and decoding. The lowest
    /// peak memory for one generation (the CLI's); every later call reads the weights from their files again.</summary>
    public bool LowMemory { get; init; }
}

/// <summary>
/// Builds each diffusers/transformers component from its folder (config.json + safetensors). The model is
/// built on the meta device (no memory, no random initialisation) and each stored tensor becomes its parameter
/// directly in the requested dtype, device and layout.
/// </summary>
public static class ComponentLoader
{
    static readonly Device Meta = new("meta");

    public static ClipTextModel LoadTextEncoder(string dir, LoadOptions? options = null) =>
        (ClipTextModel)TextEncoder(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    public static UNet2DConditionModel LoadUNet(string dir, LoadOptions? options = null) =>
        (UNet2DConditionModel)UNet(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    public static AutoencoderKL LoadVae(string dir, LoadOptions? options = null) =>
        (AutoencoderKL)Vae(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    /// <summary>The text encoder of a component folder, its weights read now or, with <see cref="LoadOptions.LowMemory"/>, when it first runs.</summary>
    public static ComponentWeights TextEncoder(string dir, LoadOptions options)
    {
        string configPath = ConfigPath(dir);
        var config = ClipTextConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        // position_ids was a non-persistent buffer that older transformers versions saved anyway.
        return Create(() => new ClipTextModel(config), options, m => WeightFiles.LoadInto(m, weights, Placement(options, convs: false),
            ignore: k => k.EndsWith("position_ids", StringComparison.Ordinal)));
    }

    public static ComponentWeights UNet(string dir, LoadOptions options)
    {
        string configPath = ConfigPath(dir);
        var config = UNet2DConditionConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        var unet = Create(() => new UNet2DConditionModel(config), options, m => WeightFiles.LoadInto(m, weights, Placement(options, convs: true)));
        UseAttentionKernels((UNet2DConditionModel)unet.Module, options);
        return unet;
    }

    public static ComponentWeights Vae(string dir, LoadOptions options)
    {
        string configPath = ConfigPath(dir);
        var config = AutoencoderKLConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        return Create(() => new AutoencoderKL(config), options, m =>
        {
            WeightFiles.LoadInto(m, weights, Placement(options, convs: true), rename: VaeAttention.RenameLegacyKey);
            UpcastIfNeeded((AutoencoderKL)m, options);
        });
    }

    public static SD3Transformer2DModel LoadSD3Transformer(string dir, LoadOptions? options = null) =>
        (SD3Transformer2DModel)SD3Transformer(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    /// <summary>An SD3/SD3.5 transformer/ folder (SD3Transformer2DModel), its weights read now or at first use.</summary>
    public static ComponentWeights SD3Transformer(string dir, LoadOptions options)
    {
        string configPath = ConfigPath(dir);
        var config = SD3Transformer2DConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        var transformer = Create(() => new SD3Transformer2DModel(config), options, m => WeightFiles.LoadInto(m, weights, Placement(options, convs: false)));
        ((SD3Transformer2DModel)transformer.Module).UseAttentionKernel(options.FastPaths.AttentionChoice(options.Attention));
        return transformer;
    }

    /// <summary>A component built on the meta device (no memory, no random initialisation), in evaluation mode, whose
    /// <paramref name="read"/> fills it from its files: now, or at first use with <see cref="LoadOptions.LowMemory"/>.</summary>
    internal static ComponentWeights Create(Func<nn.Module> build, LoadOptions options, Action<nn.Module> read)
    {
        nn.Module model;
        using (Models.Layers.Placement(Meta)) model = build();
        model.eval();
        var dtype = model is AutoencoderKL vae && NeedsUpcast(vae, options) ? ScalarType.Float32 : options.DType;
        return ComponentWeights.Create(model, read, options.LowMemory, dtype);
    }

    /// <summary>diffusers' force_upcast: a float16 model's VAE runs in float32 (SDXL's overflows in float16), its weights
    /// the float16 ones upcast, as diffusers' vae.to(float32).</summary>
    internal static void UpcastIfNeeded(AutoencoderKL vae, LoadOptions options)
    {
        if (NeedsUpcast(vae, options))
            vae.to(ScalarType.Float32);
    }

    static bool NeedsUpcast(AutoencoderKL vae, LoadOptions options) => options.DType == ScalarType.Float16 && vae.Config.ForceUpcast;

    /// <summary>Gives each attention module of <paramref name="unet"/> the kernel choice of <paramref name="options"/>.</summary>
    internal static void UseAttentionKernels(UNet2DConditionModel unet, LoadOptions options)
    {
        var choice = options.FastPaths.AttentionChoice(options.Attention);
        foreach (var attention in unet.modules().OfType<Attention>()) attention.KernelChoice = choice;
    }

    static string ConfigPath(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Component folder not found: {dir}");
        return Path.Combine(dir, "config.json");
    }

    static WeightPlacement Placement(LoadOptions o, bool convs) => new(o.DType, new Device(o.Device), convs && o.Layout().Value);

}
