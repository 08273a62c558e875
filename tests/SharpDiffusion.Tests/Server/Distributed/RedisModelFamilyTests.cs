using System.Text.Json.Nodes;
using SharpDiffusion.Server.Distributed;
using SharpDiffusion.Tests.Flux;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>A worker of the golden tiny Flux dev folder and one of the tiny SD3 folder behind a gateway, and a single
/// `serve` whose models folder holds the same two folders.</summary>
public sealed class RedisFamilyCluster : RedisGatewayCluster
{
    public static readonly string[] Models = ["tiny-flux-dev", "tiny-sd3"];

    protected override void Fill()
    {
        foreach (var model in Models)
            Directory.CreateSymbolicLink(Folder.File(model), FluxGolden.ModelDir(model));
    }

    protected override string[] SingleArgs => ["--model", Golden.Path("models", "small-sd15"), "--models-dir", Folder.Path];
    protected override IEnumerable<string[]> WorkerArgs => Models.Select(m => new[] { "--model", Folder.File(m), "--name", m + "-w" });

    protected override Task ReadyAsync() =>
        PollGatewayAsync("/sdapi/v1/sd-models", list => list.AsArray().Count == Models.Length, "the gateway to list the workers' models");
}

/// <summary>
/// A gateway's /sdapi/v1/sd-models carries the family fields its workers announce (family, prompts, guidance, samplers,
/// schedulers: what the page shows a model's fields by), as a single `serve` lists them for the same folder; a worker
/// that announces none (an earlier version) leaves them null, as before (real HTTP, real Redis).
/// </summary>
public class RedisModelFamilyTests(RedisFamilyCluster cluster, ITestOutputHelper log) : IClassFixture<RedisFamilyCluster>
{
    HttpClient Http => cluster.Http;

    /// <summary>The fields this server adds to A1111's sd-models entry for the page.</summary>
    static readonly string[] FamilyFields = ["family", "prompts", "guidance", "samplers", "schedulers"];

    async Task<JsonObject> EntryAsync(string url, string model)
    {
        var list = (await Http.GetJsonAsync($"{url}/sdapi/v1/sd-models")).Ok().Json.AsArray();
        return list.Select(e => e!.AsObject()).Single(e => (string?)e["model_name"] == model);
    }

    [Fact]
    public async Task The_gateways_entry_for_a_workers_model_is_the_single_servers_entry_for_the_same_folder()
    {
        var guidances = new List<string?>();
        foreach (var model in RedisFamilyCluster.Models)
        {
            var single = await EntryAsync(cluster.Single.Url, model);
            var gateway = await EntryAsync(cluster.Gateway.Url, model);
            log.WriteLine($"{model}\n  single:  {single.ToJsonString()}\n  gateway: {gateway.ToJsonString()}");
            Assert.All(FamilyFields, f => Assert.NotNull(single[f]));
            Assert.Equal(single.ToJsonString(), gateway.ToJsonString());
            guidances.Add((string?)gateway["guidance"]);
        }
        Assert.Equal(guidances.Count, guidances.Distinct().Count()); // Flux dev and SD3 are guided differently: the page tells them apart
    }

    /// <summary>With the traits known, the gateway checks a request against its model as the single server does, before
    /// anything is queued: SD3 samples by flow matching only.</summary>
    [Fact]
    public async Task A_sampler_the_model_does_not_take_is_refused_by_the_gateway_as_by_the_single_server()
    {
        var body = new JsonObject
        {
            ["prompt"] = "a red cube", ["steps"] = 1, ["width"] = 64, ["height"] = 64, ["sampler_name"] = "DPM++ 2M",
            ["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = "tiny-sd3" },
        };
        var (single, gateway) = await cluster.BothAsync("/sdapi/v1/txt2img", body, log);
        log.WriteLine($"single {single.Code}: {single.Json.ToJsonString()}\ngateway {gateway.Code}: {gateway.Json.ToJsonString()}");
        Assert.Equal(422, single.Code);
        Assert.Equal(single.Code, gateway.Code);
        Assert.Equal(single.Json.ToJsonString(), gateway.Json.ToJsonString());
    }

    [Fact]
    public async Task A_worker_that_announces_no_traits_gets_an_entry_without_family_fields()
    {
        using var redis = cluster.ConnectRedis();
        var db = redis.GetDatabase();
        var old = new WorkerInfo("old-w", "old-model", "old-model", null, false, "old-model", [], null, Environment.MachineName,
            Environment.ProcessId, 1, DateTimeOffset.UtcNow);
        try
        {
            // Announced as a worker of an earlier version does (no traits field), again at each read: its record lives 5 s.
            var entry = await Api.PollAsync(async () =>
            {
                WorkerRegistry.Announce(db, old);
                var list = (await Http.GetJsonAsync($"{cluster.Gateway.Url}/sdapi/v1/sd-models")).Ok().Json.AsArray();
                return list.Select(e => e!.AsObject()).SingleOrDefault(e => (string?)e["model_name"] == "old-model");
            }, e => e is not null, TimeSpan.FromSeconds(30), "the gateway to list the old worker's model", everyMs: 200);
            log.WriteLine(entry!.ToJsonString());
            Assert.True(db.KeyExists(RedisJobStore.WorkerKey("old-w")));
            Assert.False(db.HashExists(RedisJobStore.WorkerKey("old-w"), "traits"));
            Assert.All(FamilyFields, f => Assert.Null(entry[f]));
            // The announcing workers' entries keep theirs.
            Assert.NotNull((await EntryAsync(cluster.Gateway.Url, RedisFamilyCluster.Models[0]))["family"]);
        }
        finally
        {
            WorkerRegistry.Withdraw(db, "old-w");
        }
    }
}
