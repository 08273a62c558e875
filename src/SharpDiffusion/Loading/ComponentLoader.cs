using SharpDiffusion.Configuration;
using SharpDiffusion.Loading.SingleFile;
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
    /// <summary>The float32 linear kernel of every model's linear layers (<see cref="Models.Linear"/>: the UNet's, the text
    /// encoders', the VAE's, ControlNet's, the SD3 and Flux transformers', T5's). Null: the one <see cref="Tuning"/> finds
    /// faster on this machine.</summary>
    public LinearKernel? Linear { get; init; }
    /// <summary>Where the choices left null come from. Null: <see cref="FastPaths.Default"/> (the user's cache folder,
    /// measured at first use unless SHARPDIFFUSION_TUNING=off).</summary>
    public FastPaths? Tuning { get; init; }

    /// <summary>The fast-path source in effect.</summary>
    public FastPaths FastPaths => Tuning ?? FastPaths.Default;

    /// <summary>Whether conv weights go channels-last: <see cref="ChannelsLast"/>, else $SHARPDIFFUSION_LAYOUT, else measured.</summary>
    public Choice<bool> Layout() => FastPaths.ChannelsLast(ChannelsLast, DType, new Device(Device));

    /// <summary>The linear kernel: <see cref="Linear"/>, else measured (float32 on the CPU), else F.linear.</summary>
    public Choice<LinearKernel> LinearChoice() => FastPaths.Linear(Linear, DType, new Device(Device));

    /// <summary>A pipeline's components keep their weights in memory only while they run: the text encoder's are read
    /// for the prompts and freed, the UNet's for the denoising loop, the VAE's for encoding and decoding. The lowest
    /// peak memory for one generation (the CLI's); every later call reads the weights from their files again.</summary>
    public bool LowMemory { get; init; }

    /// <summary>A single file that replaces a diffusers folder's transformer (Flux.1: BFL's flux1-dev/schnell layout,
    /// float8 and GGUF too; decoded to <see cref="DType"/>). Families without one refuse it.</summary>
    public string? TransformerFile { get; init; }

    /// <summary>Weights stored compactly (float8 safetensors, scaled float8 too, GGUF quantized blocks; float16/bfloat16
    /// when <see cref="DType"/> is float32, ComfyUI's "manual cast") stay so in memory and become <see cref="DType"/> one
    /// layer at a time as the model runs: the large linear weights of the Flux and SD3 transformers and of T5 (as
    /// ComfyUI-GGUF and stable-diffusion.cpp keep them), so memory follows the file (a Q8_0 Flux.1 transformer ~12.7 GB,
    /// not 24; SD3.5 Medium's bfloat16 one 4.9 GB, not 9.9 in float32). Same values as decoding at load; each call pays
    /// the decode. On by default; false decodes everything at load (faster steps when memory allows). CPU only.</summary>
    public bool CompactWeights { get; init; } = true;
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

    public static FluxTransformer2DModel LoadFluxTransformer(string dir, LoadOptions? options = null) =>
        (FluxTransformer2DModel)FluxTransformer(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    /// <summary>A Flux.1 transformer/ folder (FluxTransformer2DModel), its weights read now or at first use.</summary>
    public static ComponentWeights FluxTransformer(string dir, LoadOptions options)
    {
        string configPath = ConfigPath(dir);
        var config = FluxTransformer2DConfig.From(JsonConfig.Load(configPath));
        var weights = WeightFiles.Find(dir, "diffusion_pytorch_model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), weights, configPath);
        return FluxTransformer(config, options, m => WeightFiles.LoadInto(m, weights, Placement(options, convs: false)));
    }

    /// <summary>A Flux.1 transformer from one file in BFL's layout (safetensors, float8, GGUF: <see cref="BflTransformerFile"/>),
    /// decoded to the compute dtype. Its config comes from the shapes (<see cref="BflKeyMap.InferConfig"/>); with
    /// <paramref name="folderConfig"/> (the folder it replaces a transformer of) the shapes must agree with it.</summary>
    public static ComponentWeights FluxTransformerFile(string path, LoadOptions options, FluxTransformer2DConfig? folderConfig = null)
    {
        FluxTransformer2DConfig config;
        using (var file = OpenFluxFile(path))
        {
            config = BflKeyMap.InferConfig(file, folderConfig);
            if (folderConfig is not null && folderConfig with { AxesDimsRope = config.AxesDimsRope } != config with { AxesDimsRope = config.AxesDimsRope })
                throw new InvalidDataException($"{path} is a Flux transformer of {Describe(config)}, but the folder's transformer is {Describe(folderConfig)}: " +
                    "use the file with the model it belongs to (dev with dev, schnell with schnell).");
        }
        return FluxTransformer(config, options, m =>
        {
            using var file = OpenFluxFile(path);
            using var renamed = new BflTransformerFile(file, config.NumLayers, config.NumSingleLayers, config.InnerDim);
            StateDictLoader.Load(m, [renamed], Placement(options, convs: false));
        });
    }

    static string Describe(FluxTransformer2DConfig c) =>
        $"width {c.InnerDim} ({c.NumAttentionHeads}×{c.AttentionHeadDim}), {c.NumLayers}+{c.NumSingleLayers} blocks, " +
        $"T5 width {c.JointAttentionDim}, pooled {c.PooledProjectionDim}, {(c.GuidanceEmbeds ? "with" : "without")} guidance_in";

    /// <summary>The file, refused in one line when it is not a BFL Flux transformer (a GGUF names its architecture). A GGUF
    /// is dequantized with float16 products, as ComfyUI-GGUF (where Flux GGUFs come from and are run) computes them, so
    /// the weights are the ones that image was made with.</summary>
    static ITensorFile OpenFluxFile(string path)
    {
        var file = TensorFiles.Open(path, GgufArithmetic.Float16);
        try
        {
            if (file is GgufFile { Architecture: { } arch } && arch != "flux")
                throw new InvalidDataException($"{path}: general.architecture is '{arch}', not 'flux'; give a Flux.1 transformer GGUF (e.g. flux1-dev-Q8_0.gguf).");
            if (!BflKeyMap.IsFlux(file.Headers.Select(h => h.Name)))
                throw new InvalidDataException($"{path} is not a Flux.1 transformer in BFL's layout (no img_in.weight / double_blocks.0.img_attn.qkv.weight); " +
                    "give flux1-dev/flux1-schnell's transformer file, or a diffusers folder.");
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    static ComponentWeights FluxTransformer(FluxTransformer2DConfig config, LoadOptions options, Action<nn.Module> read)
    {
        var transformer = Create(() => new FluxTransformer2DModel(config), options, read);
        ((FluxTransformer2DModel)transformer.Module).UseAttentionKernel(options.FastPaths.AttentionChoice(options.Attention));
        return transformer;
    }

    /// <summary>A component built on the meta device (no memory, no random initialisation), in evaluation mode, whose
    /// <paramref name="read"/> fills it from its files: now, or at first use with <see cref="LoadOptions.LowMemory"/>.</summary>
    internal static ComponentWeights Create(Func<nn.Module> build, LoadOptions options, Action<nn.Module> read)
    {
        nn.Module model;
        using (Models.Layers.Placement(Meta)) model = build();
        model.eval();
        UseLinearKernel(model, options);
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

    /// <summary>Gives each <see cref="Models.Linear"/> of <paramref name="model"/> the linear kernel of <paramref name="options"/>
    /// (chosen, and measured if need be, only when the model has linear layers).</summary>
    internal static void UseLinearKernel(nn.Module model, LoadOptions options)
    {
        var layers = model.modules().OfType<Models.Linear>().ToList();
        if (layers.Count == 0) return;
        var kernel = options.LinearChoice().Value;
        foreach (var layer in layers) layer.Kernel = kernel;
    }

    static string ConfigPath(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Component folder not found: {dir}");
        return Path.Combine(dir, "config.json");
    }

    static WeightPlacement Placement(LoadOptions o, bool convs) => new(o.DType, new Device(o.Device), convs && o.Layout().Value) { CompactWeights = o.CompactWeights };

}
