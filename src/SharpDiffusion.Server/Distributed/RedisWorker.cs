using System.Text.Json.Nodes;
using SharpDiffusion.Models.Upscalers;
using StackExchange.Redis;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Distributed;

/// <summary>What `worker` is told.</summary>
public sealed record WorkerOptions
{
    public required string Queue { get; init; }
    /// <summary>Its model, as for `serve` (the start model; a worker serves only this one).</summary>
    public required ServerOptions Server { get; init; }
    /// <summary>Unique among the workers; default host-pid.</summary>
    public string Name { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}";
    /// <summary>A job whose worker has not renewed its claim for this long is taken over by another worker.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// `worker --queue redis://…`: one model, one job at a time, pulled from the model's stream through the consumer group
/// "workers". Delivery is at least once, results exactly once: a job is acknowledged (XACK) only after its result is
/// stored; while it runs, the worker renews its claim every second or faster (XCLAIM of its own entry resets the idle time), so
/// an entry idle for longer than the visibility timeout belongs to a worker that died, and the next idle worker takes
/// it over (XAUTOCLAIM) and runs it again from the start — same seed, same image; the store keeps only the first end.
/// Progress and previews go to the job's record; cancel and skip arrive on <see cref="RedisJobStore.Control"/>.
/// </summary>
public sealed class RedisWorker : IDisposable
{
    readonly WorkerOptions _options;
    readonly ConnectionMultiplexer _redis;
    readonly RedisJobStore _store;
    readonly ModelCatalog _catalog;
    readonly ModelHost _host;
    readonly SemaphoreSlim _wake = new(0);
    readonly object _gate = new();
    (Job Job, RedisValue Entry)? _current;
    bool _takenOver;
    readonly Thread _heart;
    readonly AutoResetEvent _beatNow = new(false);
    readonly CancellationTokenSource _stopBeating = new();
    Action<string>? _log;

    /// <summary>The titles of its --controlnet-dir, hashed once at start (gateways check units against them).</summary>
    readonly IReadOnlyList<string> _controlNets;

    /// <summary>Its --vae-dir: the VAEs sd_vae and override_settings.sd_vae name, announced to the gateways.</summary>
    readonly VaeCatalog _vaes;

    RedisWorker(WorkerOptions options, ConnectionMultiplexer redis, ModelCatalog catalog, ModelHost host)
    {
        _vaes = new VaeCatalog(options.Server.VaeDir);
        _controlNets = ControlNetModels.List(options.Server.ControlNetDir).Select(m => m.Title).ToList();
        (_options, _redis, _catalog, _host) = (options, redis, catalog, host);
        _store = new RedisJobStore(redis);
        _heart = new Thread(Beating) { IsBackground = true, Name = "worker heartbeat" };
    }

    /// <summary>The model name this worker serves: the stream it reads and the name clients use.</summary>
    public string Model => _host.Current.Name;

    public string Name => _options.Name;

    public IReadOnlyList<string> LoadWarnings => _host.LoadWarnings;

