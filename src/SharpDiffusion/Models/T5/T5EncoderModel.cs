using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.T5;

/// <summary>
/// transformers' T5EncoderModel (T5 v1.1: SD3's <c>text_encoder_3</c>, Flux's <c>text_encoder_2</c>): the shared token
/// embedding, blocks of relative-position self-attention and gated-gelu feed-forward (<see cref="T5Block"/>), a final
/// RMS norm. Called as the pipelines call it: ids [B, T] → last_hidden_state [B, T, d_model], no attention mask, so
/// padding is attended to like any token. Parameter names are the state-dict keys (<c>shared.weight</c>,
/// <c>encoder.block.N.layer.0.SelfAttention.q.weight</c>, ...); <c>encoder.embed_tokens</c> is <c>shared</c>.
/// </summary>
public sealed class T5EncoderModel : Module<Tensor, Tensor>
{
    readonly Embedding _shared;
    readonly T5Stack _encoder;

    public T5Config Config { get; }

    public T5EncoderModel(T5Config config) : base(nameof(T5EncoderModel))
    {
        Config = config;
        _shared = Layers.Embedding(config.VocabSize, config.DModel);
        _encoder = new T5Stack(config);
        register_module("shared", _shared);
        register_module("encoder", _encoder);
    }

    /// <summary>ids [B, T] int64 → last_hidden_state [B, T, d_model] in the weights' dtype.</summary>
    public override Tensor forward(Tensor inputIds)
    {
        if (inputIds.dim() != 2)
            throw new ArgumentException($"input_ids must be [batch, tokens], got [{string.Join(", ", inputIds.shape)}]");
        using var scope = NewDisposeScope();
        using (var outOfRange = inputIds.lt(0).logical_or(inputIds.ge(Config.VocabSize)).any())
            if (outOfRange.item<bool>())
                throw new ArgumentException($"input_ids hold an id outside the T5 vocabulary [0, {Config.VocabSize}); was the text tokenized with this model's tokenizer?");
        var h = _shared.call(inputIds);                                  // [B, T, D]
        return _encoder.call(h).MoveToOuterDisposeScope();
    }

    /// <summary>Loads a transformers folder (<c>config.json</c> + <c>model.safetensors</c>, sharded or not; <c>.bin</c> too)
    /// as <see cref="ComponentLoader"/> loads the other components.</summary>
    public static T5EncoderModel FromFolder(string dir, LoadOptions? options = null) =>
        (T5EncoderModel)Weights(dir, (options ?? new LoadOptions()) with { LowMemory = false }).Module;

    /// <summary>The encoder of a component folder, its weights read now or, with <see cref="LoadOptions.LowMemory"/>, when it first runs.</summary>
    public static ComponentWeights Weights(string dir, LoadOptions options)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Component folder not found: {dir}");
        string configPath = Path.Combine(dir, "config.json");
        var config = T5Config.From(JsonConfig.Load(configPath));
        var files = WeightFiles.Find(dir, "model", options.Variant);
        WeightFiles.RequireRoomFor(config.MinimumParameterCount(), files, configPath);
        var keys = StoredKeys(files);
        // Tied weights are saved once, as shared.weight; a file with only encoder.embed_tokens.weight fills shared from it.
        // A whole T5 (encoder-decoder) file loads too: transformers' T5EncoderModel skips the decoder, and so do we.
        bool hasShared = keys.Contains("shared.weight");
        var placement = new WeightPlacement(options.DType, new Device(options.Device), ChannelsLastConvs: false) { CompactWeights = options.CompactWeights };
        return ComponentLoader.Create(() => new T5EncoderModel(config), options, m =>
        {
            WeightFiles.LoadInto(m, files, placement,
                rename: k => k == "encoder.embed_tokens.weight" ? "shared.weight" : k,
                ignore: k => (k == "encoder.embed_tokens.weight" && hasShared) || k.StartsWith("decoder.", StringComparison.Ordinal)
                    || k == "lm_head.weight");
            AfterLoad((T5EncoderModel)m, options);
        });
    }

    /// <summary>What follows the weights' load: in float16, transformers' _keep_in_fp32_modules (wo).</summary>
    internal static void AfterLoad(T5EncoderModel model, LoadOptions options)
    {
        if (options.DType == ScalarType.Float16)
            foreach (var dense in model.modules().OfType<T5DenseGatedActDense>()) dense.KeepOutputProjectionInFloat32();
    }

    static HashSet<string> StoredKeys(IReadOnlyList<string> files)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in files)
        {
            using var file = TensorFiles.Open(path);
            foreach (var header in file.Headers) keys.Add(header.Name);
        }
        return keys;
    }
}

/// <summary>T5Stack as an encoder: the blocks, the first one's relative position bias shared by all, the final norm.</summary>
sealed class T5Stack : Module<Tensor, Tensor>
{
    readonly ModuleList<T5Block> _blocks;
    readonly T5LayerNorm _finalNorm;

    public T5Stack(T5Config config) : base(nameof(T5Stack))
    {
        _blocks = new ModuleList<T5Block>(Enumerable.Range(0, config.NumLayers).Select(i => new T5Block(config, hasRelativeAttentionBias: i == 0)).ToArray());
        _finalNorm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        register_module("block", _blocks);
        register_module("final_layer_norm", _finalNorm.Weights);
    }

    public override Tensor forward(Tensor h) // [B, T, D]
    {
        using var scope = NewDisposeScope();
        var bias = _blocks[0].SelfAttention.ComputeBias(h.shape[1], h.device); // [1, H, T, T]
        foreach (var block in _blocks)
            h = block.call(h, bias);
        return _finalNorm.Forward(h).MoveToOuterDisposeScope();
    }
}
