using System.Text.Json;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.T5;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.T5;

/// <summary>v3's t5_encoder.safetensors of each SD3/Flux model: text_encoder_3 / text_encoder_2 (T5EncoderModel, no
/// attention mask) on the padded ids of two prompts, against transformers.</summary>
public class T5EncoderParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Folders() => new(T5GoldenFiles.Models.Select(m => m.Cases));

    static Dictionary<string, Tensor> GoldenFile(string folder) => Golden.Load(["v3", .. folder.Split('/'), "t5_encoder.safetensors"]);

    [Theory]
    [MemberData(nameof(Folders))]
    public void Last_hidden_state_matches_transformers(string folder)
    {
        using var _ = inference_mode();
        var golden = GoldenFile(folder);
        using var encoder = T5EncoderModel.FromFolder(T5GoldenFiles.EncoderDir(folder));
        double worst = Golden.AssertClose(encoder.call(golden["input_ids"]), golden["last_hidden_state"], what: "last_hidden_state");
        output.WriteLine($"{folder} T5 encoder float32 max |diff| {worst:E3} (max |expected| {Golden.MaxAbs(golden["last_hidden_state"]):E3})");
    }

    /// <summary>bfloat16 compute (weights cast at load, the RMS norm's mean square in float32, softmax in float32)
    /// stays within bfloat16's rounding of the float32 reference: 8 bits of mantissa, a few roundings deep.</summary>
    [Theory]
    [MemberData(nameof(Folders))]
    public void Last_hidden_state_in_bfloat16_is_the_reference_to_bfloat16_rounding(string folder)
    {
        using var _ = inference_mode();
        var golden = GoldenFile(folder);
        using var encoder = T5EncoderModel.FromFolder(T5GoldenFiles.EncoderDir(folder), new LoadOptions { DType = ScalarType.BFloat16 });
        var result = encoder.call(golden["input_ids"]);
        Assert.Equal(ScalarType.BFloat16, result.dtype);
        double worst = Golden.AssertClose(result.to(ScalarType.Float32), golden["last_hidden_state"], rel: 3e-2, abs: 1e-2, what: "bf16 last_hidden_state");
        output.WriteLine($"{folder} T5 encoder bfloat16 max |diff| {worst:E3} (max |expected| {Golden.MaxAbs(golden["last_hidden_state"]):E3})");
    }

    /// <summary>float16 as transformers runs it (wo kept in float32, so the residual stream is float32 after the first
    /// feed-forward; values clamped while it is float16) stays within float16's rounding of the float32 reference.</summary>
    [Theory]
    [MemberData(nameof(Folders))]
    public void Last_hidden_state_in_float16_is_the_reference_to_float16_rounding(string folder)
    {
        using var _ = inference_mode();
        var golden = GoldenFile(folder);
        using var encoder = T5EncoderModel.FromFolder(T5GoldenFiles.EncoderDir(folder), new LoadOptions { DType = ScalarType.Float16 });
        var result = encoder.call(golden["input_ids"]);
        Assert.Equal(ScalarType.Float16, result.dtype);
        double worst = Golden.AssertClose(result.to(ScalarType.Float32), golden["last_hidden_state"], rel: 1e-2, abs: 1e-3, what: "fp16 last_hidden_state");
        output.WriteLine($"{folder} T5 encoder float16 max |diff| {worst:E3} (max |expected| {Golden.MaxAbs(golden["last_hidden_state"]):E3})");
    }

    /// <summary>The golden input_ids are what the pipeline's tokenizer gave for the prompts named in the file's info.</summary>
    [Theory]
    [MemberData(nameof(Folders))]
    public void Input_ids_are_the_tokenizers_for_the_prompts(string folder)
    {
        using var file = SafetensorsFile.Open(Golden.Path(["v3", .. folder.Split('/'), "t5_encoder.safetensors"]));
        using var info = JsonDocument.Parse(file.Metadata["info"]);
        string[] prompts = info.RootElement.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
        var expected = file.Load("input_ids");
        using var ids = T5GoldenFiles.Tokenizer(folder).EncodeBatch(prompts, (int)expected.shape[1]);
        Assert.True(ids.equal(expected).all().item<bool>(), $"{folder}: T5 tokenizer ids differ from the golden input_ids");
    }
}
