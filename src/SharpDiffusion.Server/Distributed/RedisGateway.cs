using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using StackExchange.Redis;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// `serve --queue redis://…`: the API without a model. A request becomes a job in Redis (its seed already resolved,
/// so whichever worker takes it draws the same image), and the endpoints see it through a local <see cref="Job"/> that
/// mirrors the Redis record: updated on every published change, and once a second in case a message was missed (Redis
/// restarted, a gateway reconnected). Nothing lives only here: a restarted gateway, or another one, finds every job by
/// id. While Redis cannot be reached, calls that need it are refused with 503 and Retry-After.
/// </summary>
public sealed class RedisGateway : IJobQueue
{
    sealed class Mirror(Job job, string model, bool submitted)
    {
        public Job Job { get; } = job;
        public string Model { get; } = model;
        /// <summary>In Redis: until then a read that finds no record means "not written yet", not "lost".</summary>
        public volatile bool Submitted = submitted;
        public int PreviewVersion;
        public JobProgress? Progress;
    }

    readonly ConnectionMultiplexer _redis;
    readonly RedisJobStore _store;
    readonly ServerOptions _options;
    readonly ConcurrentDictionary<string, Mirror> _mirrors = new();
    readonly ConcurrentDictionary<string, byte> _changed = new();
    readonly SemaphoreSlim _signal = new(0);
    readonly CancellationTokenSource _stop = new();
    readonly Thread _refresher;
    volatile IReadOnlyList<WorkerInfo> _workers = [];

    RedisGateway(ConnectionMultiplexer redis, ServerOptions options)
    {
        (_redis, _options) = (redis, options);
        _store = new RedisJobStore(redis);
        Files = new RedisImageFiles(this, _store.Db);
        // The message handler only notes the id: the reads happen on the refresher thread, never on the client's own
        // threads (a blocking call there would hold up the replies it waits for).
        Subscriptions.Keep(_store.Bus, RedisJobStore.Events, (_, id) =>
        {
            if (_mirrors.ContainsKey(id!) && _changed.TryAdd(id!, 0)) _signal.Release();
        });
        RefreshWorkersAsync().GetAwaiter().GetResult();
        _refresher = new Thread(RefreshLoop) { Name = "sharpdiffusion-gateway-refresh", IsBackground = true };
        _refresher.Start();
    }

    /// <summary>Changed jobs as they are announced; every second, all unfinished ones and the worker list.</summary>
    void RefreshLoop()
    {
        var everything = System.Diagnostics.Stopwatch.StartNew();
        while (!_stop.IsCancellationRequested)
        {
            try { _signal.Wait(TimeSpan.FromSeconds(1), _stop.Token); }
            catch (OperationCanceledException) { break; }
            foreach (var id in _changed.Keys)
            {
                _changed.TryRemove(id, out _);
                Refresh(id);
            }
            if (everything.Elapsed >= TimeSpan.FromSeconds(1))
            {
                RefreshAll();
                everything.Restart();
            }
        }
    }

    public RedisAddress Address { get; private init; } = null!;

    /// <summary>Generated files served by URL, shared by every gateway.</summary>
    public IImageFiles Files { get; }

    /// <summary>Connects (Redis may still be down: the gateway starts anyway and answers 503 until it is up).</summary>
    public static RedisGateway Connect(string url, ServerOptions options)
    {
        var address = RedisAddress.Parse(url);
        return new RedisGateway(address.Connect("sharpdiffusion-gateway"), options) { Address = address };
    }

    /// <summary>Options set through any gateway (A1111's POST /options), for every gateway.</summary>
    public void SaveSettings(JsonObject changes) => Redis(() => { _store.SaveSettings(changes); return 0; });

    public Task<JsonObject> LoadSettingsAsync() => RedisAsync(_store.LoadSettingsAsync);

    /// <summary>The workers heard of lately (refreshed every second).</summary>
    public IReadOnlyList<WorkerInfo> Workers => _workers;

    /// <summary>The models the workers serve, one entry per model name (for /sd-models, /v1/models and name lookups), with
    /// the family traits a worker announced (null from workers that announce none).</summary>
    public IReadOnlyList<ModelEntry> Models() =>
        _workers.GroupBy(w => w.Model, StringComparer.Ordinal).Select(g => g.FirstOrDefault(w => w.Traits is not null) ?? g.First())
            .Select(w => new ModelEntry(w.Model, w.IsFile ? w.FileName : w.Model, w.IsFile) { Traits = w.Traits }).ToList();

    public string? HashOf(string model) => _workers.FirstOrDefault(w => w.Model == model)?.Hash;

