using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;
using Module = TorchSharp.torch.nn.Module;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench --fewstep` (issue 25 item 5): the seconds of a whole image, prompt to pixels with the weights resident, for each
/// <see cref="FewStepRecipe"/>: the usual one (Euler with CFG, batch 2, decoded by the full VAE) beside what a user can do on
/// a CPU: N LCM steps without a CFG batch (an LCM-LoRA merged into the UNet, or an LCM-distilled UNet, costs the same per
/// step), the same with DeepCache, and one SD-Turbo step, decoded by a full-size TAESD. All in one process on the same
/// weights (random: the time does not depend on them), each a real image through the pipeline, with its UNet calls and
/// FLOPs as hooks saw them and the bound the run's matmul roofline puts on it.
/// </summary>
public static class FewStepBench
{
    /// <summary>taesd's architecture (diffusers AutoencoderTiny defaults: 64 channels, 1/3/3/3 encoder and 3/3/3/1 decoder
    /// blocks, 4 latent channels) as a diffusers folder with random weights.</summary>
    public static string WriteRandomTaesd(string root)
    {
        string dir = Path.Combine(root, "taesd");
        Directory.CreateDirectory(dir);
        var config = new JsonObject
        {
            ["_class_name"] = "AutoencoderTiny", ["act_fn"] = "relu", ["in_channels"] = 3, ["out_channels"] = 3, ["latent_channels"] = 4,
            ["encoder_block_out_channels"] = new JsonArray(64, 64, 64, 64), ["decoder_block_out_channels"] = new JsonArray(64, 64, 64, 64),
            ["num_encoder_blocks"] = new JsonArray(1, 3, 3, 3), ["num_decoder_blocks"] = new JsonArray(3, 3, 3, 1),
            ["latent_magnitude"] = 3.0, ["latent_shift"] = 0.5, ["upsampling_scaling_factor"] = 2, ["upsample_fn"] = "nearest",
            ["scaling_factor"] = 1.0, ["shift_factor"] = 0.0, ["force_upcast"] = false,
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        manual_seed(0);
        using var taesd = new AutoencoderTiny(AutoencoderTinyConfig.From(config, dir));
        SafetensorsWriter.SaveModule(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), taesd, ScalarType.Float32);
        return dir;
    }

    /// <summary>`bench --fewstep`: this run's matmul roofline (unless <paramref name="skipRoofline"/>), every recipe of
    /// <see cref="FewStepRecipe.Standard"/> timed on <paramref name="model"/>, the table. The random TAESD is written in
    /// <paramref name="taesdRoot"/> (kept), or in a temporary folder deleted at the end.</summary>
    public static List<FewStepRow> Run(string model, string? taesdRoot, LoadOptions options, FewStepSettings settings, bool skipRoofline)
    {
        var temporary = taesdRoot is null ? Directory.CreateTempSubdirectory("sharpdiffusion-bench-taesd-") : null;
        try
        {
            var rates = skipRoofline ? null : MeasureRoofline(options.DType);
            var rows = Measure(model, WriteRandomTaesd(taesdRoot ?? temporary!.FullName), options, settings);
            Console.WriteLine();
            foreach (var line in FewStepRow.Table(rows, rates, settings.Width, settings.Height, BenchChild.Name(options.DType))) Console.WriteLine(line);
            return rows;
        }
        finally
        {
            temporary?.Delete(recursive: true);
        }
    }

    static Roofline.Rates MeasureRoofline(ScalarType dtype)
    {
        Console.WriteLine($"Roofline ({BenchChild.Name(dtype)}, matmul):");
        var results = Roofline.Measure(dtype, convs: false);
        foreach (var r in results) Console.WriteLine($"  {r.Kernel,-34} {r.Path,-26} {r.GFlops,8:F1} GFLOP/s");
        return Roofline.Rates.From(results);
    }

    /// <summary>Times each recipe on <paramref name="model"/> (resident, <paramref name="options"/>' dtype) in this order, one
    /// pipeline for all; the TAESD recipes decode with the TAESD at <paramref name="taesd"/>. A recipe timed on fewer steps
    /// than it has is extrapolated (<see cref="FewStepRow.ExtrapolatedTo"/>).</summary>
    public static List<FewStepRow> Measure(string model, string taesd, LoadOptions options, FewStepSettings settings)
    {
        using var pipeline = StableDiffusionPipeline.Load(model, options with { LowMemory = false });
        if (pipeline.Denoiser.Weights.Module is not UNet2DConditionModel unet)
            throw new UsageException($"--fewstep times UNet models (SD 1.x/2.x, SDXL); {model} has a {pipeline.Denoiser.Weights.Module.GetType().Name}.");
        // A first short run warms the kernels (and the fast-path choices) so no recipe pays for it.
        Console.WriteLine("Warm-up (1 step) ...");
        Time(pipeline, unet, new FewStepRecipe("warm-up", "euler", 1, 1.0, Taesd: false), settings);
        var rows = new List<FewStepRow>();
        bool onTaesd = false;
        foreach (var recipe in FewStepRecipe.Standard(settings))
        {
            if (recipe.Taesd != onTaesd)
            {
                if (recipe.Taesd)
                {
                    pipeline.VaeCodec.UseVae(taesd, options);
                    WarmDecoder(pipeline, settings);
                }
                else pipeline.VaeCodec.UseOwnVae();
                onTaesd = recipe.Taesd;
            }
            Console.WriteLine(recipe.TimedSteps < recipe.Steps
                ? $"{recipe.Name}: {recipe.TimedSteps} of {recipe.Steps} steps (extrapolated) at {settings.Width}x{settings.Height} ..."
                : $"{recipe.Name}: {recipe.Steps} step{(recipe.Steps == 1 ? "" : "s")} at {settings.Width}x{settings.Height} ...");
            var row = Time(pipeline, unet, recipe, settings).ExtrapolatedTo(recipe.Steps);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  whole image {row.TotalSeconds:F1}s{(row.Extrapolated ? " (extrapolated)" : "")}: text {row.TextSeconds:F1}s, denoise {row.DenoiseSeconds:F1}s " +
                $"({row.FullCalls}/{row.ShallowCalls} UNet calls), decode {row.DecodeSeconds:F1}s"));
            rows.Add(row);
        }
        return rows;
    }

    /// <summary>One image of <paramref name="recipe"/> on its <see cref="FewStepRecipe.TimedSteps"/>: the loop's start is the
    /// UNet's first call, its end the pipeline's Decoding report; the FLOPs and calls are what the hooks saw meanwhile.</summary>
    static FewStepRow Time(StableDiffusionPipeline pipeline, UNet2DConditionModel unet, FewStepRecipe recipe, FewStepSettings settings)
    {
        var options = new GenerationOptions
        {
            Prompts = ["a photograph of an astronaut riding a horse"], Width = settings.Width, Height = settings.Height,
            NumInferenceSteps = recipe.TimedSteps, GuidanceScale = recipe.Guidance, Seed = 1, Scheduler = recipe.Scheduler,
            SchedulerOptions = recipe.SchedulerOptions, DeepCacheInterval = recipe.DeepCacheInterval,
        };
        using var calls = new UNetCallCounter(unet);
        using var unetFlops = new FlopCounter(unet);
        using var otherFlops = new FlopCounter([.. pipeline.Conditioner.Encoders.Select(e => e.Module), (Module)pipeline.VaeCodec.Autoencoder]);
        long start = Stopwatch.GetTimestamp(), loopEnd = 0;
        var progress = new SynchronousProgress<GenerationProgress>(p =>
        {
            if (p.Stage == GenerationStage.Decoding) loopEnd = Stopwatch.GetTimestamp();
        });
        using (pipeline.Generate(options, progress)) { }
        long end = Stopwatch.GetTimestamp();
        double Seconds(long from, long to) => (to - from) / (double)Stopwatch.Frequency;
        return new FewStepRow(recipe.Name, recipe.TimedSteps, recipe.TimedSteps, pipeline.Denoiser.Guidance(options).Enabled,
            recipe.Taesd ? "TAESD" : "VAE", calls.FullCalls, calls.ShallowCalls,
            Seconds(start, calls.FirstCallTimestamp), Seconds(calls.FirstCallTimestamp, loopEnd), Seconds(loopEnd, end), unetFlops.Total, otherFlops.Total);
    }

    /// <summary>One decode with the decoder just put in use, so its first-call costs are not a recipe's.</summary>
    static void WarmDecoder(StableDiffusionPipeline pipeline, FewStepSettings settings)
    {
        using var _ = inference_mode();
        using var latents = randn(pipeline.LatentFormat.Shape(1, settings.Width, settings.Height));
        using var image = pipeline.DecodeLatents(latents);
    }
}
