using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>Every fast path the tuner may pick computes the same thing: the kernels agree, and the golden UNet and VAE
/// cases hold under each layout and attention kernel.</summary>
public class AttentionKernelTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(2, 8, 300, 77, 40)]
    [InlineData(1, 2, 4096, 4096, 8)] // more scores than one slice holds: several slices
    [InlineData(2, 5, 64, 64, 64)]
    public void Sliced_matmul_attention_matches_sdpa(int batch, int heads, int queries, int keys, int headDim)
    {
        using var _ = inference_mode();
        using var random = new Generator(7);
        using var q = randn([batch, heads, queries, headDim], generator: random);
        using var k = randn([batch, heads, keys, headDim], generator: random);
        using var v = randn([batch, heads, keys, headDim], generator: random);
        using var sdpa = AttentionKernels.Attend(AttentionKernel.Sdpa, q, k, v);
        using var sliced = AttentionKernels.Attend(AttentionKernel.SlicedMatmul, q, k, v);
        Assert.Equal(sdpa.shape, sliced.shape);
        Golden.AssertClose(sliced, sdpa, rel: 1e-5, abs: 1e-6, what: "sliced vs sdpa");
    }

    [Fact]
    public void Sliced_matmul_attention_in_bfloat16_stays_close_to_float32()
    {
        using var _ = inference_mode();
        using var random = new Generator(7);
        using var q = randn([1, 2, 256, 40], generator: random);
        using var k = randn([1, 2, 77, 40], generator: random);
        using var v = randn([1, 2, 77, 40], generator: random);
        using var exact = AttentionKernels.Attend(AttentionKernel.Sdpa, q, k, v);
        using var bf16 = AttentionKernels.Attend(AttentionKernel.SlicedMatmul, q.to(ScalarType.BFloat16), k.to(ScalarType.BFloat16), v.to(ScalarType.BFloat16));
        Assert.Equal(ScalarType.BFloat16, bf16.dtype);
        Assert.True(Golden.MaxAbsDiff(bf16.to(ScalarType.Float32), exact) < 0.05);
    }

    public static IEnumerable<object[]> UNetCases() =>
        from c in new[] { ("tiny-sd", "unet/tiny-sd_square.safetensors"), ("small-sd15", "unet/small-sd15_nonsquare.safetensors"), ("tiny-sd2", "sd2/unet_tiny-sd2.safetensors") }
        from channelsLast in new[] { false, true }
        from kernel in new[] { AttentionKernel.Sdpa, AttentionKernel.SlicedMatmul }
        select new object[] { c.Item1, c.Item2, channelsLast, kernel };

    [Theory]
    [MemberData(nameof(UNetCases))]
    public void UNet_matches_diffusers_on_every_fast_path(string model, string goldenFile, bool channelsLast, AttentionKernel kernel)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        var options = new LoadOptions { ChannelsLast = channelsLast, Attention = kernel };
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", model, "unet"), options);
        double worst = 0;
        foreach (var (key, t) in new[] { ("out_t999", tensor(999L)), ("out_t500_5", tensor(500.5f)), ("out_t1", tensor(1L)) })
            worst = Math.Max(worst, Golden.AssertClose(unet.Forward(golden["sample"], t, golden["encoder_hidden_states"]), golden[key], what: key));
        output.WriteLine($"{goldenFile} channels-last {channelsLast}, {kernel}: max |diff| {worst:E3}");
    }

    [Theory]
    [InlineData("small-sd15", "square", false)]
    [InlineData("small-sd15", "square", true)]
    [InlineData("small-sd15", "nonsquare", false)]
    public void Vae_matches_diffusers_in_either_layout(string model, string shape, bool channelsLast)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("vae", $"{model}_{shape}.safetensors");
        using var vae = ComponentLoader.LoadVae(Golden.Path("models", model, "vae"), new LoadOptions { ChannelsLast = channelsLast });
        Golden.AssertClose(vae.Decode(golden["decode_in_z"]), golden["decode_out"], what: "decode");
        using var posterior = vae.Encode(golden["encode_in_image"]);
        Golden.AssertClose(posterior.Mean, golden["encode_mean"], what: "mean");
    }
}
