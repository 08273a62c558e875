using System.Text.Json.Nodes;
using StackExchange.Redis;
using SharpDiffusion.Server.Catalog;

namespace SharpDiffusion.Server.Distributed;

/// <summary>A worker as it announces itself: its model (name, A1111 title, hash, embeddings, family traits), its upscaler
/// models (`worker --upscaler-dir`), VAEs (`--vae-dir`) and the job it runs.</summary>
public sealed record WorkerInfo(string Name, string Model, string Title, string? Hash, bool IsFile, string FileName,
    IReadOnlyList<string> Embeddings, string? Job, string Host, int Pid, int Threads, DateTimeOffset LastSeen)
{
    /// <summary>(name, path on the worker's machine) of each ESRGAN-family model of its upscaler folder.</summary>
    public IReadOnlyList<(string Name, string Path)> Upscalers { get; init; } = [];

    /// <summary>(name, path on the worker's machine) of each VAE of its --vae-dir, as /sdapi/v1/sd-vae lists them.</summary>
    public IReadOnlyList<(string Name, string Path)> Vaes { get; init; } = [];

    /// <summary>Its ControlNets as /controlnet/model_list titles them ("name [hash]"), from its --controlnet-dir.</summary>
    public IReadOnlyList<string> ControlNets { get; init; } = [];

    /// <summary>Its model's family, guidance and prompt fields as its catalog read them (what a single `serve` lists in
    /// /sdapi/v1/sd-models); null from a worker of an earlier version, which did not send them.</summary>
    public ModelTraits? Traits { get; init; }

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
        HashEntry[] fields =
        [
            new("name", w.Name), new("model", w.Model), new("title", w.Title), new("hash", w.Hash ?? ""),
            new("is_file", w.IsFile), new("file_name", w.FileName),
            new("embeddings", new JsonArray(w.Embeddings.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()).ToJsonString()),
            new("upscalers", new JsonArray(w.Upscalers.Select(u => (JsonNode?)new JsonArray(u.Name, u.Path)).ToArray()).ToJsonString()),
            new("vaes", new JsonArray(w.Vaes.Select(v => (JsonNode?)new JsonArray(v.Name, v.Path)).ToArray()).ToJsonString()),
            new("controlnets", new JsonArray(w.ControlNets.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray()).ToJsonString()),
            new("job", w.Job ?? ""), new("host", w.Host), new("pid", w.Pid), new("threads", w.Threads),
        ];
        // Left out when unknown, as a worker of an earlier version leaves it out.
        _ = all.HashSetAsync(key, w.Traits is { } traits ? [.. fields, new("traits", TraitsJson(traits))] : fields);
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
                Traits = ReadTraits(S("traits")),
            });
        }
        return list.OrderBy(w => w.Name, StringComparer.Ordinal).ToList();
    }

    static string TraitsJson(ModelTraits t) => new JsonObject
    {
        ["family"] = t.Family, ["flow_matching"] = t.FlowMatching, ["has_t5"] = t.HasT5,
        ["distilled_guidance"] = t.DistilledGuidance, ["guidance"] = t.Guidance,
    }.ToJsonString();

    /// <summary>The traits a worker sent; null when it sent none (an earlier version) or a record this version cannot read:
    /// the gateway then lists the model without family fields, as before, and the page shows every A1111 field.</summary>
    static ModelTraits? ReadTraits(string json)
    {
        if (json.Length == 0) return null;
        try
        {
            return JsonNode.Parse(json) is JsonObject o && o["family"] is JsonValue f && f.TryGetValue(out string? family)
                ? new ModelTraits(family, (bool?)o["flow_matching"] ?? false, (bool?)o["has_t5"] ?? false)
                {
                    DistilledGuidance = (bool?)o["distilled_guidance"] ?? false, Guidance = (string?)o["guidance"] ?? "cfg",
                }
                : null;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}
