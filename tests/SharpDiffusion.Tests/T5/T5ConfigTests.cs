using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.T5;

namespace SharpDiffusion.Tests.T5;

/// <summary>T5Config reads transformers' keys and refuses, in one line naming the key, what the encoder does not do.</summary>
public class T5ConfigTests
{
    static JsonObject GoldenConfig() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(T5GoldenFiles.EncoderDir("sd3/tiny-sd3"), "config.json")))!;

    static T5Config Read(JsonObject json) => T5Config.From(JsonConfig.Parse(json.ToJsonString(), "config.json"));

    [Fact]
    public void Golden_config_reads_as_written()
    {
        var json = GoldenConfig();
        var config = Read(json);
        Assert.Equal((int)json["d_model"]!, config.DModel);
        Assert.Equal((int)json["d_kv"]!, config.DKv);
        Assert.Equal((int)json["d_ff"]!, config.DFf);
        Assert.Equal((int)json["num_layers"]!, config.NumLayers);
        Assert.Equal((int)json["num_heads"]!, config.NumHeads);
        Assert.Equal((int)json["vocab_size"]!, config.VocabSize);
        Assert.Equal((double)json["layer_norm_epsilon"]!, config.LayerNormEpsilon);
        Assert.Equal((string)json["dense_act_fn"]!, config.DenseActFn);
        Assert.True(config.IsGatedAct);
    }

    [Fact]
    public void Gated_gelu_without_the_derived_keys_means_gelu_new()
    {
        var json = GoldenConfig();
        json.Remove("dense_act_fn");
        json.Remove("is_gated_act");
        var config = Read(json);
        Assert.True(config.IsGatedAct);
        Assert.Equal("gelu_new", config.DenseActFn);
    }

    [Theory]
    [InlineData("feed_forward_proj", "\"relu\"")]          // T5 v1.0: not gated
    [InlineData("feed_forward_proj", "\"gated-silu\"")]
    [InlineData("feed_forward_proj", "\"gated-gelu-x\"")]
    [InlineData("model_type", "\"umt5\"")]                 // per-layer position bias: another model
    [InlineData("num_heads", "0")]
    [InlineData("d_model", "1.5")]
    [InlineData("relative_attention_max_distance", "2")]
    public void Unsupported_values_are_refused_naming_the_key(string key, string value)
    {
        var json = GoldenConfig();
        json.Remove("dense_act_fn");
        json.Remove("is_gated_act");
        json[key] = JsonNode.Parse(value);
        var e = Assert.ThrowsAny<Exception>(() => Read(json));
        Assert.True(e is InvalidDataException or NotSupportedException, e.ToString());
        Assert.Contains("config.json", e.Message);
        Assert.Contains(key == "feed_forward_proj" && value.Contains("silu") ? "dense_act_fn" : key, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Missing_keys_take_transformers_defaults_and_its_relu_default_is_refused()
    {
        var e = Assert.Throws<InvalidDataException>(() => Read(new JsonObject()));
        Assert.Contains("feed_forward_proj", e.Message);
    }
}
