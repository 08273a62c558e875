using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Training;

/// <summary>Everything a training run is told. Steps are totals: a resumed run continues to them.
/// The defaults are the recipe of the shipped models/sharp-shapes, except that its run added the optional background
/// comma (<see cref="ShapeDataset.Options.BackgroundWithoutComma"/>) only at denoiser step 8000.</summary>
public sealed record TrainingOptions
{
    public required string WorkDir { get; init; }
    public required string OutputDir { get; init; }
    /// <summary>A CLIP tokenizer folder (vocab.json, merges.txt, ...), copied into the saved model.</summary>
    public required string TokenizerDir { get; init; }
    public ShapesModelSpec Spec { get; init; } = ShapesModelSpec.SharpShapes;
    public ShapeDataset.Options Dataset { get; init; } = new();
    public int Seed { get; init; } = 1;

    public int VaeSteps { get; init; } = 1600;
    public int VaeBatch { get; init; } = 16;
    public double VaeLearningRate { get; init; } = 1e-3;
    /// <summary>Weight of the KL term (mean per latent element) against the per-pixel reconstruction loss.</summary>
    public double KlWeight { get; init; } = 1e-4;

    /// <summary>Scenes encoded once after the VAE stage; the denoiser samples from them.</summary>
    public int DatasetSize { get; init; } = 20000;
    public int DenoiserSteps { get; init; } = 9000;
    public int DenoiserBatch { get; init; } = 32;
    public double DenoiserLearningRate { get; init; } = 4e-4;
    public int WarmupSteps { get; init; } = 100;
    public double WeightDecay { get; init; } = 0.01;
    public double EmaDecay { get; init; } = 0.999;
    /// <summary>Fraction of captions replaced by "" so the model also learns the unconditional prediction (CFG).</summary>
    public double CaptionDropout { get; init; } = 0.1;
    public double GradientClip { get; init; } = 1.0;

    public int CheckpointEvery { get; init; } = 200;
    /// <summary>Loss rows (stage, step, loss, lr, wall seconds) are appended here, one per step.</summary>
    public string? LossCsv { get; init; }
    /// <summary>Recommended sampling settings written to the model folder as generation_defaults.json.</summary>
    public GenerationDefaults Defaults { get; init; } = new();
}

/// <summary>A progress report: stage ("vae", "latents", "denoiser", "save"), step of total, loss (EMA-smoothed).</summary>
public sealed record TrainingProgress(string Stage, int Step, int TotalSteps, double Loss, TimeSpan Elapsed);

/// <summary>
/// Trains the shapes model in two stages on TorchSharp autograd, resumable at every checkpoint:
/// 1. AutoencoderKL: L1 reconstruction of z ~ q(z|x) decoded, plus a small KL(q(z|x) ‖ N(0, I)).
/// 2. UNet + CLIP text encoder together on DDPM's ε-prediction loss ‖ε − ε_θ(√ᾱ_t z + √(1−ᾱ_t) ε, t, c)‖², with
///    10% of captions dropped to "" (classifier-free guidance), AdamW with linear warm-up, and an EMA of weights.
/// The EMA weights are saved as a diffusers folder in fp16.
/// </summary>
public sealed class ShapesTrainer
{
    readonly TrainingOptions _o;
    readonly ShapeDataset _dataset;
    readonly Action<TrainingProgress>? _progress;
    readonly Stopwatch _clock = new();
    TrainingState _state = new();
    double _previousSeconds;

    public ShapesTrainer(TrainingOptions options, Action<TrainingProgress>? progress = null)
    {
        _o = options;
        _dataset = new ShapeDataset(options.Dataset);
        _progress = progress;
    }

    TimeSpan Elapsed => TimeSpan.FromSeconds(_previousSeconds + _clock.Elapsed.TotalSeconds);

