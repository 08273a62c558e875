using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Clip;

/// <summary>What <see cref="ClipTextModel"/> returns: the states SD uses and, on request, every layer's.</summary>
public sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor>? HiddenStates);

/// <summary>
/// transformers' CLIPTextModel: token + position embeddings, a causal pre-norm transformer, a final LayerNorm; with
/// <see cref="ClipTextConfig.ProjectionDim"/>, CLIPTextModelWithProjection (SDXL's second encoder), whose
/// text_embeds = text_projection(pooled output). Parameter names are the state-dict keys of model.safetensors
/// (<c>text_model.*</c>, <c>text_projection.weight</c>).
/// </summary>
public sealed class ClipTextModel : Module<Tensor, Tensor>
{
    readonly ClipTextTransformer _textModel;
    readonly Linear? _textProjection;

    public ClipTextConfig Config { get; }

    public ClipTextModel(ClipTextConfig config) : base(nameof(ClipTextModel))
    {
        Config = config;
        _textModel = new ClipTextTransformer(config);
        register_module("text_model", _textModel);
        if (config.ProjectionDim is int projection)
        {
            _textProjection = Layers.Linear(config.HiddenSize, projection, hasBias: false);
            register_module("text_projection", _textProjection);
        }
    }

    /// <summary>ids [B, T] int64 → last_hidden_state [B, T, D].</summary>
    public override Tensor forward(Tensor inputIds) => _textModel.Run(inputIds, keepHiddenStates: false).LastHiddenState;

    /// <summary>All outputs; hidden states (embeddings, then each layer before the final norm) when asked.</summary>
    public ClipTextOutput Run(Tensor inputIds, bool keepHiddenStates = false) => _textModel.Run(inputIds, keepHiddenStates);

    /// <summary>Rows of the token embedding [V, D] (V grows with <see cref="SetTokenEmbeddings"/>).</summary>
    public long TokenEmbeddingCount => _textModel.Embeddings.Token.weight!.shape[0];

    /// <summary>diffusers' load_textual_inversion: the token embedding is resized to <paramref name="vocabSize"/> rows
    /// (new rows zero) and rows <paramref name="ids"/> are set to <paramref name="rows"/> [n, D]. Changes this model.</summary>
    public void SetTokenEmbeddings(int vocabSize, int[] ids, Tensor rows) => _textModel.Embeddings.SetRows(vocabSize, ids, rows);

    /// <summary>SDXL's encoding: hidden_states[-<paramref name="fromEnd"/>] (2 = the penultimate layer's output, no final
    /// norm) [B, T, D] and, for the encoder with a projection, text_embeds [B, P] (the projected pooled output).</summary>
    public (Tensor Hidden, Tensor? TextEmbeds) EncodeHidden(Tensor inputIds, int fromEnd)
    {
        if (fromEnd < 1 || fromEnd > Config.NumHiddenLayers + 1)
            throw new ArgumentException($"Hidden state -{fromEnd} does not exist in a text encoder of {Config.NumHiddenLayers} layers.");
        using var scope = NewDisposeScope();
        var output = _textModel.Run(inputIds, keepHiddenStates: true);
        var hidden = output.HiddenStates![^fromEnd];
        var textEmbeds = _textProjection?.call(output.PooledOutput);
        textEmbeds?.MoveToOuterDisposeScope();
        return (hidden.MoveToOuterDisposeScope(), textEmbeds);
    }

    /// <summary>AUTOMATIC1111's CLIP skip: ids [B, T] → final_layer_norm(hidden_states[-clipSkip]) [B, T, D]; 1 is
    /// last_hidden_state. The layers past the one used are not run.</summary>
    public Tensor Encode(Tensor inputIds, int clipSkip = 1)
    {
        if (clipSkip < 1 || clipSkip > Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {clipSkip} does not fit a text encoder of {Config.NumHiddenLayers} layers; use 1 to {Config.NumHiddenLayers}.");
        return clipSkip == 1 ? forward(inputIds) : _textModel.RunLayers(inputIds, Config.NumHiddenLayers + 1 - clipSkip);
    }
}

sealed class ClipTextTransformer : Module
{
    readonly ClipTextConfig _config;
    readonly ClipTextEmbeddings _embeddings;
    readonly ClipEncoder _encoder;
    readonly LayerNorm _finalNorm;

