using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.Catalog;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// AUTOMATIC1111's txt2img and img2img request bodies (modules/api/models.py: the processing classes' arguments plus
/// the API's own fields) → a <see cref="GenerationRequest"/>. Defaults are A1111's (steps 50, cfg_scale 7, sampler
/// "Euler", denoising_strength 0.75, mask_blur 4), except width and height, which default to the model's own size.
/// Prompts use A1111's syntax (emphasis, BREAK, &lt;lora:…&gt;). Unknown and null fields are ignored.
/// </summary>
public static class A1111Requests
{
    /// <summary>Fields that change the picture in A1111 but are not done here: accepted with their defaults, reported otherwise.</summary>
    static readonly (string Field, Func<JsonNode, bool> IsDefault, string What)[] NotDone =
    [
        ("restore_faces", n => IsFalse(n), "face restoration"),
        ("styles", n => n is JsonArray { Count: 0 }, "prompt styles"),
        ("script_name", n => n is JsonValue v && (string?)v is null or "", "scripts"),
    ];

    static bool IsFalse(JsonNode n) => n is JsonValue v && (v.GetValueKind() == System.Text.Json.JsonValueKind.False || v.TryGetValue(out double d) && d == 0);
    static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    /// <param name="task">"txt2img" or "img2img".</param>
    /// <param name="clipSkip">The server's CLIP_stop_at_last_layers (override_settings may change it per request).</param>
    /// <param name="traits">The model the request will run on, when known: its sampler names and T5 fields are checked
    /// now (the job checks them again against the loaded model).</param>
    /// <param name="workerControlNets">on a gateway: the ControlNet titles its workers announce (units are checked against them;
    /// the worker resolves the file).</param>
    public static GenerationRequest Parse(JsonObject body, string task, int clipSkip, int maxSide, string? loraDir, ModelTraits? traits = null,
        string? controlNetDir = null, string? upscalerDir = null, IReadOnlyList<string>? workerControlNets = null)
    {
        var r = new RequestReader(body);
        bool img2img = task == "img2img";
        string prompt = r.String("prompt") ?? "";
        string negative = r.String("negative_prompt") ?? "";
        // diffusers' names for SD3's T5 prompts: extensions A1111 clients never send (so never break).
        string? prompt2 = r.String("prompt_2"); // diffusers' name for Flux's T5 prompt (FluxPipeline's prompt_2)
        string? prompt3 = r.String("prompt_3");
        string? negative3 = r.String("negative_prompt_3");
        int? maxSequenceLength = r.Has("max_sequence_length") ? r.Int("max_sequence_length", 0, 1, 512) : null;
        long seed = r.Long("seed", -1, -1, uint.MaxValue);
        // A1111 takes `sampler_name or sampler_index`: an empty name falls through too (clients send "" for "default").
        string? samplerName = NonEmpty(r.String("sampler_name"));
        string sampler = samplerName ?? NonEmpty(r.String("sampler_index")) ?? "Euler";
        string? schedule = r.String("scheduler");
        int batchSize = r.Int("batch_size", 1, 1, GenerationOptions.MaxBatch);
        int iterations = r.Int("n_iter", 1, 1, GenerationOptions.MaxBatch);
        int steps = r.Int("steps", 50, 1, 1000);
        double cfg = r.Double("cfg_scale", 7.0, -100, 100);
        double? distilledCfg = r.Has("distilled_cfg_scale") ? r.Double("distilled_cfg_scale", 3.5, 0, 100) : null; // Forge's, for Flux
        int? width = r.Has("width") ? r.Int("width", 0, 8, maxSide) : null;
        int? height = r.Has("height") ? r.Int("height", 0, 8, maxSide) : null;
        var overrides = r.Object("override_settings");
        bool restore = r.Bool("override_settings_restore_afterwards", true);
        string? taskId = r.String("force_task_id");
        bool send = r.Bool("send_images", true);
        bool save = r.Bool("save_images", false);
        double strength = img2img ? r.Double("denoising_strength", 0.75, 0, 1) : 0;
        int maskBlur = img2img ? r.Int("mask_blur", 4, 0, GenerationOptions.MaxMaskBlur) : 0;
        bool invert = img2img && r.Int("inpainting_mask_invert", 0, 0, 1) == 1;
        var initImages = img2img ? r.Strings("init_images") : null;
        string? mask = img2img ? r.String("mask") : null;
        // Variation seeds, resize seed from and tiling (A1111's processing fields).
        long subseed = r.Long("subseed", -1, -1, uint.MaxValue);
        double subseedStrength = r.Double("subseed_strength", 0, 0, 1);
        int resizeFromW = Math.Max(0, r.Int("seed_resize_from_w", 0, -1, maxSide)), resizeFromH = Math.Max(0, r.Int("seed_resize_from_h", 0, -1, maxSide));
        bool tiling = r.Bool("tiling", false);
        // The hires fix (txt2img only, as A1111): its fields are read only when enable_hr is on.
        HiresFixOptions? hires = !img2img && r.Bool("enable_hr", false) ? new HiresFixOptions
        {
            Scale = r.Double("hr_scale", 2.0, 1, 8),
            ResizeWidth = r.Int("hr_resize_x", 0, 0, maxSide),
            ResizeHeight = r.Int("hr_resize_y", 0, 0, maxSide),
            Upscaler = NonEmpty(r.String("hr_upscaler")) ?? "Latent",
            UpscalerDirectory = upscalerDir,
            AllowModelPaths = false,
            Steps = r.Int("hr_second_pass_steps", 0, 0, 1000),
            Strength = r.Double("denoising_strength", 0.7, 0.01, 1),
            Scheduler = NonEmpty(r.String("hr_sampler_name")) is { } hrSampler && hrSampler != "Use same sampler" ? hrSampler : null,
            Prompt = NonEmpty(r.String("hr_prompt")),
            NegativePrompt = NonEmpty(r.String("hr_negative_prompt")),
            GuidanceScale = r.Has("hr_cfg") ? r.Double("hr_cfg", 7, -100, 100) : null,
        } : null;
        try { hires?.CheckUpscaler(); }
        catch (ArgumentException e) { r.Error("hr_upscaler", e.Message); }
        if (hires?.Scheduler is { } hrName)
        {
            try { hires = hires with { Scheduler = traits is null ? SamplerNames.ResolveAny(hrName, r.String("hr_scheduler")) : SamplerNames.Resolve(hrName, r.String("hr_scheduler"), traits) }; }
            catch (UnknownNameException e) { r.Error("hr_sampler_name", e.Message); }
        }
        // The SDXL refiner (a model name of the catalog; "None" or "" = none) after the base at refiner_switch_at.
        string? refiner = NonEmpty(r.String("refiner_checkpoint")) is { } rc && rc != "None" ? rc : null;
        double refinerSwitchAt = r.Double("refiner_switch_at", RefinerOptions.DefaultSwitchAt, 0, 1);
        if (refiner is not null && (img2img || hires is not null))
            r.Error("refiner_checkpoint", img2img ? "the refiner continues txt2img; for img2img run the refiner itself as the model (override_settings.sd_model_checkpoint)"
                : "the refiner and the hires fix cannot be combined yet; leave enable_hr off with a refiner");
        var warnings = new List<string>();
        foreach (var (field, isDefault, what) in NotDone)
            if (body[field] is { } node && !isDefault(node))
                warnings.Add($"{field}: {what} is not supported by this server; the field was ignored.");
        if (taskId is not null && (taskId.Length is 0 or > 128 || taskId.Any(c => char.IsControl(c))))
            r.Error("force_task_id", "must be 1 to 128 printable characters");

        int skip = clipSkip;
        string? checkpoint = null, vae = null;
        if (overrides is not null)
        {
            var o = new RequestReader(overrides);
            skip = o.Int("CLIP_stop_at_last_layers", clipSkip, 1, 12);
            checkpoint = o.String("sd_model_checkpoint");
            vae = o.String("sd_vae");
            try { o.ThrowIfInvalid(); }
            catch (RequestValidationException e) { foreach (var err in e.Errors) r.Error($"override_settings.{err.Field}", err.Message, err.Type); }
        }

        string scheduler = "";
        try { scheduler = traits is null ? SamplerNames.ResolveAny(sampler, schedule) : SamplerNames.Resolve(sampler, schedule, traits); }
        catch (UnknownNameException e)
        {
            string field = e.Part == "scheduler" ? "scheduler" : samplerName is not null ? "sampler_name" : "sampler_index";
            r.Error(field, e.Message);
        }

        if (traits is { HasT5: false } && (prompt3 is not null || negative3 is not null || maxSequenceLength is not null))
            r.Error(prompt3 is not null ? "prompt_3" : negative3 is not null ? "negative_prompt_3" : "max_sequence_length", T5Refusal(traits));

        if (traits is { FlowMatching: false } && prompt2 is not null) // SD 1.x/2.x and SDXL under A1111's syntax take one prompt
            r.Error("prompt_2", $"prompt_2 is read by a Flux model's T5 encoder (and SD3's second CLIP); this model ({traits.Family}) takes the prompt only: leave it out.");

        Imaging.RgbImage? image = null, maskImage = null;
        if (img2img)
        {
            if (initImages is null || initImages.Count == 0)
                r.Error("init_images", "img2img needs at least one init image (base64 PNG/JPEG/WebP)");
            else
                image = Base64Images.Decode(initImages[0], "init_images[0]", maxSide);
            if (!string.IsNullOrEmpty(mask))
                maskImage = Base64Images.Decode(mask, "mask", maxSide);
            if (maskImage is not null && body["inpaint_full_res"] is JsonValue fullRes && fullRes.GetValueKind() == System.Text.Json.JsonValueKind.True)
                warnings.Add("inpaint_full_res: \"only masked\" inpainting is not supported; the whole picture was inpainted at its size.");
            if (maskImage is not null && body["inpainting_fill"] is JsonValue fill && fill.TryGetValue(out double f) && f != 1)
                warnings.Add($"inpainting_fill {f}: the masked area starts from the original picture (A1111's \"original\", 1); fill, latent noise and latent nothing are not supported.");
            if (initImages is { Count: > 1 })
                warnings.Add($"init_images: {initImages.Count} images were sent; the first is used for every image.");
        }
        var controlNets = ControlNetUnits.Parse(r, controlNetDir, maxSide, width ?? image?.Width, height ?? image?.Height, workerControlNets);
        r.ThrowIfInvalid();

        // A1111 works at sizes rounded down to a multiple of 8 (its latents are width // 8); so do we, saying so.
        int? Round8(int? v, string name)
        {
            if (v is not int x || x % 8 == 0) return v;
            warnings.Add($"{name} {x} is not a multiple of 8; {x / 8 * 8} was used.");
            return x / 8 * 8;
        }
        var options = new GenerationOptions
        {
            Prompts = [prompt],
            NegativePrompts = [negative],
            Prompts2 = prompt2 is null ? null : [prompt2],
            Prompts3 = prompt3 is null ? null : [prompt3],
            NegativePrompts3 = negative3 is null ? null : [negative3],
            MaxSequenceLength = maxSequenceLength,
            Width = Round8(width, "width"),
            Height = Round8(height, "height"),
            NumInferenceSteps = steps,
            GuidanceScale = cfg,
            NumImagesPerPrompt = 1,
            Scheduler = scheduler,
            PromptSyntax = PromptSyntax.A1111,
            ClipSkip = skip,
            LoraDirectory = loraDir,
            Image = image,
            MaskImage = image is null ? null : maskImage,
            Strength = image is null ? null : strength,
            MaskBlur = maskImage is null ? 0 : maskBlur,
            InvertMask = maskImage is not null && invert,
            PasteOriginal = maskImage is not null, // A1111 always pastes the original back outside the mask
            VariationSeed = subseed,
            VariationStrength = subseedStrength,
            SeedResizeFromWidth = resizeFromW > 0 && resizeFromH > 0 ? resizeFromW : 0,
            SeedResizeFromHeight = resizeFromW > 0 && resizeFromH > 0 ? resizeFromH : 0,
            Tiling = tiling,
            Hires = hires,
            ControlNets = controlNets,
        };
        long resolved = seed == -1 ? Random.Shared.NextInt64(0, uint.MaxValue) : seed;
        options.Validate(); // model-free checks, before the job is queued

        var parameters = Defaults(img2img);
        foreach (var (key, value) in body)
            if (parameters.ContainsKey(key) && value is not null)
                parameters[key] = value.DeepClone();
        var source = (JsonObject)body.DeepClone();
        source["seed"] = resolved;
        if (img2img)
        {
            parameters["init_images"] = null; // not echoed (A1111 leaves them out unless include_init_images)
            parameters["mask"] = null;
        }
        return new GenerationRequest
        {
            Options = options,
            Seed = resolved,
            BatchSize = batchSize,
            Iterations = iterations,
            Checkpoint = string.IsNullOrEmpty(checkpoint) ? null : checkpoint,
            RefinerCheckpoint = refiner,
            RefinerSwitchAt = refinerSwitchAt,
            Vae = vae,
            Sampler = sampler,
            Schedule = schedule,
            RestoreCheckpoint = restore,
            SendImages = send,
            SaveImages = save,
            Task = task,
            Parameters = parameters,
            Warnings = warnings,
            TaskId = taskId,
            Source = source,
            DistilledCfgScale = distilledCfg,
        };
    }

