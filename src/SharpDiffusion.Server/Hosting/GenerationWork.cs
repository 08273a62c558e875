using System.Text.Json.Nodes;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Hosting;

/// <summary>
/// Runs a <see cref="GenerationRequest"/> on the worker thread: each image is its own library call with seed + index
/// (so every image can be made again from its infotext, by this server or the CLI), with progress and live previews
/// reported to the job. Returns AUTOMATIC1111's response body: images (base64 PNG with the "parameters" chunk),
/// parameters and info. With <paramref name="outputDir"/> the PNGs are also saved there as soon as they are made;
/// without, <see cref="Images"/> keeps them for a caller that saves them later (a queue worker, once its result is kept).
/// </summary>
public sealed class GenerationWork(ModelHost host, ModelCatalog catalog, ServerSettings settings, string? outputDir)
{
    /// <summary>The PNGs (with their infotext) of the last <see cref="Run"/>, in order.</summary>
    public IReadOnlyList<byte[]> Images { get; private set; } = [];

    /// <summary>The VAEs sd_vae may name (none when not set).</summary>
    public VaeCatalog Vaes { get; init; } = new(null);

    public JsonObject Run(Job job, GenerationRequest request)
    {
        var previous = host.Current;
        var entry = request.Checkpoint is { } name
            ? catalog.Find(name) ?? throw new ArgumentException($"Model '{name}' not found; GET /sdapi/v1/sd-models lists the names.")
            : previous;
        try
        {
            job.Report(new JobProgress(0, request.ImageCount, 0, request.Options.DenoisingSteps, "loading"));
            var pipeline = host.Use(entry);
            host.UseVae(Vaes.Resolve(request.Vae ?? settings.SdVae)); // override_settings.sd_vae, else the option
            return Generate(job, request, pipeline);
        }
        finally
        {
            if (request.RestoreCheckpoint && entry != previous)
                host.Use(previous);
        }
    }

    JsonObject Generate(Job job, GenerationRequest request, StableDiffusionPipeline pipeline)
    {
        var traits = ModelTraits.Of(pipeline);
        var forModel = ForModel(request, traits);
        var fluxWarnings = new List<string>();
        if (pipeline.Denoiser is FluxTransformerDenoiser flux) forModel = FluxRequests.ForFlux(request, forModel, flux, fluxWarnings);
        if (request.RefinerCheckpoint is { } refinerName)
        {
            RefinerPass.RefuseBase(pipeline); // one line, before the refiner is read
            var refinerEntry = catalog.Find(refinerName) ?? throw new ArgumentException($"Refiner '{refinerName}' not found; GET /sdapi/v1/sd-models lists the names.");
            forModel = forModel with { Refiner = new RefinerOptions { Refiner = host.UseRefiner(refinerEntry), SwitchAt = request.RefinerSwitchAt } };
        }
        var (width, height) = pipeline.Validate(forModel);
        int count = request.ImageCount, every = settings.PreviewEvery;
        bool previews = settings.LivePreviews && every != 0, full = settings.FullPreview;
        var taesd = previews && settings.TaesdPreview ? host.Taesd : null;
        (string Name, string Hash)? vae = pipeline.VaeCodec is { VaeName: { } vaeName, VaeHash: { } vaeHash } ? (vaeName, vaeHash) : null;
        var images = new JsonArray();
        var infotexts = new JsonArray();
        var seeds = new JsonArray();
        var prompts = new JsonArray();
        var negatives = new JsonArray();
        var warnings = new List<string>(request.Warnings.Concat(fluxWarnings));
        var pngs = new List<byte[]>();
        string sampler = "";
        for (int i = 0; i < count; i++)
        {
            job.NextImage();
            var options = forModel with { Seed = request.Seed + i };
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(job.Cancellation, job.SkipToken);
            int index = i;
            var progress = new SynchronousProgress<GenerationProgress>(p =>
                job.Report(new JobProgress(index, count, p.Step, Math.Max(p.TotalSteps, 1), p.Stage.ToString().ToLowerInvariant())));
            Action<int, TorchSharp.torch.Tensor>? onDenoised = previews
                ? (step, x0) =>
                {
                    if (every > 0 && (step + 1) % every != 0) return;
                    job.ReportPreview(taesd is not null ? PreviewPng(taesd.ToImages(x0.narrow(0, 0, 1))[0]) : Preview(pipeline, x0, full));
                }
                : null;
            GenerationResult result;
            try { result = pipeline.Generate(options, progress, cancellation: linked.Token, onDenoised: onDenoised); }
            catch (OperationCanceledException) when (!job.Cancellation.IsCancellationRequested)
            {
                warnings.Add($"Image {i} (seed {request.Seed + i}) was skipped.");
                continue; // A1111's skip: this image only
            }
            using (result)
            {
                sampler = traits.FlowMatching ? SamplerNames.FlowSampler : result.SamplerName;
                warnings.AddRange(result.Warnings.Where(w => !warnings.Contains(w)));
                var image = result.Images[0];
                string info = WithSampler(ImageOutput.InfoTextFor(options, result, image, pipeline.ModelName, pipeline.ModelHash, vae), result.SamplerName,
                    sampler, SamplerNames.InfoTextSchedule(request.Sampler, request.Schedule, result.SamplerName, traits));
                var png = PngFile.Encode(image.Width, image.Height, image.Rgb, new Dictionary<string, string> { ["parameters"] = info });
                pngs.Add(png);
                if (request.SendImages) images.Add(Convert.ToBase64String(png));
                infotexts.Add(info);
                seeds.Add(result.Seed);
                prompts.Add(image.Prompt);
                negatives.Add(image.NegativePrompt);
            }
        }
        Images = pngs;
        if (outputDir is not null)
            Save(outputDir, pngs, job.Id);

        var parameters = (JsonObject)request.Parameters.DeepClone();
        parameters["width"] = width;
        parameters["height"] = height;
        var o = forModel;
        var info0 = new JsonObject
        {
            ["prompt"] = o.Prompts[0],
            ["all_prompts"] = prompts,
            ["negative_prompt"] = o.NegativePromptFor(0),
            ["all_negative_prompts"] = negatives,
            ["seed"] = request.Seed,
            ["all_seeds"] = seeds,
            ["subseed"] = o.VariationSeed ?? -1,
            ["all_subseeds"] = new JsonArray(seeds.Select(_ => (JsonNode?)JsonValue.Create(o.VariationSeed ?? -1)).ToArray()),
            ["subseed_strength"] = o.VariationStrength,
            ["width"] = width,
            ["height"] = height,
            ["sampler_name"] = sampler,
            ["cfg_scale"] = pipeline.Denoiser is FluxTransformerDenoiser ? 1.0 : o.GuidanceScale, // Flux: no CFG (Forge writes 1)
            ["distilled_cfg_scale"] = traits.Guidance == "distilled" ? o.GuidanceScale : null, // Forge's, Flux dev's embedded guidance
            ["steps"] = o.NumInferenceSteps,
            ["batch_size"] = request.BatchSize,
            ["restore_faces"] = false,
            ["face_restoration_model"] = null,
            ["sd_model_name"] = pipeline.ModelName,
            ["sd_model_hash"] = pipeline.ModelHash,
            ["sd_vae_name"] = vae?.Name,
            ["sd_vae_hash"] = vae?.Hash,
            ["seed_resize_from_w"] = -1,
            ["seed_resize_from_h"] = -1,
            ["denoising_strength"] = o.Task == GenerationTask.TextToImage ? null : o.EffectiveStrength,
            ["extra_generation_params"] = new JsonObject(),
            ["index_of_first_image"] = 0,
            ["infotexts"] = infotexts,
            ["styles"] = new JsonArray(),
            ["job_timestamp"] = job.Created.UtcDateTime.ToString("yyyyMMddHHmmss"),
            ["clip_skip"] = o.ClipSkip,
            ["is_using_inpainting_conditioning"] = pipeline.Denoiser.InChannels == 9,
            ["version"] = ServerInfo.Version,
            ["warnings"] = new JsonArray(warnings.Select(w => (JsonNode?)JsonValue.Create(w)).ToArray()),
        };
        return new JsonObject
        {
            ["images"] = images,
            ["parameters"] = parameters,
            ["info"] = info0.ToJsonString(),
        };
    }

