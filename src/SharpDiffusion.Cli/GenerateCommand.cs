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
        new("scheduler", OptionKind.Text, "sampler by diffusers class or AUTOMATIC1111 name, case-insensitive; 'list' prints them (default: the model's own scheduler)", "NAME"),
        new("scheduler-option", OptionKind.Texts, "override a scheduler_config.json key, e.g. timestep_spacing=trailing, use_karras_sigmas=true, prediction_type=v_prediction; sigmas=14.6,6.5,...,0 or timesteps=999,759,... for your own schedule (Euler, LMS, Heun, DPM2); repeatable (default: none)", "K=V"),
        new("eta", OptionKind.Number, "DDIM's eta (0 = deterministic) or TCD's gamma, 0..1 (default: the scheduler's, DDIM 0, TCD 0.3)", "X"),
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
        new("controlnet", OptionKind.Texts, "steer with a ControlNet: a diffusers ControlNet folder or an original-layout file (control_v11p_sd15_canny.pth / .safetensors); repeatable, one unit each, paired in order with --control-image", "FILE|DIR"),
        new("control-image", OptionKind.Texts, "the control image of each --controlnet (an edge, depth, pose map, already preprocessed); without --width/--height/--image it sets the output size, as diffusers", "PNG"),
        new("control-scale", OptionKind.Texts, "controlnet_conditioning_scale; given once: for every --controlnet, else once per unit (default: 1)", "X"),
        new("control-start", OptionKind.Texts, "control_guidance_start, the fraction of the steps before the ControlNet acts; once or once per unit (default: 0)", "X"),
        new("control-end", OptionKind.Texts, "control_guidance_end, the fraction of the steps after which it stops; once or once per unit (default: 1)", "X"),
        new("control-preprocess", OptionKind.Texts, "make each --control-image's map first, at the image's size, with sd-webui-controlnet's default thresholds: canny, threshold, invert or none; once or once per unit (default: none, the image is the map)", "NAME"),
        new("guess-mode", OptionKind.Flag, "ControlNet guess mode: the ControlNets see only the conditional rows, shallow residuals scaled down, so they steer even with an empty prompt (default: off)"),
        new("vae", OptionKind.Text, "decode (and encode, for img2img) with this VAE instead of the model's: a TAESD (taesd_decoder.safetensors/.pth with its encoder beside it, taesdxl, taesd3, taef1, or a diffusers AutoencoderTiny folder) or a full VAE (vae-ft-mse-840000-ema-pruned.safetensors, sdxl_vae.safetensors, .ckpt, a diffusers vae/ folder); written into the PNG as A1111's VAE / VAE hash (default: the model's)", "DIR|FILE"),
        new("vae-tiling", OptionKind.Flag, "decode the image in overlapping tiles: flat memory for 1024x1024 and larger (default: off; turned on by itself when a whole decode would not fit in memory)"),
        new("hires-scale", OptionKind.Number, "hires fix (AUTOMATIC1111): draw at --width/--height, upscale by X, then img2img at the larger size (default: off)", "X"),
        new("hires-resize", OptionKind.Text, "hires fix to an explicit size instead of a scale (another aspect ratio: cover and crop at the centre, as A1111)", "WxH"),
        new("hires-upscaler", OptionKind.Text, "hires upscaler: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest (default: Latent)", "NAME"),
        new("hires-steps", OptionKind.Integer, "steps of the hires pass (diffusers' img2img count, cut by the strength) (default: as --steps)", "N"),
        new("hires-strength", OptionKind.Number, "denoising strength of the hires pass, 0..1 (default: 0.7)", "X"),
        new("hires-sampler", OptionKind.Text, "sampler of the hires pass (default: as --scheduler)", "NAME"),
        new("hires-prompt", OptionKind.Text, "prompt of the hires pass (default: the prompt)", "TEXT"),
        new("hires-negative-prompt", OptionKind.Text, "negative prompt of the hires pass (default: the negative prompt)", "TEXT"),
        new("hires-guidance", OptionKind.Number, "guidance scale of the hires pass (default: as --guidance)", "X"),
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
            PrintSchedulers();
            return 0;
        }

        // Without --model: the shipped model, with the sampling settings it recommends (generation_defaults.json).
        string model = cl.String("model") ?? DefaultModel.Locate()
            ?? throw new UsageException("--model DIR is required: a diffusers model folder (the shipped models/sharp-shapes was not found).");
        var modelDefaults = GenerationDefaults.Load(model);
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
        var resizeFrom = SizeOption(cl, "seed-resize-from");
        var hiresResize = SizeOption(cl, "hires-resize");
        var hires = cl.Double("hires-scale") is null && hiresResize == (0, 0) ? null : new HiresFixOptions
        {
            Scale = cl.Double("hires-scale") ?? 2,
            ResizeWidth = hiresResize.Width,
            ResizeHeight = hiresResize.Height,
            Upscaler = cl.String("hires-upscaler") ?? "Latent",
            Steps = cl.Int("hires-steps") ?? 0,
            Strength = cl.Double("hires-strength") ?? 0.7,
            Scheduler = cl.String("hires-sampler"),
            Prompt = cl.String("hires-prompt"),
            NegativePrompt = cl.String("hires-negative-prompt"),
            GuidanceScale = cl.Double("hires-guidance"),
        };
        foreach (var option in new[] { "hires-upscaler", "hires-steps", "hires-strength", "hires-sampler", "hires-prompt", "hires-negative-prompt", "hires-guidance" })
            if (hires is null && cl.Given(option))
                throw new UsageException($"--{option} belongs to the hires fix; give --hires-scale or --hires-resize too.");
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
            SchedulerOptions = ParseSchedulerOptions(cl.All("scheduler-option")),
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
        string? embeddingDir = cl.String("embedding-dir");
        if (embeddingDir is not null && !Directory.Exists(embeddingDir))
            throw new UsageException($"--embedding-dir: the folder {AtomicFiles.Printable(embeddingDir)} does not exist.");
        string output = cl.String("output") ?? "out.png";
        var load = FastPathOptions.Apply(new LoadOptions
        {
            Variant = cl.String("variant"),
            Device = cl.String("device") ?? "cpu",
            DType = ParseDType(cl.String("dtype")),
            TransformerFile = cl.String("transformer"),
            LowMemory = true, // one generation: each part's weights are read when it runs and freed after, never twice
        }, cl);
        int threads = cl.Int("threads") ?? Environment.ProcessorCount;
        threads = Threads.Check(threads);
        if (imagePath is null && (options.Strength is not null || cl.Given("mask-blur") || options.InvertMask || options.PasteOriginal))
            throw new UsageException("--strength, --mask-blur, --invert-mask and --paste-original need --image (and a mask for the last three).");
        ImageOutput.CheckPath(output, prompts.Count * Math.Max(1, options.NumImagesPerPrompt));
        options = options with
        {
            Image = imagePath is null ? null : ImageFile.Load(imagePath),
            MaskImage = maskPath is null ? null : ImageFile.Load(maskPath),
        };
        options = WithControlNets(options, cl);
        options.Validate(); // everything that needs no model, before loading gigabytes
        TorchRuntime.Initialize(threads);
        var loraFiles = cl.All("lora").Select(ParseLora).ToList(); // read (and checked) before the model
        using var loraDisposal = new LoraDisposal(loraFiles.Select(l => l.File));
        options = options with { Loras = loraFiles };

        var clock = Stopwatch.StartNew();
        using var pipeline = Progress.Status("Opening model", () => StableDiffusionPipeline.Load(model, load, SingleFileOptions(cl)));
        foreach (var warning in pipeline.LoadWarnings)
            Progress.Line($"warning: {warning}");
        if (cl.String("vae") is { } vaePath)
            Progress.Status("Loading VAE", () => { pipeline.VaeCodec.UseVae(vaePath, load); return 0; });
        foreach (var (file, token) in cl.All("embedding").Select(e => SplitSuffix(e, "--embedding", s => s)))
            Progress.Line($"Embedding {string.Join(" ", pipeline.LoadTextualInversion(file, token))} from {AtomicFiles.Printable(file)}");
        if (embeddingDir is not null)
        {
            var (loaded, skipped) = pipeline.LoadTextualInversionDirectory(embeddingDir);
            Progress.Line($"Embeddings from {AtomicFiles.Printable(embeddingDir)}: {string.Join(" ", loaded)}");
            foreach (var reason in skipped)
                Progress.Line($"warning: skipped {reason}");
        }
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

    /// <summary>--controlnet units, each with its --control-image and (once for all, or once per unit) scale, start, end;
    /// with no size and no --image the first control image's size, rounded down to a multiple of 8, as diffusers.</summary>
    static GenerationOptions WithControlNets(GenerationOptions options, CommandLine cl)
    {
        var models = cl.All("controlnet");
        var images = cl.All("control-image");
        if (models.Count == 0)
        {
            if (images.Count > 0 || cl.Given("control-scale") || cl.Given("control-start") || cl.Given("control-end") || cl.Given("control-preprocess") || cl.Flag("guess-mode"))
                throw new UsageException("--control-image, --control-scale, --control-start, --control-end, --control-preprocess and --guess-mode need --controlnet FILE|DIR.");
            return options;
        }
        if (images.Count != models.Count)
            throw new UsageException($"Give one --control-image per --controlnet ({models.Count}); got {images.Count}.");
        double[] PerUnit(string option, double fallback)
        {
            var given = cl.All(option);
            if (given.Count > 1 && given.Count != models.Count)
                throw new UsageException($"Give --{option} once (for every ControlNet) or once per --controlnet ({models.Count}); got {given.Count}.");
            var values = given.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
                ? d : throw new UsageException($"--{option} {v}: not a number.")).ToArray();
            return Enumerable.Range(0, models.Count).Select(i => values.Length == 0 ? fallback : values[Math.Min(i, values.Length - 1)]).ToArray();
        }
        double[] scales = PerUnit("control-scale", 1.0), starts = PerUnit("control-start", 0.0), ends = PerUnit("control-end", 1.0);
        var modules = Preprocessors(cl, models.Count);
        var units = models.Select((model, i) =>
        {
            var picture = ImageFile.Load(images[i]);
            // At the picture's own size (processor_res = its short side), so the map lines up with the image given.
            var module = modules[i];
            return new ControlNetUnit
            {
                ModelPath = model,
                Image = module.RunAtOwnSize(picture),
                Scale = scales[i],
                Start = starts[i],
                End = ends[i],
                GuessMode = cl.Flag("guess-mode"),
                // The run stretches the map to the output size: the extension's "Just Resize".
                InfoText = ImageOutput.ControlNetInfo(module.Name, Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model)), scales[i],
                    "Just Resize", Math.Min(picture.Width, picture.Height), module.ThresholdA?.Value ?? -1, module.ThresholdB?.Value ?? -1, starts[i], ends[i], false, "Balanced"),
            };
        }).ToList();
        for (int i = 0; i < units.Count; i++) units[i].Validate(i);
        if (options.Width is null && options.Height is null && options.Image is null)
            options = options with { Width = units[0].Image.Width / 8 * 8, Height = units[0].Image.Height / 8 * 8 };
        return options with { ControlNets = units };
    }

    /// <summary>--control-preprocess once (for every unit) or once per --controlnet; "none" without it.</summary>
    static ControlPreprocessor[] Preprocessors(CommandLine cl, int count)
    {
        var names = cl.All("control-preprocess");
        if (names.Count > 1 && names.Count != count)
            throw new UsageException($"Give --control-preprocess once (for every ControlNet) or once per --controlnet ({count}); got {names.Count}.");
        var modules = names.Select(n =>
        {
            try { return ControlPreprocessor.Get(n); }
            catch (Exception e) when (e is NotSupportedException or ArgumentException) { throw new UsageException($"--control-preprocess {n}: {e.Message}."); }
        }).ToArray();
        return Enumerable.Range(0, count).Select(i => modules.Length == 0 ? ControlPreprocessor.None : modules[Math.Min(i, modules.Length - 1)]).ToArray();
    }

    /// <summary>The single-file options (--config, --text-encoder-config) of a command that has them.</summary>
    /// <summary>A WxH option ("512x768"), (0, 0) when absent.</summary>
    static (int Width, int Height) SizeOption(CommandLine cl, string name)
    {
        if (cl.String(name) is not { } text) return (0, 0);
        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int h) && w > 0 && h > 0)
            return (w, h);
        throw new UsageException($"--{name} takes WIDTHxHEIGHT, e.g. 512x768; got '{text}'.");
    }

    internal static SingleFileOptions SingleFileOptions(CommandLine cl) => new()
    {
        OriginalConfig = cl.String("config"),
        TextEncoderConfig = cl.String("text-encoder-config"),
        TextEncoder2Config = cl.Given("text-encoder-2-config") ? cl.String("text-encoder-2-config") : null,
        TextEncoders = cl.All("text-encoder"),
    };

    internal static OptionSpec TextEncoderOption => new("text-encoder", OptionKind.Texts, "with an SD3/SD3.5 single file: a text encoder file (clip_l, clip_g, " +
        "t5xxl_fp16 or t5xxl_fp8_e4m3fn .safetensors, recognised by its tensors) that fills what the file lacks or replaces what it has, or T5's spiece.model; repeatable", "FILE");

    /// <summary>"FILE" or "FILE:SCALE": the suffix counts only when FILE alone is not an existing file (paths may hold ':').</summary>
    static LoraWeight ParseLora(string value)
    {
        var (file, scale) = SplitSuffix(value, "--lora", s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
            ? (double?)d : throw new UsageException($"--lora {value}: '{s}' is not a number (FILE:SCALE)."));
        return new LoraWeight(LoraFile.Load(file), scale ?? 1.0);
    }

    static (string File, T? Suffix) SplitSuffix<T>(string value, string option, Func<string, T> parse)
    {
        if (File.Exists(value))
            return (value, default);
        int colon = value.LastIndexOf(':');
        string file = colon > 0 ? value[..colon] : value;
        if (!File.Exists(file))
            throw new UsageException($"{option}: the file {AtomicFiles.Printable(file)} does not exist.");
        return (file, parse(value[(colon + 1)..]));
    }

    sealed class LoraDisposal(IEnumerable<LoraFile> files) : IDisposable
    {
        public void Dispose() { foreach (var f in files) f.Dispose(); }
    }

    static PromptSyntax ParsePromptSyntax(string? name) => name?.ToLowerInvariant() switch
    {
        null or "plain" or "diffusers" => PromptSyntax.Plain,
        "a1111" or "automatic1111" => PromptSyntax.A1111,
        _ => throw new UsageException($"--prompt-syntax must be plain or a1111; got '{name}'."),
    };

    static void PrintSchedulers()
    {
        Console.WriteLine("Schedulers (--scheduler NAME, case-insensitive):");
        foreach (var n in SchedulerFactory.Names.OrderBy(n => n.IsA1111))
            Console.WriteLine($"  {(n.IsA1111 ? $"\"{n.Name}\"" : n.Name),-24} {n.ClassName,-36} {(n.IsA1111 ? "AUTOMATIC1111 name" : n.Description)}");
        Console.WriteLine("The diffusers class names work too: " +
            string.Join(", ", SchedulerFactory.Names.Select(n => n.ClassName).Distinct().OrderBy(c => c)) + ".");
    }

    /// <summary>"key=value" pairs; values that read as a bool or a number become one, the rest stay strings.</summary>
    static Dictionary<string, object?> ParseSchedulerOptions(IReadOnlyList<string> pairs)
    {
        var result = new Dictionary<string, object?>();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0)
                throw new UsageException($"--scheduler-option expects KEY=VALUE, got '{pair}'.");
            string key = pair[..eq].Trim(), value = pair[(eq + 1)..].Trim();
            result[key] = value.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                "null" or "none" => null,
                _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) => d,
                _ when value.Contains(',') && NumberList(value) is { } list => list,   // sigmas=14.6,6.5,...
                _ => value,
            };
        }
        return result;
    }

    static double[]? NumberList(string value)
    {
        var parts = value.Split(',', StringSplitOptions.TrimEntries);
        var numbers = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out numbers[i]))
                return null;
        return numbers;
    }

    internal static ScalarType ParseDType(string? name) => FastPathOptions.DType(name);
}
