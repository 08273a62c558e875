using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>bf16 compute is not bit-faithful; this measures how far its images are from diffusers' fp32 ones.</summary>
public class Bfloat16FidelityTests(ITestOutputHelper output)
{
    static readonly Dictionary<string, StableDiffusionPipeline> Pipelines = new();

    static StableDiffusionPipeline Pipeline(string modelPath)
    {
        lock (Pipelines)
        {
            if (!Pipelines.TryGetValue(modelPath, out var p))
                Pipelines[modelPath] = p = StableDiffusionPipeline.FromPretrained(Golden.Path(modelPath), new LoadOptions { DType = ScalarType.BFloat16 });
            return p;
        }
    }

    [Theory]
    [MemberData(nameof(PipelineParityTests.Cases), MemberType = typeof(PipelineParityTests))]
    public void Bfloat16_image_stays_within_visually_lossless_psnr(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'))["image_uint8"].to(ScalarType.Float32);
        using var _ = inference_mode();
        using var result = Pipeline(info.GetProperty("model").GetString()!).Generate(PipelineParityTests.Options(info));
        using var bytes = ImageTensors.ToUInt8(result.ImageFloat).to(ScalarType.Float32);
        double mse = (bytes - golden).pow(2).mean().item<float>();
        double psnr = mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(255.0 * 255.0 / mse);
        output.WriteLine($"{file}: bf16 vs diffusers fp32 PSNR {psnr:F1} dB");
        // 40 dB: differences of about one level per pixel on average; JPEG at high quality sits near 40 dB.
        Assert.True(psnr >= 40, $"bf16 image PSNR {psnr:F1} dB");
        Assert.True(psnr < 100, "bf16 produced the fp32 image exactly: is the bf16 path running?");
    }
}