    /// <summary>The request's options for the model that runs it: its sampler and schedule resolved for that model, and
    /// AUTOMATIC1111's prompt syntax only where the family takes it (SD3's prompts are plain text, as in Forge's SD3).</summary>
    static GenerationOptions ForModel(GenerationRequest request, ModelTraits traits)
    {
        var o = request.Options;
        if (!traits.HasT5 && (o.Prompts3 is not null || o.NegativePrompts3 is not null || o.MaxSequenceLength is not null))
            throw new ArgumentException(A1111Requests.T5Refusal(traits));
        return o with
        {
            Scheduler = SamplerNames.Resolve(request.Sampler, request.Schedule, traits),
            PromptSyntax = traits.FlowMatching ? PromptSyntax.Plain : o.PromptSyntax,
        };
    }

    /// <summary>The infotext's "Sampler: NAME, " as A1111 1.9 and Forge write it: the sampler's A1111 name, then
    /// "Schedule type: LABEL, " when one applies that the name does not already carry.</summary>
    static string WithSampler(string info, string written, string shown, string? schedule)
    {
        int lastLine = info.LastIndexOf('\n') + 1; // the parameters line; the prompts above may contain anything
        string old = $"Sampler: {written}, ";
        int at = info.IndexOf(old, lastLine, StringComparison.Ordinal);
        if (at < 0 || (shown == written && schedule is null)) return info;
        return info[..at] + $"Sampler: {shown}, " + (schedule is null ? "" : $"Schedule type: {schedule}, ") + info[(at + old.Length)..];
    }

    byte[] Preview(StableDiffusionPipeline pipeline, TorchSharp.torch.Tensor x0, bool full)
    {
        RgbImage image;
        if (full)
        {
            using var decoded = pipeline.DecodeLatents(x0.narrow(0, 0, 1));
            using var bytes = ImageTensors.ToUInt8(decoded);
            image = new RgbImage((int)bytes.shape[2], (int)bytes.shape[1], bytes.data<byte>().ToArray());
        }
        else
            image = host.Preview.ToImages(x0.narrow(0, 0, 1))[0];
        return PreviewPng(image);
    }

    static byte[] PreviewPng(RgbImage image) => PngFile.Encode(image.Width, image.Height, image.Rgb);

    /// <summary>Writes the job's PNGs into <paramref name="directory"/> (all or none), named by time, job id and index.</summary>
    public static void Save(string directory, IReadOnlyList<byte[]> pngs, string jobId)
    {
        Directory.CreateDirectory(directory);
        string stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss");
        string safeId = new(jobId.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        AtomicFiles.WriteAll(pngs.Select((png, i) => (Path.Combine(directory, $"{stamp}-{safeId}-{i}.png"), png)).ToList());
    }
}
