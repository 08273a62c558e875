using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli;

/// <summary>`generate`: parses options, shows progress, calls the library, writes PNGs with their parameters.</summary>
public static class GenerateCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "diffusers model folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), or a single-file checkpoint in the original LDM layout (.safetensors) (default: the shipped models/sharp-shapes)", "DIR|FILE"),
        new("config", OptionKind.Text, "with a single-file checkpoint: its original LDM .yaml (v1-inference.yaml, v2-inference-v.yaml, ...) for attention heads, scale_factor, v-prediction (default: inferred from the tensors, SD defaults)", "FILE"),
        new("text-encoder-config", OptionKind.Text, "with a single-file checkpoint: a transformers config.json for a text encoder of a non-standard size (default: 768 = CLIP ViT-L/14, 1024 = OpenCLIP ViT-H)", "FILE"),
        new("transformer", OptionKind.Text, "with a Flux diffusers folder: use this transformer file instead of the folder's (BFL's flux1-dev/flux1-schnell .safetensors, float8 too, or a .gguf), decoded to --dtype (default: the folder's)", "FILE"),
        new("text-encoder-2-config", OptionKind.Text, "with an SDXL single-file checkpoint: a transformers config.json for its second text encoder when it is not OpenCLIP ViT-bigG", "FILE"),
        TextEncoderOption,
        .. FluxArguments.Options,
        new("prompt", OptionKind.Texts, "the prompt; repeat for several prompts (one batch)", "TEXT"),
        new("negative-prompt", OptionKind.Texts, "given once: applies to every prompt; given as often as --prompt: paired in order (default: \"\")", "TEXT"),
        new("prompt-2", OptionKind.Texts, "SDXL: the prompt for the second text encoder (Flux: for T5); given once: for every prompt; as often as --prompt: paired in order (default: the prompt)", "TEXT"),
        new("negative-prompt-2", OptionKind.Texts, "SDXL: the negative prompt for the second text encoder, paired as --negative-prompt (default: the negative prompt)", "TEXT"),
        new("prompt-3", OptionKind.Texts, "SD3: the prompt for the T5 encoder, paired as --prompt-2 (default: the prompt)", "TEXT"),
        new("negative-prompt-3", OptionKind.Texts, "SD3: the negative prompt for the T5 encoder, paired as --negative-prompt (default: the negative prompt)", "TEXT"),
        new("max-sequence-length", OptionKind.Integer, "SD3/Flux: T5 tokens the prompt is padded or cut to, 1 to 512 (default: 256; Flux.1 dev 512)", "N"),
        new("width", OptionKind.Integer, "image width in pixels, a multiple of 8 (default: the model's, 512 for SD 1.5; with --image: the image's)", "N"),
        new("height", OptionKind.Integer, "image height in pixels, a multiple of 8 (default: as --width)", "N"),
        new("steps", OptionKind.Integer, "denoising steps (default: the model's generation_defaults.json, else 50)", "N"),
        new("guidance", OptionKind.Number, "classifier-free guidance scale; <= 1 turns guidance off (default: the model's generation_defaults.json, else 7.5)", "X"),
        new("guidance-rescale", OptionKind.Number, "diffusers' guidance_rescale, 0..1 (default: 0)", "X"),
        new("deep-cache", OptionKind.Integer, "DeepCache: a full UNet pass every N steps, only its outer layers between (N = 3: about 2x faster, slightly different pictures; see the README's speed section) (default: 1 = off)", "N"),
        new("seed", OptionKind.Long, "seed of the CPU generator; -1 = random, as AUTOMATIC1111 (default: random, written into the PNG)", "N"),
        new("variation-seed", OptionKind.Long, "AUTOMATIC1111's variation seed: with --variation-strength the noise moves towards this seed's; -1 = random (default: random)", "N"),
        new("variation-strength", OptionKind.Number, "0..1: 0 = the --seed picture, 1 = the --variation-seed picture, between = a variation of it (default: 0)", "X"),
        new("seed-resize-from", OptionKind.Text, "AUTOMATIC1111's resize seed from: draw the seed's noise as a WxH picture would, so its composition carries over to this size (default: off)", "WxH"),
        .. SchedulerArguments.Options,
        new("images-per-prompt", OptionKind.Integer, "images for each prompt (default: 1)", "N"),
        new("output", OptionKind.Text, "output file; several images are written as FILE-0.png, FILE-1.png, ... (default: out.png)", "FILE.png"),
        new("image", OptionKind.Text, "start from this picture (PNG, JPEG or WebP): img2img, or inpainting with --mask. Size: the image's own, rounded down to a multiple of 8; --width/--height resize the image first (bicubic; one of them given: the other keeps the aspect ratio)", "FILE"),
        new("mask", OptionKind.Text, "inpainting mask: white (>= 50% grey) = repaint, black = keep; another size than the image is resized to it (with a warning)", "FILE"),
        new("strength", OptionKind.Number, "0..1, how much of the schedule runs on the image; 1 = start from pure noise (default: 0.75 for img2img, 1.0 for inpainting)", "X"),
        new("mask-blur", OptionKind.Integer, "blur the mask by N pixels (Gaussian, as AUTOMATIC1111) (default: 0)", "N"),
        new("invert-mask", OptionKind.Flag, "repaint the black part instead of the white (default: off)"),
        new("paste-original", OptionKind.Flag, "inpainting: put the original pixels back outside the (blurred) mask, so the untouched part stays exactly as it was (AUTOMATIC1111 always does) (default: off)"),
        new("prompt-syntax", OptionKind.Text, "plain: text as written, 77 tokens (diffusers); a1111: (word:1.3), (word), [word], BREAK, any length in 75-token chunks (AUTOMATIC1111) (default: plain)", "NAME"),
        new("clip-skip", OptionKind.Integer, "use the text encoder's N-th layer from the end (AUTOMATIC1111's meaning: 1 = last, 2 = penultimate) (default: 1)", "N"),
        new("lora", OptionKind.Texts, "apply a LoRA (kohya/A1111 or diffusers .safetensors) at SCALE for this run; repeatable, each with its own scale (default SCALE: 1)", "FILE[:SCALE]"),
        new("lora-dir", OptionKind.Text, "with --prompt-syntax a1111: folder where <lora:NAME:SCALE> in the prompt finds NAME.safetensors; the tag is removed from the text (default: none)", "DIR"),
        new("embedding", OptionKind.Texts, "load a textual-inversion embedding; its trigger word is TOKEN, else the one the file stores, else the file name; repeatable", "FILE[:TOKEN]"),
        new("embedding-dir", OptionKind.Text, "load every embedding of the folder, each triggered by its file name (AUTOMATIC1111's rule)", "DIR"),
        .. ControlNetArguments.Options,
        new("vae", OptionKind.Text, "decode (and encode, for img2img) with this VAE instead of the model's: a TAESD (taesd_decoder.safetensors/.pth with its encoder beside it, taesdxl, taesd3, taef1, or a diffusers AutoencoderTiny folder) or a full VAE (vae-ft-mse-840000-ema-pruned.safetensors, sdxl_vae.safetensors, .ckpt, a diffusers vae/ folder); written into the PNG as A1111's VAE / VAE hash (default: the model's)", "DIR|FILE"),
        new("vae-tiling", OptionKind.Flag, "decode the image in overlapping tiles: flat memory for 1024x1024 and larger (default: off; turned on by itself when a whole decode would not fit in memory)"),
        .. HiresArguments.Options,
        .. RefinerArguments.Options,
        new("tiling", OptionKind.Flag, "a seamless texture: the left edge continues into the right, the top into the bottom (AUTOMATIC1111's Tiling) (default: off)"),
        new("variant", OptionKind.Text, "weight variant, e.g. fp16 for *.fp16.safetensors (default: none)", "NAME"),
        new("device", OptionKind.Text, "cpu or cuda (default: cpu)", "NAME"),
        new("dtype", OptionKind.Text, FastPathOptions.DTypeHelp, "NAME"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch, at most the cores (default: all cores)", "N"),
        .. FastPathOptions.Options,
    ];

    public static int Run(CommandLine cl)
    {

        string? schedulerName = cl.String("scheduler");
        if (string.Equals(schedulerName, "list", StringComparison.OrdinalIgnoreCase))
        {
            SchedulerArguments.Print();
            return 0;
        }

        // Without --model: the shipped model, with the sampling settings it recommends (generation_defaults.json).
        string model = cl.String("model") ?? DefaultModel.Locate()
            ?? throw new UsageException("--model DIR is required: a diffusers model folder (the shipped models/sharp-shapes was not found).");
        var modelDefaults = GenerationDefaults.Load(model) ?? FluxArguments.Defaults(model, cl);
        var options = BuildOptions(cl, modelDefaults);
        string? embeddingDir = EmbeddingDir(cl);
        string output = cl.String("output") ?? "out.png";
        var load = Load(cl);
        int threads = Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount);
        ImageOutput.CheckPath(output, options.Prompts.Count * Math.Max(1, options.NumImagesPerPrompt));
        options.Validate(); // everything that needs no model, before loading gigabytes
        TorchRuntime.Initialize(threads);
        var loraFiles = cl.All("lora").Select(LoraArguments.Parse).ToList(); // read (and checked) before the model
        using var loraDisposal = new LoraArguments.Disposal(loraFiles.Select(l => l.File));
        options = options with { Loras = loraFiles };

        var clock = Stopwatch.StartNew();
        using var pipeline = Open(cl, model, load, embeddingDir);
        using var refiner = RefinerArguments.Load(cl, pipeline, load);
        options = RefinerArguments.Apply(options, cl, refiner);
        var (width, height) = pipeline.Validate(options);
        var scheduler = pipeline.CreateScheduler(options.Scheduler, options.SchedulerOptions); // fail on a bad name before any work
        string task = options.Task switch
        {
            GenerationTask.TextToImage => "",
            GenerationTask.ImageToImage => $", img2img at strength {options.EffectiveStrength:0.###}",
            _ => $", inpainting at strength {options.EffectiveStrength:0.###}",
        };
        Progress.Line($"Opened {pipeline.ModelName} in {clock.Elapsed.TotalSeconds:F1}s (each part's weights are read when it runs); {width}x{height}, {options.DenoisingSteps} of {options.NumInferenceSteps} steps, {scheduler.Name}{task}");

        using var interruption = new Interruption();
        using var result = Progress.Run(options.DenoisingSteps, report => pipeline.Generate(options, report, cancellation: interruption.Token));
        foreach (var warning in result.Warnings)
            Progress.Line($"warning: {warning}");
        foreach (var path in ImageOutput.Save(output, options, result, pipeline.ModelName, pipeline.ModelHash,
                     pipeline.VaeCodec is { VaeName: { } vaeName, VaeHash: { } vaeHash } ? (vaeName, vaeHash) : null))
            Progress.Line($"Wrote {AtomicFiles.Printable(path)}");
        Progress.Line($"Seed {result.Seed}; total {clock.Elapsed.TotalSeconds:F1}s");
        return 0;
    }

    /// <summary>The generation options a command line asks for (the `grid` command calls it once per cell, with that cell's
    /// axis values as overrides: <see cref="CommandLine.With"/>), checked as far as the command line goes.</summary>
    internal static GenerationOptions BuildOptions(CommandLine cl, GenerationDefaults? modelDefaults)
    {
        string? schedulerName = cl.String("scheduler");
        var prompts = cl.All("prompt");
        if (prompts.Count == 0)
            throw new UsageException("--prompt TEXT is required.");
        var negatives = cl.All("negative-prompt");
        if (negatives.Count > 1 && negatives.Count != prompts.Count)
            throw new UsageException($"Give --negative-prompt once (for all prompts) or once per --prompt ({prompts.Count}); got {negatives.Count}.");
        var prompts2 = cl.All("prompt-2");
        var negatives2 = cl.All("negative-prompt-2");
        var prompts3 = cl.All("prompt-3");
        var negatives3 = cl.All("negative-prompt-3");
        foreach (var (option, list) in new[] { ("--prompt-2", prompts2), ("--negative-prompt-2", negatives2), ("--prompt-3", prompts3), ("--negative-prompt-3", negatives3) })
            if (list.Count > 1 && list.Count != prompts.Count)
                throw new UsageException($"Give {option} once (for all prompts) or once per --prompt ({prompts.Count}); got {list.Count}.");
        foreach (var (option, list) in new[] { ("--negative-prompt-2", negatives2), ("--negative-prompt-3", negatives3) })
            if (list.Count > 0 && negatives.Count == 0)
                throw new UsageException($"{option} pairs with --negative-prompt; give that too (\"\" for none).");
        var resizeFrom = cl.Size("seed-resize-from");
        var hires = HiresArguments.Parse(cl);
        RefinerArguments.Check(cl);
        string? imagePath = cl.String("image"), maskPath = cl.String("mask");
        if (maskPath is not null && imagePath is null)
            throw new UsageException("--mask needs --image: the picture to inpaint.");
        var options = new GenerationOptions
        {
            Prompts = prompts,
            NegativePrompts = negatives,
            Prompts2 = prompts2.Count > 0 ? prompts2 : null,
            NegativePrompts2 = negatives2.Count > 0 ? negatives2 : null,
            Prompts3 = prompts3.Count > 0 ? prompts3 : null,
            NegativePrompts3 = negatives3.Count > 0 ? negatives3 : null,
            MaxSequenceLength = cl.Int("max-sequence-length"),
            Width = cl.Int("width"),
            Height = cl.Int("height"),
            NumInferenceSteps = cl.Int("steps") ?? modelDefaults?.NumInferenceSteps ?? 50,
            GuidanceScale = cl.Double("guidance") ?? modelDefaults?.GuidanceScale ?? 7.5,
            GuidanceRescale = cl.Double("guidance-rescale") ?? 0,
            DeepCacheInterval = cl.Int("deep-cache") ?? 1,
            Seed = cl.Long("seed"),
            VariationSeed = cl.Long("variation-seed"),
            VariationStrength = cl.Double("variation-strength") ?? 0,
            SeedResizeFromWidth = resizeFrom.Width,
            SeedResizeFromHeight = resizeFrom.Height,
            NumImagesPerPrompt = cl.Int("images-per-prompt") ?? 1,
            Scheduler = schedulerName,
            SchedulerOptions = SchedulerArguments.ParseOptions(cl.All("scheduler-option")),
            Eta = cl.Double("eta"),
            VaeTiling = cl.Flag("vae-tiling"),
            Tiling = cl.Flag("tiling"),
            Hires = hires,
            Strength = cl.Double("strength"),
            MaskBlur = cl.Int("mask-blur") ?? 0,
            InvertMask = cl.Flag("invert-mask"),
            PasteOriginal = cl.Flag("paste-original"),
            PromptSyntax = ParsePromptSyntax(cl.String("prompt-syntax")),
            ClipSkip = cl.Int("clip-skip") ?? 1,
            LoraDirectory = cl.String("lora-dir"),
        };
        if (options.LoraDirectory is { } loraDir && (options.PromptSyntax != PromptSyntax.A1111 || !Directory.Exists(loraDir)))
            throw new UsageException(options.PromptSyntax != PromptSyntax.A1111
                ? "--lora-dir is for <lora:NAME:SCALE> tags, which only --prompt-syntax a1111 reads."
                : $"--lora-dir: the folder {AtomicFiles.Printable(loraDir)} does not exist.");
        if (imagePath is null && (options.Strength is not null || cl.Given("mask-blur") || options.InvertMask || options.PasteOriginal))
            throw new UsageException("--strength, --mask-blur, --invert-mask and --paste-original need --image (and a mask for the last three).");
        options = options with
        {
            Image = imagePath is null ? null : ImageFile.Load(imagePath),
            MaskImage = maskPath is null ? null : ImageFile.Load(maskPath),
        };
        return ControlNetArguments.Apply(options, cl);
    }

    /// <summary>--embedding-dir, which must exist; null when not given.</summary>
    internal static string? EmbeddingDir(CommandLine cl)
    {
        string? embeddingDir = cl.String("embedding-dir");
        if (embeddingDir is not null && !Directory.Exists(embeddingDir))
            throw new UsageException($"--embedding-dir: the folder {AtomicFiles.Printable(embeddingDir)} does not exist.");
        return embeddingDir;
    }

    /// <summary>How generate (and grid) load the model: --variant, --device, --dtype, --transformer, the fast paths.</summary>
    internal static LoadOptions Load(CommandLine cl) => FastPathOptions.Apply(new LoadOptions
    {
        Variant = cl.String("variant"),
        Device = cl.String("device") ?? "cpu",
        DType = ParseDType(cl.String("dtype")),
        TransformerFile = cl.String("transformer"),
        LowMemory = true, // one generation: each part's weights are read when it runs and freed after, never twice
    }, cl);

    /// <summary>The model opened with --vae, --embedding and --embedding-dir applied, its warnings printed.</summary>
    internal static StableDiffusionPipeline Open(CommandLine cl, string model, LoadOptions load, string? embeddingDir)
    {
        var pipeline = Progress.Status("Opening model", () => StableDiffusionPipeline.Load(model, load, FluxArguments.Apply(SingleFileOptions(cl), cl)));
        foreach (var warning in pipeline.LoadWarnings)
            Progress.Line($"warning: {warning}");
        if (cl.String("vae") is { } vaePath && !FluxArguments.VaeAssembled(pipeline, model))
            Progress.Status("Loading VAE", () => { pipeline.VaeCodec.UseVae(vaePath, load); return 0; });
        foreach (var (file, token) in cl.All("embedding").Select(e => LoraArguments.SplitSuffix(e, "--embedding", s => s)))
            Progress.Line($"Embedding {string.Join(" ", pipeline.LoadTextualInversion(file, token))} from {AtomicFiles.Printable(file)}");
        if (embeddingDir is not null)
        {
            var (loaded, skipped) = pipeline.LoadTextualInversionDirectory(embeddingDir);
            Progress.Line($"Embeddings from {AtomicFiles.Printable(embeddingDir)}: {string.Join(" ", loaded)}");
            foreach (var reason in skipped)
                Progress.Line($"warning: skipped {reason}");
        }
        return pipeline;
    }

    /// <summary>The single-file options (--config, --text-encoder-config) of a command that has them.</summary>

    internal static SingleFileOptions SingleFileOptions(CommandLine cl) => new()
    {
        OriginalConfig = cl.String("config"),
        TextEncoderConfig = cl.String("text-encoder-config"),
        TextEncoder2Config = cl.Given("text-encoder-2-config") ? cl.String("text-encoder-2-config") : null,
        TextEncoders = cl.All("text-encoder"),
    };

    internal static OptionSpec TextEncoderOption => new("text-encoder", OptionKind.Texts, "with an SD3/SD3.5 single file or a Flux transformer file: a text encoder file (clip_l, clip_g, " +
        "t5xxl_fp16 or t5xxl_fp8_e4m3fn .safetensors, recognised by its tensors) that fills what the file lacks or replaces what it has, or T5's spiece.model; repeatable", "FILE");

    static PromptSyntax ParsePromptSyntax(string? name) => name?.ToLowerInvariant() switch
    {
        null or "plain" or "diffusers" => PromptSyntax.Plain,
        "a1111" or "automatic1111" => PromptSyntax.A1111,
        _ => throw new UsageException($"--prompt-syntax must be plain or a1111; got '{name}'."),
    };

    internal static ScalarType ParseDType(string? name) => FastPathOptions.DType(name);
}
