using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.TextualInversion;

/// <summary>golden/textual_inversion: the three embeddings loaded into small-sd15 in the reference's order
/// (diffusers learned_embeds, A1111 .pt as &lt;cat-toy-2v&gt;, A1111 emb_params as &lt;cat-toy-st&gt;), on a pipeline of
/// its own (loading extends the tokenizer and the text encoder).</summary>
public class TextualInversionGoldenTests(ITestOutputHelper output)
{
    static string File(string name) => Golden.Path("textual_inversion", name);

    static readonly Lazy<StableDiffusionPipeline> Loaded = new(() =>
    {
        var p = StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15"));
        p.LoadTextualInversion(File("cat-toy_learned_embeds.safetensors"));
        p.LoadTextualInversion(File("cat-toy-2v_a1111.pt"), "<cat-toy-2v>");
        p.LoadTextualInversion(File("cat-toy-2v_a1111_emb_params.safetensors"), "<cat-toy-st>");
        return p;
    });
    static readonly object Gate = new();

    /// <summary>Without a token, an A1111 .pt triggers on the name it stores (diffusers' reading).</summary>
    [Fact]
    public void An_a1111_pt_embedding_is_read_with_its_stored_name()
    {
        using var pt = TextualInversionFile.Load(File("cat-toy-2v_a1111.pt"));
        using var st = TextualInversionFile.Load(File("cat-toy-2v_a1111_emb_params.safetensors"));
        Assert.Equal("cat-toy-2v", pt.Token);
        Assert.Equal(st.Vectors.data<float>().ToArray(), pt.Vectors.data<float>().ToArray());
    }

    [Fact]
    public void Token_embedding_rows_after_load()
    {
        var golden = Golden.Load("textual_inversion", "token_embedding_rows_after_load.safetensors");
        var p = Loaded.Value;
        Assert.Equal(["<cat-toy>", "<cat-toy-2v>", "<cat-toy-2v>_1", "<cat-toy-st>", "<cat-toy-st>_1"], p.Tokenizer.AddedTokens);
        Assert.Equal(golden["row_ids"].data<long>().ToArray(), p.Tokenizer.AddedTokens.Select(t => { p.Tokenizer.TryGetTokenId(t, out int id); return (long)id; }));
        using var _ = inference_mode();
        using var ids = tensor(golden["row_ids"].data<long>().ToArray());
        var weight = p.TextEncoder.named_parameters().Single(kv => kv.name.EndsWith("token_embedding.weight")).parameter;
        Assert.Equal(49413, weight.shape[0]);
        using var rows = weight.index_select(0, ids);
        Assert.Equal(0, Golden.MaxAbsDiff(rows, golden["rows_49408_plus"]));
    }