    public IReadOnlyList<string> Embeddings => _workers.SelectMany(w => w.Embeddings).Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>The ControlNets the workers of <paramref name="model"/> (null: of any model) announce, as /controlnet/model_list
    /// titles them; a unit naming one runs on a worker that resolves it in its own --controlnet-dir.</summary>
    public IReadOnlyList<string> ControlNets(string? model) =>
        _workers.Where(w => model is null || w.Model == model).SelectMany(w => w.ControlNets).Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>The upscaler models the workers have (`worker --upscaler-dir`), one entry per name, by name.</summary>
    public IReadOnlyList<(string Name, string Path)> Upscalers =>
        _workers.SelectMany(w => w.Upscalers).DistinctBy(u => u.Name).OrderBy(u => u.Name, StringComparer.Ordinal).ToList();

    /// <summary>The VAEs the workers have (`worker --vae-dir`), one entry per name, by name: GET /sdapi/v1/sd-vae.</summary>
    public IReadOnlyList<(string Name, string Path)> Vaes =>
        _workers.SelectMany(w => w.Vaes).DistinctBy(v => v.Name).OrderBy(v => v.Name, StringComparer.Ordinal).ToList();

    /// <summary>A job for <paramref name="model"/> that names the VAE <paramref name="vae"/> (sd_vae or override_settings)
    /// goes to whichever of the model's workers is free, so each of them must have it (a worker resolves the name in its
    /// own --vae-dir); refused in one line naming the workers without it. "Automatic"/"None": the model's own, always there.</summary>
    public void CheckVae(string? vae, string model)
    {
        if (VaeCatalog.IsModelsOwn(vae)) return;
        string wanted = vae!.Trim();
        bool Has(WorkerInfo w) => w.Vaes.Any(v => v.Name == wanted || Path.GetFileNameWithoutExtension(v.Name) == wanted);
        var lacking = _workers.Where(w => w.Model == model && !Has(w)).Select(w => w.Name).ToList();
        if (lacking.Count > 0)
            throw new ArgumentException($"sd_vae '{wanted}': the worker{(lacking.Count > 1 ? "s" : "")} {string.Join(", ", lacking)} of {model} "
                + $"{(lacking.Count > 1 ? "have" : "has")} no such VAE; give every worker of a model the same --vae-dir (GET /sdapi/v1/sd-vae lists the workers' VAEs).");
    }

    /// <summary>A model (<paramref name="preferred"/> first) one of whose workers has every upscaler model named (case
    /// as A1111 matches it: exact, else ignoring case); null when no worker has them all.</summary>
    public string? ModelWithUpscalers(IReadOnlyCollection<string> names, string? preferred) =>
        _workers.OrderBy(w => w.Model == preferred ? 0 : 1)
            .FirstOrDefault(w => names.All(n => w.Upscalers.Any(u => string.Equals(u.Name, n, StringComparison.OrdinalIgnoreCase))))?.Model;

