using System.Text.Json;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// The golden/v3/fewstep cases end to end: StableDiffusionPipeline on models/small-sd15 with the case's scheduler
/// (its class and its own keys of the reported config as options), compared after every step and on the image.
/// </summary>
public class FewStepPipelineTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases() => V3Golden.Cases("fewstep/", "latents_steps");

    [Theory, MemberData(nameof(Cases))]
    public void Pipeline_matches_diffusers(string file)
    {
        var info = JsonDocument.Parse(V3Golden.Info(file).ToJsonString()).RootElement;
        var options = PipelineParityTests.Options(info);
        // A null negative prompt is none at all (no CFG rows are made for guidance ≤ 1 either way).
        if (info.GetProperty("kwargs").GetProperty("negative_prompt").ValueKind == JsonValueKind.Null)
            options = options with { NegativePrompts = null };
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");

        using var _ = inference_mode();
        string summary = PipelineParityTests.GenerateAndCompare(pipeline, options, V3Golden.Load(file));
        output.WriteLine($"{file}: {summary}");
    }
}
