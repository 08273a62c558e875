using SharpDiffusion.Conditioning;
using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench`: a full-size SD 1.5, SDXL or SD3/SD3.5 (random weights, or a real folder) timed part by part at a chosen size and
/// dtype, with FLOPs, achieved GFLOP/s by op class, peak RSS, load time, and a roofline measured in the same run. Each
/// dtype and each whole generation is measured in a child process (<see cref="BenchChild"/>); the UNet families'
/// measurements are <see cref="UNetBench"/>, SD3's <see cref="TransformerBench"/>, whole generations <see cref="GenerationBench"/>.
/// </summary>
public static class BenchCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "a diffusers SD folder or a single-file checkpoint to time (default: a full-size --arch architecture, random weights)", "DIR|FILE"),
        new("keep-model", OptionKind.Text, "without --model: write the random-weight folder here and keep it; a folder written before is reused (default: a temporary folder, deleted; SD3: kept in the temp folder and reused)", "DIR"),
        new("arch", OptionKind.Text, "without --model: sd15 (SD 1.5), sdxl (SDXL 1.0 base), sd3-medium, sd3.5-medium, sd3.5-large, flux-dev or flux-schnell, random weights (default: sd15)", "NAME"),
        new("t5-weights", OptionKind.Text, "SD3: the random folder's T5 as bf16 or fp8 (ComfyUI's t5xxl_fp8_e4m3fn layout, kept compact in memory) (default: bf16)", "FORMAT"),
        new("weights", OptionKind.Text, "Flux: the weight formats to write and time, comma-separated: bf16, fp8, q8_0, q4_k; each compact one also decoded to bfloat16 at load (default: q8_0)", "LIST"),
        new("depth-scale", OptionKind.Number, "Flux: keep this fraction of the 19+38 blocks (e.g. 0.25) and extrapolate the full-size step, weights and peak (default: 1)", "S"),
        new("width", OptionKind.Integer, "image width (default: 512; sdxl 1024; SD3: the generation's, 1024)", "N"),
        new("height", OptionKind.Integer, "image height (default: as the width)", "N"),
        new("sizes", OptionKind.Text, "SD3: square image sides the transformer step is timed at, comma-separated (default: 512,1024)", "LIST"),
        new("dtype", OptionKind.Text, "float32, bfloat16, float16 or auto (bfloat16 where the CPU computes it natively, else float32), comma-separated (default: float32,bfloat16); each dtype is measured in a fresh child process, so its peak RSS is its own", "LIST"),
        new("steps", OptionKind.Integer, "timed UNet or transformer steps; the median is reported (default: 3; flux-*: 2, and 0 times the first pass without a warm-up)", "N"),
        new("total-steps", OptionKind.Integer, "steps in the reported total (default: 20)", "N"),
        .. FastPathOptions.Options,
        new("deep-cache", OptionKind.Integer, "also time DeepCache's shallow UNet step (a full pass every N steps) and the UNet time of --total-steps with it (default: off)", "N"),
        new("ab-steps", OptionKind.Integer, "UNet steps per candidate in the in-process A/B of each fast-path choice (layout, attention) and of the per-step heap trim, interleaved; 0 skips it (default: 2)", "N"),
        new("threads", OptionKind.Integer, "libtorch threads (default: all cores)", "N"),
        new("controlnet", OptionKind.Flag, "instead: time a full-size SD 1.5 UNet step with and without a ControlNet (control_v11p_sd15_canny's config, random weights, float32) in this process, --steps each, at --width x --height"),
        new("skip-vae", OptionKind.Flag, "do not time the VAE decode"),
        new("skip-roofline", OptionKind.Flag, "do not measure the kernel roofline"),
        new("skip-steps", OptionKind.Flag, "SD3: do not time the transformer steps (only the whole generations and their peak RSS)"),
        new("generation-steps", OptionKind.Integer, "steps of the whole generations whose peak RSS is measured, one with the weights resident (as `serve`) and one with LowMemory (as `generate`; SD3: LowMemory only); 0 skips them (default: 2)", "N"),
        new("generation-dtype", OptionKind.Text, "dtypes of the whole generations, comma-separated (default: as --dtype; SD3: bfloat16)", "LIST"),
        new("t5-tokenizer", OptionKind.Text, "SD3: a T5 tokenizer folder (spiece.model) for the random-weight folder's tokenizer_3 (default: the golden tiny-sd3 one, if found)", "DIR"),
        new("report", OptionKind.Text, "internal: a child measures one dtype and writes its row here", "FILE", Hidden: true),
        new("generation", OptionKind.Text, "internal: the child measures one whole generation: resident or low-memory", "MODE", Hidden: true),
        new("fewstep", OptionKind.Flag, "time whole images instead, in one process (issue 25): --total-steps Euler steps with CFG decoded by the full VAE; --fewstep-steps LCM steps without CFG, alone and with DeepCache (a full UNet pass every --deep-cache steps, default 2), and one SD-Turbo step (Euler a, trailing, guidance 0), each decoded by a TAESD (random full-size taesd); with UNet calls, FLOPs and the matmul roofline's bound"),
        new("fewstep-steps", OptionKind.Integer, "with --fewstep: LCM steps (default: 4)", "N"),
        new("fewstep-reference-steps", OptionKind.Integer, "with --fewstep: time only N of the Euler reference's --total-steps and extrapolate its denoising to all of them, marked in the table (SDXL at 1024x1024: 40 UNet passes of ~6 TFLOP) (default: all)", "N"),
        new("sdcpp", OptionKind.Text, "also time stable-diffusion.cpp's sd-cli on the same weights and size in this run and print the ratio (sd15: an LDM float16 file of the folder; flux-*: the GGUF, --weights q8_0 or q4_k)", "PATH"),
        new("sdcpp-args", OptionKind.Text, "extra arguments for sd-cli, space-separated (e.g. \"--diffusion-fa\")", "ARGS"),
    ];

    public static int Run(CommandLine cl)
    {
        string? report = cl.String("report"); // internal: a child measures one dtype and writes its row here
        string? model = cl.String("model");
        string arch = (cl.String("arch") ?? "sd15").ToLowerInvariant();
        if (arch.StartsWith("flux-", StringComparison.Ordinal) && model is null)
            return FluxBench.Run(cl, arch);
        var sd3 = Sd3Architecture.Published.GetValueOrDefault(arch);
        if (arch is not ("sd15" or "sdxl") && sd3 is null)
            throw new UsageException($"--arch takes sd15, sdxl, {string.Join(", ", Sd3Architecture.Published.Keys)}, flux-dev, flux-schnell; got '{arch}'.");
        int width = cl.Int("width") ?? (arch == "sd15" ? 512 : 1024), height = cl.Int("height") ?? width;
        var dtypes = DTypes(cl.String("dtype") ?? "float32,bfloat16");
        int steps = cl.Int("steps") ?? 3, totalSteps = cl.Int("total-steps") ?? 20;
        bool? channelsLast = FastPathOptions.ChannelsLast(cl.String("channels-last"));
        AttentionKernel? attention = FastPathOptions.Attention(cl.String("attention"));
        LinearKernel? linear = FastPathOptions.Linear(cl.String("linear"));
        int abSteps = cl.Int("ab-steps") ?? 2;
        int threads = cl.Int("threads") ?? Environment.ProcessorCount;
        bool skipVae = cl.Flag("skip-vae"), skipRoofline = cl.Flag("skip-roofline");
        var sizes = (cl.String("sizes") ?? "512,1024").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(v => int.TryParse(v, CultureInfo.InvariantCulture, out int n) && n > 0 && n % 16 == 0 ? n
                : throw new UsageException($"--sizes takes positive multiples of 16 (the VAE factor × the patch), comma-separated; got '{v}'.")).ToList();
        if (width % 8 != 0 || height % 8 != 0) throw new UsageException("--width and --height must be multiples of 8.");
        if (steps < 1) throw new UsageException("--steps must be at least 1.");
        if (abSteps < 0) throw new UsageException("--ab-steps must be 0 or more.");
        threads = Threads.Check(threads);
        TorchRuntime.Initialize(threads);
        if (cl.Flag("controlnet")) return ControlNetBench.Run(width, height, steps);

        if (report is not null)
        {
            var load = new LoadOptions { DType = dtypes.Single(), ChannelsLast = channelsLast, Attention = attention, Linear = linear };
            string dir = model ?? throw new UsageException("--report needs --model");
            object row = cl.String("generation") is { } mode
                ? GenerationBench.Measure(dir, load with { LowMemory = mode == "low-memory" }, mode, width, height, cl.Int("generation-steps") ?? 2)
                : Directory.Exists(Path.Combine(dir, "transformer")) ? TransformerBench.Measure(dir, load, sizes, steps)
                : UNetBench.Measure(dir, load, width, height, steps, totalSteps, abSteps, skipVae, cl.Int("deep-cache") ?? 1);
            File.WriteAllText(report, System.Text.Json.JsonSerializer.Serialize(row, row.GetType()));
            return 0;
        }

        Console.WriteLine($"SharpDiffusion bench: {MachineKey.CpuName()}, {Environment.ProcessorCount} cores, libtorch threads {get_num_threads()}, " +
                          $"{width}x{height}, CFG batch 2, channels-last {cl.String("channels-last") ?? "auto"}, attention {cl.String("attention") ?? "auto"}, linear {cl.String("linear") ?? "auto"}");
        Console.WriteLine($"Fast-path cache: {(FastPaths.Default.Enabled ? new FastPathCache(FastPathCache.DefaultFolder()).Path : $"off (${FastPaths.TuningVariable})")}");

        string? temp = null;
        try
        {
            if (cl.Flag("fewstep") && sd3 is not null)
                throw new UsageException("--fewstep times SD 1.5 and SDXL (LCM + TAESD); use --arch sd15 or sdxl.");
            var fewstepSettings = cl.Flag("fewstep") ? FewStepSettings.From(width, height, cl.Int("fewstep-steps"), totalSteps, cl.Int("fewstep-reference-steps"), cl.Int("deep-cache")) : null;
            if (model is null && sd3 is not null)
            {
                model = Sd3Folder(cl.String("keep-model") ?? Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-{arch}"), sd3, cl.String("t5-tokenizer"));
                RandomModelFolder.WriteT5(model, RandomCompactFile.Parse(cl.String("t5-weights") ?? "bf16"), Console.WriteLine);
            }
            else if (model is null && cl.String("keep-model") is { } keep && File.Exists(Path.Combine(keep, "model_index.json")))
            {
                Console.WriteLine($"Reusing the random-weight folder {keep}");
                model = keep;
            }
            else if (model is null)
            {
                string? kept = cl.String("keep-model");
                temp = kept ?? Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-{Environment.ProcessId}");
                var clock = Stopwatch.StartNew();
                // SDXL's 3.5 B parameters are written as bfloat16 (7 GB, not 14); the float32 run upcasts them at load.
                var disk = arch == "sdxl" ? ScalarType.BFloat16 : ScalarType.Float32;
                Console.WriteLine($"Writing a random-weight {(arch == "sdxl" ? "SDXL 1.0" : "SD 1.5")} folder ({BenchChild.Name(disk)} safetensors) ...");
                RandomModelFolder.Write(temp, disk, xl: arch == "sdxl", tokenizer: DefaultModel.Locate("tokenizer/vocab.json") is { } shipped
                    ? Path.Combine(shipped, "tokenizer") : null);
                NativeHeap.Trim(); // the freed random models (10 GB for SDXL) go back to the system before the children load theirs
                Console.WriteLine($"  written in {clock.Elapsed.TotalSeconds:F1}s to {temp}");
                model = temp;
                if (kept is not null) temp = null; // kept: not deleted at the end
            }

            if (cl.Flag("fewstep"))
            {
                FewStepBench.Run(model, temp ?? cl.String("keep-model"), new LoadOptions { DType = dtypes[0], ChannelsLast = channelsLast, Attention = attention, Linear = linear }, fewstepSettings!, skipRoofline);
                return 0;
            }
            bool transformer = Directory.Exists(Path.Combine(model, "transformer"));
            var roofline = new Dictionary<string, Roofline.Rates>();
            if (!skipRoofline)
                foreach (var dtype in dtypes)
                {
                    Console.WriteLine($"Roofline ({BenchChild.Name(dtype)}):");
                    var results = Roofline.Measure(dtype, convs: !transformer);
                    foreach (var r in results)
                        Console.WriteLine($"  {r.Kernel,-34} {r.Path,-26} {r.GFlops,8:F1} GFLOP/s");
                    roofline[BenchChild.Name(dtype)] = Roofline.Rates.From(results);
                }

            int generationSteps = cl.Int("generation-steps") ?? 2;
            var generationDTypes = DTypes(cl.String("generation-dtype") ?? (transformer ? "bfloat16" : string.Join(',', dtypes.Select(BenchChild.Name))));
            bool canGenerate = File.Exists(model) || Directory.Exists(Path.Combine(model, "tokenizer")) && (!transformer || Directory.Exists(Path.Combine(model, "tokenizer_3")));
            if (!canGenerate && generationSteps > 0)
                Console.WriteLine($"No whole generations: {model} has no tokenizer/{(transformer ? " or tokenizer_3/" : "")} (none was found to copy).");
            string[] modes = transformer ? ["low-memory"] : ["resident", "low-memory"]; // SD3 resident: 16 GB of weights at once
            if (transformer)
            {
                long parameters = TransformerBench.ParameterCount(model);
                List<TransformerBench.Row> rows = cl.Flag("skip-steps") ? [] : dtypes.Where(d => Fits(parameters * ElementSize(d), $"the {BenchChild.Name(d)} transformer", cl, d))
                    .Select(d => BenchChild.Measure<TransformerBench.Row>(model, d, cl, width, height, null)).ToList();
                var generations = generationSteps <= 0 || !canGenerate ? [] : generationDTypes
                    .Where(d => Fits(Sd3Peak(model, d), $"a {BenchChild.Name(d)} generation (its largest component, T5, and activations)", cl, d))
                    .Select(d => BenchChild.Measure<GenerationBench.GenerationRow>(model, d, cl, width, height, "low-memory")).ToList();
                if (rows.Count > 0) TransformerBench.Print(rows, roofline);
                GenerationBench.Print(generations, width, height, generationSteps);
            }
            else
            {
                var rows = dtypes.Select(d => BenchChild.Measure<UNetBench.Row>(model, d, cl, width, height, null)).ToList();
                var generations = generationSteps <= 0 || !canGenerate ? [] : generationDTypes
                    .SelectMany(d => modes.Select(mode => BenchChild.Measure<GenerationBench.GenerationRow>(model, d, cl, width, height, mode)))
                    .ToList();
                BenchReport.PrintUNet(rows, totalSteps, roofline);
                if (cl.String("sdcpp") is { } sdcpp)
                    StableDiffusionCpp.CompareSd15(sdcpp, cl.String("sdcpp-args"), model, width, height, threads, rows.Select(r => (r.DType, r.StepSeconds)));
                GenerationBench.Print(generations, width, height, generationSteps);
            }
        }
        finally
        {
            if (temp is not null && Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return 0;
    }

    static List<ScalarType> DTypes(string list) => list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
        .Select(name => name.Equals("auto", StringComparison.OrdinalIgnoreCase) ? FastPathOptions.DType(name) : BenchChild.ParseDType(name)).Distinct().ToList();

    static int ElementSize(ScalarType t) => t == ScalarType.Float32 ? 4 : 2;

    /// <summary>The random-weight SD3 folder at <paramref name="dir"/>: reused when a complete one of the same architecture is
    /// there, else written (bfloat16 on disk; the float32 runs upcast at load).</summary>
    static string Sd3Folder(string dir, Sd3Architecture arch, string? t5Tokenizer)
    {
        if (RandomModelFolder.WrittenArchitecture(dir) is { } written)
        {
            if (written != arch.Name)
                throw new UsageException($"--keep-model {dir} holds a random {written} folder, not {arch.Name}; give another folder.");
            Console.WriteLine($"Reusing the random-weight {arch.Name} folder {dir}");
            return dir;
        }
        t5Tokenizer ??= GoldenT5Tokenizer();
        string? clip = DefaultModel.Locate("tokenizer/vocab.json") is { } shipped ? Path.Combine(shipped, "tokenizer") : null;
        Console.WriteLine($"Writing a random-weight {arch.Name} folder (bfloat16 safetensors) to {dir} ...");
        Console.WriteLine(t5Tokenizer is null
            ? "  No T5 tokenizer found (give --t5-tokenizer DIR): the transformer is timed, whole generations are not."
            : $"  tokenizer_3 copied from {t5Tokenizer} (a small test vocabulary: the ids differ from T5-XXL's, the 256-token cost does not)");
        var clock = Stopwatch.StartNew();
        RandomModelFolder.WriteSd3(dir, arch, ScalarType.BFloat16, clip, t5Tokenizer, Console.WriteLine);
        Console.WriteLine($"  written in {clock.Elapsed.TotalSeconds:F0}s");
        return dir;
    }

    /// <summary>The golden data's tiny-sd3 tokenizer_3 beside the repository (../shared/golden), if this is a checkout.</summary>
    static string? GoldenT5Tokenizer()
    {
        var roots = new[] { Environment.GetEnvironmentVariable("SHARPDIFFUSION_GOLDEN") }
            .Concat(Ancestors(AppContext.BaseDirectory).Concat(Ancestors(Directory.GetCurrentDirectory()))
                .Where(d => File.Exists(Path.Combine(d, "SharpDiffusion.slnx"))).Select(d => Path.Combine(d, "..", "shared", "golden")));
        return roots.OfType<string>().Select(r => Path.GetFullPath(Path.Combine(r, "v3", "models", "tiny-sd3", "tokenizer_3")))
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "spiece.model")));

        static IEnumerable<string> Ancestors(string dir)
        {
            for (var d = new DirectoryInfo(dir); d is not null; d = d.Parent) yield return d.FullName;
        }
    }

    /// <summary>A LowMemory SD3 generation's peak: its largest component's weights (T5-XXL) with a GB of activations.</summary>
    static long Sd3Peak(string model, ScalarType dtype)
    {
        long largest = new[] { "text_encoder_3", "transformer" }.Select(c => Directory.GetFiles(Path.Combine(model, c), "*.safetensors").Sum(f => new FileInfo(f).Length)).Max();
        return largest / 2 * ElementSize(dtype) + (1L << 30); // stored as bfloat16
    }

    /// <summary>Whether <paramref name="bytes"/> fit in the memory available now; if not, says so with the command to run later.</summary>
    static bool Fits(long bytes, string what, CommandLine cl, ScalarType dtype)
    {
        long? available = Pipelines.MemoryEstimate.AvailableBytes();
        if (available is null || bytes + (1L << 30) <= available) return true;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Not measured: {what} needs about {bytes / 1e9:F1} GB and {available.Value / 1e9:F1} GB is available; with more memory free run " +
            $"`sharpdiffusion bench --arch {cl.String("arch")} --dtype {BenchChild.Name(dtype)}{(cl.String("sizes") is { } s ? " --sizes " + s : "")}`."));
        return false;
    }
}