    /// <summary>Runs (or resumes) both stages and saves the model folder. Returns the final state.</summary>
    public TrainingState Run(CancellationToken cancellation = default)
    {
        Directory.CreateDirectory(_o.WorkDir);
        _state = TrainingState.Load(_o.WorkDir) ?? new TrainingState { Spec = _o.Spec.ToJson() };
        if (_state.Spec != _o.Spec.ToJson())
            throw new InvalidOperationException($"The run in {_o.WorkDir} was started with another model spec; use a new --work folder.");
        _previousSeconds = _state.ElapsedSeconds;
        ForgetLossRowsAfterCheckpoint();
        _clock.Restart();

        var tokenizer = ClipTokenizer.FromDirectory(_o.TokenizerDir);
        manual_seed(_o.Seed); // the initial weights (a resumed run overwrites them from its checkpoint)
        using var vae = _o.Spec.CreateVae();
        TrainVae(vae, cancellation);
        var (means, stds, captions) = EncodeDataset(vae, cancellation);
        using (means)
        using (stds)
        {
            using var textEncoder = _o.Spec.CreateTextEncoder();
            using var unet = _o.Spec.CreateUNet();
            using var ids = tokenizer.EncodeBatch(captions);
            using var emptyIds = tokenizer.EncodeBatch([""]);
            var ema = TrainDenoiser(unet, textEncoder, means, stds, ids, emptyIds, cancellation);
            using (ema)
            {
                Report("save", 0, 0, double.NaN);
                CopyShadows(ema, "text_encoder", textEncoder);
                CopyShadows(ema, "unet", unet);
                ShapesModelFolder.Save(_o.OutputDir, _o.Spec, textEncoder, unet, vae, _state.ScalingFactor, _o.TokenizerDir, _o.Defaults);
            }
        }
        SaveState();
        return _state;
    }

    void SaveState()
    {
        _state.ElapsedSeconds = Elapsed.TotalSeconds;
        _state.Save(_o.WorkDir);
    }

    string PathIn(string name) => Path.Combine(_o.WorkDir, name);

    void Report(string stage, int step, int total, double loss) => _progress?.Invoke(new TrainingProgress(stage, step, total, loss, Elapsed));

    void LogLoss(string stage, int step, double loss, double lr)
    {
        if (_o.LossCsv is null) return;
        bool header = !File.Exists(_o.LossCsv);
        using var w = File.AppendText(_o.LossCsv);
        if (header) w.WriteLine("stage,step,loss,lr,wall_seconds");
        w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{stage},{step},{loss:G6},{lr:G4},{Elapsed.TotalSeconds:F1}"));
    }

    /// <summary>An interrupted session logged steps its last checkpoint does not hold; the resumed run repeats them.</summary>
    void ForgetLossRowsAfterCheckpoint()
    {
        if (_o.LossCsv is null || !File.Exists(_o.LossCsv)) return;
        var kept = File.ReadAllLines(_o.LossCsv).Where((line, i) =>
        {
            if (i == 0) return true;
            var f = line.Split(',');
            int step = int.Parse(f[1], CultureInfo.InvariantCulture);
            return f[0] == "vae" ? step <= _state.VaeStep : step <= _state.DenoiserStep;
        });
        TrainingCheckpoint.WriteAtomically(_o.LossCsv, string.Join("\n", kept) + "\n");
    }