    public static IEnumerable<object[]> Cases() => GoldenManifest.Files("textual_inversion/pipelines/", ".safetensors").Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipeline_matches_diffusers(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var options = PipelineParityTests.Options(info);
        lock (Gate)
        {
            var p = Loaded.Value;
            using (var _ = inference_mode())
            using (var ids = p.TokenIds(options.Prompts))
            {
                Assert.Equal(golden["prompt_input_ids"].data<long>().ToArray(), ids.data<long>().ToArray());
                using var embeds = p.EncodePrompt(options.Prompts);
                Golden.AssertClose(embeds, golden["prompt_embeds"], what: "prompt_embeds");
            }
            output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(p, options, golden)}");
        }
    }

    [Fact]
    public void Multi_vector_prompt_is_rewritten_as_maybe_convert_prompt()
    {
        var p = Loaded.Value;
        Assert.Equal("a photo of a <cat-toy-2v> <cat-toy-2v>_1 on a beach", p.Tokenizer.ExpandMultiVectorTokens("a photo of a <cat-toy-2v> on a beach"));
        Assert.Equal("a <cat-toy> b", p.Tokenizer.ExpandMultiVectorTokens("a <cat-toy> b"));
        // Added tokens are cut out whole before BPE, even without spaces around them.
        Assert.Equal(["a</w>", "<cat-toy>", "dog</w>"], p.Tokenizer.Tokenize("a<cat-toy>dog"));
    }

    [Fact]
    public void A1111_syntax_reads_embeddings_as_plain_syntax_does()
    {
        var p = Loaded.Value;
        var golden = Golden.Load("textual_inversion", "pipelines", "ti_a1111st_cat-toy-st_euler_seed42_10steps_g7.5.safetensors");
        using var _ = inference_mode();
        using var embeds = p.PromptEncoder.Encode(["a photo of a <cat-toy-st> on a beach"], PromptSyntax.A1111, clipSkip: 1);
        Golden.AssertClose(embeds, golden["prompt_embeds"], what: "A1111 prompt_embeds");        // one chunk, all weights 1
    }

    [Fact]
    public void A1111_chunks_keep_a_multi_vector_embedding_whole()
    {
        var p = Loaded.Value;
        var chunker = new SharpDiffusion.Text.PromptChunker(p.Tokenizer, commaPaddingBacktrack: 0);
        string filler = string.Join(" ", Enumerable.Repeat("cat", 74));                  // 74 tokens: one place left
        var chunks = chunker.Chunk(p.Tokenizer.ExpandMultiVectorTokens(filler + " <cat-toy-2v>"));
        Assert.Equal(2, chunks.ChunkCount);
        Assert.Equal(p.Tokenizer.EosTokenId, chunks.Ids[0][75]);                         // chunk 1 padded after the 74
        Assert.Equal([49409, 49410], chunks.Ids[1][1..3]);
        var single = chunker.Chunk(p.Tokenizer.ExpandMultiVectorTokens(filler + " <cat-toy>"));
        Assert.Equal(49408, single.Ids[0][75]);                                          // one vector still fits
    }

    [Fact]
    public void Trigger_word_is_the_given_one_else_the_stored_one_else_the_file_name()
    {
        using (var given = TextualInversionFile.Load(File("cat-toy_learned_embeds.safetensors"), "<mine>"))
            Assert.Equal("<mine>", given.Token);
        using (var stored = TextualInversionFile.Load(File("cat-toy_learned_embeds.safetensors")))
            Assert.Equal("<cat-toy>", stored.Token);
        using (var fileName = TextualInversionFile.Load(File("cat-toy-2v_a1111_emb_params.safetensors")))
        {
            Assert.Equal("cat-toy-2v_a1111_emb_params", fileName.Token);
            Assert.Equal(["cat-toy-2v_a1111_emb_params", "cat-toy-2v_a1111_emb_params_1"], fileName.Tokens);
        }
    }

    [Fact]
    public void Embedding_of_another_width_is_refused_naming_the_file()
    {
        using var dir = new TempDir();
        string path = dir.File("wide.safetensors");
        using (var wide = zeros(2, 768))
            SafetensorsWriter.Save(path, new Dictionary<string, Tensor> { ["emb_params"] = wide });
        var p = Loaded.Value;
        var e = Assert.Throws<InvalidDataException>(() => p.LoadTextualInversion(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("768", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Embedding_dir_triggers_each_file_by_its_name_and_skips_unreadable_ones()
    {
        using var dir = new TempDir();
        System.IO.File.Copy(File("cat-toy-2v_a1111_emb_params.safetensors"), dir.File("dir-toy.safetensors"));
        System.IO.File.Copy(File("cat-toy-2v_a1111.pt"), dir.File("dir-pt.pt"));
        System.IO.File.WriteAllText(dir.File("zz-broken.pt"), "not a pickle");
        using var p = StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15")); // Loaded's tokens stay as the golden's
        var (tokens, skipped) = p.LoadTextualInversionDirectory(dir.Path);
        Assert.Equal(["dir-pt", "dir-pt_1", "dir-toy", "dir-toy_1"], tokens);
        Assert.Contains("zz-broken.pt", Assert.Single(skipped));
    }

    [Fact]
    public void Token_already_in_the_tokenizer_is_refused()
    {
        var p = Loaded.Value;
        var e = Assert.Throws<ArgumentException>(() => p.LoadTextualInversion(File("cat-toy_learned_embeds.safetensors")));
        Assert.Contains("<cat-toy>", e.Message);
    }
}
