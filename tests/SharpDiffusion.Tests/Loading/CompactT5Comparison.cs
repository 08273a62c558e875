using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.T5;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>
/// A T5 folder loaded twice, its linear weights kept compact and decoded at load, both run on golden
/// sd3/tiny-sd3/t5_encoder.safetensors's input_ids: how far apart they are, how far from transformers' float32
/// last_hidden_state, and the bytes each holds. Checks on the way that every linear weight of every block (q, k, v, o,
/// wi_0, wi_1, wo) is compact, held as the stored type given.
/// </summary>
sealed record CompactT5Comparison(double Diff, double ToGolden, double Scale, long CompactBytes, long DecodedBytes, long ExpectedBytes)
{
    /// <param name="bytesPerValue">What a compact weight should hold a value in (the file's type).</param>
    /// <param name="checkLayer">More checks of each compact layer (its scale, ...).</param>
    public static CompactT5Comparison Of(string folder, LoadOptions options, string storedType, int bytesPerValue, Action<SharpDiffusion.Models.Linear>? checkLayer = null)
    {
        var golden = Golden.Load("v3", "sd3", "tiny-sd3", "t5_encoder.safetensors");
        try
        {
            using var _ = inference_mode();
            var compactWeights = T5EncoderModel.Weights(folder, options);
            var decodedWeights = T5EncoderModel.Weights(folder, options with { CompactWeights = false });
            using var compact = (T5EncoderModel)compactWeights.Module;
            using var decoded = (T5EncoderModel)decodedWeights.Module;
            var layers = CompactLayers.Of(compact);
            Assert.Equal(compact.Config.NumLayers * 7, layers.Count); // q, k, v, o, wi_0, wi_1, wo per block
            Assert.All(layers.Values, l => Assert.Equal(storedType, l.Compact!.StoredType));
            if (checkLayer is not null) Assert.All(layers.Values, checkLayer);

            using var a = compact.call(golden["input_ids"]);
            using var b = decoded.call(golden["input_ids"]);
            return new CompactT5Comparison(Golden.MaxAbsDiff(a, b), Golden.MaxAbsDiff(a, golden["last_hidden_state"]), Golden.MaxAbs(golden["last_hidden_state"]),
                compactWeights.Bytes, decodedWeights.Bytes, CompactLayers.ExpectedBytes(compact, _ => bytesPerValue));
        }
        finally
        {
            foreach (var t in golden.Values) t.Dispose();
        }
    }
}