    public ClipTextTransformer(ClipTextConfig config) : base(nameof(ClipTextTransformer))
    {
        _config = config;
        _embeddings = new ClipTextEmbeddings(config);
        _encoder = new ClipEncoder(config);
        _finalNorm = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        register_module("embeddings", _embeddings);
        register_module("encoder", _encoder);
        register_module("final_layer_norm", _finalNorm);
    }

    public ClipTextEmbeddings Embeddings => _embeddings;

    public ClipTextOutput Run(Tensor inputIds, bool keepHiddenStates)
    {
        if (inputIds.dim() != 2)
            throw new ArgumentException($"input_ids must be [batch, tokens], got [{string.Join(", ", inputIds.shape)}]");
        if (inputIds.shape[1] > _config.MaxPositionEmbeddings)
            throw new ArgumentException($"{inputIds.shape[1]} tokens exceed max_position_embeddings {_config.MaxPositionEmbeddings}");

        var hiddenStates = keepHiddenStates ? new List<Tensor>() : null;
        var h = _embeddings.call(inputIds); // [B, T, D]
        foreach (var layer in _encoder.Layers)
        {
            hiddenStates?.Add(h);
            var next = layer.call(h);
            if (hiddenStates is null) h.Dispose();
            h = next;
        }
        hiddenStates?.Add(h);
        var last = _finalNorm.call(h);
        if (hiddenStates is null) h.Dispose();
        return new ClipTextOutput(last, Pool(last, inputIds), hiddenStates);
    }

    /// <summary>Embeddings, the first <paramref name="layers"/> encoder layers, the final norm: [B, T, D].</summary>
    public Tensor RunLayers(Tensor inputIds, int layers)
    {
        using var scope = NewDisposeScope();
        var h = _embeddings.call(inputIds);
        foreach (var layer in _encoder.Layers.Take(layers))
            h = layer.call(h);
        return _finalNorm.call(h).MoveToOuterDisposeScope();
    }

    // transformers' rule: with the legacy eos_token_id == 2 the end token is the largest id (argmax);
    // otherwise the first position holding eos_token_id.
    Tensor Pool(Tensor last, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var positions = _config.EosTokenId == 2
            ? inputIds.argmax(-1)
            : inputIds.eq(_config.EosTokenId).to(ScalarType.Int32).argmax(-1);
        var rows = arange(last.shape[0], dtype: ScalarType.Int64, device: last.device);
        return last[rows, positions.to(last.device)].MoveToOuterDisposeScope(); // [B, D]
    }
}

sealed class ClipTextEmbeddings : Module<Tensor, Tensor>
{
    readonly Embedding _token, _position;

    public ClipTextEmbeddings(ClipTextConfig config) : base(nameof(ClipTextEmbeddings))
    {
        _token = Layers.Embedding(config.VocabSize, config.HiddenSize);
        _position = Layers.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        register_module("token_embedding", _token);
        register_module("position_embedding", _position);
    }

    public Embedding Token => _token;

    public void SetRows(int vocabSize, int[] ids, Tensor rows)
    {
        using var noGrad = no_grad();
        var old = _token.weight!;                                                  // [V, D]
        var grown = zeros([vocabSize, old.shape[1]], dtype: old.dtype, device: old.device);
        long keep = Math.Min(vocabSize, old.shape[0]);
        grown.narrow(0, 0, keep).copy_(old.narrow(0, 0, keep));
        using var index = tensor(ids.Select(i => (long)i).ToArray(), device: old.device);
        grown.index_copy_(0, index, rows.to(old.dtype).to(old.device));
        _token.weight = new TorchSharp.Modules.Parameter(grown, requires_grad: false);
        old.Dispose();
    }

    public override Tensor forward(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var positions = arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        return (_token.call(inputIds) + _position.call(positions)).MoveToOuterDisposeScope();
    }
}

sealed class ClipEncoder : Module
{
    readonly ModuleList<ClipEncoderLayer> _layers;

    public IEnumerable<ClipEncoderLayer> Layers => _layers;

    public ClipEncoder(ClipTextConfig config) : base(nameof(ClipEncoder))
    {
        _layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config)).ToArray());
        register_module("layers", _layers);
    }
}
