using System.Text.Json.Nodes;
using StackExchange.Redis;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Distributed;

/// <summary>A job as its Redis hash holds it (what a gateway mirrors).</summary>
public sealed record JobRecord(string Id, string Kind, string Model, string State, DateTimeOffset Created, JobProgress Progress,
    int PreviewVersion, string? Error, int ErrorStatus, string? Worker, bool CancelRequested, int Attempts, string? Result)
{
    public bool IsFinished => State is "completed" or "failed" or "cancelled";
}

/// <summary>
/// The jobs of a Redis queue, shared by gateways and workers. Per job a hash <c>sd:job:ID</c> (state, request, progress,
/// preview, result); per model a stream <c>sd:stream:MODEL</c> read by the consumer group "workers" and a sorted set
/// <c>sd:queued:MODEL</c> of the jobs still waiting (its size bounds the queue, its rank is the queue position). Every
/// change of state is one Lua script, so it is atomic: a job starts only if it is still queued and not cancelled, and
/// ends once — a second end (a job run again after its worker was thought dead) changes nothing, and a job whose
/// cancellation was asked for never ends "completed". Each change is published on <c>sd:events</c> (the job id).
/// </summary>
public sealed class RedisJobStore(IConnectionMultiplexer redis)
{
    public const string Group = "workers";
    const string Prefix = "sd:";
    public static RedisKey JobKey(string id) => $"{Prefix}job:{id}";
    public static RedisKey StreamKey(string model) => $"{Prefix}stream:{model}";
    public static RedisKey QueuedKey(string model) => $"{Prefix}queued:{model}";
    public static RedisKey WorkerKey(string name) => $"{Prefix}worker:{name}";
    public static readonly RedisKey Workers = $"{Prefix}workers";
    public static readonly RedisKey Stats = $"{Prefix}stats";
    /// <summary>The A1111 options set through any gateway: one field per option, its JSON value.</summary>
    public static readonly RedisKey Settings = $"{Prefix}settings";
    public static readonly RedisChannel Events = RedisChannel.Literal($"{Prefix}events");
    public static readonly RedisChannel Control = RedisChannel.Literal($"{Prefix}control");
    public static RedisChannel Ready(string model) => RedisChannel.Literal($"{Prefix}ready:{model}");

    /// <summary>A hash lives this long while its job waits or runs (it is refreshed when the job starts).</summary>
    public static readonly TimeSpan PendingLifetime = TimeSpan.FromDays(1);

    public IDatabase Db => redis.GetDatabase();
    public ISubscriber Bus => redis.GetSubscriber();

    // KEYS: job, queued, stream. ARGV: id, capacity, kind, model, payload, now(ms), lifetime(s), retention(s).
    // A capacity of 0 still lets a job through when none waits (it is taken at once by an idle worker), as in-process.
    const string SubmitScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
        if redis.call('ZCARD', KEYS[2]) >= math.max(tonumber(ARGV[2]), 1) then return -2 end
        redis.call('HSET', KEYS[1], 'id', ARGV[1], 'kind', ARGV[3], 'model', ARGV[4], 'payload', ARGV[5], 'state', 'queued',
          'created', ARGV[6], 'retention', ARGV[8], 'attempts', 0, 'preview_version', 0)
        redis.call('EXPIRE', KEYS[1], ARGV[7])
        redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
        redis.pcall('XGROUP', 'CREATE', KEYS[3], 'workers', '0', 'MKSTREAM')
        redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
        return 1
        """;

    // The job's end, shared by the scripts below (KEYS: job, queued, stats; ARGV[1]: id): the state and why, the request
    // dropped, out of the waiting set, kept for its retention time, counted, announced.
    const string Ending = """
        local function ended(s) return s == 'completed' or s == 'failed' or s == 'cancelled' end
        local function finish(state, now, err)
          redis.call('HSET', KEYS[1], 'state', state, 'ended', now, 'error', err)
          redis.call('HDEL', KEYS[1], 'payload')
          redis.call('ZREM', KEYS[2], ARGV[1])
          redis.call('EXPIRE', KEYS[1], redis.call('HGET', KEYS[1], 'retention'))
          redis.call('HINCRBY', KEYS[3], state, 1)
          redis.call('PUBLISH', 'sd:events', ARGV[1])
        end

