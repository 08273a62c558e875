using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>
/// Prompt text → embeddings under both syntaxes, against golden/text_encoder (rows: the astronaut prompt, "", a
/// mixed prompt, 90 × "cat" truncated to 77). An A1111 chunk is an ordinary 77-token encode, so the golden rows are
/// what chunks must equal; emphasis is checked against the golden README's formula applied to the golden rows.
/// </summary>
public class PromptEncoderTests
{
    public static IEnumerable<object[]> Models() => [["tiny-sd"], ["small-sd15"]];

    static (StableDiffusionPipeline Pipe, Dictionary<string, Tensor> Golden, string[] Prompts) Load(string model)
    {
        var pipe = PipelineParityTests.Pipeline($"models/{model}");
        var info = GoldenManifest.Info($"text_encoder/{model}.safetensors");
        var prompts = info.GetProperty("prompts").EnumerateArray().Select(p => p.GetString()!).ToArray();
        return (pipe, Golden.Load("text_encoder", $"{model}.safetensors"), prompts);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A1111_chunks_of_plain_text_are_ordinary_77_token_encodes(string model)
    {
        var (pipe, golden, prompts) = Load(model);
        using var _ = inference_mode();
        var expected = golden["last_hidden_state"];
        using (var astronaut = pipe.PromptEncoder.EncodeA1111([prompts[0]]))
            Golden.AssertClose(astronaut, expected[0].unsqueeze(0), what: "astronaut prompt");
        using (var empty = pipe.PromptEncoder.EncodeA1111([prompts[1]]))
            Golden.AssertClose(empty, expected[1].unsqueeze(0), what: "empty prompt");

        // 90 tokens: chunk 1 = BOS + the first 75 + EOS, which is exactly the truncated plain encode.
        using var cats = pipe.PromptEncoder.EncodeA1111([prompts[3]]);
        Assert.Equal(new long[] { 1, 154, expected.shape[2] }, cats.shape);
        Golden.AssertClose(cats.narrow(1, 0, 77), expected[3].unsqueeze(0), what: "first chunk of 90 cats");
        using var tail = pipe.PromptEncoder.EncodePlain([string.Join(' ', Enumerable.Repeat("cat", 15))]);
        Golden.AssertClose(cats.narrow(1, 77, 77), tail, what: "second chunk = the last 15 cats encoded alone");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Plain_syntax_truncates_a_long_prompt_with_a_warning(string model)
    {
        var (pipe, golden, prompts) = Load(model);
        using var _ = inference_mode();
        var warnings = new List<string>();
        using var cats = pipe.PromptEncoder.EncodePlain([prompts[3]], warnings: warnings);
        Golden.AssertClose(cats, golden["last_hidden_state"][3].unsqueeze(0), what: "truncated cats");
        Assert.Contains("is 90 tokens; only the first 75 are used", Assert.Single(warnings));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Emphasis_weights_tokens_then_restores_the_chunk_mean(string model)
    {
        var (pipe, golden, prompts) = Load(model);
        using var _ = inference_mode();
        var z = golden["last_hidden_state"][0].unsqueeze(0);                           // [1, 77, D]
        var ids = golden["input_ids"][0].data<long>().ToArray();
        long astronaut = pipe.Tokenizer.ConvertTokensToIds(pipe.Tokenizer.Tokenize("astronaut")).Single();
        long horse = pipe.Tokenizer.ConvertTokensToIds(pipe.Tokenizer.Tokenize("horse")).Single();
        var weights = ids.Select(id => id == astronaut ? 1.3f : id == horse ? 1f / 1.1f : 1f).ToArray();
        Assert.Equal(2, weights.Count(w => w != 1f));
        var weighted = z * tensor(weights).view(1, 77, 1);
        var expected = weighted * (z.mean() / weighted.mean());

        using var actual = pipe.PromptEncoder.EncodeA1111(["a photograph of an (astronaut:1.3) riding a [horse]"]);
        Golden.AssertClose(actual, expected, what: "emphasised prompt");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Clip_skip_2_is_the_penultimate_layer_through_the_final_norm(string model)
    {
        var (pipe, golden, _) = Load(model);
        using var _ = inference_mode();
        int layers = pipe.TextEncoder.Config.NumHiddenLayers;
        using var weights = SafetensorsFile.Open(Golden.Path("models", model, "text_encoder", "model.safetensors"));
        var expected = F.layer_norm(golden[$"hidden_states.{layers - 1}"], [golden["last_hidden_state"].shape[2]],
            weights.Load("text_model.final_layer_norm.weight"), weights.Load("text_model.final_layer_norm.bias"),
            pipe.TextEncoder.Config.LayerNormEps);
        using var actual = pipe.TextEncoder.Encode(golden["input_ids"], clipSkip: 2);
        Golden.AssertClose(actual, expected, what: "clip skip 2");
        using var last = pipe.TextEncoder.Encode(golden["input_ids"], clipSkip: 1);
        Golden.AssertClose(last, golden["last_hidden_state"], what: "clip skip 1");
    }

    [Fact]
    public void Guided_halves_of_different_lengths_are_padded_with_the_empty_prompt()
    {
        var (pipe, golden, prompts) = Load("tiny-sd");
        using var _ = inference_mode();
        using var both = pipe.PromptEncoder.EncodeGuided(["blurry"], [prompts[3]], PromptSyntax.A1111, 1);
        Assert.Equal(new long[] { 2, 154, golden["last_hidden_state"].shape[2] }, both.shape);
        Golden.AssertClose(both[0].narrow(0, 77, 77), golden["last_hidden_state"][1], what: "uncond padding chunk = encoded \"\"");
        Golden.AssertClose(both[1].narrow(0, 0, 77), golden["last_hidden_state"][3], what: "cond first chunk");
    }

    [Fact]
    public void A_10000_character_prompt_is_encoded_in_chunks()
    {
        var pipe = PipelineParityTests.Pipeline("models/tiny-sd");
        using var _ = inference_mode();
        string prompt = string.Concat(Enumerable.Repeat("a red cat, ", 10_000 / 11 + 1))[..10_000];
        var chunks = new SharpDiffusion.Text.PromptChunker(pipe.Tokenizer).Chunk(prompt).ChunkCount;
        Assert.True(chunks > 30, $"{chunks} chunks");
        using var z = pipe.PromptEncoder.EncodeA1111([prompt]);
        Assert.Equal(77L * chunks, z.shape[1]);
        Assert.False(z.isnan().any().item<bool>());
    }

    [Fact]
    public void A_weight_that_is_not_a_number_is_a_one_line_error()
    {
        var pipe = PipelineParityTests.Pipeline("models/tiny-sd");
        var e = Assert.Throws<ArgumentException>(() => pipe.PromptEncoder.EncodeA1111(["(a:1.2.3)"]));
        Assert.Contains("1.2.3", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
