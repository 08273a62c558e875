using System.Globalization;
using System.Text.Json;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Training;

/// <summary>
/// The <c>ss_*</c> metadata kohya's sd-scripts write into a LoRA, which AUTOMATIC1111's and ComfyUI's LoRA browsers show
/// (base model hash, rank, alpha, steps, resolution, tag frequency, ...). Nothing time- or machine-dependent is written,
/// so two runs with one seed give byte-identical files.
/// </summary>
public sealed class LoraMetadata(LoraTrainingOptions o, KohyaImageFolder folder, int resolution, string predictionType)
{
    string? _hash;

    /// <summary>The run's buckets (kohya's ss_bucket_info), set once the pictures are sorted into them.</summary>
    public AspectRatioBuckets? Buckets { get; set; }

    /// <summary>AUTOMATIC1111's model hash (<see cref="ModelHash"/>) of the checkpoint file, or of a diffusers folder's UNet weights.</summary>
    public string BaseModelHash => _hash ??= ModelHash.Compute(File.Exists(o.Model) ? o.Model : UNetWeights(o.Model));

    static string UNetWeights(string dir) =>
        Directory.GetFiles(Path.Combine(dir, "unet")).Where(f => Path.GetFileName(f).StartsWith("diffusion_pytorch_model", StringComparison.Ordinal)
            && !f.EndsWith(".json", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault()
        ?? throw new FileNotFoundException($"{dir}/unet holds no diffusion_pytorch_model weights to hash.");

    /// <summary>What a checkpoint must share with the run that resumes it (everything but the total steps).</summary>
    public string Signature(StableDiffusionPipeline pipe) => string.Create(CultureInfo.InvariantCulture,
        $"model {BaseModelHash}, rank {o.Rank}, alpha {o.Alpha}, lr {o.LearningRate}, te-lr {o.TextEncoderLearningRate}, batch {o.Batch}, " +
        $"resolution {resolution}, text encoder {o.TrainTextEncoder}, min-snr {o.MinSnrGamma}, seed {o.Seed}, " +
        $"pictures {folder.Pictures.Count} (captions sha256 {CaptionsHash()})")
        + (o.Buckets ? string.Create(CultureInfo.InvariantCulture, $", buckets {o.MinBucketReso}-{o.MaxBucketReso} step {o.BucketResoSteps}") : "")
        + (o.BaseDType == TorchSharp.torch.ScalarType.Float32 ? "" : $", base {o.BaseDType}");

    string CaptionsHash() => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
        System.Text.Encoding.UTF8.GetBytes(string.Join("\n", folder.Pictures.Select(p => $"{p.Repeats}_{p.Folder}/{Path.GetFileName(p.Path)}: {p.Caption}")))))[..12];

    public Dictionary<string, string> For(StableDiffusionPipeline pipe, int steps)
    {
        int images = folder.Pictures.Sum(p => p.Repeats);
        int batchesPerEpoch = (images + o.Batch - 1) / o.Batch;
        bool v2 = pipe.Components.Conditioner is Conditioning.ClipTextConditioner c && c.TextEncoder.Config.HiddenSize == 1024;
        string F(double x) => x.ToString("R", CultureInfo.InvariantCulture);
        var dirs = folder.Pictures.GroupBy(p => p.Repeats + "_" + p.Folder).OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => new { n_repeats = g.First().Repeats, img_count = g.Count() });
        return new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["ss_sd_model_name"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(o.Model)),
            ["ss_sd_model_hash"] = BaseModelHash,
            ["ss_base_model_version"] = v2 ? "sd_v2" : "sd_v1",
            ["ss_v2"] = v2 ? "True" : "False",
            ["ss_v_parameterization"] = predictionType == "v_prediction" ? "True" : "False",
            ["ss_network_module"] = "networks.lora",
            ["ss_network_dim"] = o.Rank.ToString(CultureInfo.InvariantCulture),
            ["ss_network_alpha"] = F(o.Alpha),
            ["ss_network_train_unet_only"] = o.TrainTextEncoder ? "False" : "True",
            ["ss_learning_rate"] = F(o.LearningRate),
            ["ss_unet_lr"] = F(o.LearningRate),
            ["ss_text_encoder_lr"] = o.TrainTextEncoder ? F(o.TextEncoderLearningRate ?? o.LearningRate) : "None",
            ["ss_lr_scheduler"] = "constant",
            ["ss_lr_warmup_steps"] = "0",
            ["ss_optimizer"] = $"AdamW(weight_decay={F(o.WeightDecay)})",
            ["ss_min_snr_gamma"] = o.MinSnrGamma is { } g ? F(g) : "None",
            ["ss_max_train_steps"] = steps.ToString(CultureInfo.InvariantCulture),
            ["ss_steps"] = steps.ToString(CultureInfo.InvariantCulture),
            ["ss_epoch"] = ((steps + batchesPerEpoch - 1) / batchesPerEpoch).ToString(CultureInfo.InvariantCulture),
            ["ss_num_epochs"] = ((steps + batchesPerEpoch - 1) / batchesPerEpoch).ToString(CultureInfo.InvariantCulture),
            ["ss_num_batches_per_epoch"] = batchesPerEpoch.ToString(CultureInfo.InvariantCulture),
            ["ss_batch_size_per_device"] = o.Batch.ToString(CultureInfo.InvariantCulture),
            ["ss_total_batch_size"] = o.Batch.ToString(CultureInfo.InvariantCulture),
            ["ss_gradient_accumulation_steps"] = "1",
            ["ss_num_train_images"] = images.ToString(CultureInfo.InvariantCulture),
            ["ss_num_reg_images"] = "0",
            ["ss_resolution"] = $"({resolution}, {resolution})",
            ["ss_enable_bucket"] = o.Buckets ? "True" : "False",
            ["ss_bucket_no_upscale"] = "False",
            ["ss_min_bucket_reso"] = o.Buckets ? Buckets!.MinSide.ToString(CultureInfo.InvariantCulture) : "None",
            ["ss_max_bucket_reso"] = o.Buckets ? Buckets!.MaxSide.ToString(CultureInfo.InvariantCulture) : "None",
            ["ss_bucket_info"] = o.Buckets ? BucketInfo(Buckets!) : "null",
            ["ss_cache_latents"] = "True",
            ["ss_mixed_precision"] = o.BaseDType == TorchSharp.torch.ScalarType.BFloat16 ? "bf16" : "no",
            ["ss_seed"] = o.Seed.ToString(CultureInfo.InvariantCulture),
            ["ss_output_name"] = Path.GetFileNameWithoutExtension(o.Output),
            ["ss_tag_frequency"] = JsonSerializer.Serialize(folder.TagFrequency()),
            ["ss_dataset_dirs"] = JsonSerializer.Serialize(dirs),
            ["ss_training_comment"] = "trained with SharpDiffusion train-lora",
        }.ToDictionary(StringComparer.Ordinal);
    }

    /// <summary>kohya's ss_bucket_info: {"buckets": {"0": {"resolution": [w, h], "count": pictures × repeats}, …}, "mean_img_ar_error": e}.</summary>
    string BucketInfo(AspectRatioBuckets buckets) => JsonSerializer.Serialize(new
    {
        buckets = buckets.Buckets.Select((b, i) => (b, i)).ToDictionary(x => x.i.ToString(CultureInfo.InvariantCulture),
            x => new { resolution = new[] { x.b.Width, x.b.Height }, count = x.b.Pictures.Sum(p => folder.Pictures[p].Repeats) }),
        mean_img_ar_error = buckets.MeanAspectError,
    });
}
