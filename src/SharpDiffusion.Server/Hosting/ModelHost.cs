using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.Catalog;

namespace SharpDiffusion.Server.Hosting;

/// <summary>
/// The one loaded model. Only the worker thread loads, switches and generates with it (switching is a job like any
/// other, so it waits its turn); endpoints read <see cref="Current"/> to name it.
/// </summary>
public sealed class ModelHost(ServerOptions options, ModelCatalog catalog) : IDisposable
{
    StableDiffusionPipeline? _pipeline;
    (ModelEntry Entry, StableDiffusionPipeline Pipeline)? _refiner;
    LatentPreview? _preview;
    IReadOnlyList<string> _embeddings = [];

    /// <summary>The entry loaded now (before the first load: the start model). Set only once a load succeeded.</summary>
    public ModelEntry Current { get; private set; } = catalog.Start;

    /// <summary>A1111's short hash of the loaded file (null for a folder, or before it was computed).</summary>
    public string? CurrentHash { get; private set; }

    public IReadOnlyList<string> Embeddings => _embeddings;
    public IReadOnlyList<string> LoadWarnings { get; private set; } = [];

    /// <summary>The pipeline for <paramref name="entry"/>, loading it (and dropping the previous one) if needed. Worker thread only.</summary>
    public StableDiffusionPipeline Use(ModelEntry entry)
    {
        if (_pipeline is not null && Current == entry)
            return _pipeline;
        var loaded = _pipeline is null ? null : Current;
        Unload(); // never two models in memory at once
        try { return Load(entry); }
        catch when (loaded is not null && loaded != entry)
        {
            // A model that does not load (corrupt file, incomplete folder) leaves the one before it in place: otherwise
            // every later request would try the broken one again and the server could not generate any more.
            Load(loaded);
            throw;
        }
    }

    StableDiffusionPipeline Load(ModelEntry entry)
    {
        var pipeline = StableDiffusionPipeline.Load(entry.Path, options.Load,
            (entry.Components ?? new SingleFileOptions()) with { OriginalConfig = entry.IsFile && ReferenceEquals(entry, catalog.Start) ? options.OriginalConfig : null });
        LoadWarnings = pipeline.LoadWarnings;
        if (options.EmbeddingsDir is { } dir && Directory.Exists(dir))
            _embeddings = pipeline.LoadTextualInversionDirectory(dir).Tokens;
        CurrentHash = pipeline.ModelHash;
        Current = entry;
        _pipeline = pipeline;
        return pipeline;
    }

    /// <summary>The SDXL refiner of <paramref name="entry"/>, kept beside the model until another is asked for (with
    /// LowMemory its weights are read only while its pass runs). Worker thread only.</summary>
    public StableDiffusionPipeline UseRefiner(ModelEntry entry)
    {
        if (_refiner is { } kept && kept.Entry == entry)
            return kept.Pipeline;
        _refiner?.Pipeline.Dispose();
        _refiner = null;
        var pipeline = StableDiffusionPipeline.Load(entry.Path, options.Load);
        _refiner = (entry, pipeline);
        return pipeline;
    }

    /// <summary>The loaded pipeline (loading the current entry the first time).</summary>
    public StableDiffusionPipeline Pipeline => Use(Current);

    /// <summary>The cheap preview map of the loaded model, fitted on first use.</summary>
    public LatentPreview Preview => _preview ??= LatentPreview.Fit(Pipeline);

    void Unload()
    {
        _preview?.Dispose();
        _preview = null;
        _pipeline?.Dispose();
        _pipeline = null;
        _embeddings = [];
        CurrentHash = null;
    }

    public void Dispose()
    {
        Unload();
        _refiner?.Pipeline.Dispose();
        _refiner = null;
    }
}
