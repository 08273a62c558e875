using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>
/// The training pictures encoded once by the VAE (kohya's <c>--cache_latents</c>): the posterior's mean and σ of every
/// picture, float32, one tensor pair per bucket (a bucket's pictures share one latent size), and a latent drawn per step
/// as z = (μ + σ·n)·scaling_factor. The VAE runs in the base weights' dtype; what is kept is float32.
/// </summary>
public sealed class LatentCache : IDisposable
{
    readonly Tensor[] _means, _stds;   // per bucket [n_b, C, h, w]
    readonly int[] _bucketOf, _slotOf; // per picture: its bucket and its row there

    public AspectRatioBuckets Buckets { get; }

    LatentCache(AspectRatioBuckets buckets, Tensor[] means, Tensor[] stds, int[] bucketOf, int[] slotOf) =>
        (Buckets, _means, _stds, _bucketOf, _slotOf) = (buckets, means, stds, bucketOf, slotOf);

    /// <summary>The bucket of picture <paramref name="picture"/>.</summary>
    public int BucketOf(int picture) => _bucketOf[picture];

    /// <summary>Encodes every picture at its bucket's size, 8 at a time.</summary>
    public static LatentCache Encode(StableDiffusionPipeline pipe, KohyaImageFolder folder, AspectRatioBuckets buckets, Action<string>? warn,
        CancellationToken cancellation)
    {
        var vae = pipe.VaeCodec.Model;
        var means = new Tensor[buckets.Buckets.Count];
        var stds = new Tensor[buckets.Buckets.Count];
        var bucketOf = new int[folder.Pictures.Count];
        var slotOf = new int[folder.Pictures.Count];
        using var use = pipe.VaeCodec.Weights.Use();
        var dtype = vae.parameters().First().dtype;
        for (int b = 0; b < buckets.Buckets.Count; b++)
        {
            var bucket = buckets.Buckets[b];
            for (int i = 0; i < bucket.Pictures.Count; i++) (bucketOf[bucket.Pictures[i]], slotOf[bucket.Pictures[i]]) = (b, i);
            using var pixels = folder.LoadPixels(bucket.Pictures, bucket.Width, bucket.Height, warn);   // [n_b, 3, H, W]
            var m = new List<Tensor>();
            var s = new List<Tensor>();
            using (inference_mode())
                for (long i = 0; i < pixels.shape[0]; i += 8)
                {
                    cancellation.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    using var posterior = vae.Encode(pixels[TensorIndex.Slice(i, i + 8)].to(dtype));
                    m.Add(posterior.Mean.to(ScalarType.Float32).clone().MoveToOuterDisposeScope());
                    s.Add(posterior.Std.to(ScalarType.Float32).clone().MoveToOuterDisposeScope());
                }
            (means[b], stds[b]) = (cat(m, 0), cat(s, 0));                                          // [n_b, C, H/f, W/f]
            foreach (var t in m.Concat(s)) t.Dispose();
        }
        return new LatentCache(buckets, means, stds, bucketOf, slotOf);
    }

    /// <summary>z = (μ + σ·n)·<paramref name="scaling"/> for pictures of one bucket, n drawn from <paramref name="generator"/>.</summary>
    public Tensor Sample(IReadOnlyList<int> pictures, float scaling, Generator generator)
    {
        int b = _bucketOf[pictures[0]];
        if (pictures.Any(p => _bucketOf[p] != b))
            throw new ArgumentException("A batch must come from one bucket (one latent size).");
        using var index = tensor(pictures.Select(p => (long)_slotOf[p]).ToArray());
        using var mean = _means[b].index_select(0, index);
        using var std = _stds[b].index_select(0, index);
        using var noise = randn(mean.shape, generator: generator);
        return (mean + std * noise) * scaling;                                                         // [B, C, h, w]
    }

    public void Dispose()
    {
        foreach (var t in _means.Concat(_stds)) t?.Dispose();
    }
}