    /// <summary>Loads the model (a bad model fails here, with the library's message), then connects.</summary>
    public static RedisWorker Start(WorkerOptions options)
    {
        var address = RedisAddress.Parse(options.Queue);
        if (options.Server.Threads is int threads) TorchRuntime.Initialize(threads);
        else TorchRuntime.TurnOffNnpack();
        var catalog = new ModelCatalog(options.Server.Model, null);
        var host = new ModelHost(options.Server, catalog);
        try
        {
            _ = host.Pipeline;
            var worker = new RedisWorker(options, address.Connect($"sharpdiffusion-worker-{options.Name}"), catalog, host);
            Subscriptions.Keep(worker._store.Bus, RedisJobStore.Ready(worker.Model), (_, _) => worker._wake.Release());
            Subscriptions.Keep(worker._store.Bus, RedisJobStore.Control, (_, message) => worker.OnControl(message!));
            worker.Beat(); // registered before it says it is ready
            worker._heart.Start();
            return worker;
        }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    /// <summary>Takes jobs until <paramref name="stop"/>; the job running then is finished first.</summary>
    public void Run(CancellationToken stop, Action<string>? log = null)
    {
        _log = log;
        var stream = RedisJobStore.StreamKey(Model);
        EnsureGroup(stream);
        var sinceReclaim = System.Diagnostics.Stopwatch.StartNew();
        bool reclaimDue = true, unreachable = false;
        while (!stop.IsCancellationRequested)
        {
            StreamEntry[] entries = [];
            try
            {
                // A dead worker's job first (idle past the visibility timeout; looked for once a second), then a new one.
                if (reclaimDue || sinceReclaim.Elapsed >= TimeSpan.FromSeconds(1))
                {
                    entries = _store.Db.StreamAutoClaim(stream, RedisJobStore.Group, Name, (long)_options.VisibilityTimeout.TotalMilliseconds, "0-0", 1).ClaimedEntries;
                    sinceReclaim.Restart();
                    reclaimDue = entries.Length > 0; // more may be waiting
                }
                if (entries.Length == 0)
                    entries = _store.Db.StreamReadGroup(stream, RedisJobStore.Group, Name, StreamPosition.NewMessages, 1);
            }
            catch (RedisServerException e) when (e.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
            {
                EnsureGroup(stream); // Redis came back without its data
                continue;
            }
            catch (Exception e) when (RedisUnavailable.Is(e))
            {
                if (!unreachable) log?.Invoke($"the queue cannot be used ({RedisUnavailable.Reason(e)}); retrying every second");
                unreachable = true;
                stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
                continue;
            }
            if (unreachable) log?.Invoke("the queue is reachable again");
            unreachable = false;
            if (entries.Length == 0)
            {
                try { _wake.Wait(TimeSpan.FromSeconds(1), stop); } catch (OperationCanceledException) { }
                continue;
            }
            foreach (var entry in entries)
            {
                try { Process(stream, entry, stop, log); }
                catch (Exception e) when (e is RedisException or TimeoutException)
                {
                    // Anything Redis refused that waiting does not cure: the entry stays pending, and the visibility
                    // timeout hands it to a worker again (this one included), so the job is not lost.
                    log?.Invoke($"job {(string?)entry["id"]}: the queue refused a step ({e.Message}); left for a retry after the visibility timeout");
                    stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
                }
            }
        }
    }

    void EnsureGroup(RedisKey stream)
    {
        try { _store.Db.StreamCreateConsumerGroup(stream, RedisJobStore.Group, "0-0", createStream: true); }
        catch (RedisServerException e) when (e.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal)) { }
        catch (Exception e) when (RedisUnavailable.Is(e)) { }
    }

    void Process(RedisKey stream, StreamEntry entry, CancellationToken stop, Action<string>? log)
    {
        string id = (string?)entry["id"] ?? "";
        var (outcome, kind, payload) = Retry(() => _store.Start(id, Model, Name), stop);
        if (outcome != "run")
        {
            // ended, cancelled or expired meanwhile: nothing to run
            Retry(() => { _store.Acknowledge(Model, entry.Id); return 0; }, stop);
            return;
        }
        GenerationWork? work = null;
        var job = new Job(id, kind ?? "txt2img", j => Work(j, id, payload, out work));
        job.TryStart();
        job.Changed += Forward;
        _previewSent = 0;
        lock (_gate) (_current, _takenOver) = ((job, entry.Id), false);
        try
        {
            BeatSoon();
            log?.Invoke($"job {id}: running");
            job.Run();
            bool takenOver;
            lock (_gate) takenOver = _takenOver;
            if (takenOver && job.State != JobState.Completed)
            {
                // Its entry is another worker's now (this one stalled past the visibility timeout): that worker ends it.
                log?.Invoke($"job {id}: stopped here; another worker took it over after this one missed its heartbeats (raise --visibility-timeout)");
                return;
            }
            string? result = job.Result?.ToJsonString();
            // Stored and acknowledged in one step: a crash before it leaves the entry to be claimed again, never a lost
            // result. The claim is renewed meanwhile (the job stays current), so a Redis outage here does not hand it on.
            string written = Retry(() => _store.End(id, Model, entry.Id, Name, job.State, result, job.Error, job.ErrorStatus), stop);
            log?.Invoke($"job {id}: {(written == "" ? $"{job.State.ToString().ToLowerInvariant()} (already ended elsewhere; result not written)" : written)}");
            // Files only for a result the queue kept: a job cancelled as it finished leaves none.
            if (written == "completed" && _options.Server.OutputDir is { } dir && work is not null)
            {
                try { GenerationWork.Save(dir, work.Images, id); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    log?.Invoke($"job {id}: its images were not saved in {dir} ({e.Message}); the result is kept in the queue");
                }
            }
        }
        finally
        {
            lock (_gate) _current = null;
            BeatSoon();
        }
    }

    /// <summary>The job's payload run here: a generation (task txt2img/img2img), an Extras upscale ("extras") or an
    /// X/Y/Z plot ("xyz"). The request is parsed again here, with this worker's folders (the gateway checked it).</summary>
    JsonObject Work(Job job, string id, string? payloadJson, out GenerationWork? work)
    {
        var payload = JsonNode.Parse(payloadJson ?? throw new InvalidDataException($"The job {id} has no request (it expired)."))!.AsObject();
        string task = (string?)payload["task"] ?? "txt2img";
        var settings = new ServerSettings();
        if (payload["settings"] is JsonObject s) settings.Set(s);
        int clipSkip = payload["clip_skip"] is JsonValue v && v.TryGetValue(out int c) ? c : 1;
        var server = _options.Server;
        // ControlNet units and upscaler models are named as the gateway listed them; this worker finds them in its own folders.
        GenerationRequest Parse(JsonObject body, string kind) =>
            A1111Requests.Parse(body, kind, clipSkip, server.MaxImageSide, server.LoraDir, controlNetDir: server.ControlNetDir,
                upscalerDir: server.UpscalerDir) with { Checkpoint = null };
        var body = payload["body"]!.AsObject();
        switch (task)
        {
            case "extras":
                work = null;
                return ExtrasEndpoints.RunQueued(job, body, payload["batch"]?.GetValue<bool>() ?? false, server.MaxImageSide, server.UpscalerDir);
            case "xyz":
                work = new GenerationWork(_host, _catalog, settings, outputDir: null) { Vaes = _vaes };
                return XyzPlotScript.RunQueued(job, work, payload, Parse);
            default:
                work = new GenerationWork(_host, _catalog, settings, outputDir: null) { Vaes = _vaes };
                return work.Run(job, Parse(body, task));
        }
    }

    long _lastForward;
    int _previewSent;

    /// <summary>Progress and a new preview to the job's record, at most ten times a second (the result does not depend on it).</summary>
    void Forward(Job job)
    {
        long now = Environment.TickCount64;
        if (now - Interlocked.Read(ref _lastForward) < 100) return;
        Interlocked.Exchange(ref _lastForward, now);
        int version = job.PreviewVersion;
        var preview = version != _previewSent ? job.Preview : null;
        _previewSent = version;
        try { _store.Report(job.Id, Name, job.Progress, preview, version); }
        catch (RedisException) { } // best effort; the next report or the end replaces it
    }

    void OnControl(string message)
    {
        if (JsonNode.Parse(message) is not JsonObject o) return;
        Job? job;
        lock (_gate) job = _current?.Job;
        if (job is null || (string?)o["id"] != job.Id) return;
        if ((string?)o["action"] == "skip") job.Skip();
        else job.Cancel((string?)o["reason"] ?? "cancelled");
    }

    /// <summary>A heartbeat now (the job it runs or ended is announced without waiting a second).</summary>
    void BeatSoon() => _beatNow.Set();

    /// <summary>The heartbeat's own thread (not the thread pool, whose threads a busy process may hand out late): a
    /// beat every second — at least four per visibility timeout, so one late beat does not lose the job —, or at once
    /// when asked.</summary>
    void Beating()
    {
        var every = TimeSpan.FromTicks(Math.Min(WorkerRegistry.Heartbeat.Ticks, _options.VisibilityTimeout.Ticks / 4));
        while (!_stopBeating.IsCancellationRequested)
        {
            WaitHandle.WaitAny([_beatNow, _stopBeating.Token.WaitHandle], every);
            if (!_stopBeating.IsCancellationRequested) Beat();
        }
    }

    readonly System.Diagnostics.Stopwatch _sinceRenewal = new();
    RedisValue _renewed;
    readonly HashSet<string> _failing = [];

    /// <summary>Renews the claim on the running job's entry first (a claim idle past the visibility timeout is taken
    /// over by another worker), picks up a cancellation whose message was missed, then announces this worker and its job.</summary>
    void Beat()
    {
        (Job Job, RedisValue Entry)? current;
        lock (_gate) current = _current;
        if (current is { } c)
        {
            bool ours = false;
            bool answered = Try("renew its claim on the running job", () => ours = _store.RenewClaim(Model, c.Entry, Name));
            if (answered && !ours)
            {
                lock (_gate) if (_current?.Entry == c.Entry) _takenOver = true;
                c.Job.Cancel("another worker took the job over");
            }
            else if (answered)
            {
                if (_renewed == c.Entry && _sinceRenewal.Elapsed > _options.VisibilityTimeout / 2)
                    _log?.Invoke($"job {c.Job.Id}: its claim was renewed {_sinceRenewal.Elapsed.TotalSeconds:0.0} s after the last time "
                        + $"(visibility timeout {_options.VisibilityTimeout.TotalSeconds:0.#} s): this machine is too busy for that timeout; raise --visibility-timeout");
                _renewed = c.Entry;
                _sinceRenewal.Restart();
            }
            Try("check for a cancellation", () => { if (_store.Field(c.Job.Id, "cancel") is { } reason) c.Job.Cancel(reason); });
        }
        var pipeline = _host.Current;
        Try("announce itself", () => WorkerRegistry.Announce(_store.Db, new WorkerInfo(Name, Model, pipeline.Title(_host.CurrentHash), _host.CurrentHash,
            pipeline.IsFile, pipeline.FileName, _host.Embeddings, current?.Job.Id, Environment.MachineName, Environment.ProcessId,
            _options.Server.Threads ?? Environment.ProcessorCount, DateTimeOffset.UtcNow)
            { ControlNets = _controlNets, Upscalers = UpscalerModels.List(_options.Server.UpscalerDir), Vaes = _vaes.Entries(), Traits = pipeline.Traits }));
    }

    /// <summary>One part of a beat; a failure is logged once (Redis away: the next beat tries again).</summary>
    bool Try(string what, Action call)
    {
        try
        {
            call();
            if (_failing.Remove(what)) _log?.Invoke($"heartbeat: can {what} again");
            return true;
        }
        catch (Exception e)
        {
            if (_failing.Add(what)) _log?.Invoke($"heartbeat: could not {what} ({e.GetType().Name}: {e.Message}); retrying every second");
            return false;
        }
    }

    /// <summary>Repeats a Redis call until it gets through (Redis restarting) or the worker is told to stop and 30 s more have passed.</summary>
    T Retry<T>(Func<T> call, CancellationToken stop)
    {
        var giveUp = DateTime.MaxValue;
        while (true)
        {
            try { return call(); }
            catch (Exception e) when (RedisUnavailable.Is(e))
            {
                if (stop.IsCancellationRequested && giveUp == DateTime.MaxValue) giveUp = DateTime.UtcNow.AddSeconds(30);
                if (DateTime.UtcNow > giveUp) throw;
                Thread.Sleep(500);
            }
        }
    }

    public void Dispose()
    {
        _stopBeating.Cancel();
        if (_heart.IsAlive) _heart.Join();
        try { WorkerRegistry.Withdraw(_store.Db, Name); } catch (Exception) { }
        try
        {
            // This worker's consumer leaves the group with it, unless an entry is still pending for it (to be taken over).
            _store.Leave(Model, Name);
        }
        catch (Exception) { }
        _redis.Dispose();
        _host.Dispose();
    }
}
