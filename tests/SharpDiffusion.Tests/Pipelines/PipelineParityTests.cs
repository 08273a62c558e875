using System.Text.Json;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>golden/pipelines/&lt;model&gt;/&lt;case&gt;: whole StableDiffusionPipeline runs against diffusers.</summary>
public class PipelineParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() =>
        GoldenManifest.Files("pipelines/", ".safetensors").Concat(GoldenManifest.Files("sd2/pipelines/", ".safetensors"))
            .Select(f => new object[] { f });

    static readonly Dictionary<string, StableDiffusionPipeline> Pipelines = new();

    internal static StableDiffusionPipeline Pipeline(string modelPath)
    {
        lock (Pipelines)
        {
            if (!Pipelines.TryGetValue(modelPath, out var p))
                Pipelines[modelPath] = p = StableDiffusionPipeline.FromPretrained(Golden.Path(modelPath));
            return p;
        }
    }

    /// <summary>The from_config keywords the reference passed; files without that record give the whole
    /// effective config, which is then applied key by key (the SD1 cases cover from_config's own defaults).</summary>
    static Dictionary<string, object?> SchedulerOverrides(JsonElement scheduler)
    {
        var source = scheduler.TryGetProperty("overrides", out var o) ? o : scheduler.GetProperty("config");
        // A whole config also carries the keys of the class it was made from, which diffusers keeps and this class
        // never reads; as user options they would be refused, and they change nothing, so only the class's own are given.
        var own = SchedulerFactory.OptionsOf(scheduler.GetProperty("class").GetString()!, SchedulerConfig.Empty);
        return source.EnumerateObject().Where(p => own.Contains(p.Name)).ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
    }

    /// <summary>The pipeline call the reference made, as the manifest records it.</summary>
    internal static GenerationOptions Options(JsonElement info) => GoldenManifest.Call(info) with
    {
        GuidanceRescale = info.GetProperty("kwargs").TryGetProperty("guidance_rescale", out var r) ? r.GetDouble() : 0,
        Scheduler = info.GetProperty("scheduler").GetProperty("class").GetString(),
        SchedulerOptions = SchedulerOverrides(info.GetProperty("scheduler")),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipeline_matches_diffusers(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = Pipeline(info.GetProperty("model").GetString()!);
        var options = Options(info);

        using var _ = inference_mode();
        if (golden.TryGetValue("prompt_input_ids", out var expectedIds))
            using (var ids = pipeline.TokenIds(options.Prompts))
                Assert.Equal(expectedIds.data<long>().ToArray(), ids.data<long>().ToArray());
        using (var embeds = pipeline.EncodePrompt(options.Prompts))
            Golden.AssertClose(embeds, golden["prompt_embeds"], what: "prompt_embeds");

        var summary = GenerateAndCompare(pipeline, options, golden);
        output.WriteLine($"{file}: {summary}");
    }

    /// <summary>Runs the call, checking the latents after every step against latents_steps (relative to their scale,
    /// ~15 in magnitude over up to 20 steps), then image_float and image_uint8 (at most 1 level, in a handful of values).</summary>
    internal static string GenerateAndCompare(StableDiffusionPipeline pipeline, GenerationOptions options, Dictionary<string, Tensor> golden)
    {
        var latentSteps = golden["latents_steps"];
        double worstLatent = 0;
        int steps = 0;
        using var result = pipeline.Generate(options, onStepEnd: (i, latents) =>
        {
            steps++;
            double diff = Golden.AssertClose(latents, latentSteps[i], rel: 1e-3, abs: 1e-4, what: $"latents after step {i}");
            worstLatent = Math.Max(worstLatent, diff / Golden.MaxAbs(latentSteps[i]));
        });

        Assert.Equal(latentSteps.shape[0], steps);
        double imageDiff = Golden.MaxAbsDiff(result.ImageFloat, golden["image_float"]);
        Assert.True(imageDiff <= 1e-3, $"image_float max |diff| {imageDiff:E3}");

        using var bytes = ImageTensors.ToUInt8(result.ImageFloat);
        using var byteDiff = (bytes.to(ScalarType.Int32) - golden["image_uint8"].to(ScalarType.Int32)).abs();
        int maxLevel = byteDiff.max().item<int>();
        long differing = byteDiff.gt(0).sum().item<long>();
        Assert.True(maxLevel <= 1, $"uint8 image differs by {maxLevel} levels");
        Assert.True(differing <= Math.Max(4, bytes.numel() / 1000), $"{differing} uint8 values differ");
        return $"{steps} steps, latents max rel diff {worstLatent:E2}, image_float max |diff| {imageDiff:E2}, uint8 values differing {differing} (max {maxLevel})";
    }
}
