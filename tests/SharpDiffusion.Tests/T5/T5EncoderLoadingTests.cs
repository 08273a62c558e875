using SharpDiffusion.Loading;
using SharpDiffusion.Models.T5;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.T5;

/// <summary>How T5 encoder folders load: other key layouts of the same weights, and files or inputs that do not fit.</summary>
public class T5EncoderLoadingTests
{
    const string Folder = "sd3/tiny-sd3";

    static Dictionary<string, Tensor> StoredWeights()
    {
        using var file = SafetensorsFile.Open(System.IO.Path.Combine(T5GoldenFiles.EncoderDir(Folder), "model.safetensors"));
        return file.Tensors.Keys.ToDictionary(k => k, file.Load);
    }

    static string CopyWith(TempDir dir, Dictionary<string, Tensor> weights)
    {
        File.Copy(System.IO.Path.Combine(T5GoldenFiles.EncoderDir(Folder), "config.json"), dir.File("config.json"));
        SafetensorsWriter.Save(dir.File("model.safetensors"), weights);
        return dir.Path;
    }

    /// <summary>The token embedding stored as encoder.embed_tokens.weight (its tied name) instead of shared.weight, and a
    /// whole encoder-decoder file's decoder keys, as transformers' T5EncoderModel accepts them.</summary>
    [Fact]
    public void Embed_tokens_name_and_decoder_keys_load_to_the_same_encoder()
    {
        using var _ = inference_mode();
        var weights = StoredWeights();
        weights["encoder.embed_tokens.weight"] = weights["shared.weight"];
        weights.Remove("shared.weight");
        weights["decoder.final_layer_norm.weight"] = weights["encoder.final_layer_norm.weight"];
        using var dir = new TempDir();
        using var encoder = T5EncoderModel.FromFolder(CopyWith(dir, weights));
        var golden = Golden.Load(["v3", .. Folder.Split('/'), "t5_encoder.safetensors"]);
        Golden.AssertClose(encoder.call(golden["input_ids"]), golden["last_hidden_state"], what: "last_hidden_state");
    }

    [Fact]
    public void A_missing_weight_is_reported_by_name()
    {
        var weights = StoredWeights();
        weights.Remove("encoder.block.1.layer.0.layer_norm.weight");
        using var dir = new TempDir();
        var e = Assert.ThrowsAny<Exception>(() => T5EncoderModel.FromFolder(CopyWith(dir, weights)));
        Assert.Contains("encoder.block.1.layer.0.layer_norm.weight", e.Message);
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_refused()
    {
        using var _ = inference_mode();
        using var encoder = T5EncoderModel.FromFolder(T5GoldenFiles.EncoderDir(Folder));
        var e = Assert.Throws<ArgumentException>(() => encoder.call(tensor(new long[] { 0, encoder.Config.VocabSize }, [1, 2])));
        Assert.Contains(encoder.Config.VocabSize.ToString(), e.Message);
    }

    [Fact]
    public void LowMemory_weights_are_read_at_first_use_and_give_the_same_states()
    {
        using var _ = inference_mode();
        var weights = T5EncoderModel.Weights(T5GoldenFiles.EncoderDir(Folder), new LoadOptions { LowMemory = true });
        Assert.False(weights.Resident);
        var golden = Golden.Load(["v3", .. Folder.Split('/'), "t5_encoder.safetensors"]);
        using (weights.Use())
            Golden.AssertClose(((T5EncoderModel)weights.Module).call(golden["input_ids"]), golden["last_hidden_state"], what: "last_hidden_state");
        weights.Module.Dispose();
    }
}
