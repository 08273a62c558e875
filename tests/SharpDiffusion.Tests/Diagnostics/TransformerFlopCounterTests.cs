using SharpDiffusion.Configuration;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Models.Transformers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Diagnostics;

/// <summary>The bench's FLOP count and op-class times of SD3's MMDiT: every linear layer, the patch conv and the joint
/// (and MMDiT-X dual) attention, against the count written out from the config as diffusers' SD3Transformer2DModel is built.</summary>
public class TransformerFlopCounterTests
{
    const long Batch = 2, TextTokens = 7, Side = 16; // latents [2, 16, 16, 16]: (16/2)² = 64 image tokens

    static SD3Transformer2DConfig TinySd35() =>
        SD3Transformer2DConfig.From(JsonConfig.Load(Golden.Path("v3", "models", "tiny-sd35", "transformer", "config.json")));

    static Tensor Forward(SD3Transformer2DModel model)
    {
        var c = model.Config;
        using var latents = randn(Batch, c.InChannels, Side, Side);
        using var text = randn(Batch, TextTokens, c.JointAttentionDim);
        using var pooled = randn(Batch, c.PooledProjectionDim);
        using var t = full([Batch], 500f);
        return model.Forward(new SD3Transformer2DInput(latents, t, text, pooled));
    }

    [Fact]
    public void Counts_the_tiny_sd35_transformer_as_its_config_says()
    {
        using var _ = no_grad();
        var c = TinySd35();
        Assert.NotEmpty(c.DualAttentionLayers); // the MMDiT-X blocks are covered
        using var model = new SD3Transformer2DModel(c);
        using var counter = new FlopCounter(model);
        Forward(model).Dispose();

        long b = Batch, t = TextTokens, p = c.PatchSize, n = Side / p * (Side / p), d = c.InnerDim, heads = c.NumAttentionHeads, hd = c.AttentionHeadDim;
        long last = c.NumLayers - 1;
        long Linear(long tokens, long inFeatures, long outFeatures) => 2 * b * tokens * inFeatures * outFeatures;
        // time_text_embed: the 256-channel sinusoidal timestep and the pooled text, each through Linear → SiLU → Linear to D.
        long linear = Linear(1, 256, d) + Linear(1, d, d) + Linear(1, c.PooledProjectionDim, d) + Linear(1, d, d)
                    + Linear(t, c.JointAttentionDim, d)                       // context_embedder
                    + Linear(1, d, 2 * d) + Linear(n, d, p * p * c.OutChannels); // norm_out (scale, shift), proj_out
        long attention = 0;
        for (long i = 0; i < c.NumLayers; i++)
        {
            bool dual = c.DualAttentionLayers.Contains((int)i), preOnly = i == last;
            linear += Linear(1, d, (dual ? 9 : 6) * d);                    // norm1: AdaLayerNormZero(X) modulation
            linear += Linear(1, d, (preOnly ? 2 : 6) * d);                 // norm1_context: continuous in the last block
            linear += 4 * Linear(n, d, d) + 3 * Linear(t, d, d);           // attn: to_q/k/v/out, add_q/k/v_proj
            if (!preOnly) linear += Linear(t, d, d);                       // attn: to_add_out
            linear += 2 * Linear(n, d, 4 * d);                             // ff: D → 4D → D
            if (!preOnly) linear += 2 * Linear(t, d, 4 * d);               // ff_context
            attention += 4 * b * heads * (n + t) * (n + t) * hd;           // joint attention over image ‖ text tokens
            if (dual)
            {
                linear += 4 * Linear(n, d, d);                             // attn2: image-only q/k/v/out
                attention += 4 * b * heads * n * n * hd;
            }
        }
        long conv = 2 * b * n * d * c.InChannels * p * p;                  // pos_embed.proj: a p×p, stride-p conv

        Assert.Equal(conv, counter.Conv);
        Assert.Equal(linear, counter.Linear);
        Assert.Equal(attention, counter.Attention);
    }

    [Fact]
    public void The_op_class_timer_sees_the_transformers_convs_linears_and_attention()
    {
        using var _ = no_grad();
        using var model = new SD3Transformer2DModel(TinySd35());
        Forward(model).Dispose(); // warm-up
        var timer = new OpClassTimer(model);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Forward(model).Dispose();
        double step = clock.Elapsed.TotalSeconds;
        var times = timer.Result(step, steps: 1);
        timer.Dispose();

        Assert.True(times.Conv > 0 && times.Linear > 0 && times.Attention > 0, $"conv {times.Conv}, linear {times.Linear}, attention {times.Attention}");
        Assert.True(times.Conv + times.Linear < step, $"conv + linear {times.Conv + times.Linear} s within the step's {step} s");
        Assert.Equal(step, times.Step);

        double linearBefore = timer.LinearSeconds; // disposed: the hooks are gone
        Forward(model).Dispose();
        Assert.Equal(linearBefore, timer.LinearSeconds);
    }
}
