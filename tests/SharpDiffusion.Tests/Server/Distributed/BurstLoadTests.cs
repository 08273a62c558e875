using System.Diagnostics;
using System.Text.Json.Nodes;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// Issue 20: a burst — 100 synchronous txt2img requests and 20 `POST /jobs` polled to their end, all sent at once —
/// against a Redis gateway with two worker processes (one killed mid-run and started again), and the same burst against
/// one `serve` process. Every request is answered 200 with the CLI's image for its seed; through Redis every job ends
/// once. Before the fix, 3 to 7 of 16 such requests were answered 503 "RedisTimeoutException" on a 2-core machine:
/// request threads blocked in synchronous Redis calls while the replies they waited for sat in the same starved thread
/// pool. Latencies (p50/p95) and the CPU are written to the test output.
/// </summary>
[Collection(ProcessWide.Settings)]
public class BurstLoadTests(ITestOutputHelper output)
{
    const int Synchronous = 100, Polled = 20, Kinds = 4, Steps = 4; // short jobs: the burst is the point, not the work
    const string QueueSize = "200"; // room for the whole burst: any 503 would be a defect, not a full queue

    sealed record Answer(int Index, int Status, JsonNode? Body, double Milliseconds);

    [Fact]
    public async Task A_burst_through_a_Redis_gateway_with_a_worker_killed_and_restarted_is_answered_in_full_with_the_CLI_images()
    {
        using var dir = new TempDir();
        var references = Enumerable.Range(0, Kinds).Select(k => RedisQueueTests.Reference(k, Steps, dir)).ToArray();
        using var redis = RedisServer.Start();
        using var gateway = await ServerProcess.StartAsync("--queue", redis.Url, "--queue-size", QueueSize);
        var w1 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w1", "--visibility-timeout", "5");
        using var w2 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w2", "--visibility-timeout", "5");
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        try
        {
            var burst = SendBurstAsync(http, gateway.Url);

            // w1 dies while it runs a job of the burst, and is started again a little later.
            await Api.PollAsync(() => RedisQueueTests.JobOfAsync(http, gateway.Url, "w1"), job => job is not null, TimeSpan.FromMinutes(2), "w1 running a job", everyMs: 10);
            w1.KillHard();
            await Task.Delay(TimeSpan.FromSeconds(2));
            w1.Dispose();
            w1 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w1", "--visibility-timeout", "5");

            var answers = await burst;
            AssertAllImages(answers, references);

            using var client = redis.Connect();
            var db = client.GetDatabase();
            Assert.Equal(Synchronous + Polled, (int)db.HashGet("sd:stats", "completed")); // each job's end written once
            Assert.True(db.HashGet("sd:stats", "failed").IsNull, "a job failed");
            Assert.Equal(0, db.StreamInfo("sd:stream:sharp-shapes").Length); // every entry acknowledged and removed
            Report("Redis gateway, 2 workers (one killed and restarted)", answers);
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}");
            throw;
        }
        finally { w1.Dispose(); }
    }

    [Fact]
    public async Task The_same_burst_against_one_serve_process_is_answered_in_full_with_the_CLI_images()
    {
        using var dir = new TempDir();
        var references = Enumerable.Range(0, Kinds).Select(k => RedisQueueTests.Reference(k, Steps, dir)).ToArray();
        using var server = await ServerProcess.StartAsync("--model", Repo.ShippedModel, "--queue-size", QueueSize);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(10) };
        try
        {
            var answers = await SendBurstAsync(http, server.Url);
            AssertAllImages(answers, references);
            Report("one serve process", answers);
        }
        catch
        {
            output.WriteLine($"serve:\n{server.Output}");
            throw;
        }
    }

    /// <summary>All requests at once: the synchronous ones answer with the image; the polled ones are followed to their
    /// end and answered with the job (its latency is from the POST to the poll that saw it end).</summary>
    static async Task<Answer[]> SendBurstAsync(HttpClient http, string url)
    {
        var synchronous = Enumerable.Range(0, Synchronous).Select(async i =>
        {
            var clock = Stopwatch.StartNew();
            var reply = await http.PostAsync($"{url}/sdapi/v1/txt2img", RedisQueueTests.Body(i % Kinds, Steps));
            return new Answer(i, reply.Code, reply.Json, clock.Elapsed.TotalMilliseconds);
        });
        var polled = Enumerable.Range(Synchronous, Polled).Select(async i =>
        {
            var clock = Stopwatch.StartNew();
            var reply = await http.PostAsync($"{url}/jobs", RedisQueueTests.Body(i % Kinds, Steps));
            if (reply.Code != 202) return new Answer(i, reply.Code, reply.Json, clock.Elapsed.TotalMilliseconds);
            var job = await Api.PollAsync(() => RedisQueueTests.JobAsync(http, url, (string)reply.Json["id"]!),
                j => RedisQueueTests.State(j) is "completed" or "failed" or "cancelled", TimeSpan.FromMinutes(10), $"job {i} to end", everyMs: 100);
            return new Answer(i, RedisQueueTests.State(job) == "completed" ? 200 : 500, job["result"] ?? job, clock.Elapsed.TotalMilliseconds);
        });
        return await Task.WhenAll(synchronous.Concat(polled)).WaitAsync(TimeSpan.FromMinutes(12)); // none hangs
    }

    static void AssertAllImages(Answer[] answers, byte[][] references)
    {
        var failed = answers.Where(a => a.Status != 200).Select(a => $"request {a.Index}: {a.Status} {a.Body?.ToJsonString()}").ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {answers.Length} not answered with an image:\n{string.Join("\n", failed.Take(10))}");
        foreach (var a in answers)
        {
            var png = Convert.FromBase64String((string)a.Body!["images"]![0]!);
            Assert.True(references[a.Index % Kinds].AsSpan().SequenceEqual(png), $"request {a.Index}: not the CLI's bytes for seed {RedisQueueTests.Seed(a.Index % Kinds)}");
        }
    }

    void Report(string what, Answer[] answers)
    {
        static string Percentiles(IEnumerable<double> ms)
        {
            var sorted = ms.Order().ToList();
            double At(double p) => sorted[(int)Math.Ceiling(p * sorted.Count) - 1];
            return $"p50 {At(0.5) / 1000:0.0} s, p95 {At(0.95) / 1000:0.0} s";
        }
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        output.WriteLine($"{what}: {answers.Length} of {answers.Length} answered with an image on {cpu} ({Environment.ProcessorCount} cores); " +
                         $"synchronous: {Percentiles(answers.Where(a => a.Index < Synchronous).Select(a => a.Milliseconds))}; " +
                         $"polled jobs: {Percentiles(answers.Where(a => a.Index >= Synchronous).Select(a => a.Milliseconds))}");
    }
}
