using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tests.Flux;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 23 items 4 and 7: ComfyUI's scaled float8 files (a <c>scaled_fp8</c> marker, <c>X.scale_weight</c> beside
/// each float8 <c>X.weight</c>: W = W₈·scale) stay compact: the codes at one byte a value with their per-tensor scale,
/// decoded per call to the values the load-time decode gives, bit for bit. Golden README
/// "flux/tiny-flux-dev/single_file/" (the float8 file and its fp8_seed19_4steps case) and "sd3/" (tiny-sd3's T5 and its
/// t5_encoder.safetensors).</summary>
public class ScaledFloat8CompactTests(ITestOutputHelper output)
{
    static FluxTransformer2DConfig FluxConfig => FluxTransformer2DConfig.From(JsonConfig.Load(
        Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer", "config.json")));

    /// <summary>The golden float8 Flux file with a marker and a scale beside each 2-D weight (float8 codes unchanged: the
    /// values are exact e4m3 numbers, so they encode to the same codes).</summary>
    static string WriteScaledFlux(TempDir dir, Func<string, float> scale)
    {
        using var fp8 = SafetensorsFile.Open(FluxGolden.SingleFile(FluxGolden.Fp8File));
        var tensors = fp8.Tensors.Keys.ToDictionary(k => k, k => fp8.Load(k), StringComparer.Ordinal);
        foreach (var name in tensors.Keys.Where(k => tensors[k].dim() == 2).ToList())
            tensors[name[..^".weight".Length] + ".scale_weight"] = tensor(scale(name));
        tensors[ScaledFloat8File.Marker] = zeros(0);
        string path = dir.File("flux1-dev-fp8-scaled.safetensors");
        Float8FileWriter.Write(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
        return path;
    }

    /// <summary>A scale that is not a power of two (its product rounds), different per tensor.</summary>
    static float OddScale(string name) => 0.37f + (name.GetHashCode(StringComparison.Ordinal) & 0xFF) / 1024f;

    [Fact]
    public void Scaled_flux_transformer_stays_compact_with_its_scales_and_computes_as_the_load_time_decode()
    {
        using var dir = new TempDir();
        string path = WriteScaledFlux(dir, OddScale);
        var golden = Golden.Load(FluxGolden.File("tiny-flux-dev", "single_file/fp8_seed19_4steps"));
        using var _ = inference_mode();
        var compactWeights = ComponentLoader.FluxTransformerFile(path, new LoadOptions(), FluxConfig);
        var decodedWeights = ComponentLoader.FluxTransformerFile(path, new LoadOptions { CompactWeights = false }, FluxConfig);
        using var compact = (FluxTransformer2DModel)compactWeights.Module;
        using var decoded = (FluxTransformer2DModel)decodedWeights.Module;
        var layers = CompactLayers.Of(compact);
        Assert.NotEmpty(layers);
        Assert.All(layers.Values, l => Assert.NotNull(l.Compact!.Scale));
        Assert.Contains("transformer_blocks.0.attn.to_q", layers.Keys); // a part of the fused qkv, scaled before the split
        Assert.Contains("norm_out.linear", layers.Keys);                 // the final modulation, halves swapped

        var parameters = decoded.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, layer) in layers)
        {
            using var w = layer.DequantizedWeight();
            Assert.True(Exactly.Same(w, parameters[name + ".weight"]), $"{name}: compact differs from the load-time decode");
        }
        // Independently of the loaders: q of double block 0 is the first third of the stored codes, times its scale.
        using (var raw = SafetensorsFile.Open(path))
        using (var stored = raw.Load("double_blocks.0.img_attn.qkv.weight"))
        using (var scale = tensor(OddScale("double_blocks.0.img_attn.qkv.weight")))
        using (var q = layers["transformer_blocks.0.attn.to_q"].DequantizedWeight())
            Assert.True(Exactly.Same(q, stored.narrow(0, 0, q.shape[0]).mul(scale)), "to_q is not W₈·scale");

        var input = FluxGolden.FirstCall(golden);
        using var a = compact.Forward(input);
        using var b = decoded.Forward(input);
        double diff = Golden.MaxAbsDiff(a, b);
        long expected = CompactLayers.ExpectedBytes(compact, _ => 1);
        output.WriteLine($"scaled float8 Flux: compact vs load-time decode max |diff| {diff:E3}; {layers.Count} compact layers; " +
            $"resident {compactWeights.Bytes:N0} bytes vs {decodedWeights.Bytes:N0} decoded");
        Assert.Equal(0, diff);
        Assert.Equal(expected, compactWeights.Bytes);
        foreach (var t in golden.Values) t.Dispose();
    }

    /// <summary>With every scale 1 the scaled file is the golden float8 file: the compact transformer's first call is
    /// diffusers' (fp8_seed19_4steps, denoiser_output_call0).</summary>
    [Fact]
    public void Scaled_flux_transformer_with_unit_scales_matches_the_golden_fp8_case()
    {
        using var dir = new TempDir();
        string path = WriteScaledFlux(dir, _ => 1f);
        var golden = Golden.Load(FluxGolden.File("tiny-flux-dev", "single_file/fp8_seed19_4steps"));
        using var _ = inference_mode();
        using var compact = (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(path, new LoadOptions(), FluxConfig).Module;
        Assert.NotEmpty(CompactLayers.Of(compact));
        using var result = compact.Forward(FluxGolden.FirstCall(golden));
        double diff = Golden.AssertClose(result, golden["denoiser_output_call0"], what: "scaled compact call 0");
        output.WriteLine($"scaled float8 Flux (scales 1), compact: call 0 max |diff| to diffusers {diff:E3}");
        foreach (var t in golden.Values) t.Dispose();
    }

    /// <summary>tiny-sd3's T5 as ComfyUI's t5xxl_fp8_e4m3fn_scaled.safetensors is made: each 2-D weight divided by
    /// s = max|W| / 448 (e4m3fn's largest), stored as float8 with s as its scale_weight; the marker.</summary>
    static void WriteScaledT5(string path, string? withoutScale = null)
    {
        using var file = SafetensorsFile.Open(Path.Combine(Golden.Path("v3", "models", "tiny-sd3", "text_encoder_3"), "model.safetensors"));
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var name in file.Tensors.Keys)
        {
            var w = file.Load(name);
            if (w.dim() != 2) { tensors[name] = w; continue; }
            float s = (float)(Golden.MaxAbs(w) / 448);
            tensors[name] = w.div(s);
            w.Dispose();
            if (name != withoutScale) tensors[name[..^".weight".Length] + ".scale_weight"] = tensor(s);
        }
        tensors[ScaledFloat8File.Marker] = zeros(0);
        Float8FileWriter.Write(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }

    [Fact]
    public void Scaled_float8_t5_loads_compact_with_the_values_of_a_decode()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Golden.Path("v3", "models", "tiny-sd3", "text_encoder_3"), "config.json"), dir.File("config.json"));
        WriteScaledT5(dir.File("model.safetensors"));
        var r = CompactT5Comparison.Of(dir.Path, new LoadOptions(), "F8_E4M3", bytesPerValue: 1, checkLayer: l => Assert.NotNull(l.Compact!.Scale));
        output.WriteLine($"scaled float8 T5: compact vs load-time decode max |diff| {r.Diff:E3}; vs transformers (float32 weights) {r.ToGolden:E3} " +
            $"({r.ToGolden / r.Scale:E2} of max |expected|: float8 rounding); resident {r.CompactBytes:N0} vs {r.DecodedBytes:N0} bytes");
        Assert.Equal(0, r.Diff);
        Assert.True(r.ToGolden <= 0.25 * r.Scale, $"{r.ToGolden:E3} from transformers: the scales were not applied?");
        Assert.Equal(r.ExpectedBytes, r.CompactBytes);
    }

    /// <summary>As ComfyUI and stable-diffusion.cpp users give it: --text-encoder t5xxl_fp8_e4m3fn_scaled.safetensors
    /// beside an SD3 single file (the component path, <see cref="Sd3SingleFileLoader"/>): compact, as the folder load.</summary>
    [Fact]
    public void Scaled_float8_t5_file_beside_an_sd3_single_file_loads_compact()
    {
        using var dir = new TempDir();
        string file = dir.File("sd3_medium.safetensors"), t5 = dir.File("t5xxl_fp8_e4m3fn_scaled.safetensors");
        Sd3FileWriter.Write("tiny-sd3", file, t5: false);
        WriteScaledT5(t5);
        File.Copy(Path.Combine(Golden.Path("v3", "models", "tiny-sd3", "tokenizer_3"), "spiece.model"), dir.File("spiece.model"));
        var golden = Golden.Load("v3", "sd3", "tiny-sd3", "t5_encoder.safetensors");
        var options = new SingleFileOptions { DiffusersConfig = Golden.Path("v3", "models", "tiny-sd3"), TextEncoders = [t5] };
        var loaded = Sd3SingleFileLoader.Load(file, new LoadOptions { ChannelsLast = false }, options);
        var reference = Sd3SingleFileLoader.Load(file, new LoadOptions { ChannelsLast = false, CompactWeights = false }, options);
        try
        {
            using var _ = inference_mode();
            var encoder = (T5EncoderModel)loaded.TextEncoder3!.Module;
            Assert.Equal(encoder.Config.NumLayers * 7, CompactLayers.Of(encoder).Count);
            using var a = encoder.call(golden["input_ids"]);
            using var b = ((T5EncoderModel)reference.TextEncoder3!.Module).call(golden["input_ids"]);
            output.WriteLine($"scaled float8 T5 file: compact vs load-time decode max |diff| {Golden.MaxAbsDiff(a, b):E3}");
            Assert.Equal(0, Golden.MaxAbsDiff(a, b));
        }
        finally
        {
            foreach (var w in loaded.All.Concat(reference.All)) w.Module.Dispose();
            foreach (var t in golden.Values) t.Dispose();
        }
    }

    [Fact]
    public void A_scaled_t5_whose_scale_is_missing_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(Golden.Path("v3", "models", "tiny-sd3", "text_encoder_3"), "config.json"), dir.File("config.json"));
        WriteScaledT5(dir.File("model.safetensors"), withoutScale: "encoder.block.1.layer.1.DenseReluDense.wo.weight");
        var e = Assert.Throws<InvalidDataException>(() => T5EncoderModel.Weights(dir.Path, new LoadOptions()));
        output.WriteLine(e.Message);
        Assert.Contains("'encoder.block.1.layer.1.DenseReluDense.wo.scale_weight' is missing", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