        """;

    // KEYS: job, queued, stats. ARGV: id, worker, now(ms), lifetime(s).
    // Returns {run, kind, payload} | {finished} | {gone} | {cancelled}.
    const string StartScript = Ending + """
        local s = redis.call('HGET', KEYS[1], 'state')
        if not s then redis.call('ZREM', KEYS[2], ARGV[1]) return {'gone'} end
        if ended(s) then return {'finished'} end
        redis.call('ZREM', KEYS[2], ARGV[1])
        local reason = redis.call('HGET', KEYS[1], 'cancel')
        if reason then
          finish('cancelled', ARGV[3], reason)
          return {'cancelled'}
        end
        redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[2], 'started', ARGV[3])
        redis.call('HINCRBY', KEYS[1], 'attempts', 1)
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        redis.call('PUBLISH', 'sd:events', ARGV[1])
        return {'run', redis.call('HGET', KEYS[1], 'kind'), redis.call('HGET', KEYS[1], 'payload')}
        """;

    // KEYS: job, queued, stats, stream. ARGV: id, state, result, error, status, now(ms), stream entry, worker.
    // Stores the end (unless the job had ended: returns '', or the state stored if this worker's own end was repeated
    // because its reply was lost) and acknowledges the stream entry in the same step.
    const string EndScript = Ending + """
        redis.call('XACK', KEYS[4], 'workers', ARGV[7])
        redis.call('XDEL', KEYS[4], ARGV[7])
        local s = redis.call('HGET', KEYS[1], 'state')
        if not s then return '' end
        if ended(s) then
          if redis.call('HGET', KEYS[1], 'ended_by') == ARGV[8] then return s end
          return ''
        end
        redis.call('HSET', KEYS[1], 'ended_by', ARGV[8])
        local state, result, err = ARGV[2], ARGV[3], ARGV[4]
        local reason = redis.call('HGET', KEYS[1], 'cancel')
        if reason and state == 'completed' then state, result, err = 'cancelled', '', reason end
        if result ~= '' then redis.call('HSET', KEYS[1], 'result', result) end
        redis.call('HSET', KEYS[1], 'error_status', ARGV[5])
        finish(state, ARGV[6], err)
        return state
        """;

    // KEYS: job, queued, stats. ARGV: id, reason, now(ms). Returns cancelled (was waiting) | running | finished | gone.
    const string CancelScript = Ending + """
        local s = redis.call('HGET', KEYS[1], 'state')
        if not s then return 'gone' end
        if ended(s) then return 'finished' end
        if redis.call('HEXISTS', KEYS[1], 'cancel') == 0 then redis.call('HSET', KEYS[1], 'cancel', ARGV[2]) end
        if s == 'queued' then
          finish('cancelled', ARGV[3], redis.call('HGET', KEYS[1], 'cancel'))
          return 'cancelled'
        end
        return 'running'
        """;

    // KEYS: job, queued, stats. ARGV: id, worker, reason, now(ms). Ends a running job of a worker that is gone.
    const string EndAbandonedScript = Ending + """
        if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
        finish('cancelled', ARGV[4], ARGV[3])
        return 1
        """;

    // KEYS: stream. ARGV: entry, consumer. Renews the consumer's claim (resets the entry's idle time) only while the entry
    // is still pending for it: 0 once another worker has taken it over (or it was acknowledged).
    const string RenewScript = """
        local p = redis.call('XPENDING', KEYS[1], 'workers', ARGV[1], ARGV[1], 1, ARGV[2])
        if #p == 0 then return 0 end
        redis.call('XCLAIM', KEYS[1], 'workers', ARGV[2], 0, ARGV[1], 'JUSTID')
        return 1
        """;

    // KEYS: job. ARGV: id, worker, progress[, preview, preview version]. Only while the job runs on that worker: a late
    // report never recreates an expired record (without its expiry) nor overwrites the progress of a worker that took over.
    const string ReportScript = """
        if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then return 0 end
        redis.call('HSET', KEYS[1], 'progress', ARGV[3])
        if ARGV[4] then redis.call('HSET', KEYS[1], 'preview', ARGV[4], 'preview_version', ARGV[5]) end
        redis.call('PUBLISH', 'sd:events', ARGV[1])
        return 1
        """;

    // KEYS: stream. ARGV: consumer. Deletes the consumer unless an entry is still pending for it, in one step (deleting a
    // consumer drops its pending entries: a job would be left to nobody).
    const string LeaveScript = """
        if #redis.call('XPENDING', KEYS[1], 'workers', '-', '+', 1, ARGV[1]) > 0 then return 0 end
        return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], 'workers', ARGV[1])
        """;

    // KEYS: stream. ARGV: entry.
    const string AcknowledgeScript = """
        redis.call('XACK', KEYS[1], 'workers', ARGV[1])
        redis.call('XDEL', KEYS[1], ARGV[1])
        """;

    static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Queues a job; false if <paramref name="capacity"/> jobs already wait for the model. Throws if the id is taken.</summary>
    public async Task<bool> SubmitAsync(string id, string kind, string model, string payload, int capacity, TimeSpan retention)
    {
        var r = (long)await Db.ScriptEvaluateAsync(SubmitScript, [JobKey(id), QueuedKey(model), StreamKey(model)],
            [id, capacity, kind, model, payload, Now, (long)PendingLifetime.TotalSeconds, Math.Max(1, (long)retention.TotalSeconds)]);
        if (r == -1)
            throw QueueRefusedException.IdTaken(id);
        if (r == 1)
            Bus.Publish(Ready(model), id, CommandFlags.FireAndForget);
        return r == 1;
    }

    /// <summary>Marks the job running on <paramref name="worker"/>: "run" with the job's kind and request, or why not
    /// ("finished", "gone", "cancelled").</summary>
    public (string Outcome, string? Kind, string? Payload) Start(string id, string model, string worker)
    {
        var r = (RedisResult[])Db.ScriptEvaluate(StartScript, [JobKey(id), QueuedKey(model), Stats], [id, worker, Now, (long)PendingLifetime.TotalSeconds])!;
        return ((string)r[0]!, r.Length > 1 ? (string?)r[1] : null, r.Length > 2 ? (string?)r[2] : null);
    }

    /// <summary>Ends the job once and acknowledges its stream entry, in one step: the state written ("cancelled" if a
    /// cancellation came first), or "" if it had already ended.</summary>
    public string End(string id, string model, RedisValue entry, string worker, JobState state, string? result, string? error, int status) =>
        (string)Db.ScriptEvaluate(EndScript, [JobKey(id), QueuedKey(model), Stats, StreamKey(model)],
            [id, state.ToString().ToLowerInvariant(), result ?? "", error ?? "", status, Now, entry, worker])!;

    /// <summary>Acknowledges and removes a stream entry whose job will not run (ended, cancelled or expired), in one step.</summary>
    public void Acknowledge(string model, RedisValue entry) =>
        Db.ScriptEvaluate(AcknowledgeScript, [StreamKey(model)], [entry]);

    /// <summary>Takes <paramref name="worker"/> out of the model's consumer group, unless a job entry is still its own.</summary>
    public void Leave(string model, string worker) => Db.ScriptEvaluate(LeaveScript, [StreamKey(model)], [worker]);

    /// <summary>Renews <paramref name="worker"/>'s claim on its running job's entry; false if the entry is no longer its own.</summary>
    public bool RenewClaim(string model, RedisValue entry, string worker) =>
        (long)Db.ScriptEvaluate(RenewScript, [StreamKey(model)], [entry, worker]) == 1;

    /// <summary>Ends as cancelled a job still running on <paramref name="worker"/>, a worker no longer alive (nobody would
    /// ever end it); its stream entry is acknowledged by whichever worker takes it over later.</summary>
    public async Task<bool> EndAbandonedAsync(string id, string model, string worker, string reason) =>
        (long)await Db.ScriptEvaluateAsync(EndAbandonedScript, [JobKey(id), QueuedKey(model), Stats], [id, worker, reason, Now]) == 1;

    /// <summary>Asks for a cancellation: a waiting job ends at once ("cancelled"); a running one ("running") is told over
    /// <see cref="Control"/> and stops at its next step.</summary>
    public async Task<string> CancelAsync(string id, string model, string reason)
    {
        string r = (string)(await Db.ScriptEvaluateAsync(CancelScript, [JobKey(id), QueuedKey(model), Stats], [id, reason, Now]))!;
        if (r == "running")
            await Bus.PublishAsync(Control, new JsonObject { ["id"] = id, ["action"] = "cancel", ["reason"] = reason }.ToJsonString());
        return r;
    }

    public Task SkipImageAsync(string id) =>
        Bus.PublishAsync(Control, new JsonObject { ["id"] = id, ["action"] = "skip" }.ToJsonString());

    static readonly RedisValue[] RecordFields =
        ["id", "kind", "model", "state", "created", "progress", "preview_version", "error", "error_status", "worker", "cancel", "attempts", "result"];

    /// <summary>The job's record (with its result once completed: the field exists only then), or null when there is no
    /// such job (never was, or expired).</summary>
    public JobRecord? Read(string id) => Record(Db.HashGet(JobKey(id), RecordFields, CommandFlags.DemandMaster));

    public async Task<JobRecord?> ReadAsync(string id) => Record(await Db.HashGetAsync(JobKey(id), RecordFields, CommandFlags.DemandMaster));

    // Read from the primary only: a lagging replica (Sentinel mode, primary away) could say a live job does not exist.
    static JobRecord? Record(RedisValue[] v)
    {
        if (v[3].IsNull) return null;
        return new JobRecord((string)v[0]!, (string?)v[1] ?? "txt2img", (string?)v[2] ?? "", (string)v[3]!,
            DateTimeOffset.FromUnixTimeMilliseconds((long)v[4]), ParseProgress((string?)v[5]), (int)v[6], (string?)v[7],
            v[8].IsNullOrEmpty ? 0 : (int)v[8], (string?)v[9], !v[10].IsNull, v[11].IsNull ? 0 : (int)v[11], (string?)v[12]);
    }

    public string? Field(string id, string field) => Db.HashGet(JobKey(id), field);

    public void SaveSettings(JsonObject changes) =>
        Db.HashSet(Settings, changes.Select(c => new HashEntry(c.Key, c.Value?.ToJsonString() ?? "null")).ToArray());

    public async Task<JsonObject> LoadSettingsAsync()
    {
        var stored = new JsonObject();
        foreach (var field in await Db.HashGetAllAsync(Settings))
            stored[(string)field.Name!] = JsonNode.Parse((string)field.Value!);
        return stored;
    }

    public byte[]? Preview(string id) => (byte[]?)Db.HashGet(JobKey(id), "preview");

    public async Task<byte[]?> PreviewAsync(string id) => (byte[]?)await Db.HashGetAsync(JobKey(id), "preview");

    /// <summary>Progress and preview of a job running on <paramref name="worker"/>; fire-and-forget (a lost update is
    /// replaced by the next).</summary>
    public void Report(string id, string worker, JobProgress p, byte[]? preview, int previewVersion)
    {
        RedisValue[] args = preview is null
            ? [id, worker, FormatProgress(p)]
            : [id, worker, FormatProgress(p), preview, previewVersion];
        Db.ScriptEvaluate(ReportScript, [JobKey(id)], args, CommandFlags.FireAndForget);
    }

    static string FormatProgress(JobProgress p) =>
        new JsonObject { ["i"] = p.ImageIndex, ["n"] = p.ImageCount, ["step"] = p.Step, ["steps"] = p.Steps, ["stage"] = p.Stage }.ToJsonString();

    static JobProgress ParseProgress(string? json)
    {
        if (json is null || JsonNode.Parse(json) is not JsonObject o) return new JobProgress(0, 1, 0, 0, "queued");
        return new JobProgress((int)o["i"]!, (int)o["n"]!, (int)o["step"]!, (int)o["steps"]!, (string?)o["stage"] ?? "");
    }
}
