using System.Text.Json;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.T5;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.T5;

/// <summary>
/// Tokenizer and encoder together against what the v3 pipelines fed their transformers: Flux's prompt_embeds are the T5
/// states of the prompt at max_sequence_length; SD3's prompt_embeds end with the T5 states at its default 256 tokens
/// (after the 77 CLIP rows).
/// </summary>
public class T5PromptEmbedsTests(ITestOutputHelper output)
{
    // diffusers' StableDiffusion3Pipeline default max_sequence_length.
    const int Sd3T5Length = 256;

    static (Dictionary<string, Tensor> Tensors, JsonElement Kwargs) Case(string folder, string name)
    {
        string path = Golden.Path(["v3", .. folder.Split('/'), name + ".safetensors"]);
        using var file = SafetensorsFile.Open(path);
        var kwargs = JsonDocument.Parse(file.Metadata["info"]).RootElement.GetProperty("kwargs").Clone();
        return (file.Tensors.Keys.ToDictionary(k => k, file.Load), kwargs);
    }

    Tensor EncodePrompt(string folder, string prompt, int maxLength)
    {
        using var encoder = T5EncoderModel.FromFolder(T5GoldenFiles.EncoderDir(folder));
        using var ids = T5GoldenFiles.Tokenizer(folder).EncodeBatch([prompt], maxLength);
        return encoder.call(ids);
    }

    [Theory]
    [InlineData("flux/tiny-flux-dev", "dev_96x128_seed12_6steps_g3.5")]
    [InlineData("flux/tiny-flux-schnell", "schnell_64x96_seed6_4steps")]
    public void Flux_prompt_embeds_are_the_T5_states_of_the_prompt(string folder, string name)
    {
        using var _ = inference_mode();
        var (tensors, kwargs) = Case(folder, name);
        var embeds = EncodePrompt(folder, kwargs.GetProperty("prompt").GetString()!, kwargs.GetProperty("max_sequence_length").GetInt32());
        double worst = Golden.AssertClose(embeds, tensors["prompt_embeds"], what: "prompt_embeds");
        output.WriteLine($"{folder} {name} prompt_embeds max |diff| {worst:E3}");
    }

    [Theory]
    [InlineData("sd3/tiny-sd3", "flow_euler_96x128_seed11_6steps_g5")]
    [InlineData("sd3/tiny-sd35", "flow_euler_96x128_seed11_6steps_g5")]
    public void Sd3_prompt_embeds_end_with_the_T5_states_of_the_prompts(string folder, string name)
    {
        using var _ = inference_mode();
        var (tensors, kwargs) = Case(folder, name);
        double worst = 0;
        foreach (var (key, embedsKey) in new[] { ("prompt", "prompt_embeds"), ("negative_prompt", "negative_prompt_embeds") })
        {
            var expected = tensors[embedsKey];
            var t5Rows = expected.narrow(1, expected.shape[1] - Sd3T5Length, Sd3T5Length);   // [1, 256, D]
            worst = Math.Max(worst, Golden.AssertClose(EncodePrompt(folder, kwargs.GetProperty(key).GetString()!, Sd3T5Length), t5Rows, what: embedsKey));
        }
        output.WriteLine($"{folder} {name} T5 rows of prompt_embeds max |diff| {worst:E3}");
    }
}
