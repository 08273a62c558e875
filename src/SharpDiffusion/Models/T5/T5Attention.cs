using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.T5;

/// <summary>
/// T5Attention, encoder self-attention: bias-free q/k/v/o projections, scores q·kᵀ with no 1/sqrt(d) scaling (T5
/// folds it into the weights' initialisation) plus a learned bias per head and relative-position bucket, softmax in
/// float32. Only the first block owns <c>relative_attention_bias</c> [buckets, heads]; its <see cref="ComputeBias"/>
/// is computed once per forward and shared by every block.
/// </summary>
public sealed class T5Attention : Module<Tensor, Tensor, Tensor>
{
    readonly Linear _q, _k, _v, _o;
    readonly Embedding? _relativeAttentionBias;
    readonly int _heads, _dKv, _buckets, _maxDistance;

    public T5Attention(T5Config config, bool hasRelativeAttentionBias) : base(nameof(T5Attention))
    {
        (_heads, _dKv) = (config.NumHeads, config.DKv);
        (_buckets, _maxDistance) = (config.RelativeAttentionNumBuckets, config.RelativeAttentionMaxDistance);
        _q = Layers.CompactLinear(config.DModel, config.InnerDim, hasBias: false);
        _k = Layers.CompactLinear(config.DModel, config.InnerDim, hasBias: false);
        _v = Layers.CompactLinear(config.DModel, config.InnerDim, hasBias: false);
        _o = Layers.CompactLinear(config.InnerDim, config.DModel, hasBias: false);
        register_module("q", _q);
        register_module("k", _k);
        register_module("v", _v);
        register_module("o", _o);
        if (hasRelativeAttentionBias)
        {
            _relativeAttentionBias = Layers.Embedding(config.RelativeAttentionNumBuckets, config.NumHeads);
            register_module("relative_attention_bias", _relativeAttentionBias);
        }
    }

    /// <param name="x">[B, T, D]</param>
    /// <param name="positionBias">[1, H, T, T], from the first block's <see cref="ComputeBias"/>.</param>
    public override Tensor forward(Tensor x, Tensor positionBias)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        Tensor Heads(Tensor y) => y.view(b, t, _heads, _dKv).transpose(1, 2);          // [B, H, T, d_kv]
        var (q, k, v) = (Heads(_q.call(x)), Heads(_k.call(x)), Heads(_v.call(x)));
        var scores = matmul(q, k.transpose(3, 2)).add_(positionBias);                   // [B, H, T, T]
        var weights = F.softmax(scores.to(ScalarType.Float32), -1).to(scores.dtype);
        var attended = matmul(weights, v).transpose(1, 2).reshape(b, t, _heads * _dKv); // [B, T, H·d_kv]
        return _o.call(attended).MoveToOuterDisposeScope();
    }

    /// <summary>The bias added to every block's scores: relative_attention_bias(bucket(key − query)) → [1, H, T, T].</summary>
    public Tensor ComputeBias(long length, Device device)
    {
        if (_relativeAttentionBias is null)
            throw new InvalidOperationException("Only the first T5 block has relative_attention_bias; compute the bias with it.");
        using var scope = NewDisposeScope();
        var position = arange(length, dtype: ScalarType.Int64, device: device);
        var relative = position.unsqueeze(0) - position.unsqueeze(1);                    // [T(query), T(key)]: key − query
        var buckets = RelativePositionBucket(relative, _buckets, _maxDistance);
        return _relativeAttentionBias.call(buckets).permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// T5's bidirectional buckets: half the buckets for keys after the query; within each half, distances below
    /// n/2 (n = buckets per direction) get their own bucket, larger ones n/2 + ⌊log(d / (n/2)) / log(max / (n/2)) ·
    /// (n − n/2)⌋, capped at n − 1. The float steps are the same torch operations as transformers', so a distance
    /// on a bucket edge falls the same way.
    /// </summary>
    public static Tensor RelativePositionBucket(Tensor relativePosition, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        int perDirection = numBuckets / 2;
        var buckets = relativePosition.gt(0).to(ScalarType.Int64) * perDirection;
        var distance = relativePosition.abs();
        int maxExact = perDirection / 2;
        var isSmall = distance.lt(maxExact);
        var large = (distance.to(ScalarType.Float32) / maxExact).log()
            / Math.Log(maxDistance / (double)maxExact) * (perDirection - maxExact);
        var largeBucket = (large.to(ScalarType.Int64) + maxExact).clamp_max(perDirection - 1);
        return (buckets + where(isSmall, distance, largeBucket)).MoveToOuterDisposeScope();
    }
}
