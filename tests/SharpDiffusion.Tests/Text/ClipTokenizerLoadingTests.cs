using System.Text.Json;
using System.Text.RegularExpressions;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Text;

/// <summary>Loading a tokenizer folder, and the batch helper against the text-encoder goldens' input_ids.</summary>
public class ClipTokenizerLoadingTests
{
    [Fact]
    public void MissingVocabJsonNamesTheFileAndWhatAFolderNeeds()
    {
        string dir = Directory.CreateTempSubdirectory("sharpdiffusion-tokenizer-").FullName;
        try
        {
            File.Copy(Golden.Path("clip-tokenizer", "merges.txt"), Path.Combine(dir, "merges.txt"));

            var error = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromDirectory(dir));
            Assert.Equal(Path.Combine(dir, "vocab.json"), error.FileName);
            Assert.Contains("vocab.json", error.Message);
            Assert.Contains("merges.txt", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Sd1FolderHasClipSizesAndSpecialTokens()
    {
        var meta = JsonDocument.Parse(File.ReadAllText(Golden.Path("tokenizer_cases.json"))).RootElement.GetProperty("meta");
        var tokenizer = TokenizerGoldenFiles.Sd1Tokenizer;
        Assert.Equal(meta.GetProperty("bos").GetInt32(), tokenizer.BosTokenId);
        Assert.Equal(meta.GetProperty("eos").GetInt32(), tokenizer.EosTokenId);
        Assert.Equal(meta.GetProperty("pad").GetInt32(), tokenizer.PadTokenId);
        Assert.Equal(TokenizerGoldenFiles.Cases[0].InputIds.Length, tokenizer.ModelMaxLength);
    }

    /// <summary>text_encoder goldens: input_ids [4, 77] of the prompts listed in the manifest.</summary>
    [Theory]
    [InlineData("text_encoder/tiny-sd.safetensors", "models/tiny-sd/tokenizer")]
    [InlineData("text_encoder/small-sd15.safetensors", "models/small-sd15/tokenizer")]
    [InlineData("sd2/text_encoder_tiny-sd2.safetensors", "models/tiny-sd2/tokenizer")]
    public void EncodeBatchMatchesTextEncoderGoldenInputIds(string goldenFile, string tokenizerDir)
    {
        var prompts = GoldenManifest.Info(goldenFile).GetProperty("prompts")
            .EnumerateArray().Select(p => p.GetString()!).ToArray();
        var tokenizer = ClipTokenizer.FromDirectory(Golden.Path(tokenizerDir.Split('/')));

        using var scope = NewDisposeScope();
        var expected = Golden.Load(goldenFile.Split('/'))["input_ids"];
        var actual = tokenizer.EncodeBatch(prompts); // [4, 77]

        Assert.Equal(ScalarType.Int64, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.data<long>().ToArray(), actual.data<long>().ToArray());
    }
}
