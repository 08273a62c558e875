using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>golden/v3 sd3/&lt;model&gt;/transformer.safetensors: one SD3Transformer2DModel forward on random inputs (two rows,
/// one timestep each) against diffusers 0.31.</summary>
public class SD3TransformerParityTests(ITestOutputHelper output)
{
    static string ModelDir(string model) => Golden.Path("v3", "models", model, "transformer");

    static SD3Transformer2DInput Input(Dictionary<string, Tensor> golden, ScalarType dtype) => new(
        golden["hidden_states"].to(dtype), golden["timestep"], golden["encoder_hidden_states"].to(dtype), golden["pooled_projections"].to(dtype));

    [Theory]
    [InlineData("tiny-sd3")]  // SD3.0: no qk norm, no dual attention; the last block context_pre_only
    [InlineData("tiny-sd35")] // SD3.5 Medium's MMDiT-X: qk_norm rms_norm, dual attention in blocks 0 and 1
    public void Transformer_matches_diffusers(string model)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", model, "transformer.safetensors");
        using var transformer = ComponentLoader.LoadSD3Transformer(ModelDir(model));
        double diff = Golden.AssertClose(transformer.Forward(Input(golden, ScalarType.Float32)), golden["out"], what: $"{model} out");
        output.WriteLine($"{model} transformer max |diff| {diff:E3} (max |expected| {Golden.MaxAbs(golden["out"]):E3})");
    }

    /// <summary>Every golden SD3 pipeline case stores the inputs and output of its first transformer call: real text
    /// conditioning (CLIP ‖ T5, or zero T5 rows), CFG batches, and non-square latents (96×128: the position table is cropped
    /// off-centre differently per axis).</summary>
    public static TheoryData<string, string> PipelineCases()
    {
        var cases = new TheoryData<string, string>();
        foreach (var model in new[] { "tiny-sd3", "tiny-sd35" })
        foreach (var path in Directory.GetFiles(Golden.Path("v3", "sd3", model), "*.safetensors").Order(StringComparer.Ordinal))
        {
            using var file = SafetensorsFile.Open(path);
            if (file.Contains("denoiser_output_call0")) cases.Add(model, System.IO.Path.GetFileName(path));
        }
        return cases;
    }

    [Theory]
    [MemberData(nameof(PipelineCases))]
    public void Transformer_matches_the_first_call_of_each_pipeline_case(string model, string caseFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", model, caseFile);
        using var transformer = ComponentLoader.LoadSD3Transformer(ModelDir(model));
        var input = new SD3Transformer2DInput(golden["denoiser_call0_hidden_states"], golden["denoiser_call0_timestep"],
            golden["denoiser_call0_encoder_hidden_states"], golden["denoiser_call0_pooled_projections"]);
        double diff = Golden.AssertClose(transformer.Forward(input), golden["denoiser_output_call0"], what: caseFile);
        output.WriteLine($"{model}/{caseFile} first transformer call max |diff| {diff:E3}");
    }

    /// <summary>bf16 compute is not bit-faithful: the result must stay within a few bf16 roundings of the fp32 reference, and be bf16.</summary>
    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Transformer_in_bfloat16_stays_close_to_diffusers_float32(string model)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", model, "transformer.safetensors");
        using var transformer = ComponentLoader.LoadSD3Transformer(ModelDir(model), new LoadOptions { DType = ScalarType.BFloat16 });
        var result = transformer.Forward(Input(golden, ScalarType.BFloat16));
        Assert.Equal(ScalarType.BFloat16, result.dtype);
        double diff = Golden.MaxAbsDiff(result, golden["out"]), scale = Golden.MaxAbs(golden["out"]);
        output.WriteLine($"{model} bf16 transformer max |diff| {diff:E3} ({diff / scale:E2} of max |expected|)");
        // Measured: 0.73% (tiny-sd3) and 0.84% (tiny-sd35) of max |expected|; bf16 keeps 8 significant bits (0.4%).
        Assert.True(diff <= 0.02 * scale, $"bf16 max |diff| {diff:E3} exceeds 2% of max |expected| {scale:E3}");
        Assert.True(diff > 0, "bf16 gave the fp32 result exactly: is the bf16 path running?");
    }

    /// <summary>With LowMemory the weights (RMS norm scales and the position table too, which our own modules hold) leave
    /// memory after each use and are read again at the next, with the same result.</summary>
    [Fact]
    public void Low_memory_transformer_reads_its_weights_again_at_each_use()
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", "tiny-sd35", "transformer.safetensors");
        var weights = ComponentLoader.SD3Transformer(ModelDir("tiny-sd35"), new LoadOptions { LowMemory = true });
        using var transformer = (SD3Transformer2DModel)weights.Module;
        Assert.False(weights.Resident);
        for (int use = 0; use < 2; use++)
        {
            using (weights.Use())
                Golden.AssertClose(transformer.Forward(Input(golden, ScalarType.Float32)), golden["out"], what: $"use {use}");
            Assert.False(weights.Resident);
        }
    }

    /// <summary>The loader builds the model on the meta device so nothing is allocated before the weights arrive; that must
    /// hold for the parameters our own modules keep (RMS norm scales, the position table: 1536 × 384² values in SD3.5 Medium).</summary>
    [Fact]
    public void Every_parameter_is_shape_only_when_built_on_the_meta_device()
    {
        var config = SD3Transformer2DConfig.From(JsonConfig.Load(System.IO.Path.Combine(ModelDir("tiny-sd35"), "config.json")));
        using var placement = SharpDiffusion.Models.Layers.Placement(new Device("meta"));
        using var transformer = new SD3Transformer2DModel(config);
        var parameters = transformer.named_parameters().ToList();
        Assert.Contains(parameters, p => p.name == "pos_embed.pos_embed");
        Assert.Contains(parameters, p => p.name == "transformer_blocks.0.attn.norm_added_q.weight");
        Assert.All(parameters, p => Assert.Equal(TorchSharp.DeviceType.META, p.parameter.device_type));
    }

    [Theory]
    [InlineData(12, 9, "not a multiple of patch_size 2")]           // 9 latent pixels: not whole patches
    [InlineData(66, 8, "larger than pos_embed_max_size × patch_size")] // 33 patches > pos_embed_max_size 32
    public void Latent_size_the_transformer_cannot_take_is_refused_in_one_line(int height, int width, string expected)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", "tiny-sd3", "transformer.safetensors");
        using var transformer = ComponentLoader.LoadSD3Transformer(ModelDir("tiny-sd3"));
        var input = Input(golden, ScalarType.Float32) with { HiddenStates = zeros(2, 16, height, width) };
        var e = Assert.Throws<ArgumentException>(() => transformer.Forward(input));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("\"caption_projection_dim\": 32, \"qk_norm\": \"layer_norm\"", "qk_norm 'layer_norm' is not supported")]
    [InlineData("\"caption_projection_dim\": 48", "'caption_projection_dim' is 48")]
    [InlineData("\"caption_projection_dim\": 32, \"dual_attention_layers\": [0, 5]", "'dual_attention_layers' is [0,5]")]
    public void Config_we_cannot_run_is_refused_in_one_line(string entry, string expected)
    {
        string json = $"{{\"num_layers\": 2, \"num_attention_heads\": 4, \"attention_head_dim\": 8, {entry}}}";
        var e = Assert.ThrowsAny<Exception>(() => SD3Transformer2DConfig.From(JsonConfig.Parse(json, "transformer/config.json")));
        Assert.IsNotType<NullReferenceException>(e);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
