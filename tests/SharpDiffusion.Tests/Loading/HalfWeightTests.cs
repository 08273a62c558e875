using System.Text.Json;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 21 item 6: float16/bfloat16 stored weights under a float32 compute dtype stay at their two bytes a value
/// and are converted per call (ComfyUI's "manual cast"; bfloat16 matmuls are slow on CPUs without native bfloat16). The
/// conversion is exact, so the values are the load-time conversion's bit for bit (golden README "gguf/": the F16 and BF16
/// tensors of quant_types.gguf; "sd3/": the tiny transformers and T5 written in half precision here).</summary>
public class HalfWeightTests(ITestOutputHelper output)
{
    static readonly LoadOptions Exact = new() { ChannelsLast = false };

    [Theory]
    [InlineData("tensor_f16")]
    [InlineData("tensor_bf16")]
    public void Quant_types_half_tensors_stay_compact_under_float32_and_equal_ComfyUI_GGUF(string name)
    {
        var expected = Golden.Load("v3", "gguf", "quant_types_dequantized.safetensors");
        using var file = GgufFile.Open(Golden.Path("v3", "gguf", "quant_types.gguf"));
        var info = file.Tensors[name];
        Assert.Null(file.LoadCompact(name));                      // no compute dtype given: float8/quantized only
        Assert.Null(file.LoadCompact(name, bfloat16));            // under a half compute dtype: converted at load
        using var compact = file.LoadCompact(name, float32);
        Assert.NotNull(compact);
        Assert.Equal(info.Bytes, compact.ByteCount);               // resident = the file's 2 bytes a value
        Assert.Equal(2 * info.ElementCount, compact.ByteCount);
        using var values = compact.Dequantize(float32);
        using var loaded = empty(info.Shape, float32);
        file.ReadInto(name, loaded);                               // the load-time conversion
        double golden = Golden.MaxAbsDiff(values, expected[name]), load = Golden.MaxAbsDiff(values, loaded);
        output.WriteLine($"{name}: {compact.ByteCount} bytes for {info.ElementCount} values; max |diff| to ComfyUI-GGUF {golden:E3}, to the load-time conversion {load:E3}");
        Assert.True(Exactly.Same(values, loaded), "compact float32 differs from the load-time conversion");
        Assert.Equal(0, golden);
        foreach (var t in expected.Values) t.Dispose();
    }

    /// <summary>A transformer folder as a bfloat16 download has it (every tensor BF16).</summary>
    static string WriteBf16Transformer(TempDir dir, string model)
    {
        string source = Golden.Path("v3", "models", model, "transformer"), to = Directory.CreateDirectory(dir.File("transformer")).FullName;
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(to, "config.json"));
        using var file = SafetensorsFile.Open(Path.Combine(source, "diffusion_pytorch_model.safetensors"));
        var tensors = file.Tensors.Keys.ToDictionary(k => k, k => { using var t = file.Load(k); return t.to(bfloat16); });
        SafetensorsWriter.Save(Path.Combine(to, "diffusion_pytorch_model.safetensors"), tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return to;
    }

