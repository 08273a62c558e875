using SharpDiffusion.Configuration;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Diagnostics;

/// <summary>The bench's FLOP counts: convs and linears by their outputs, attention as two matmuls of 2·B·N·M·C each.</summary>
public class FlopCounterTests
{
    [Fact]
    public void Counts_a_cross_attention_as_its_projections_and_two_matmuls()
    {
        using var _ = no_grad();
        using var attention = new Attention(queryDim: 8, crossAttentionDim: 6, heads: 2, headDim: 4);
        using var x = randn(2, 5, 8);       // [B, N, C]
        using var context = randn(2, 3, 6); // [B, M, Cc]
        using (var counter = new FlopCounter(attention))
        {
            attention.call(x, context).Dispose();
            Assert.Equal(0, counter.Conv);
            // to_q 2·(2·5·8)·8, to_k and to_v 2·(2·3·8)·6 each, to_out 2·(2·5·8)·8.
            Assert.Equal(1280 + 576 + 576 + 1280, counter.Linear);
            // q·kᵀ and softmax·v: 2·B·H·N·M·d each = 4·2·2·5·3·4.
            Assert.Equal(960, counter.Attention);

            counter.Dispose(); // the hooks are gone: nothing more is counted
            attention.call(x, context).Dispose();
            Assert.Equal(960, counter.Attention);
            Assert.Equal(3712, counter.Linear);
        }
    }

    [Fact]
    public void Counts_every_attention_of_a_small_unet()
    {
        using var _ = no_grad();
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.From(JsonConfig.Parse("""
            {"block_out_channels": [8, 16], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1, "attention_head_dim": 2,
             "cross_attention_dim": 6, "norm_num_groups": 4, "in_channels": 4, "out_channels": 4}
            """)));
        using var latents = randn(2, 4, 8, 8);
        using var context = randn(2, 3, 6);
        using var counter = new FlopCounter(unet);
        unet.Forward(latents, 500f, context).Dispose();

        // A transformer over N tokens of C channels: self-attention 4·B·N·N·C, cross-attention 4·B·N·M·C (M = 3).
        static long Transformer(long n, long c) => 4 * 2 * n * n * c + 4 * 2 * n * 3 * c;
        long expected = Transformer(64, 8)        // down block 0: 8×8 tokens, 8 channels, one layer
                      + Transformer(16, 16)       // mid block: 4×4 tokens, 16 channels
                      + 2 * Transformer(64, 8);   // up block 1: 8×8 tokens, layers_per_block + 1 layers
        Assert.Equal(expected, counter.Attention);
        Assert.True(counter.Conv > 0 && counter.Linear > 0);
    }

    [Fact]
    public void Counts_every_attention_of_the_tiny_text_encoder_and_vae_decoder()
    {
        using var _ = no_grad();
        static JsonConfig Config(string component) => JsonConfig.Load(Golden.Path("models", "tiny-sd", component, "config.json"));
        using var textEncoder = new ClipTextModel(ClipTextConfig.From(Config("text_encoder")));
        using var vae = new AutoencoderKL(AutoencoderKLConfig.From(Config("vae")));
        using var ids = randint(0, 1000, [2, 77], dtype: ScalarType.Int64);
        using var latents = randn(1, 4, 8, 8);
        using var counter = new FlopCounter(textEncoder, vae);

        textEncoder.call(ids).Dispose();
        // 5 layers of causal self-attention over 77 tokens of 32 channels (the mask does not change the matmuls).
        Assert.Equal(5 * 4L * 2 * 77 * 77 * 32, counter.Attention);
        long afterText = counter.Attention;
        vae.Decode(latents).Dispose();
        // The decoder's mid block: one head over the 8×8 latent positions at 64 channels.
        Assert.Equal(4L * 1 * 64 * 64 * 64, counter.Attention - afterText);
    }

    [Fact]
    public void Two_counters_on_two_models_in_two_threads_are_independent()
    {
        // Both counters exist while both models run: a process-wide counter would give one of them both models' work.
        using var small = new Attention(queryDim: 8, crossAttentionDim: null, heads: 2, headDim: 4);
        using var large = new Attention(queryDim: 16, crossAttentionDim: null, heads: 4, headDim: 4);
        using var smallCounter = new FlopCounter(small);
        using var largeCounter = new FlopCounter(large);
        using var start = new Barrier(2);
        const int runs = 20;
        void Run(Attention model, int channels)
        {
            using var _ = no_grad();
            start.SignalAndWait();
            for (int i = 0; i < runs; i++)
            {
                using var x = randn(1, 6, channels);
                model.call(x, null).Dispose();
            }
        }
        var threads = new[] { new Thread(() => Run(small, 8)), new Thread(() => Run(large, 16)) };
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        Assert.Equal(runs * 4L * 1 * 6 * 6 * 8, smallCounter.Attention);   // 4·B·N·N·C per forward
        Assert.Equal(runs * 4L * 1 * 6 * 6 * 16, largeCounter.Attention);
        Assert.Equal(runs * 4 * 2L * 6 * 8 * 8, smallCounter.Linear);       // four projections C → C
        Assert.Equal(runs * 4 * 2L * 6 * 16 * 16, largeCounter.Linear);
    }
}
