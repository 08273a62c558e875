using System.Text;
using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 10, items 3 and 7: config values, tokenizer files and safetensors headers that diffusers or
/// transformers would reject (or that would give silently wrong results) are refused before anything is built,
/// in one line naming the file, the key, the value and the rule.</summary>
public class MalformedInputTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");

    static void Build(string component, JsonConfig c)
    {
        switch (component)
        {
            case "unet": UNet2DConditionConfig.From(c); break;
            case "vae": AutoencoderKLConfig.From(c); break;
            default: ClipTextConfig.From(c); break;
        }
    }

    public static TheoryData<string, string, string, string> BadValues() => new()
    {
        { "unet", "block_out_channels", "[-32, 64]", "integer from 1" },
        { "unet", "block_out_channels", "[0, 64]", "integer from 1" },
        { "unet", "block_out_channels", "[32.5, 64]", "integer from 1" },
        { "unet", "block_out_channels", "[null, 64]", "integer from 1" },
        { "unet", "down_block_types", "[\"DownBlock2D\", \"DownBlock2D\", \"DownBlock2D\"]", "one entry per block_out_channels entry" },
        { "unet", "norm_num_groups", "24", "must divide every block_out_channels entry" },
        { "unet", "norm_num_groups", "0", "integer from 1" },
        { "unet", "attention_head_dim", "0", "integer from 1" },
        { "unet", "attention_head_dim", "[8, 8, 8]", "one entry per block (2)" },
        { "unet", "attention_head_dim", "7", "heads must divide" },
        { "unet", "layers_per_block", "-1", "integer from 1" },
        { "unet", "layers_per_block", "100000", "integer from 1 to 1000" },
        { "unet", "layers_per_block", "\"2\"", "integer" },
        { "unet", "cross_attention_dim", "0", "integer from 1" },
        { "unet", "norm_eps", "-1", "finite number > 0" },
        { "unet", "conv_in_kernel", "4", "must be odd" },
        { "unet", "only_cross_attention", "[true, null]", "bool or a list of bools" },
        { "unet", "down_block_types", "[\"DownBlock2D\", null]", "list of strings" },
        { "vae", "scaling_factor", "-0.18215", "finite number > 0" },
        { "vae", "scaling_factor", "0", "finite number > 0" },
        { "vae", "latent_channels", "0", "integer from 1" },
        { "vae", "norm_num_groups", "48", "must divide" },
        { "vae", "layers_per_block", "1e30", "integer from 1 to 1000" },
        { "text_encoder", "num_hidden_layers", "1000000", "integer from 1 to 1000" },
        { "text_encoder", "num_attention_heads", "5", "must divide hidden_size" },
        { "text_encoder", "hidden_size", "-32", "integer from 1" },
        { "text_encoder", "vocab_size", "0", "integer from 1" },
        { "text_encoder", "layer_norm_eps", "0", "finite number > 0" },
    };

    [Theory, MemberData(nameof(BadValues))]
    public void Config_values_are_refused_naming_file_key_value_and_rule(string component, string key, string value, string rule)
    {
        string path = Path.Combine(TinySd, component, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[key] = JsonNode.Parse(value);
        var e = Assert.Throws<InvalidDataException>(() => Build(component, JsonConfig.Parse(json.ToJsonString(), path)));
        Assert.Contains(path, e.Message);
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains(rule, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_config_describing_more_parameters_than_the_weights_hold_is_refused_before_construction()
    {
        using var temp = new TempDir();
        foreach (var f in Directory.GetFiles(Path.Combine(TinySd, "unet")))
            File.Copy(f, temp.File(Path.GetFileName(f)));
        var json = JsonNode.Parse(File.ReadAllText(temp.File("config.json")))!.AsObject();
        json["layers_per_block"] = 1000;   // in range, but ~10^7 parameters more than the file holds
        File.WriteAllText(temp.File("config.json"), json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet(temp.Path));
        Assert.Contains(temp.File("config.json"), e.Message);
        Assert.Contains("parameters", e.Message);
    }

    static string CopyTokenizer(TempDir temp)
    {
        foreach (var f in Directory.GetFiles(Path.Combine(TinySd, "tokenizer")))
            File.Copy(f, temp.File(Path.GetFileName(f)));
        return temp.Path;
    }

    [Theory]
    [InlineData("")]
    [InlineData("#version: 0.2\n")]
    [InlineData("#version: 0.2\nq z\n\u00ff\u0001 \u0002\n")]
    public void Empty_or_garbage_merges_are_refused(string merges)
    {
        using var temp = new TempDir();
        File.WriteAllText(Path.Combine(CopyTokenizer(temp), "merges.txt"), merges, Encoding.UTF8);
        var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromDirectory(temp.Path));
        Assert.Contains(temp.File("merges.txt"), e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("{\"a</w>\": 0}", "lacks the byte-level symbol")]
    [InlineData("{\"a\": \"x\"}", "not a JSON object of token -> integer id")]
    [InlineData("[1, 2]", "not a JSON object of token -> integer id")]
    public void A_one_entry_or_malformed_vocab_is_refused(string vocab, string rule)
    {
        using var temp = new TempDir();
        File.WriteAllText(Path.Combine(CopyTokenizer(temp), "vocab.json"), vocab);
        var e = Assert.Throws<InvalidDataException>(() => ClipTokenizer.FromDirectory(temp.Path));
        Assert.Contains(temp.File("vocab.json"), e.Message);
        Assert.Contains(rule, e.Message);
    }

    static string WriteSafetensors(TempDir temp, string header, int dataBytes)
    {
        string path = temp.File("w.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. new byte[dataBytes]]);
        return path;
    }

    [Fact]
    public void Overlapping_tensor_byte_ranges_are_refused()
    {
        using var temp = new TempDir();
        string path = WriteSafetensors(temp,
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void Duplicate_tensor_names_are_refused()
    {
        using var temp = new TempDir();
        string path = WriteSafetensors(temp,
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("appears twice", e.Message);
    }
}