    /// <summary>golden sd3/&lt;model&gt;/transformer.safetensors's inputs through the bfloat16-stored transformer: kept compact
    /// in float32 it gives the decoded one's output bit for bit, and diffusers' float32 output to the weights' bfloat16
    /// rounding; every block linear weight is held at 2 bytes a value.</summary>
    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Bfloat16_sd3_transformer_in_float32_stays_compact_and_computes_as_the_decoded_one(string model)
    {
        using var dir = new TempDir();
        string folder = WriteBf16Transformer(dir, model);
        var golden = Golden.Load("v3", "sd3", model, "transformer.safetensors");
        using var _ = inference_mode();
        var compactWeights = ComponentLoader.SD3Transformer(folder, Exact);
        var decodedWeights = ComponentLoader.SD3Transformer(folder, Exact with { CompactWeights = false });
        using var compact = (SD3Transformer2DModel)compactWeights.Module;
        using var decoded = (SD3Transformer2DModel)decodedWeights.Module;
        var layers = CompactLayers.Of(compact);
        Assert.Empty(CompactLayers.Of(decoded));
        Assert.All(layers.Values, l => Assert.Equal("BF16", l.Compact!.StoredType));
        Assert.Contains("transformer_blocks.0.attn.to_q", layers.Keys);
        Assert.Contains("transformer_blocks.0.ff.net.2", layers.Keys);

        // Each compact weight converts to the decoded parameter exactly.
        var decodedParameters = decoded.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, layer) in layers)
        {
            using var w = layer.DequantizedWeight();
            Assert.True(Exactly.Same(w, decodedParameters[name + ".weight"]), name);
        }

        var input = new SD3Transformer2DInput(golden["hidden_states"], golden["timestep"], golden["encoder_hidden_states"], golden["pooled_projections"]);
        using var a = compact.Forward(input);
        using var b = decoded.Forward(input);
        double diff = Golden.MaxAbsDiff(a, b), toGolden = Golden.MaxAbsDiff(a, golden["out"]), scale = Golden.MaxAbs(golden["out"]);
        long expected = CompactLayers.ExpectedBytes(compact, _ => 2);
        output.WriteLine($"{model} bf16-stored, float32 compute: compact vs decoded max |diff| {diff:E3}; vs diffusers (float32 weights) {toGolden:E3} " +
            $"({toGolden / scale:E2} of max |expected|); {layers.Count} compact layers; resident {compactWeights.Bytes:N0} bytes vs {decodedWeights.Bytes:N0} decoded");
        Assert.Equal(0, diff);
        Assert.True(toGolden <= 0.02 * scale, $"{toGolden:E3} from diffusers is more than bfloat16 weight rounding");
        Assert.Equal(expected, compactWeights.Bytes);
        Assert.Equal(expected, SharpDiffusion.Models.Linear.ResidentBytesOf(compact));
        Assert.True(compactWeights.Bytes < decodedWeights.Bytes);
        foreach (var t in golden.Values) t.Dispose();
    }

    [Fact]
    public void Bfloat16_weights_under_bfloat16_compute_are_plain_parameters()
    {
        using var dir = new TempDir();
        string folder = WriteBf16Transformer(dir, "tiny-sd3");
        using var transformer = ComponentLoader.LoadSD3Transformer(folder, Exact with { DType = bfloat16 });
        Assert.Empty(CompactLayers.Of(transformer)); // same bytes either way: nothing to convert per call
        Assert.All(transformer.parameters(), p => Assert.Equal(bfloat16, p.dtype));
    }

    /// <summary>T5 as transformers shards it (model.safetensors.index.json), in float16: kept compact in float32 (every
    /// linear weight at 2 bytes), the same last_hidden_state as converting at load, on golden t5_encoder.safetensors's ids.</summary>
    [Fact]
    public void Sharded_float16_t5_in_float32_stays_compact_and_encodes_as_the_decoded_one()
    {
        using var dir = new TempDir();
        string source = Golden.Path("v3", "models", "tiny-sd3", "text_encoder_3");
        File.Copy(Path.Combine(source, "config.json"), dir.File("config.json"));
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            var names = file.Tensors.Keys.ToList();
            for (int k = 0; k < 2; k++)
            {
                string shard = $"model-{k + 1:00000}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == k).ToDictionary(n => n, n => { using var t = file.Load(n); return t.to(float16); });
                SafetensorsWriter.Save(dir.File(shard), part);
                foreach (var (name, t) in part) { weightMap[name] = shard; t.Dispose(); }
            }
        }
        File.WriteAllText(dir.File("model.safetensors.index.json"), JsonSerializer.Serialize(new { metadata = new { }, weight_map = weightMap }));

        var r = CompactT5Comparison.Of(dir.Path, Exact, "F16", bytesPerValue: 2);
        output.WriteLine($"sharded float16 T5, float32 compute: compact vs decoded max |diff| {r.Diff:E3}; vs transformers (float32 weights) {r.ToGolden:E3} " +
            $"({r.ToGolden / r.Scale:E2} of max |expected|); resident {r.CompactBytes:N0} vs {r.DecodedBytes:N0} bytes");
        Assert.Equal(0, r.Diff);
        Assert.True(r.ToGolden <= 0.01 * r.Scale, $"{r.ToGolden:E3} from transformers is more than float16 weight rounding");
        Assert.Equal(r.ExpectedBytes, r.CompactBytes);
    }
}
