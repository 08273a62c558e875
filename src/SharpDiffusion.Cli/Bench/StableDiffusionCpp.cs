using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench --sdcpp PATH`: stable-diffusion.cpp's `sd-cli` timed in the same run, on the same weights and size as our
/// measurement, and the ratio printed (issues 23 item 5, 24 item 4). SD 1.5: our random folder rewritten as the LDM
/// single file sd.cpp reads (<see cref="LdmKeyMap"/>, float16: sd.cpp's fastest CPU weights), sampled with CFG 7 (sd.cpp
/// runs cond and uncond as two batch-1 passes per step, we run one batch-2 pass: the same work). Flux: the GGUF our Flux
/// bench wrote (BFL names, as city96's files), with a random CLIP-L, a 2-layer T5-XXL (conditioning only: the step never
/// sees it) and an ae.safetensors-layout VAE beside it. sd.cpp's per-step time is read from its progress bar
/// (<see cref="ParseLog"/>); its first step also builds and allocates its graph, so with 2+ steps the last one is used,
/// as our warm-up step is left out of ours.
/// </summary>
public static class StableDiffusionCpp
{
    /// <summary>sd.cpp's run: the seconds of each sampling step (from its progress bar), its "sampling completed" total, the
    /// process's wall time, and where its log was kept.</summary>
    public sealed record Result(IReadOnlyList<double> StepSeconds, double? SamplingSeconds, double WallSeconds, string LogPath)
    {
        /// <summary>The steady step: the last one when there are several (the first builds the graph), else the only one.</summary>
        public double Step => StepSeconds[^1];
        public bool Steady => StepSeconds.Count > 1;
    }

    // pretty_progress (src/core/util.cpp): "\r  |====>   | 2/3 - 12.34s/it", or "1.52it/s" for a step under a second.
    static readonly Regex Progress = new(@"\|\s*(\d+)/(\d+) - ([0-9]+(?:\.[0-9]+)?)(s/it|it/s)", RegexOptions.CultureInvariant);
    static readonly Regex Sampling = new(@"sampling completed, taking ([0-9]+(?:\.[0-9]+)?)s", RegexOptions.CultureInvariant);

    /// <summary>The per-step seconds of the first sampling in an sd.cpp log (its progress lines before "sampling completed";
    /// the last figure printed for each step) and the sampling total; an empty list when the log has none.</summary>
    public static (List<double> Steps, double? Sampling) ParseLog(string log)
    {
        var sampling = Sampling.Match(log);
        string progress = sampling.Success ? log[..sampling.Index] : log;
        var steps = new SortedDictionary<int, double>();
        foreach (Match m in Progress.Matches(progress))
        {
            double value = double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture);
            steps[int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)] = m.Groups[4].Value == "it/s" ? 1 / value : value;
        }
        return (steps.Values.ToList(), sampling.Success ? double.Parse(sampling.Groups[1].Value, CultureInfo.InvariantCulture) : null);
    }

    /// <summary>Runs sd-cli with <paramref name="args"/> (and the extra arguments given by --sdcpp-args), keeps its log at
    /// <paramref name="logPath"/> and returns its step times.</summary>
    public static Result Run(string binary, IEnumerable<string> args, string? extra, string logPath)
    {
        if (!File.Exists(binary))
            throw new UsageException($"--sdcpp {binary}: no such file; give stable-diffusion.cpp's sd-cli binary (build/bin/sd-cli).");
        var start = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args.Concat(extra?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [])) start.ArgumentList.Add(a);
        Console.WriteLine($"Running stable-diffusion.cpp: {binary} {string.Join(' ', start.ArgumentList)}");
        var log = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using (var process = Process.Start(start)!)
        {
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            process.WaitForExit();
            File.WriteAllText(logPath, log.ToString());
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"stable-diffusion.cpp exited with code {process.ExitCode}; its log is {logPath}.");
        }
        var (steps, sampling) = ParseLog(log.ToString());
        if (steps.Count == 0)
            throw new InvalidOperationException($"stable-diffusion.cpp printed no sampling progress ('N/M - X.XXs/it'); its log is {logPath}.");
        return new Result(steps, sampling, clock.Elapsed.TotalSeconds, logPath);
    }

    /// <summary>`bench --arch sd15 --sdcpp PATH`: the folder's weights as an LDM float16 checkpoint, sd.cpp sampling 2 steps at
    /// the same size with CFG, and its step beside each of our dtypes' UNet steps (CFG batch 2).</summary>
    public static void CompareSd15(string binary, string? extra, string model, int width, int height, int threads, IEnumerable<(string DType, double Step)> ours)
    {
        string checkpoint = File.Exists(model) ? model : Path.Combine(model, "sdcpp-sd15-f16.safetensors");
        if (!File.Exists(checkpoint))
        {
            Console.WriteLine($"Writing {checkpoint} (the folder's weights in the LDM layout, float16) for stable-diffusion.cpp ...");
            WriteSd15Checkpoint(model, checkpoint);
        }
        string output = Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-sdcpp-{Environment.ProcessId}.png");
        var result = Run(binary, ["-m", checkpoint, "-p", "a photograph of an astronaut riding a horse", "-W", Text(width), "-H", Text(height),
            "--steps", "2", "--cfg-scale", "7", "--sampling-method", "euler", "--seed", "42", "-t", Text(threads), "-o", output],
            extra, Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-sdcpp-{Environment.ProcessId}.log"));
        File.Delete(output);
        Print($"SD 1.5 UNet step, {width}x{height}, CFG (ours: one batch-2 pass; sd.cpp: cond + uncond passes)", result, ours);
    }

    /// <summary>`bench --arch flux-* --weights q8_0 --sdcpp PATH`: the GGUF our Flux bench timed, with random CLIP-L, T5 and VAE
    /// files in the layouts sd.cpp reads, sampled 2 Euler steps per size (CFG 1: one pass per step, as ours).</summary>
    public static void CompareFlux(string binary, string? extra, string gguf, string dir, IEnumerable<int> sizes, int threads,
        Func<int, IEnumerable<(string Weights, double Step)>> ours)
    {
        var (clip, t5, vae) = WriteFluxComponents(dir);
        foreach (int side in sizes)
        {
            string output = Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-sdcpp-{Environment.ProcessId}.png");
            var result = Run(binary, ["--diffusion-model", gguf, "--clip_l", clip, "--t5xxl", t5, "--vae", vae, "-p", "a photograph of an astronaut riding a horse",
                "-W", Text(side), "-H", Text(side), "--steps", "2", "--cfg-scale", "1", "--sampling-method", "euler", "--seed", "42", "-t", Text(threads), "-o", output],
                extra, Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-sdcpp-flux-{side}-{Environment.ProcessId}.log"));
            File.Delete(output);
            Print($"Flux transformer step, {Path.GetFileName(gguf)}, {side}x{side}, batch 1", result, ours(side));
        }
    }

    static void Print(string what, Result theirs, IEnumerable<(string Ours, double Step)> ours)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine($"stable-diffusion.cpp beside us: {what}");
        Console.WriteLine(string.Create(inv, $"  sd.cpp: steps {string.Join(", ", theirs.StepSeconds.Select(s => s.ToString("F2", inv)))} s " +
            $"({(theirs.Steady ? "the last one is its step; the first also builds its graph" : "one step: it includes building the graph")}), " +
            $"sampling {theirs.SamplingSeconds?.ToString("F2", inv) ?? "?"} s, whole run {theirs.WallSeconds:F0} s; log {theirs.LogPath}"));
        foreach (var (name, step) in ours)
            Console.WriteLine(string.Create(inv, $"  ours {name}: {step:F2} s per step: x{theirs.Step / step:F2} {(theirs.Step >= step ? "faster" : "slower")} than sd.cpp's {theirs.Step:F2} s"));
    }

    /// <summary>A diffusers SD 1.x folder's text encoder, UNet and VAE as one LDM-layout float16 safetensors file: the names and
    /// shapes an original SD 1.5 checkpoint has (the VAE's attention projections as 1×1 convs, [C, C, 1, 1]).</summary>
    public static void WriteSd15Checkpoint(string folder, string path)
    {
        var unet = UNet2DConditionConfig.From(JsonConfig.Load(Path.Combine(folder, "unet", "config.json")));
        var vae = AutoencoderKLConfig.From(JsonConfig.Load(Path.Combine(folder, "vae", "config.json")));
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            Add(Path.Combine("text_encoder", "model.safetensors"), names => LdmKeyMap.Clip(names));
            Add(Path.Combine("unet", "diffusion_pytorch_model.safetensors"), names => LdmKeyMap.UNet(names, unet));
            Add(Path.Combine("vae", "diffusion_pytorch_model.safetensors"), names => LdmKeyMap.Vae(names, vae.BlockOutChannels.Length, vae.LayersPerBlock));
            SafetensorsWriter.Save(path, tensors);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }

        void Add(string file, Func<IEnumerable<string>, Dictionary<string, string>> map)
        {
            using var source = TensorFiles.Open(Path.Combine(folder, file));
            foreach (var (name, ldm) in map(source.Headers.Select(h => h.Name)))
            {
                using var stored = source.Load(name);
                var half = stored.to(ScalarType.Float16);
                if (IsVaeAttentionWeight(ldm) && half.dim() == 2)
                    using (var linear = half) half = linear.reshape([.. linear.shape, 1, 1]);
                tensors[ldm] = half;
            }
        }
    }

    /// <summary>Random CLIP-L, T5-XXL (2 of its 24 layers: sd.cpp counts the layers in the file; Flux's step only sees the
    /// 4096-wide output) and FLUX.1 VAE files in dir, float16, unless already there.</summary>
    static (string Clip, string T5, string Vae) WriteFluxComponents(string dir)
    {
        string clip = Path.Combine(dir, "sdcpp-clip_l.safetensors"), t5 = Path.Combine(dir, "sdcpp-t5xxl-2layers.safetensors"), vae = Path.Combine(dir, "sdcpp-ae.safetensors");
        var sd3 = Sd3Architecture.Published["sd3-medium"]; // its T5-XXL config, and a VAE of FLUX.1's shape (16 channels, no quant convs)
        if (!File.Exists(clip))
            RandomSafetensors.Write(clip, () => new ClipTextModel(ClipTextConfig.From(JsonConfig.Parse(StableDiffusion15.TextEncoderConfig))), ScalarType.Float16);
        if (!File.Exists(t5))
        {
            var config = JsonNode.Parse(sd3.TextEncoder3Config)!.AsObject();
            config["num_layers"] = 2;
            RandomSafetensors.Write(t5, () => new T5EncoderModel(T5Config.From(JsonConfig.Parse(config.ToJsonString()))), ScalarType.Float16);
        }
        if (!File.Exists(vae))
        {
            var config = AutoencoderKLConfig.From(JsonConfig.Parse(sd3.VaeConfig));
            List<(string Name, long[] Shape)> shapes;
            using (Layers.Placement(new Device("meta")))
            using (var module = new AutoencoderKL(config))
                shapes = module.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
            // ae.safetensors: the LDM VAE names without first_stage_model.
            var names = LdmKeyMap.Vae(shapes.Select(s => s.Name), config.BlockOutChannels.Length, config.LayersPerBlock);
            RandomSafetensors.Write(vae, shapes.Select(s => (names[s.Name][LdmKeyMap.VaePrefix.Length..], s.Shape)).OrderBy(s => s.Item1, StringComparer.Ordinal).ToList(),
                ScalarType.Float16);
        }
        return (clip, t5, vae);
    }

    static bool IsVaeAttentionWeight(string ldm) => ldm.StartsWith(LdmKeyMap.VaePrefix, StringComparison.Ordinal) && ldm.Contains(".attn_1.", StringComparison.Ordinal)
        && ldm.EndsWith(".weight", StringComparison.Ordinal) && !ldm.Contains(".norm.", StringComparison.Ordinal);

    static string Text(int n) => n.ToString(CultureInfo.InvariantCulture);
}
