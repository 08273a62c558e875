using System.Text.Json.Nodes;
using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>A worker as it announces itself: its model (name, A1111 title, hash, embeddings), its upscaler models
/// (`worker --upscaler-dir`), VAEs (`--vae-dir`) and the job it runs.</summary>
public sealed record WorkerInfo(string Name, string Model, string Title, string? Hash, bool IsFile, string FileName,
    IReadOnlyList<string> Embeddings, string? Job, string Host, int Pid, int Threads, DateTimeOffset LastSeen)
{
    /// <summary>(name, path on the worker's machine) of each ESRGAN-family model of its upscaler folder.</summary>
    public IReadOnlyList<(string Name, string Path)> Upscalers { get; init; } = [];

    /// <summary>(name, path on the worker's machine) of each VAE of its --vae-dir, as /sdapi/v1/sd-vae lists them.</summary>
    public IReadOnlyList<(string Name, string Path)> Vaes { get; init; } = [];

    /// <summary>Its ControlNets as /controlnet/model_list titles them ("name [hash]"), from its --controlnet-dir.</summary>
    public IReadOnlyList<string> ControlNets { get; init; } = [];

    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["model"] = Model,
        ["title"] = Title,
        ["hash"] = Hash,
        ["job"] = Job,
        ["host"] = Host,
        ["pid"] = Pid,
        ["threads"] = Threads,
        ["upscalers"] = new JsonArray(Upscalers.Select(u => (JsonNode?)JsonValue.Create(u.Name)).ToArray()),
        ["vaes"] = new JsonArray(Vaes.Select(v => (JsonNode?)JsonValue.Create(v.Name)).ToArray()),
        ["last_seen"] = LastSeen.ToString("O"),
    };
}

/// <summary>
/// Who serves what: each worker writes its <see cref="WorkerInfo"/> into <c>sd:worker:NAME</c> (expiring) and its
/// heartbeat time into the sorted set <c>sd:workers</c>; a worker not heard of for <see cref="Lifetime"/> is gone.
/// </summary>
public static class WorkerRegistry
{
    public static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(5);

    public static void Announce(IDatabase db, WorkerInfo w)
    {
        var key = RedisJobStore.WorkerKey(w.Name);
        var all = db.CreateTransaction(); // one step: never a worker record without its expiry
        _ = all.HashSetAsync(key,
        [
            new("name", w.Name), new("model", w.Model), new("title", w.Title), new("hash", w.Hash ?? ""),
            new("is_file", w.IsFile), new("file_name", w.FileName),
            new("embeddings", new JsonArray(w.Embeddings.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()).ToJsonString()),
            new("upscalers", new JsonArray(w.Upscalers.Select(u => (JsonNode?)new JsonArray(u.Name, u.Path)).ToArray()).ToJsonString()),
            new("vaes", new JsonArray(w.Vaes.Select(v => (JsonNode?)new JsonArray(v.Name, v.Path)).ToArray()).ToJsonString()),
            new("controlnets", new JsonArray(w.ControlNets.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()).ToJsonString()),
            new("job", w.Job ?? ""), new("host", w.Host), new("pid", w.Pid), new("threads", w.Threads),
        ]);
        _ = all.KeyExpireAsync(key, Lifetime);
        _ = all.SortedSetAddAsync(RedisJobStore.Workers, w.Name, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        all.Execute();
    }

    public static void Withdraw(IDatabase db, string name)
    {
        db.KeyDelete(RedisJobStore.WorkerKey(name));
        db.SortedSetRemove(RedisJobStore.Workers, name);
    }

    /// <summary>The workers heard of within <see cref="Lifetime"/>, by name.</summary>
    public static async Task<IReadOnlyList<WorkerInfo>> LiveAsync(IDatabase db)
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await db.SortedSetRemoveRangeByScoreAsync(RedisJobStore.Workers, double.NegativeInfinity, now - Lifetime.TotalMilliseconds, flags: CommandFlags.FireAndForget);
        var names = await db.SortedSetRangeByScoreWithScoresAsync(RedisJobStore.Workers, now - Lifetime.TotalMilliseconds);
        var list = new List<WorkerInfo>();
        foreach (var entry in names)
        {
            var h = (await db.HashGetAllAsync(RedisJobStore.WorkerKey((string)entry.Element!))).ToDictionary(e => (string)e.Name!, e => e.Value);
            if (!h.ContainsKey("model")) continue;
            string S(string k) => h.TryGetValue(k, out var v) ? (string?)v ?? "" : "";
            List<string> Names(string k) => JsonNode.Parse(S(k) is { Length: > 0 } j ? j : "[]")!.AsArray().Select(n => (string)n!).ToList();
            var embeddings = Names("embeddings");
            list.Add(new WorkerInfo(S("name"), S("model"), S("title"), S("hash") is { Length: > 0 } hash ? hash : null,
                S("is_file") == "1", S("file_name"), embeddings, S("job") is { Length: > 0 } job ? job : null, S("host"),
                int.TryParse(S("pid"), out int pid) ? pid : 0, int.TryParse(S("threads"), out int t) ? t : 0,
                DateTimeOffset.FromUnixTimeMilliseconds((long)entry.Score))
            {
                ControlNets = Names("controlnets"),
                // [[name, path], ...]; absent from a worker of an earlier version
                Upscalers = JsonNode.Parse(S("upscalers") is { Length: > 0 } u ? u : "[]")!.AsArray()
                    .Select(n => ((string)n![0]!, (string)n[1]!)).ToList(),
                Vaes = JsonNode.Parse(S("vaes") is { Length: > 0 } vs ? vs : "[]")!.AsArray().Select(n => ((string)n![0]!, (string)n[1]!)).ToList(),
            });
        }
        return list.OrderBy(w => w.Name, StringComparer.Ordinal).ToList();
    }
}
