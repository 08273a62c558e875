using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>What a LoRA training run is told (train-lora's options). Steps are a total: a resumed run continues to it.</summary>
public sealed record LoraTrainingOptions
{
    /// <summary>An SD 1.x/2.x diffusers folder or single-file checkpoint.</summary>
    public required string Model { get; init; }
    /// <summary>The pictures, kohya's layout (<see cref="KohyaImageFolder"/>).</summary>
    public required string Images { get; init; }
    /// <summary>The kohya-format .safetensors LoRA written at the end.</summary>
    public required string Output { get; init; }
    public int Rank { get; init; } = 4;
    public double Alpha { get; init; } = 4;
    public int Steps { get; init; } = 500;
    public double LearningRate { get; init; } = 1e-4;
    public int Batch { get; init; } = 1;
    /// <summary>Square training size in pixels; null: the model's default size (sample_size × VAE factor).</summary>
    public int? Resolution { get; init; }
    public bool TrainTextEncoder { get; init; }
    /// <summary>The text encoder's learning rate; null: <see cref="LearningRate"/>.</summary>
    public double? TextEncoderLearningRate { get; init; }
    public double WeightDecay { get; init; } = 0.01;
    /// <summary>Min-SNR-γ loss weighting (Hang et al. 2023; 5 is their choice); null: plain MSE.</summary>
    public double? MinSnrGamma { get; init; }
    public int Seed { get; init; } = 1;
    /// <summary>A checkpoint to continue from (written every <see cref="CheckpointEvery"/> steps to <see cref="CheckpointPath"/>).</summary>
    public string? Resume { get; init; }
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Loss rows (step, loss, lr, wall seconds), one per step; a resumed run drops the rows its checkpoint lacks.</summary>
    public string? LossCsv { get; init; }
    /// <summary>kohya's --enable_bucket: pictures keep their aspect ratio in buckets of about resolution² pixels
    /// (<see cref="AspectRatioBuckets"/>); off: every picture is centre-cropped to a square.</summary>
    public bool Buckets { get; init; }
    /// <summary>The buckets' shortest side; null: kohya's 256, or the resolution if smaller.</summary>
    public int? MinBucketReso { get; init; }
    /// <summary>The buckets' longest side; null: kohya's 1024, or the resolution if larger.</summary>
    public int? MaxBucketReso { get; init; }
    /// <summary>The buckets' sides are multiples of this (kohya's 64: the VAE's 8 × the UNet's three halvings).</summary>
    public int BucketResoSteps { get; init; } = 64;
    /// <summary>The frozen base weights' dtype: float32 or bfloat16 (the LoRA branches and AdamW's moments stay float32).</summary>
    public ScalarType BaseDType { get; init; } = ScalarType.Float32;
    /// <summary>Where checkpoints go; null: beside the output (<see cref="CheckpointPath"/>).</summary>
    public string? CheckpointFile { get; init; }

    /// <summary>Where checkpoints go: beside the output, <c>name.checkpoint.safetensors</c>.</summary>
    public string CheckpointPath => CheckpointFile ?? Path.ChangeExtension(Output, null) + ".checkpoint.safetensors";
}

/// <summary>A progress report: step of total, loss (EMA-smoothed), wall time across sessions of the run.</summary>
public sealed record LoraTrainingProgress(int Step, int TotalSteps, double Loss, TimeSpan Elapsed);

/// <summary>
/// Trains a LoRA on an SD 1.x/2.x model as kohya's train_network.py does: pictures encoded once by the VAE (the posterior
/// mean and σ kept, a latent drawn per step), base weights frozen, the LoRA branches (<see cref="LoraNetwork"/>) trained by
/// AdamW on the loss the scheduler's prediction_type implies — ε: ‖ε − ε_θ(x_t, t, c)‖², v: ‖v − v_θ‖² with
/// v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ — optionally weighted by min-SNR-γ. Every random draw of a step is seeded by (seed, step), so
/// two runs with one seed write the same file and a resumed run equals an uninterrupted one.
/// </summary>
public sealed class LoraTrainer
{
    readonly LoraTrainingOptions _o;
    readonly Action<LoraTrainingProgress>? _progress;
    readonly Action<string>? _warn;
    readonly Stopwatch _clock = new();
    double _previousSeconds;

    public LoraTrainer(LoraTrainingOptions options, Action<LoraTrainingProgress>? progress = null, Action<string>? warn = null)
    {
        _o = options;
        _progress = progress;
        _warn = warn;
    }

    TimeSpan Elapsed => TimeSpan.FromSeconds(_previousSeconds + _clock.Elapsed.TotalSeconds);

    /// <summary>Checks what can be checked without the model: options, the picture folder, the output path.</summary>
    public KohyaImageFolder Validate()
    {
        foreach (var (name, value) in new[] { ("rank", _o.Rank), ("steps", _o.Steps), ("batch", _o.Batch), ("checkpoint-every", _o.CheckpointEvery) })
            if (value < 1) throw new ArgumentException($"--{name} must be at least 1; got {value}.");
        if (!(_o.LearningRate > 0)) throw new ArgumentException($"--lr must be positive; got {_o.LearningRate}.");
        if (!(_o.Alpha > 0)) throw new ArgumentException($"--alpha must be positive; got {_o.Alpha}.");
        if (_o.MinSnrGamma is { } g && !(g > 0)) throw new ArgumentException($"--min-snr-gamma must be positive; got {g}.");
        if (_o.Resolution is { } r && (r < 8 || r % 8 != 0)) throw new ArgumentException($"--resolution must be a multiple of 8 of at least 8; got {r}.");
        if (_o.BaseDType is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"--dtype {_o.BaseDType} cannot train; give float32, bfloat16 or auto (float16 would need loss scaling).");
        if (_o.BucketResoSteps < 8 || _o.BucketResoSteps % 8 != 0)
            throw new ArgumentException($"--bucket-reso-steps must be a multiple of 8; got {_o.BucketResoSteps}.");
        if (!File.Exists(_o.Model) && !Directory.Exists(_o.Model)) throw new FileNotFoundException($"--model {_o.Model} is neither a model folder nor a checkpoint file.");
        if (_o.Resume is { } resume && !File.Exists(resume)) throw new FileNotFoundException($"--resume {resume}: no such checkpoint.");
        if (!_o.Output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"--output {_o.Output} must end in .safetensors (a kohya-format LoRA).");
        AtomicFiles.CheckWritable(_o.Output);
        return KohyaImageFolder.Open(_o.Images);
    }

    /// <summary>Trains (or resumes) and writes the LoRA; returns the steps done and the wall time of the whole run.</summary>
    public (int Steps, TimeSpan Elapsed) Run(CancellationToken cancellation = default)
    {
        var folder = Validate();
        foreach (var w in folder.Warnings) _warn?.Invoke(w);
        _clock.Restart();
        // A fixed layout, attention and linear kernel (not the ones measured fastest on this machine) so the file is the
        // same on every machine.
        using var pipe = StableDiffusionPipeline.Load(_o.Model,
            new LoadOptions { ChannelsLast = false, Attention = Models.AttentionKernel.Sdpa, Linear = Models.LinearKernel.Default, DType = _o.BaseDType });
        var (unet, textEncoder, tokenizer) = TrainableParts(pipe, _o.Model);
        string predictionType = pipe.SchedulerConfig.GetString("prediction_type", "epsilon");
        if (predictionType is not ("epsilon" or "v_prediction"))
            throw new NotSupportedException($"{_o.Model}: prediction_type '{predictionType}' cannot be trained; train-lora trains epsilon and v_prediction models.");
        int resolution = _o.Resolution ?? pipe.DefaultSize;
        // Every side must halve evenly through the VAE and the UNet's downsamplings (SD: 8 × 8 = 64).
        int granule = pipe.VaeScaleFactor * unet.Config.DownFactor;
        if (_o.Buckets && _o.BucketResoSteps % granule != 0)
            throw new ArgumentException($"--bucket-reso-steps {_o.BucketResoSteps}: this model needs sides in multiples of {granule} (VAE {pipe.VaeScaleFactor} × UNet {unet.Config.DownFactor}); give a multiple of {granule}.");

        var metadata = new LoraMetadata(_o, folder, resolution, predictionType);
        string signature = metadata.Signature(pipe);
        LoraNetwork.Freeze(unet, textEncoder);
        using var network = LoraNetwork.Attach(unet, _o.TrainTextEncoder ? textEncoder : null, _o.Rank, _o.Alpha, _o.Seed);
        using var optimizer = new AdamW(network.Parameters, _o.WeightDecay);
        int start = Restore(network, optimizer, signature);
        ForgetLossRowsAfter(start);

        var buckets = _o.Buckets ? BucketsOf(folder, resolution) : AspectRatioBuckets.Square(folder.Pictures.Count, resolution);
        metadata.Buckets = buckets;
        using (var latents = LatentCache.Encode(pipe, folder, buckets, _warn, cancellation))
        using (var ids = tokenizer.EncodeBatch(folder.Pictures.Select(p => p.Caption).ToList()))  // [N, 77]
        using (var contexts = _o.TrainTextEncoder ? null : EncodeCaptions(textEncoder, ids))           // [N, 77, D]
        {
            var schedule = NoiseSchedule.FromConfig(pipe.SchedulerConfig);
            var rows = folder.Pictures.SelectMany((p, i) => Enumerable.Repeat(i, p.Repeats)).ToArray(); // repeats as weights
            var rowsOfBucket = rows.GroupBy(latents.BucketOf).ToDictionary(g => g.Key, g => g.ToArray());
            var teKeys = network.Layers.Where(l => l.Target != Adapters.LoraTarget.Unet).SelectMany(l => new[] { l.Down, l.Up }).ToHashSet();
            double smooth = double.NaN;
            for (int step = start; step < _o.Steps; step++)
            {
                cancellation.ThrowIfCancellationRequested();
                double loss = Step(step, unet, textEncoder, schedule, predictionType, (float)pipe.LatentFormat.ScalingFactor, latents, ids, contexts, rows, rowsOfBucket);
                StepOptimizer(optimizer, network, teKeys);
                smooth = double.IsNaN(smooth) ? loss : 0.95 * smooth + 0.05 * loss;
                LogLoss(step + 1, loss);
                _progress?.Invoke(new LoraTrainingProgress(step + 1, _o.Steps, smooth, Elapsed));
                if ((step + 1) % _o.CheckpointEvery == 0 || step + 1 == _o.Steps)
                    SaveCheckpoint(network, optimizer, step + 1, signature);
            }
        }
        network.Save(_o.Output, metadata.For(pipe, _o.Steps));
        return (_o.Steps, Elapsed);
    }

    /// <summary>The UNet, CLIP text encoder and tokenizer of an SD 1.x/2.x model; anything else is refused, named.</summary>
    static (UNet2DConditionModel, ClipTextModel, Text.ClipTokenizer) TrainableParts(StableDiffusionPipeline pipe, string model)
    {
        if (pipe.Family is not Families.StableDiffusion.StableDiffusionFamily || pipe.Family is Families.StableDiffusion.StableDiffusionXLFamily
            || pipe.Components.Conditioner is not ClipTextConditioner conditioner || pipe.Denoiser.Weights.Module is not UNet2DConditionModel unet)
            throw new NotSupportedException($"{model} is a {pipe.Family.Name} model; train-lora trains SD 1.x/2.x models (one CLIP text encoder and a UNet).");
        if (unet.Config.InChannels != pipe.LatentFormat.Channels)
            throw new NotSupportedException($"{model} is an inpainting or depth model ({unet.Config.InChannels} UNet input channels); train-lora trains text-to-image models.");
        return (unet, conditioner.TextEncoder, conditioner.Tokenizer);
    }

    // ---- One step --------------------------------------------------------------------------------------------

    double Step(int step, UNet2DConditionModel unet, ClipTextModel textEncoder, NoiseSchedule schedule, string predictionType, float scaling,
        LatentCache latents, Tensor ids, Tensor? contexts, int[] rows, Dictionary<int, int[]> rowsOfBucket)
    {
        using var scope = NewDisposeScope();
        int batch = _o.Batch;
        // Every draw of a step comes from generators seeded by (seed, step), so a resumed run repeats it exactly.
        var rng = new Random(ShapeDataset.Mix(_o.Seed, 2_000_000 + step));
        using var generator = new Generator((ulong)ShapeDataset.Mix(_o.Seed, 3_000_000 + step));
        // The first picture picks the bucket (weighted by pictures × repeats, as kohya's batches are); the rest come from it.
        var picked = new int[batch];
        picked[0] = rows[rng.Next(rows.Length)];
        var bucketRows = rowsOfBucket[latents.BucketOf(picked[0])];
        for (int b = 1; b < batch; b++) picked[b] = bucketRows[rng.Next(bucketRows.Length)];
        var timesteps = Enumerable.Range(0, batch).Select(_ => rng.Next(schedule.NumTrainTimesteps)).ToArray();
        var index = tensor(picked.Select(p => (long)p).ToArray());
        var z = latents.Sample(picked, scaling, generator);                                              // [B, 4, h, w]
        var noise = randn(z.shape, generator: generator);
        var noisy = cat(Enumerable.Range(0, batch).Select(b =>
            AlphaMath.AddNoise(z[b].unsqueeze(0), noise[b].unsqueeze(0), schedule.AlphasCumprod[timesteps[b]])).ToList(), 0);
        var context = contexts?.index_select(0, index) ?? textEncoder.Encode(ids.index_select(0, index)); // [B, 77, D]
        var t = tensor(timesteps.Select(x => (float)x).ToArray());                                      // [B]
        // The base runs in its dtype; the loss is taken in float32.
        var prediction = unet.Forward(noisy.to(_o.BaseDType), t, context.to(_o.BaseDType)).to(ScalarType.Float32);
        var a = tensor(timesteps.Select(x => schedule.AlphasCumprod[x]).ToArray()).view(batch, 1, 1, 1);
        // v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho), the quantity a v_prediction model outputs.
        var target = predictionType == "epsilon" ? noise : a.sqrt() * noise - (1 - a).sqrt() * z;
        var perSample = (prediction - target).square().mean([1, 2, 3]);                                 // [B]
        var loss = (perSample * MinSnrWeights(a.view(batch), predictionType)).mean();
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>Min-SNR-γ: SNR = ᾱ/(1−ᾱ); weight min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v (the v loss is
    /// already (SNR + 1)× the x₀ loss); all ones without γ.</summary>
    Tensor MinSnrWeights(Tensor alphaCumprod, string predictionType)
    {
        if (_o.MinSnrGamma is not { } gamma) return ones_like(alphaCumprod);
        var snr = alphaCumprod / (1 - alphaCumprod);
        var clipped = snr.clamp(max: gamma);
        return predictionType == "epsilon" ? clipped / snr : clipped / (snr + 1);
    }

    void StepOptimizer(AdamW optimizer, LoraNetwork network, HashSet<Parameter> textEncoderParameters)
    {
        // kohya's --text_encoder_lr: one AdamW, a step size per parameter.
        if (_o.TextEncoderLearningRate is { } teLr && teLr != _o.LearningRate && textEncoderParameters.Count > 0)
            optimizer.Step(p => textEncoderParameters.Contains(p) ? teLr : _o.LearningRate);
        else
            optimizer.Step(_ => _o.LearningRate);
        optimizer.ZeroGrad();
    }

    // ---- Encoding once ---------------------------------------------------------------------------------------

    AspectRatioBuckets BucketsOf(KohyaImageFolder folder, int resolution)
    {
        int step = _o.BucketResoSteps;
        int min = _o.MinBucketReso ?? Math.Min(256, resolution / step * step), max = _o.MaxBucketReso ?? Math.Max(1024, resolution);
        return AspectRatioBuckets.Assign(folder.Sizes(), resolution, min, max, step);
    }

    static Tensor EncodeCaptions(ClipTextModel textEncoder, Tensor ids)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return textEncoder.Encode(ids).to(ScalarType.Float32).MoveToOuterDisposeScope();      // kept float32 whatever the base's dtype
    }

    // ---- Checkpoints and the loss curve ----------------------------------------------------------------------

    int Restore(LoraNetwork network, AdamW optimizer, string signature)
    {
        if (_o.Resume is null) return 0;
        using var file = SafetensorsFile.Open(_o.Resume);
        if (!file.Metadata.TryGetValue("train_lora_step", out var stepText) || !file.Metadata.TryGetValue("train_lora_signature", out var stored))
            throw new InvalidDataException($"--resume {_o.Resume} is not a train-lora checkpoint (no train_lora_step metadata).");
        if (stored != signature)
            throw new ArgumentException($"--resume {_o.Resume} was trained with other settings ({stored}); this run has {signature}. Resume with the same options.");
        int step = int.Parse(stepText, CultureInfo.InvariantCulture);
        if (step > _o.Steps)
            throw new ArgumentException($"--resume {_o.Resume} is at step {step}, past --steps {_o.Steps}; give --steps {step} or more.");
        network.Load(file);
        optimizer.Restore(file, "optimizer.", network.ParameterKeys, step);
        _previousSeconds = double.Parse(file.Metadata.GetValueOrDefault("train_lora_seconds", "0"), CultureInfo.InvariantCulture);
        return step;
    }

    void SaveCheckpoint(LoraNetwork network, AdamW optimizer, int step, string signature)
    {
        using var scope = NewDisposeScope();
        var tensors = network.KohyaTensors();
        foreach (var (k, v) in optimizer.State(network.ParameterKeys)) tensors["optimizer." + k] = v;
        // One file, renamed into place when whole: a crash leaves the previous checkpoint usable.
        SafetensorsWriter.Save(_o.CheckpointPath, tensors, new Dictionary<string, string>
        {
            ["train_lora_step"] = step.ToString(CultureInfo.InvariantCulture),
            ["train_lora_signature"] = signature,
            ["train_lora_seconds"] = Elapsed.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture),
        });
    }

    void LogLoss(int step, double loss)
    {
        if (_o.LossCsv is null) return;
        bool header = !File.Exists(_o.LossCsv);
        using var w = File.AppendText(_o.LossCsv);
        if (header) w.WriteLine("step,loss,lr,wall_seconds");
        w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{step},{loss:G6},{_o.LearningRate:G4},{Elapsed.TotalSeconds:F1}"));
    }

    /// <summary>An interrupted session logged steps its checkpoint does not hold; the resumed run repeats them. A fresh run starts a new file.</summary>
    void ForgetLossRowsAfter(int step)
    {
        if (_o.LossCsv is null || !File.Exists(_o.LossCsv)) return;
        var kept = File.ReadAllLines(_o.LossCsv).Where((line, i) => i == 0 || int.Parse(line.Split(',')[0], CultureInfo.InvariantCulture) <= step);
        TrainingCheckpoint.WriteAtomically(_o.LossCsv, string.Join("\n", kept) + "\n");
    }
}