    /// <summary>Scenes → [B, 3, H, W] in [-1, 1].</summary>
    public static Tensor ToImageTensor(IReadOnlyList<Scene> scenes, int size)
    {
        var bytes = new byte[scenes.Count * size * size * 3];
        Parallel.For(0, scenes.Count, i => ShapeRasterizer.Render(scenes[i], size).CopyTo(bytes, i * size * size * 3));
        using var raw = tensor(bytes, [scenes.Count, size, size, 3]);
        using var f = raw.to(ScalarType.Float32);
        return (f / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous();
    }

    static List<(string, Parameter)> Named(nn.Module module, string? prefix = null) =>
        module.named_parameters().Select(p => (prefix is null ? p.name : $"{prefix}.{p.name}", p.parameter)).ToList();

    // ---- Stage 1: the VAE -------------------------------------------------------------------------------------

    void TrainVae(AutoencoderKL vae, CancellationToken cancellation)
    {
        string weights = PathIn("vae.safetensors");
        if (_state.VaeStep > 0 && File.Exists(weights))
        {
            using var file = SafetensorsFile.Open(weights);
            TrainingCheckpoint.Restore(file, "model", Named(vae).Select(p => (p.Item1, (Tensor)p.Item2)));
        }
        // Once the dataset is encoded the VAE is frozen; otherwise a larger --vae-steps continues it.
        if (_state.LatentsDone || _state.VaeStep >= _o.VaeSteps) return;
        if (_state.VaeStep == 0) StartWithSmallPosteriorNoise(vae);

        vae.train();
        var parameters = vae.parameters().ToList();
        using var optimizer = optim.AdamW(parameters, _o.VaeLearningRate, weight_decay: 0.0);
        string optimizerPath = PathIn("vae.optimizer");
        if (_state.VaeStep > 0 && File.Exists(optimizerPath)) optimizer.load_state_dict(optimizerPath);

        double smooth = double.NaN;
        int size = _o.Spec.ImageSize;
        for (int step = _state.VaeStep; step < _o.VaeSteps; step++)
        {
            cancellation.ThrowIfCancellationRequested();
            double lr = LearningRate(_o.VaeLearningRate, step, _o.VaeSteps);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double lossValue;
            using (var scope = NewDisposeScope())
            {
                var scenes = _dataset.Samples(_o.Seed * 2 + 1, (long)step * _o.VaeBatch, _o.VaeBatch).ToList();
                var x = ToImageTensor(scenes, size); // [B, 3, 64, 64]
                using var generator = new Generator((ulong)ShapeDataset.Mix(_o.Seed, 1_000_000 + step));
                using var posterior = vae.Encode(x);
                var z = posterior.Sample(generator);
                var reconstruction = vae.Decode(z);
                var rec = F.l1_loss(reconstruction, x);
                // KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − ln σ²), mean per latent element.
                var kl = (posterior.Mean.square() + posterior.Var - 1.0 - posterior.LogVar).mean() * 0.5;
                var loss = rec + kl * _o.KlWeight;
                optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, _o.GradientClip);
                optimizer.step();
                lossValue = rec.item<float>();
            }
            smooth = double.IsNaN(smooth) ? lossValue : 0.95 * smooth + 0.05 * lossValue;
            LogLoss("vae", step + 1, lossValue, lr);
            Report("vae", step + 1, _o.VaeSteps, smooth);
            bool last = step + 1 == _o.VaeSteps;
            if ((step + 1) % _o.CheckpointEvery == 0 || last)
            {
                TrainingCheckpoint.Save(weights, TrainingCheckpoint.Prefixed("model", Named(vae).Select(p => (p.Item1, (Tensor)p.Item2))));
                optimizer.save_state_dict(optimizerPath);
                _state.VaeStep = step + 1;
                SaveState();
            }
        }
        vae.eval();
    }

    /// <summary>A fresh encoder predicts log σ² ≈ 0, so the decoder first sees latents buried in unit noise and learns
    /// only the mean image for hundreds of steps. Starting quant_conv's log-variance bias at −6 (σ ≈ 0.05) lets
    /// reconstruction start at once; the KL term still pulls σ toward 1.</summary>
    static void StartWithSmallPosteriorNoise(AutoencoderKL vae)
    {
        using var _ = no_grad();
        var bias = vae.named_parameters().First(p => p.name == "quant_conv.bias").parameter; // [2·latent]: mean, then log σ²
        bias[TensorIndex.Slice(vae.Config.LatentChannels)].fill_(-6.0);
    }

    /// <summary>The learning rate of a step: a linear warm-up to <paramref name="peak"/>, then <see cref="CosineTail"/>.</summary>
    double LearningRate(double peak, int step, int total) => peak * Math.Min(1.0, (step + 1.0) / _o.WarmupSteps) * CosineTail(step, total);

    // Learning rate falls to 10% along a half cosine over the last 30% of the steps.
    static double CosineTail(int step, int total)
    {
        double start = 0.7 * total;
        if (step < start) return 1.0;
        double p = (step - start) / Math.Max(1.0, total - start);
        return 0.1 + 0.9 * 0.5 * (1 + Math.Cos(Math.PI * p));
    }

