using System.Text.Json;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 21 item 5: diffusers folders with sharded weights (<c>*.safetensors.index.json</c> and its variants),
/// written here from the tiny golden models as save_pretrained shards them.</summary>
public class ShardedWeightsTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");
    static readonly LoadOptions Exact = new() { ChannelsLast = false };

    /// <summary>A component folder's config.json and its weights split into <paramref name="shardCount"/> shards named by
    /// <paramref name="shardName"/>(k, n), with <paramref name="indexName"/> mapping each tensor to its shard.</summary>
    static void WriteSharded(string component, string stem, string to, int shardCount, Func<int, int, string> shardName,
        string indexName, ScalarType? dtype = null)
    {
        Directory.CreateDirectory(to);
        File.Copy(Path.Combine(TinySd, component, "config.json"), Path.Combine(to, "config.json"));
        using var source = SafetensorsFile.Open(Path.Combine(TinySd, component, stem + ".safetensors"));
        var names = source.Headers.Select(h => h.Name).ToList();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long totalSize = 0;
        for (int k = 0; k < shardCount; k++)
        {
            using var scope = NewDisposeScope();
            string file = shardName(k + 1, shardCount);
            var part = names.Where((_, i) => i * shardCount / names.Count == k)
                .ToDictionary(n => n, n => dtype is { } d ? source.Load(n).to(d) : source.Load(n));
            SafetensorsWriter.Save(Path.Combine(to, file), part);
            foreach (var (name, t) in part)
            {
                weightMap[name] = file;
                totalSize += t.numel() * t.ElementSize;
            }
        }
        File.WriteAllText(Path.Combine(to, indexName),
            JsonSerializer.Serialize(new { metadata = new { total_size = totalSize }, weight_map = weightMap }));
    }

    static string Shard(string stem, string? variant, int k, int n) =>
        $"{stem}{(variant is null ? "" : "." + variant)}-{k:00000}-of-{n:00000}.safetensors";

    static void AssertSameWeights(nn.Module expected, nn.Module actual)
    {
        using (expected)
        using (actual)
        {
            var e = expected.state_dict();
            var a = actual.state_dict();
            Assert.Equal(e.Keys, a.Keys);
            foreach (var (name, t) in e)
            {
                Assert.Equal(t.dtype, a[name].dtype);
                Assert.True(Exactly.Same(t, a[name]), name);
            }
        }
    }

    [Fact]
    public void Sharded_unet_and_text_encoder_load_like_the_unsharded_ones()
    {
        using var temp = new TempDir();
        string unet = Path.Combine(temp.Path, "unet"), textEncoder = Path.Combine(temp.Path, "text_encoder");
        WriteSharded("unet", "diffusion_pytorch_model", unet, 3, (k, n) => Shard("diffusion_pytorch_model", null, k, n),
            "diffusion_pytorch_model.safetensors.index.json");
        WriteSharded("text_encoder", "model", textEncoder, 2, (k, n) => Shard("model", null, k, n), "model.safetensors.index.json");

        Assert.Equal([Path.Combine(unet, "diffusion_pytorch_model.safetensors.index.json")], WeightFiles.Find(unet, "diffusion_pytorch_model", null));
        using (var file = TensorFiles.Open(Path.Combine(unet, "diffusion_pytorch_model.safetensors.index.json")))
        {
            var sharded = Assert.IsType<ShardedTensorFile>(file);
            Assert.Equal(3, sharded.ShardPaths.Count);
        }
        AssertSameWeights(ComponentLoader.LoadUNet(Path.Combine(TinySd, "unet"), Exact), ComponentLoader.LoadUNet(unet, Exact));
        AssertSameWeights(ComponentLoader.LoadTextEncoder(Path.Combine(TinySd, "text_encoder"), Exact), ComponentLoader.LoadTextEncoder(textEncoder, Exact));
    }

    /// <summary>save_pretrained(variant="fp16") names the index diffusion_pytorch_model.safetensors.index.fp16.json;
    /// the other spelling, diffusion_pytorch_model.fp16.safetensors.index.json, is found too.</summary>
    [Theory]
    [InlineData("diffusion_pytorch_model.safetensors.index.fp16.json")]
    [InlineData("diffusion_pytorch_model.fp16.safetensors.index.json")]
    public void Fp16_variant_shards_load_with_the_variant(string indexName)
    {
        using var temp = new TempDir();
        string unet = Path.Combine(temp.Path, "unet");
        WriteSharded("unet", "diffusion_pytorch_model", unet, 2, (k, n) => Shard("diffusion_pytorch_model", "fp16", k, n), indexName, float16);

        var fp16 = Exact with { Variant = "fp16", DType = float16 };
        Assert.Throws<FileNotFoundException>(() => WeightFiles.Find(unet, "diffusion_pytorch_model", null));
        AssertSameWeights(ComponentLoader.LoadUNet(Path.Combine(TinySd, "unet"), Exact with { DType = float16 }), ComponentLoader.LoadUNet(unet, fp16));
    }

    [Fact]
    public void A_missing_shard_is_named_with_its_index()
    {
        using var temp = new TempDir();
        string unet = Path.Combine(temp.Path, "unet");
        WriteSharded("unet", "diffusion_pytorch_model", unet, 2, (k, n) => Shard("diffusion_pytorch_model", null, k, n),
            "diffusion_pytorch_model.safetensors.index.json");
        string missing = Path.Combine(unet, Shard("diffusion_pytorch_model", null, 2, 2));
        File.Delete(missing);

        var e = Assert.Throws<FileNotFoundException>(() => ComponentLoader.LoadUNet(unet, Exact));
        Assert.Contains($"Shard {missing} named by {Path.Combine(unet, "diffusion_pytorch_model.safetensors.index.json")} is missing", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_truncated_shard_is_named_with_its_index()
    {
        using var temp = new TempDir();
        string unet = Path.Combine(temp.Path, "unet");
        WriteSharded("unet", "diffusion_pytorch_model", unet, 2, (k, n) => Shard("diffusion_pytorch_model", null, k, n),
            "diffusion_pytorch_model.safetensors.index.json");
        string cut = Path.Combine(unet, Shard("diffusion_pytorch_model", null, 1, 2));
        var bytes = File.ReadAllBytes(cut);
        File.WriteAllBytes(cut, bytes[..(bytes.Length - 64)]);

        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.LoadUNet(unet, Exact));
        Assert.Contains($"Shard {cut} named by {Path.Combine(unet, "diffusion_pytorch_model.safetensors.index.json")} cannot be read", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void An_index_placing_a_tensor_in_the_wrong_shard_is_refused()
    {
        using var temp = new TempDir();
        string unet = Path.Combine(temp.Path, "unet");
        string index = Path.Combine(unet, "diffusion_pytorch_model.safetensors.index.json");
        WriteSharded("unet", "diffusion_pytorch_model", unet, 2, (k, n) => Shard("diffusion_pytorch_model", null, k, n),
            "diffusion_pytorch_model.safetensors.index.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(index));
        var map = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        string moved = map.First(kv => kv.Value == Shard("diffusion_pytorch_model", null, 1, 2)).Key;
        map[moved] = Shard("diffusion_pytorch_model", null, 2, 2);
        File.WriteAllText(index, JsonSerializer.Serialize(new { weight_map = map }));

        var e = Assert.Throws<InvalidDataException>(() => TensorFiles.Open(index).Dispose());
        Assert.Contains($"does not hold tensor '{moved}'", e.Message);
        Assert.Contains(index, e.Message);

        map[moved] = "../outside.safetensors";
        File.WriteAllText(index, JsonSerializer.Serialize(new { weight_map = map }));
        e = Assert.Throws<InvalidDataException>(() => TensorFiles.Open(index).Dispose());
        Assert.Contains("not a file name beside the index", e.Message);
    }
}
