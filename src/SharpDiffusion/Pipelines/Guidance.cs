using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>Classifier-free guidance on a batch whose first half is unconditional.</summary>
public static class Guidance
{
    /// <summary>
    /// ε = ε_u + g·(ε_c − ε_u); with rescale r > 0 (diffusers' rescale_noise_cfg):
    /// ε ← r·ε·std(ε_c)/std(ε) + (1 − r)·ε, std over all but the batch dim (unbiased).
    /// </summary>
    public static Tensor Apply(Tensor noisePred, double scale, double rescale = 0)
    {
        using var scope = NewDisposeScope();
        var halves = noisePred.chunk(2, 0);
        var (uncond, cond) = (halves[0], halves[1]);
        var guided = uncond + scale * (cond - uncond);
        if (rescale > 0)
        {
            long[] dims = Enumerable.Range(1, (int)cond.dim() - 1).Select(d => (long)d).ToArray();
            var stdCond = cond.std(dims, unbiased: true, keepdim: true);
            var stdGuided = guided.std(dims, unbiased: true, keepdim: true);
            var rescaled = guided * (stdCond / stdGuided);
            guided = rescale * rescaled + (1 - rescale) * guided;
        }
        return guided.MoveToOuterDisposeScope();
    }
}