    // ---- Between the stages: the dataset's latents, once ------------------------------------------------------

    (Tensor Means, Tensor Stds, List<string> Captions) EncodeDataset(AutoencoderKL vae, CancellationToken cancellation)
    {
        string path = PathIn("latents.safetensors"), captionsPath = PathIn("captions.txt");
        var scenes = _dataset.Samples(_o.Seed * 2, 0, _o.DatasetSize).ToList();
        var captions = scenes.Select(s => s.Caption).ToList();
        if (_state.LatentsDone && File.Exists(path))
        {
            using var file = SafetensorsFile.Open(path);
            File.WriteAllLines(captionsPath, captions); // as this run's captions are written (the scenes are the encoded ones)
            return (file.Load("mean"), file.Load("std"), captions);
        }
        vae.eval();
        var means = new List<Tensor>();
        var stds = new List<Tensor>();
        const int chunk = 64;
        using (inference_mode())
        {
            for (int start = 0; start < scenes.Count; start += chunk)
            {
                cancellation.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var x = ToImageTensor(scenes.GetRange(start, Math.Min(chunk, scenes.Count - start)), _o.Spec.ImageSize);
                using var posterior = vae.Encode(x);
                means.Add(posterior.Mean.clone().MoveToOuterDisposeScope());
                stds.Add(posterior.Std.clone().MoveToOuterDisposeScope());
                Report("latents", Math.Min(start + chunk, scenes.Count), scenes.Count, double.NaN);
            }
        }
        var mean = cat(means, 0);
        var std = cat(stds, 0);
        foreach (var t in means.Concat(stds)) t.Dispose();
        // As SD: scale latents to unit variance, 1 / std(z) with z ~ q(z|x).
        using (var z = mean + std * randn(mean.shape, generator: new Generator((ulong)_o.Seed)))
            _state.ScalingFactor = Math.Round(1.0 / z.std().item<float>(), 5);
        TrainingCheckpoint.Save(path, new Dictionary<string, Tensor> { ["mean"] = mean, ["std"] = std });
        File.WriteAllLines(captionsPath, captions);
        _state.LatentsDone = true;
        SaveState();
        return (mean, std, captions);
    }

    // ---- Stage 2: UNet + text encoder -------------------------------------------------------------------------

