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
    TaesdPreview? _taesd;
    bool _taesdTried, _loadedOnce;
    string? _vaePath; // the separate VAE the loaded pipeline decodes with (VaeCodec.UseVae), null = its own
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
        // A --preview-vae that does not fit the start model is refused before serving; another model falls back to the cheap map.
        if (options.PreviewVae is { } taesd && !_loadedOnce)
        {
            try { (_taesd, _taesdTried) = (TaesdPreview.Load(taesd, pipeline.LatentFormat, options.Load.Device), true); }
            catch { pipeline.Dispose(); throw; }
        }
        _loadedOnce = true;
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

    /// <summary>The --preview-vae TAESD for the loaded model, or null (none given, or its latents are not this model's).</summary>
    public TaesdPreview? Taesd
    {
        get
        {
            if (_taesd is null && !_taesdTried && options.PreviewVae is { } path)
            {
                _taesdTried = true;
                try { _taesd = TaesdPreview.Load(path, Pipeline.LatentFormat, options.Load.Device); }
                catch (ArgumentException) { } // another family's latents: previews use the cheap map
            }
            return _taesd;
        }
    }

    /// <summary>Decodes with the separate VAE at <paramref name="path"/> (null: the model's own) from now on; loaded only when it
    /// changes. A VAE of another family is refused in one line (VaeCodec.UseVae) and the previous choice stays. Worker thread only.</summary>
    public void UseVae(string? path)
    {
        var pipeline = Pipeline;
        if (path == _vaePath) return;
        if (path is null) pipeline.VaeCodec.UseOwnVae();
        else pipeline.VaeCodec.UseVae(path, options.Load);
        _vaePath = path;
    }

    void Unload()
    {
        _preview?.Dispose();
        _preview = null;
        _taesd?.Dispose();
        (_taesd, _taesdTried, _vaePath) = (null, false, null);
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
