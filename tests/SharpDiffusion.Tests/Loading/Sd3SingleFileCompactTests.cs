using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 21 items 5 and 6: a Stability SD3/SD3.5 single file (<see cref="Sd3FileWriter"/>: fused q/k/v, the final
/// adaLN halves in the original order) keeps its float8 and half weights compact through <see cref="TensorPartsFile"/>,
/// parts included, with the same values as decoding at load; the transformer's first call on golden
/// sd3/&lt;model&gt;/transformer.safetensors's inputs is the decoded one's bit for bit.</summary>
public class Sd3SingleFileCompactTests(ITestOutputHelper output)
{
    const string TransformerPrefix = "model.diffusion_model.";

    /// <summary>The golden folder as one Stability file (text encoders inside), then re-stored: "fp8" every 2-D tensor as
    /// float8 (others float32), "bf16" the transformer's 2-D weights as bfloat16 (others float32).</summary>
    static string Write(TempDir dir, string model, string format)
    {
        string full = dir.File("sd3_full.safetensors"), path = dir.File($"sd3_{format}.safetensors");
        Sd3FileWriter.Write(model, full);
        using (var file = SafetensorsFile.Open(full))
        {
            var tensors = file.Tensors.Keys.ToDictionary(k => k, file.Load, StringComparer.Ordinal);
            if (format == "fp8") Float8FileWriter.Write(path, tensors);
            else
            {
                var mixed = tensors.ToDictionary(kv => kv.Key, kv => kv.Key.StartsWith(TransformerPrefix, StringComparison.Ordinal) && kv.Value.dim() == 2 ? kv.Value.to(bfloat16) : kv.Value);
                SafetensorsWriter.Save(path, mixed);
                foreach (var t in mixed.Values) t.Dispose();
            }
            foreach (var t in tensors.Values) t.Dispose();
        }
        File.Delete(full);
        return path;
    }

    [Theory]
    [InlineData("tiny-sd3", "bf16")]
    [InlineData("tiny-sd35", "bf16")]
    [InlineData("tiny-sd3", "fp8")]
    [InlineData("tiny-sd35", "fp8")]
    public void Single_file_transformer_stays_compact_and_computes_as_the_decoded_one(string model, string format)
    {
        using var dir = new TempDir();
        string path = Write(dir, model, format);
        var options = new SingleFileOptions { DiffusersConfig = Golden.Path("v3", "models", model) };
        var loaded = Sd3SingleFileLoader.Load(path, new LoadOptions { ChannelsLast = false }, options);
        var reference = Sd3SingleFileLoader.Load(path, new LoadOptions { ChannelsLast = false, CompactWeights = false }, options);
        var golden = Golden.Load("v3", "sd3", model, "transformer.safetensors");
        try
        {
            using var _ = inference_mode();
            var compact = (SD3Transformer2DModel)loaded.Transformer.Module;
            var decoded = (SD3Transformer2DModel)reference.Transformer.Module;
            var layers = CompactLayers.Of(compact);
            Assert.Empty(CompactLayers.Of(decoded));
            string stored = format == "fp8" ? "F8_E4M3" : "BF16";
            Assert.All(layers.Values, l => Assert.Equal(stored, l.Compact!.StoredType));
            // Thirds of a fused qkv, the context side's, and the final adaLN with its halves swapped: parts stay compact.
            Assert.Contains("transformer_blocks.0.attn.to_q", layers.Keys);
            Assert.Contains("transformer_blocks.0.attn.add_v_proj", layers.Keys);
            Assert.Contains("norm_out.linear", layers.Keys);
            // Every linear weight of the blocks is held compact (both formats store all of them compactly).
            int blockLinears = CompactLayers.CountCompactCapable(compact, "transformer_blocks.");
            Assert.Equal(blockLinears, layers.Keys.Count(n => n.StartsWith("transformer_blocks.", StringComparison.Ordinal)));

            var parameters = decoded.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, layer) in layers)
            {
                using var w = layer.DequantizedWeight();
                Assert.True(Exactly.Same(w, parameters[name + ".weight"]), $"{name}: compact differs from the load-time decode");
            }
            var input = new SD3Transformer2DInput(golden["hidden_states"], golden["timestep"], golden["encoder_hidden_states"], golden["pooled_projections"]);
            using var a = compact.Forward(input);
            using var b = decoded.Forward(input);
            double diff = Golden.MaxAbsDiff(a, b), toGolden = Golden.MaxAbsDiff(a, golden["out"]), scale = Golden.MaxAbs(golden["out"]);
            long expected = CompactLayers.ExpectedBytes(compact, _ => format == "fp8" ? 1 : 2);
            output.WriteLine($"{model} {format} single file: compact vs decoded max |diff| {diff:E3}; vs diffusers (float32 weights) {toGolden:E3} " +
                $"({toGolden / scale:E2} of max |expected|); {layers.Count} compact layers ({blockLinears} block linears); " +
                $"transformer resident {loaded.Transformer.Bytes:N0} bytes vs {reference.Transformer.Bytes:N0} decoded");
            Assert.Equal(0, diff);
            if (format == "bf16") Assert.True(toGolden <= 0.02 * scale, $"{toGolden:E3} from diffusers is more than bfloat16 weight rounding");
            Assert.Equal(expected, loaded.Transformer.Bytes);
            Assert.True(loaded.Transformer.Bytes < reference.Transformer.Bytes);

            // The float8 file's T5 inside (text_encoders.t5xxl.transformer.*) is compact too.
            if (format == "fp8")
                Assert.Equal(((T5EncoderModel)loaded.TextEncoder3!.Module).Config.NumLayers * 7, CompactLayers.Of(loaded.TextEncoder3.Module).Count);
        }
        finally
        {
            foreach (var w in loaded.All.Concat(reference.All)) w.Module.Dispose();
            foreach (var t in golden.Values) t.Dispose();
        }
    }
}