    ExponentialMovingAverage TrainDenoiser(UNet2DConditionModel unet, ClipTextModel textEncoder, Tensor means, Tensor stds,
        Tensor ids, Tensor emptyIds, CancellationToken cancellation)
    {
        var named = Named(textEncoder, "text_encoder").Concat(Named(unet, "unet")).ToList();
        var parameters = named.Select(p => p.Item2).ToList();
        string weights = PathIn("denoiser.safetensors"), optimizerPath = PathIn("denoiser.optimizer");
        bool resume = _state.DenoiserStep > 0 && File.Exists(weights);
        if (resume)
        {
            using var file = SafetensorsFile.Open(weights);
            TrainingCheckpoint.Restore(file, "model", named.Select(p => (p.Item1, (Tensor)p.Item2)));
        }
        var ema = new ExponentialMovingAverage(named, _o.EmaDecay);
        if (resume)
        {
            using var file = SafetensorsFile.Open(weights);
            var shadows = named.ToDictionary(p => p.Item1, p => file.Load("ema." + p.Item1));
            ema.Load(shadows);
            foreach (var t in shadows.Values) t.Dispose();
        }
        if (_state.DenoiserStep >= _o.DenoiserSteps) return ema; // a larger --steps continues a finished run

        unet.train();
        textEncoder.train();
        using var optimizer = optim.AdamW(parameters, _o.DenoiserLearningRate, weight_decay: _o.WeightDecay);
        if (resume && File.Exists(optimizerPath)) optimizer.load_state_dict(optimizerPath);

        var schedule = NoiseSchedule.FromConfig(Schedulers.SchedulerConfig.Parse(ShapesModelSpec.SchedulerConfig().ToJsonString()));
        using var alphasCumprod = tensor(schedule.AlphasCumprod);
        int n = (int)means.shape[0], batch = _o.DenoiserBatch, T = schedule.NumTrainTimesteps;
        float scaling = (float)_state.ScalingFactor;
        double smooth = double.NaN;

        for (int step = _state.DenoiserStep; step < _o.DenoiserSteps; step++)
        {
            cancellation.ThrowIfCancellationRequested();
            double lr = LearningRate(_o.DenoiserLearningRate, step, _o.DenoiserSteps);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double lossValue;
            using (var scope = NewDisposeScope())
            {
                // Every draw of a step comes from generators seeded by the step, so a resumed run repeats it exactly.
                var rng = new Random(ShapeDataset.Mix(_o.Seed, 2_000_000 + step));
                using var generator = new Generator((ulong)ShapeDataset.Mix(_o.Seed, 3_000_000 + step));
                var rows = Enumerable.Range(0, batch).Select(_ => (long)rng.Next(n)).ToArray();
                var dropped = Enumerable.Range(0, batch).Select(_ => rng.NextDouble() < _o.CaptionDropout).ToArray();
                var index = tensor(rows);
                var mean = means.index_select(0, index);
                var std = stds.index_select(0, index);
                var z = (mean + std * randn(mean.shape, generator: generator)) * scaling;       // [B, 4, h, w]
                var noise = randn(z.shape, generator: generator);
                var t = randint(0, T, [batch], generator: generator, dtype: ScalarType.Int64);  // [B]
                var a = alphasCumprod.index_select(0, t).view(batch, 1, 1, 1);
                var noisy = a.sqrt() * z + (1 - a).sqrt() * noise;
                var captionIds = ids.index_select(0, index).clone();                           // [B, 77]
                for (int b = 0; b < batch; b++)
                    if (dropped[b]) captionIds[b].copy_(emptyIds[0]);
                var context = textEncoder.call(captionIds);                                   // [B, 77, D]
                var prediction = unet.Forward(noisy, t.to(ScalarType.Float32), context);
                // ε-MSE per sample, weighted by 1/ᾱ_t (normalised over the batch). The unweighted loss gives the x₀ error at
                // high noise a weight ᾱ/(1−ᾱ) ≈ 0.005, so a short run never learns what to draw from the caption alone and
                // samples keep the initial noise's pattern; 1/ᾱ is the weighting v-prediction's loss implies.
                var perSample = (prediction - noise).square().mean([1, 2, 3]);               // [B]
                var weight = 1.0 / a.view(batch);
                var loss = (perSample * weight).sum() / weight.sum();
                optimizer.zero_grad();
                loss.backward();
                nn.utils.clip_grad_norm_(parameters, _o.GradientClip);
                optimizer.step();
                ema.Update(step);
                lossValue = loss.item<float>();
            }
            smooth = double.IsNaN(smooth) ? lossValue : 0.98 * smooth + 0.02 * lossValue;
            LogLoss("denoiser", step + 1, lossValue, lr);
            Report("denoiser", step + 1, _o.DenoiserSteps, smooth);
            bool last = step + 1 == _o.DenoiserSteps;
            if ((step + 1) % _o.CheckpointEvery == 0 || last)
            {
                var tensors = TrainingCheckpoint.Prefixed("model", named.Select(p => (p.Item1, (Tensor)p.Item2)));
                foreach (var (k, v) in ema.Shadows) tensors["ema." + k] = v;
                TrainingCheckpoint.Save(weights, tensors);
                optimizer.save_state_dict(optimizerPath);
                _state.DenoiserStep = step + 1;
                SaveState();
            }
        }
        unet.eval();
        textEncoder.eval();
        return ema;
    }

    static void CopyShadows(ExponentialMovingAverage ema, string prefix, nn.Module module)
    {
        using var _ = no_grad();
        var shadows = ema.Shadows;
        foreach (var (name, p) in module.named_parameters())
            p.copy_(shadows[$"{prefix}.{name}"]);
    }
}
