using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// Redis without a single point of failure: a primary, its replica and a Sentinel (Debian's redis-server, each a process
/// on a free port); a gateway and a worker given the Sentinel's address (redis+sentinel://) keep serving after the
/// primary stops and the Sentinel promotes the replica, without a restart.
/// </summary>
public class RedisSentinelTests(ITestOutputHelper output)
{
    static JsonObject Body(long seed) => new() { ["prompt"] = "a red circle", ["seed"] = seed, ["steps"] = 4, ["width"] = 64, ["height"] = 64 };

    [Fact]
    public async Task Gateways_and_workers_follow_a_Sentinel_failover_to_the_promoted_replica()
    {
        using var primary = RedisServer.Start();
        using var replica = RedisServer.Start("--replicaof", "127.0.0.1", primary.Port.ToString());
        using var sentinel = RedisServer.StartSentinel("queue", primary.Port);
        string url = $"redis+sentinel://127.0.0.1:{sentinel.Port}/queue/0";
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var gateway = await ServerProcess.StartAsync("--queue", url);
        using var worker = await ServerProcess.StartWorkerAsync("--queue", url, "--name", "w", "--visibility-timeout", "5");
        try
        {
            var before = await http.PostAsync($"{gateway.Url}/sdapi/v1/txt2img", Body(1));
            Assert.True(before.Code == 200, before.Body?.ToJsonString());
            using (var client = replica.Connect())
                await Api.PollAsync(() => Task.FromResult((int)client.GetDatabase().HashGet("sd:stats", "completed")), n => n == 1,
                    TimeSpan.FromSeconds(30), "the replica in sync");

            primary.Stop();
            var clock = Stopwatch.StartNew();
            var after = await Api.PollAsync(() => http.PostAsync($"{gateway.Url}/sdapi/v1/txt2img", Body(2)), r => r.Code != 503,
                TimeSpan.FromSeconds(90), "a generation after the failover", everyMs: 250);
            output.WriteLine($"answered {clock.ElapsedMilliseconds} ms after the primary stopped");
            Assert.True(after.Code == 200, after.Body?.ToJsonString());
            Assert.Equal(2, (int)after.Json["parameters"]!["seed"]!);

            using var promoted = replica.Connect();
            var db = promoted.GetDatabase();
            Assert.False(promoted.GetServer($"127.0.0.1:{replica.Port}").IsReplica); // promoted
            Assert.Equal(2, (int)db.HashGet("sd:stats", "completed")); // written on the replica, now the primary
            var workers = (await http.GetJsonAsync($"{gateway.Url}/workers")).Ok().Json;
            Assert.Equal("w", (string?)workers["workers"]![0]!["name"]);
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nworker:\n{worker.Output}");
            throw;
        }
    }
}