    /// <summary>A request checked here, where the upscaler models are the workers': an hr_upscaler that a worker has is
    /// checked as a built-in picture upscaler (the sizes are checked the same), and the request keeps the name (with
    /// the seed <paramref name="parse"/> resolved) for the worker, which parses it again with its own folder. The hires
    /// fix is txt2img's only (img2img ignores hr_upscaler, as A1111).</summary>
    public GenerationRequest Parse(JsonObject body, string task, Func<JsonObject, GenerationRequest> parse)
    {
        if (task != "txt2img" || body["hr_upscaler"] is not JsonValue v || !v.TryGetValue(out string? name) || name.Length == 0
            || HiresFixOptions.Upscalers.Contains(name, StringComparer.OrdinalIgnoreCase) || body["enable_hr"] is not JsonValue on
            || !on.TryGetValue(out bool hires) || !hires)
            return parse(body);
        if (!Upscalers.Any(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase)))
            throw new ArgumentException($"hr_upscaler: no worker has the upscaler '{name}'; the workers have: "
                + string.Join(", ", HiresFixOptions.Upscalers.Concat(Upscalers.Select(u => u.Name))) + " (a worker's models are those of its --upscaler-dir).");
        var probe = (JsonObject)body.DeepClone();
        probe["hr_upscaler"] = "Lanczos";
        var request = parse(probe);
        var source = (JsonObject)request.Source.DeepClone();
        source["hr_upscaler"] = name;
        return request with { Source = source };
    }

    /// <summary>Queues the request for <paramref name="model"/>'s workers.</summary>
    public Task<Job> SubmitAsync(GenerationRequest request, string kind, string model, ServerSettings settings) =>
        SubmitAsync(request.TaskId ?? ServerContext.NewJobId(), new JsonObject { ["task"] = request.Task, ["body"] = request.Source.DeepClone() },
            kind, model, settings);

    /// <summary>Queues a job's payload (its "task" says what the worker runs: txt2img, img2img, extras, xyz) for
    /// <paramref name="model"/>'s workers, with the options in effect.</summary>
    public async Task<Job> SubmitAsync(string id, JsonObject payload, string kind, string model, ServerSettings settings)
    {
        payload["clip_skip"] = settings.ClipSkip;
        payload["settings"] = settings.Snapshot();
        var mirror = new Mirror(new Job(id, kind, RunsOnAWorker), model, submitted: false);
        if (!_mirrors.TryAdd(id, mirror))
            throw QueueRefusedException.IdTaken(id);
        try
        {
            bool queued = await RedisAsync(() => _store.SubmitAsync(id, kind, model, payload.ToJsonString(), _options.QueueSize, _options.JobRetention));
            if (!queued)
                throw new QueueRefusedException($"The queue for {model} is full ({_options.QueueSize} waiting); retry in a few seconds.", 503, 2);
            mirror.Submitted = true;
            if (_changed.TryAdd(id, 0)) _signal.Release(); // what was announced meanwhile (its start) was passed over
        }
        catch
        {
            _mirrors.TryRemove(id, out _);
            throw;
        }
        return mirror.Job;
    }

    /// <summary>A mirrored job's work: it is never run here.</summary>
    static JsonObject RunsOnAWorker(Job job) => throw new InvalidOperationException($"The job {job.Id} runs on a worker, not on a gateway.");

    public async Task<Job?> FindAsync(string id)
    {
        if (_mirrors.TryGetValue(id, out var known)) return known.Job;
        var record = await RedisAsync(() => _store.ReadAsync(id));
        if (record is null) return null;
        var mirror = _mirrors.GetOrAdd(id, new Mirror(new Job(id, record.Kind, RunsOnAWorker) { Created = record.Created }, record.Model, submitted: true));
        await RedisAsync(() => ApplyAsync(mirror, record));
        return mirror.Job;
    }

    public async Task<int?> PositionOfAsync(Job job)
    {
        if (job.State == JobState.Running) return 0;
        if (job.State != JobState.Queued || !_mirrors.TryGetValue(job.Id, out var m)) return null;
        try { return await _store.Db.SortedSetRankAsync(RedisJobStore.QueuedKey(m.Model), job.Id) is long rank ? (int)rank + 1 : null; }
        catch (RedisException) { return null; }
    }

    public async Task<bool> CancelAsync(Job job, string reason = "cancelled")
    {
        if (!_mirrors.TryGetValue(job.Id, out var m)) return false;
        string outcome = await RedisAsync(() => _store.CancelAsync(job.Id, m.Model, reason));
        // A job whose worker died waits for another worker to take it over; cancelled, it ends now instead.
        if (outcome == "running")
        {
            try
            {
                if (await _store.ReadAsync(job.Id) is { Worker: { } worker } && !(await WorkerRegistry.LiveAsync(_store.Db)).Any(w => w.Name == worker))
                    await _store.EndAbandonedAsync(job.Id, m.Model, worker, reason);
            }
            catch (Exception e) when (RedisUnavailable.Is(e)) { } // the cancellation is recorded; the worker, or the next cancel, ends it
        }
        try
        {
            if (!m.Job.IsFinished && await _store.ReadAsync(job.Id) is { } record) await ApplyAsync(m, record);
        }
        catch (Exception e) when (RedisUnavailable.Is(e)) { } // the refresher brings the end
        return outcome is "cancelled" or "running";
    }

    public async Task<IReadOnlyList<Job>> RunningJobsAsync()
    {
        var workers = await RedisAsync(() => WorkerRegistry.LiveAsync(_store.Db));
        var running = new List<Job>();
        foreach (var w in workers)
            if (w.Job is not null && await FindAsync(w.Job) is { State: JobState.Running } job) running.Add(job);
        return running;
    }

    public Task<int> WaitingAsync() => RedisAsync(async () =>
    {
        int waiting = 0;
        foreach (var model in Models()) waiting += (int)await _store.Db.SortedSetLengthAsync(RedisJobStore.QueuedKey(model.Name));
        return waiting;
    });

    public async Task InterruptAsync()
    {
        foreach (var job in await RunningJobsAsync()) await CancelAsync(job, "interrupted");
    }

    public async Task SkipAsync()
    {
        foreach (var job in await RunningJobsAsync()) await RedisAsync(async () => { await _store.SkipImageAsync(job.Id); return 0; });
    }

    /// <summary>The status of every worker and queue, for GET /workers.</summary>
    public async Task<JsonObject> StatusAsync()
    {
        var workers = await RedisAsync(() => WorkerRegistry.LiveAsync(_store.Db));
        var queues = new JsonObject();
        foreach (var model in workers.Select(w => w.Model).Distinct().Order(StringComparer.Ordinal))
            queues[model] = await RedisAsync(() => _store.Db.SortedSetLengthAsync(RedisJobStore.QueuedKey(model)));
        return new JsonObject
        {
            ["queue"] = Address.ToString(),
            ["workers"] = new JsonArray(workers.Select(w => (JsonNode?)w.ToJson()).ToArray()),
            ["waiting"] = queues,
        };
    }

    void RefreshAll()
    {
        try
        {
            RefreshWorkersAsync().GetAwaiter().GetResult(); // on the refresher's own thread
            var cutoff = DateTimeOffset.UtcNow - _options.JobRetention;
            foreach (var (id, m) in _mirrors)
            {
                if (!m.Job.IsFinished) Refresh(id);
                else if (m.Job.Ended < cutoff) _mirrors.TryRemove(id, out _);
            }
        }
        catch (Exception) { } // Redis away: the next tick tries again
    }

    /// <summary>Reads the worker list now (it is otherwise read every second).</summary>
    public async Task RefreshWorkersAsync()
    {
        try { _workers = await WorkerRegistry.LiveAsync(_store.Db); }
        catch (RedisException) { }
    }

    void Refresh(string id)
    {
        if (!_mirrors.TryGetValue(id, out var m) || m.Job.IsFinished || !m.Submitted) return;
        try
        {
            if (_store.Read(id) is { } record) Apply(m, record, NewPreview(m, record) ? _store.Preview(id) : null);
            else m.Job.Fail($"The job {id} is no longer in the queue (Redis lost it, or it expired).", 500);
        }
        catch (Exception e) when (e is RedisException or TimeoutException) { } // the next refresh tries again
    }

    static bool NewPreview(Mirror m, JobRecord r) => r.PreviewVersion > m.PreviewVersion;

    async Task<int> ApplyAsync(Mirror m, JobRecord r)
    {
        Apply(m, r, NewPreview(m, r) ? await _store.PreviewAsync(r.Id) : null);
        return 0;
    }

    /// <summary>Brings the mirror up to the record: started, progress, a new preview (<paramref name="preview"/>, read
    /// by the caller when the record has a newer one), the end.</summary>
    void Apply(Mirror m, JobRecord r, byte[]? preview)
    {
        lock (m)
        {
            var job = m.Job;
            if (job.IsFinished) return;
            if (r.State != "queued") job.TryStart();
            if (r.State == "running" && r.Progress != m.Progress)
            {
                m.Progress = r.Progress;
                job.Report(r.Progress);
            }
            if (NewPreview(m, r) && preview is { } png)
            {
                m.PreviewVersion = r.PreviewVersion;
                job.ReportPreview(png);
            }
            switch (r.State)
            {
                case "completed":
                    var result = r.Result;
                    if (result is not null) job.Complete((JsonObject)JsonNode.Parse(result)!);
                    else job.Fail($"The job {r.Id} completed but its result has expired.", 410);
                    break;
                case "failed": job.Fail(r.Error ?? "failed", r.ErrorStatus is 0 ? 500 : r.ErrorStatus); break;
                case "cancelled": job.EndCancelled(r.Error ?? "cancelled"); break;
            }
        }
    }

    /// <summary>Runs a Redis call; Redis unreachable → 503 with Retry-After (the client retries; the gateway reconnects by itself).</summary>
    internal T Redis<T>(Func<T> call)
    {
        try { return call(); }
        catch (Exception e) when (RedisUnavailable.Is(e)) { throw Unavailable(e); }
    }

    /// <summary><see cref="Redis{T}"/> for a request's own calls: awaited, so a burst of requests holds no thread while
    /// Redis answers.</summary>
    async Task<T> RedisAsync<T>(Func<Task<T>> call)
    {
        try { return await call(); }
        catch (Exception e) when (RedisUnavailable.Is(e)) { throw Unavailable(e); }
    }

    QueueRefusedException Unavailable(Exception e) =>
        new($"The job queue ({Address}) cannot take requests right now ({RedisUnavailable.Reason(e)}); retry in a few seconds.", 503, 2, "QueueUnavailable");

    public void Dispose()
    {
        _stop.Cancel();
        _refresher.Join(TimeSpan.FromSeconds(10));
        _redis.Dispose();
    }
}
