using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench --fewstep` (issue 25 item 5): the seconds of a whole image, prompt to pixels with the weights resident, for the
/// few-step recipe, N LCM steps without a CFG batch (an LCM-LoRA merged into the UNet, or an LCM-distilled UNet, costs the
/// same per step) decoded by a full-size TAESD, beside the usual one, M Euler steps with CFG (batch 2) decoded by the
/// full VAE, in one process on the same weights (random: the time does not depend on them).
/// </summary>
public static class FewStepBench
{
    /// <summary>One recipe's whole image: text encoding (estimated as what the loop did not take), denoising, decoding.</summary>
    public sealed record Row(string Recipe, int Steps, bool Cfg, string Decoder, double EncodeSeconds, double DenoiseSeconds, double DecodeSeconds, double TotalSeconds);

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

    /// <summary>Times both recipes on <paramref name="model"/> (resident, <paramref name="options"/>' dtype); the few-step one
    /// decodes with the TAESD at <paramref name="taesd"/>.</summary>
    public static List<Row> Measure(string model, string taesd, LoadOptions options, int width, int height, int fewSteps, int steps)
    {
        using var pipeline = StableDiffusionPipeline.Load(model, options with { LowMemory = false });
        var rows = new List<Row>();
        // A first short run warms the kernels (and the fast-path choices) so neither recipe pays for it.
        Console.WriteLine("Warm-up (1 step) ...");
        Time(pipeline, "warm-up", width, height, 1, "euler", 1.0, "VAE");
        rows.Add(Time(pipeline, "Euler + full VAE", width, height, steps, "euler", 7.5, "VAE"));
        pipeline.VaeCodec.UseVae(taesd, options);
        rows.Add(Time(pipeline, "LCM + TAESD", width, height, fewSteps, "lcm", 1.0, "TAESD"));
        return rows;
    }

    static Row Time(StableDiffusionPipeline pipeline, string recipe, int width, int height, int steps, string scheduler, double guidance, string decoder)
    {
        if (recipe != "warm-up") Console.WriteLine($"{recipe}: {steps} steps at {width}x{height} ...");
        var marks = new Dictionary<GenerationStage, double>();
        var clock = Stopwatch.StartNew();
        var progress = new SynchronousProgress<GenerationProgress>(p => marks.TryAdd(p.Stage, clock.Elapsed.TotalSeconds));
        using (pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a photograph of an astronaut riding a horse"], Width = width, Height = height, NumInferenceSteps = steps,
            GuidanceScale = guidance, Seed = 1, Scheduler = scheduler,
        }, progress)) { }
        double total = clock.Elapsed.TotalSeconds;
        // Denoising is reported at the end of each step (the first report ends step 1) and Decoding when the loop is done;
        // the loop's start is not reported, so the steps after the first give the time per step.
        double firstStep = marks.GetValueOrDefault(GenerationStage.Denoising), loopEnd = marks.GetValueOrDefault(GenerationStage.Decoding, total);
        double perStep = steps > 1 ? (loopEnd - firstStep) / (steps - 1) : 0;
        double denoise = steps > 1 ? perStep * steps : loopEnd;
        var row = new Row(recipe, steps, guidance > 1, decoder, Math.Max(0, loopEnd - denoise), denoise, total - loopEnd, total);
        if (recipe != "warm-up")
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  total {row.TotalSeconds:F1}s: text {row.EncodeSeconds:F1}s, denoise {row.DenoiseSeconds:F1}s ({row.DenoiseSeconds / steps:F2}s/step), decode {row.DecodeSeconds:F1}s"));
        return row;
    }

    public static void Print(List<Row> rows, int width, int height)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine($"Whole images at {width}x{height} (weights resident; text encoding + denoising + decoding):");
        var table = new MarkdownTable(Label("recipe"), Number("steps"), Label("CFG batch"), Label("decoder"), Number("denoise s"), Number("decode s"), Number("whole image s"));
        foreach (var r in rows)
            table.Add($"{r.Recipe}", $"{r.Steps}", $"{(r.Cfg ? "yes" : "no")}", $"{r.Decoder}", $"{r.DenoiseSeconds:F1}", $"{r.DecodeSeconds:F1}", $"{r.TotalSeconds:F1}");
        table.Print();
        if (rows.Count == 2)
            Console.WriteLine(string.Create(inv, $"The few-step image takes {rows[1].TotalSeconds / rows[0].TotalSeconds:P0} of the usual one's time ({rows[0].TotalSeconds / rows[1].TotalSeconds:F1}x faster)."));
    }
}
