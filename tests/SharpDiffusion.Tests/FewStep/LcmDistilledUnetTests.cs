using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// An LCM-distilled full model (UNet with time_cond_proj_dim): the guidance scale reaches the UNet as the embedding of
/// w = g − 1 through cond_proj, and there is no CFG batch (diffusers: do_classifier_free_guidance is off for such a UNet).
/// The model is the golden tiny-sd with a cond_proj added: zero, it must draw exactly tiny-sd's unguided picture; random,
/// the guidance scale must change the picture.
/// </summary>
public class LcmDistilledUnetTests
{
    const int CondDim = 16;

    static TempDir LcmFolder(Func<long, Tensor> condProj)
    {
        var dir = new TempDir();
        Loading.ModelFolderTests.CopyDir(Golden.Path("models", "tiny-sd"), dir.Path);
        var config = JsonNode.Parse(File.ReadAllText(dir.File("unet/config.json")))!.AsObject();
        config["time_cond_proj_dim"] = CondDim;
        File.WriteAllText(dir.File("unet/config.json"), config.ToJsonString());
        var weightsPath = dir.File("unet/diffusion_pytorch_model.safetensors");
        var tensors = new Dictionary<string, Tensor>();
        using (var file = SafetensorsFile.Open(weightsPath))
            foreach (var name in file.Tensors.Keys) tensors[name] = file.Load(name);
        long width = tensors["time_embedding.linear_1.weight"].shape[1];          // the sinusoid's width
        tensors["time_embedding.cond_proj.weight"] = condProj(width);             // [width, time_cond_proj_dim]
        SafetensorsWriter.Save(weightsPath, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return dir;
    }

    static GenerationOptions Options(double guidance) => new()
    {
        Prompts = ["a green square"], NegativePrompts = ["blurry"], NumInferenceSteps = 3, GuidanceScale = guidance, Width = 64, Height = 64, Seed = 12,
    };

    [Fact]
    public void A_zero_cond_proj_draws_the_unguided_picture_of_the_same_UNet()
    {
        using var folder = LcmFolder(width => zeros(width, CondDim));
        using var lcm = StableDiffusionPipeline.FromPretrained(folder.Path);
        using var guided = lcm.Generate(Options(5));
        using var plain = PipelineParityTests.Pipeline("models/tiny-sd").Generate(Options(1));
        Golden.AssertClose(guided.ImageFloat, plain.ImageFloat, rel: 0, abs: 1e-6, what: "LCM UNet at guidance 5 vs tiny-sd without guidance");
    }

    [Fact]
    public void The_guidance_scale_reaches_the_UNet_through_its_embedding()
    {
        using var generator = new Generator(2);
        using var folder = LcmFolder(width => randn([width, CondDim], generator: generator) * 0.5);
        using var lcm = StableDiffusionPipeline.FromPretrained(folder.Path);
        using var g5 = lcm.Generate(Options(5));
        using var g5Again = lcm.Generate(Options(5));
        using var g2 = lcm.Generate(Options(2));
        Golden.AssertClose(g5Again.ImageFloat, g5.ImageFloat, rel: 0, abs: 0, what: "the same call twice");
        Assert.True(Golden.MaxAbsDiff(g5.ImageFloat, g2.ImageFloat) > 1e-3, "guidance 5 and 2 draw different pictures");
    }
}