    /// <summary>Why prompt_3, negative_prompt_3 and max_sequence_length are refused for a model without T5.</summary>
    public static string T5Refusal(ModelTraits traits) =>
        $"prompt_3, negative_prompt_3 and max_sequence_length are read by an SD3 model's T5 encoder; this model ({traits.Family}) has none: leave them out.";

    /// <summary>A1111's request defaults, as its "parameters" echo shows them.</summary>
    public static JsonObject Defaults(bool img2img)
    {
        var o = new JsonObject
        {
            ["prompt"] = "",
            ["negative_prompt"] = "",
            ["styles"] = null,
            ["seed"] = -1,
            ["subseed"] = -1,
            ["subseed_strength"] = 0,
            ["seed_resize_from_h"] = -1,
            ["seed_resize_from_w"] = -1,
            ["sampler_name"] = null,
            ["scheduler"] = null,
            ["batch_size"] = 1,
            ["n_iter"] = 1,
            ["steps"] = 50,
            ["cfg_scale"] = 7.0,
            ["width"] = 512,
            ["height"] = 512,
            ["restore_faces"] = null,
            ["tiling"] = null,
            ["do_not_save_samples"] = false,
            ["do_not_save_grid"] = false,
            ["eta"] = null,
            ["denoising_strength"] = img2img ? 0.75 : null,
            ["override_settings"] = null,
            ["override_settings_restore_afterwards"] = true,
            ["disable_extra_networks"] = false,
            ["comments"] = null,
            ["sampler_index"] = "Euler",
            ["script_name"] = null,
            ["script_args"] = new JsonArray(),
            ["send_images"] = true,
            ["save_images"] = false,
            ["alwayson_scripts"] = new JsonObject(),
            ["force_task_id"] = null,
            ["infotext"] = null,
        };
        if (img2img)
        {
            o["init_images"] = null;
            o["resize_mode"] = 0;
            o["image_cfg_scale"] = null;
            o["mask"] = null;
            o["mask_blur_x"] = 4;
            o["mask_blur_y"] = 4;
            o["mask_blur"] = null;
            o["inpainting_fill"] = 0;
            o["inpaint_full_res"] = true;
            o["inpaint_full_res_padding"] = 0;
            o["inpainting_mask_invert"] = 0;
            o["initial_noise_multiplier"] = null;
        }
        else
        {
            o["enable_hr"] = false;
            o["hr_scale"] = 2.0;
            o["hr_upscaler"] = null;
            o["hr_second_pass_steps"] = 0;
            o["hr_resize_x"] = 0;
            o["hr_resize_y"] = 0;
        }
        return o;
    }
}
