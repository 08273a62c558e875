using System.Text.Json.Nodes;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.UNet;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25 item 2: LCM-distilled UNets (time_cond_proj_dim): diffusers' get_guidance_scale_embedding(w, dim) enters as
/// timestep_cond through the time embedding's bias-free cond_proj. The UNet here is the golden tiny-sd config with
/// time_cond_proj_dim added (random weights); the references are the formulas, computed in the test.
/// </summary>
public class GuidanceEmbeddingTests(ITestOutputHelper output)
{
    const int CondDim = 16;

    static UNet2DConditionConfig LcmConfig()
    {
        var json = JsonNode.Parse(File.ReadAllText(Golden.Path("models", "tiny-sd", "unet", "config.json")))!.AsObject();
        json["time_cond_proj_dim"] = CondDim;
        return UNet2DConditionConfig.From(JsonConfig.Parse(json.ToJsonString(), "lcm-unet"));
    }

    [Theory]
    [InlineData(0.0, 16)]
    [InlineData(7.5, 16)]
    [InlineData(2.0, 256)]
    [InlineData(3.0, 9)]
    public void The_guidance_embedding_is_the_lcm_formula(double w, int dim)
    {
        using var emb = GuidanceScaleEmbedding.Embed(tensor(new[] { (float)w }), dim);
        Assert.Equal(new long[] { 1, dim }, emb.shape);
        int half = dim / 2;
        var expected = new double[dim];
        for (int i = 0; i < half; i++)
        {
            double arg = w * 1000 * Math.Exp(-Math.Log(10000) * i / (half - 1));
            expected[i] = Math.Sin(arg);
            expected[half + i] = Math.Cos(arg);
        }
        var actual = emb[0].data<float>().ToArray();
        // float32 arguments up to 1000·w: sin/cos of an argument rounded to float32 (ulp ≈ 5e-4 at 7500).
        double tolerance = 1e-6 + w * 1000 * 1.2e-7 * 2;
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        output.WriteLine($"w {w}, dim {dim}: max |diff| {worst:E2} (tolerance {tolerance:E1})");
        Assert.True(worst <= tolerance, $"max |diff| {worst:E3}");
    }

    [Fact]
    public void The_unet_adds_cond_proj_of_the_embedding_to_the_timestep_embedding()
    {
        var config = LcmConfig();
        Assert.Equal(CondDim, config.TimeCondProjDim);
        using var unet = new UNet2DConditionModel(config);
        var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var condProj = parameters["time_embedding.cond_proj.weight"];
        Assert.Equal(new long[] { config.BlockOutChannels[0], CondDim }, condProj.shape);
        Assert.DoesNotContain("time_embedding.cond_proj.bias", parameters.Keys);

        using var _ = inference_mode();
        var embedding = unet.named_modules().Single(m => m.name == "time_embedding").module as TimestepEmbedding;
        Assert.NotNull(embedding);
        using var x = randn(2, config.BlockOutChannels[0]);
        using var cond = GuidanceScaleEmbedding.Embed(tensor(new[] { 3.5f, 0f }), CondDim);
        using var actual = embedding!.Forward(x, cond);
        // linear_2(silu(linear_1(x + cond·Wᵀ))), from the module's own weights.
        using var inner = x + cond.matmul(condProj.t());
        using var h = nn.functional.silu(inner.matmul(parameters["time_embedding.linear_1.weight"].t()) + parameters["time_embedding.linear_1.bias"]);
        using var expected = h.matmul(parameters["time_embedding.linear_2.weight"].t()) + parameters["time_embedding.linear_2.bias"];
        double diff = Golden.AssertClose(actual, expected, rel: 1e-5, abs: 1e-6, what: "time embedding");
        output.WriteLine($"time embedding with cond_proj: max |diff| {diff:E2}");

        // Through the whole UNet: the guidance embedding changes the output; a UNet without cond_proj refuses it.
        using var sample = randn(1, 4, 8, 8);
        using var text = randn(1, 77, 32);
        using var plain = unet.Forward(sample, 500f, new TextConditioning(text));
        using var guided = unet.Forward(sample, 500f, new TextConditioning(text) { TimestepCond = cond.narrow(0, 0, 1) });
        Assert.True(Golden.MaxAbsDiff(plain, guided) > 0);
        using var sd = new UNet2DConditionModel(config with { TimeCondProjDim = 0 });
        var e = Assert.Throws<ArgumentException>(() => sd.Forward(sample, 500f, new TextConditioning(text) { TimestepCond = cond.narrow(0, 0, 1) }));
        Assert.Contains("time_cond_proj_dim", e.Message);
    }
}
