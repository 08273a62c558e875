using SharpDiffusion.Adapters;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tests.Flux;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 23 item 4 (and 21 item 6): float8 and GGUF weights stay compact in memory and become the compute dtype one
/// layer at a time (<see cref="CompactWeight"/>, <see cref="Linear"/>). Golden README "gguf/" and
/// "flux/tiny-flux-dev/single_file/": the compact values are the load-time decode's bit for bit, so the compact model's
/// forward is the decoded model's; its resident bytes are the file's; LoRAs become side branches.</summary>
public class CompactWeightTests(ITestOutputHelper output)
{
    static readonly string QuantTypes = Golden.Path("v3", "gguf", "quant_types.gguf");
    const string Fp8Case = "single_file/fp8_seed19_4steps", GgufCase = "single_file/gguf_q8_0_seed19_4steps";

    static FluxTransformer2DConfig FolderConfig() =>
        FluxTransformer2DConfig.From(JsonConfig.Load(Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer", "config.json")));

    static ComponentWeights Flux(string file, bool compact, ScalarType dtype = ScalarType.Float32) =>
        ComponentLoader.FluxTransformerFile(FluxGolden.SingleFile(file), new LoadOptions { CompactWeights = compact, DType = dtype }, FolderConfig());

    /// <summary>Each compact layer once (TorchSharp's named_modules lists a module under its registered and its field name).</summary>
    [Theory]
    [InlineData(GgufArithmetic.Float16)]
    [InlineData(GgufArithmetic.Float32)]
    public void Quant_types_every_quantized_tensor_dequantizes_as_loading_does(GgufArithmetic arithmetic)
    {
        var expected = Golden.Load("v3", "gguf", "quant_types_dequantized.safetensors");
        using var file = GgufFile.Open(QuantTypes, arithmetic);
        foreach (var (name, info) in file.Tensors)
        {
            using var compact = file.LoadCompact(name);
            if (info.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16)
            {
                Assert.Null(compact); // plain floats: decoded at load
                continue;
            }
            Assert.NotNull(compact);
            Assert.Equal(info.Bytes, compact.ByteCount); // resident = the file's bytes
            using var loaded = file.Load(name);
            using var values = compact.Dequantize(float32);
            Assert.True(Exactly.Same(values, loaded), $"{name}: compact float32 differs from the load-time decode");
            using var bf16 = empty(info.Shape, bfloat16);
            file.ReadInto(name, bf16);
            using var compactBf16 = compact.Dequantize(bfloat16);
            Assert.True(Exactly.Same(compactBf16, bf16), $"{name}: compact bfloat16 differs from the load-time decode");
            double diff = Golden.MaxAbsDiff(values, expected[name]);
            if (arithmetic == GgufArithmetic.Float16) Assert.True(diff == 0, $"{name}: {diff:E3} from ComfyUI-GGUF");
            output.WriteLine($"{name} ({info.Type}, {arithmetic}): {compact.ByteCount} bytes for {info.ElementCount} values; max |diff| to ComfyUI-GGUF {diff:E3}");
        }
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void Flux_fp8_file_every_float8_tensor_dequantizes_as_loading_does()
    {
        using var file = TensorFiles.Open(FluxGolden.SingleFile(FluxGolden.Fp8File));
        int count = 0;
        foreach (var header in file.Headers)
        {
            using var compact = file.LoadCompact(header.Name);
            Assert.Equal(header.StoredType == "F8_E4M3", compact is not null);
            if (compact is null) continue;
            Assert.Equal(header.ElementCount, compact.ByteCount);
            using var loaded = file.Load(header.Name);
            using var values = compact.Dequantize(float32);
            Assert.True(Exactly.Same(values, loaded), header.Name);
            using var bf16 = loaded.to(bfloat16);
            using var compactBf16 = compact.Dequantize(bfloat16);
            Assert.True(Exactly.Same(compactBf16, bf16), header.Name);
            count++;
        }
        Assert.True(count > 0);
    }

    /// <summary>The compact transformer's first call on diffusers' inputs is the decoded transformer's, bit for bit, in
    /// float32 and bfloat16; both against the golden output too.</summary>
    [Theory]
    [InlineData(FluxGolden.Fp8File, Fp8Case, ScalarType.Float32)]
    [InlineData(FluxGolden.GgufFile, GgufCase, ScalarType.Float32)]
    [InlineData(FluxGolden.Fp8File, Fp8Case, ScalarType.BFloat16)]
    [InlineData(FluxGolden.GgufFile, GgufCase, ScalarType.BFloat16)]
    public void Compact_flux_transformer_forward_equals_the_decoded_one(string file, string golden, ScalarType dtype)
    {
        var reference = Golden.Load(FluxGolden.File("tiny-flux-dev", golden));
        using var _ = inference_mode();
        using var compact = (FluxTransformer2DModel)Flux(file, compact: true, dtype).Module;
        using var decoded = (FluxTransformer2DModel)Flux(file, compact: false, dtype).Module;
        Assert.NotEmpty(CompactLayers.Of(compact).Values);
        Assert.Empty(CompactLayers.Of(decoded).Values);
        var input = FluxGolden.FirstCall(reference);
        var cast = input with
        {
            HiddenStates = input.HiddenStates.to(dtype), EncoderHiddenStates = input.EncoderHiddenStates.to(dtype),
            PooledProjections = input.PooledProjections.to(dtype),
        };
        using var a = compact.Forward(cast);
        using var b = decoded.Forward(cast);
        double diff = Golden.MaxAbsDiff(a.to(float32), b.to(float32));
        double golden0 = Golden.MaxAbsDiff(a.to(float32), reference["denoiser_output_call0"]);
        output.WriteLine($"{file} {dtype}: compact vs decoded max |diff| {diff:E3}; compact vs diffusers {golden0:E3} " +
            $"({CompactLayers.Of(compact).Count} compact layers)");
        Assert.Equal(0, diff);
        if (dtype == ScalarType.Float32) Golden.AssertClose(a, reference["denoiser_output_call0"], what: "compact call 0 output");
    }

    /// <summary>Counted in tensor bytes (not RSS): every compact layer holds exactly its stored bytes (from the file's header:
    /// one byte a float8 value, 34 bytes a Q8_0 block of 32), every other parameter its float size; and every large
    /// linear weight of the blocks that the file stores compactly is held compactly.</summary>
    [Theory]
    [InlineData(FluxGolden.Fp8File)]
    [InlineData(FluxGolden.GgufFile)]
    public void Resident_bytes_of_a_compact_flux_transformer_follow_the_file(string file)
    {
        using var weights = new Disposing(Flux(file, compact: true, ScalarType.BFloat16));
        using var decoded = new Disposing(Flux(file, compact: false, ScalarType.BFloat16));
        var module = weights.Value.Module;
        using var stored = TensorFiles.Open(FluxGolden.SingleFile(file));
        var storedType = stored.Headers.ToDictionary(h => h.Name, h => h.StoredType!);

        var layers = CompactLayers.Of(module);
        long expected = CompactLayers.ExpectedBytes(module, owner => layers[owner].Compact!.StoredType.StartsWith("F8_", StringComparison.Ordinal)
            ? (1, 1) : GgufQuantization.BlockOf(Enum.Parse<GgmlType>(layers[owner].Compact!.StoredType)));
        var blockLinears = module.named_parameters()
            .Where(p => (p.name.StartsWith("transformer_blocks.", StringComparison.Ordinal) || p.name.StartsWith("single_transformer_blocks.", StringComparison.Ordinal))
                && p.name.EndsWith(".weight", StringComparison.Ordinal) && p.parameter.dim() == 2)
            .Select(p => p.name[..^".weight".Length]).ToList();
        long blockWeights = blockLinears.Count, blockCompact = blockLinears.Count(layers.ContainsKey);
        Assert.Equal(expected, weights.Value.Bytes);
        Assert.Equal(expected, Linear.ResidentBytesOf(module));
        // Every block linear weight of these files is float8 / Q8_0 (their headers say so): all of them held compact.
        Assert.Contains(storedType.Values, t => t is "F8_E4M3" or "Q8_0");
        Assert.Equal(blockWeights, blockCompact);
        double ratio = (double)weights.Value.Bytes / decoded.Value.Bytes;
        output.WriteLine($"{file}: resident {weights.Value.Bytes:N0} bytes compact vs {decoded.Value.Bytes:N0} decoded to bfloat16 ({ratio:P0}); " +
            $"{blockCompact} of {blockWeights} block linear weights compact");
        Assert.True(weights.Value.Bytes < decoded.Value.Bytes);
    }

    /// <summary>A float8 T5 (ComfyUI's t5xxl_fp8_e4m3fn layout: 2-D weights F8_E4M3, others F32) loads compact: same
    /// hidden states as decoding it at load, its linear weights at one byte a value.</summary>
    [Fact]
    public void A_float8_t5_stays_compact_and_encodes_as_the_decoded_one()
    {
        using var dir = new TempDir();
        string source = Golden.Path("v3", "models", "tiny-sd3", "text_encoder_3");
        File.Copy(Path.Combine(source, "config.json"), dir.File("config.json"));
        using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
        {
            var tensors = file.Tensors.Keys.ToDictionary(k => k, file.Load);
            Float8FileWriter.Write(dir.File("model.safetensors"), tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        using var compact = new Disposing(T5EncoderModel.Weights(dir.Path, new LoadOptions()));
        using var decoded = new Disposing(T5EncoderModel.Weights(dir.Path, new LoadOptions { CompactWeights = false }));
        var layers = CompactLayers.Of(compact.Value.Module).Values;
        Assert.NotEmpty(layers);
        Assert.All(layers, l => Assert.Equal("F8_E4M3", l.Compact!.StoredType));
        using var _ = inference_mode();
        var config = ((T5EncoderModel)compact.Value.Module).Config;
        using var ids = randint(0, config.VocabSize, [2, 9], generator: new Generator(7));
        using var a = ((T5EncoderModel)compact.Value.Module).call(ids);
        using var b = ((T5EncoderModel)decoded.Value.Module).call(ids);
        double diff = Golden.MaxAbsDiff(a, b);
        long saved = layers.Sum(l => l.Compact!.ElementCount * 3); // float32 4 bytes → 1
        output.WriteLine($"float8 T5: compact vs decoded max |diff| {diff:E3}; resident {compact.Value.Bytes:N0} vs {decoded.Value.Bytes:N0} bytes");
        Assert.Equal(0, diff);
        Assert.Equal(decoded.Value.Bytes - saved, compact.Value.Bytes);
    }

    /// <summary>A LoRA on compact layers is a side branch (y = W x + s · up(down x)): the same output as merging it into the
    /// decoded weights, to float rounding; the compact weights untouched and the output back to the base one after.</summary>
    [Fact]
    public void A_lora_on_compact_layers_is_a_side_branch_equal_to_the_merge()
    {
        using var dir = new TempDir();
        string loraPath = dir.File("flux_lora.safetensors");
        const int rank = 4;
        var generator = new Generator(11);
        // kohya names of two compact layers: a double block's to_q and a single block's proj_out.
        var targets = new[] { ("transformer_blocks_0_attn_to_q", "transformer_blocks.0.attn.to_q"), ("single_transformer_blocks_0_proj_out", "single_transformer_blocks.0.proj_out") };
        using var compact = (FluxTransformer2DModel)Flux(FluxGolden.GgufFile, compact: true).Module;
        using var decoded = (FluxTransformer2DModel)Flux(FluxGolden.GgufFile, compact: false).Module;
        var shapes = compact.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (kohya, dotted) in targets)
        {
            var shape = shapes[dotted + ".weight"]; // [out, in]
            tensors[$"lora_unet_{kohya}.lora_down.weight"] = randn([rank, shape[1]], generator: generator) * 0.1;
            tensors[$"lora_unet_{kohya}.lora_up.weight"] = randn([shape[0], rank], generator: generator) * 0.1;
            tensors[$"lora_unet_{kohya}.alpha"] = tensor(2.0f);
        }
        SafetensorsWriter.Save(loraPath, tensors);
        using var lora = LoraFile.Load(loraPath);
        var golden = Golden.Load(FluxGolden.File("tiny-flux-dev", GgufCase));
        var input = FluxGolden.FirstCall(golden);
        using var none = nn.Sequential(); // no text encoder here

        using var _ = inference_mode();
        int compactLayers = CompactLayers.Of(compact).Count;
        using var before = compact.Forward(input);
        Tensor branched, merged;
        using (var branch = LoraMerger.Apply([new LoraWeight(lora, 0.8)], compact, none))
        {
            Assert.Equal(2, branch.BranchCount);
            Assert.Equal(0, branch.PatchedCount);
            branched = compact.Forward(input);
        }
        using (var merge = LoraMerger.Apply([new LoraWeight(lora, 0.8)], decoded, none))
        {
            Assert.Equal(2, merge.PatchedCount);
            merged = decoded.Forward(input);
        }
        using var after = compact.Forward(input);
        double diff = Golden.MaxAbsDiff(branched, merged), moved = Golden.MaxAbsDiff(branched, before);
        output.WriteLine($"LoRA side branch vs merge max |diff| {diff:E3} (the LoRA moves the output by {moved:E3})");
        Assert.True(moved > 1e-3, "the LoRA changed nothing");
        Golden.AssertClose(branched, merged, what: "side branch vs merge");
        Assert.Equal(0, Golden.MaxAbsDiff(after, before));
        Assert.Equal(compactLayers, CompactLayers.Of(compact).Count); // still compact: nothing was merged into them
        branched.Dispose();
        merged.Dispose();
        foreach (var t in tensors.Values) t.Dispose();
    }

    sealed class Disposing(ComponentWeights weights) : IDisposable
    {
        public ComponentWeights Value { get; } = weights;
        public void Dispose() => Value.Module.Dispose();
    }
}
