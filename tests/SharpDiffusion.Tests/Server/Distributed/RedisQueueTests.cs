using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpDiffusion.Server.Distributed;
using SharpDiffusion.Tests.Cli;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// `serve --queue` gateways and `worker` processes on a real redis-server (started here on a free port), each a
/// process of its own with the shipped model and one thread: every job ends once, with the image the single-process
/// CLI draws; a worker killed mid-job, a gateway restarted, Redis stopped, cancellations. In the process-wide
/// collection: the reference images come from `generate` run in this process.
/// </summary>
[Collection(ProcessWide.Settings)]
public class RedisQueueTests(ITestOutputHelper output)
{
    const int Steps = 30;
    static string Prompt(int k) => $"a {(k % 2 == 0 ? "red" : "blue")} circle, ({(k % 3 == 0 ? "green" : "yellow")}:1.2) square {k}";
    internal static long Seed(int k) => 500 + k;

    internal static JsonObject Body(int k, int steps = Steps) => new()
    {
        ["prompt"] = Prompt(k), ["negative_prompt"] = "blurry", ["seed"] = Seed(k), ["steps"] = steps, ["cfg_scale"] = 6.5,
        ["sampler_name"] = "Euler", ["width"] = 64, ["height"] = 64,
    };

    /// <summary>`generate` in this process for the same settings: the bytes every job with them must answer.</summary>
    internal static byte[] Reference(int k, TempDir dir, params string[] more) => Reference(k, Steps, dir, more);

    internal static byte[] Reference(int k, int steps, TempDir dir, params string[] more)
    {
        string file = dir.File($"cli-{k}-{steps}{string.Concat(more)}.png");
        var r = GenerateCommandTests.Run(["generate", "--model", Repo.ShippedModel, "--prompt", Prompt(k), "--negative-prompt", "blurry",
            "--prompt-syntax", "a1111", "--scheduler", "Euler", "--seed", Seed(k).ToString(), "--steps", steps.ToString(), "--guidance", "6.5",
            "--width", "64", "--height", "64", "--threads", "1", "--output", file, .. more]);
        Assert.True(r.Code == 0, r.Err);
        return File.ReadAllBytes(file);
    }

    internal static async Task<JsonNode> JobAsync(HttpClient client, string url, string id) =>
        (await client.GetJsonAsync($"{url}/jobs/{Uri.EscapeDataString(id)}")).Ok().Json;

    internal static string State(JsonNode job) => (string)job["state"]!;

    /// <summary>The job once it has ended (completed, failed or cancelled), polled through <paramref name="url"/>.</summary>
    static Task<JsonNode> EndedAsync(HttpClient http, string url, string id, int minutes = 2) =>
        Api.PollAsync(() => JobAsync(http, url, id), j => State(j) is "completed" or "failed" or "cancelled", TimeSpan.FromMinutes(minutes), $"{id} to end", everyMs: 100);

    [Fact]
    public async Task Forty_jobs_on_two_workers_end_once_each_with_the_CLI_image_through_a_worker_kill_and_a_gateway_restart()
    {
        const int Jobs = 40, Kinds = 8;
        using var dir = new TempDir();
        var references = Enumerable.Range(0, Kinds).Select(k => Reference(k, dir)).ToArray();
        using var redis = RedisServer.Start();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var gateway = await ServerProcess.StartAsync("--queue", redis.Url, "--queue-size", "100");
        using var w1 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w1", "--visibility-timeout", "5");
        using var w2 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w2", "--visibility-timeout", "5");
        try
        {
            var ids = new List<string>();
            for (int i = 0; i < Jobs; i++)
            {
                var reply = await http.PostAsync($"{gateway.Url}/jobs", Body(i % Kinds));
                Assert.True(reply.Code == 202, reply.Body?.ToJsonString());
                ids.Add((string)reply.Json["id"]!);
            }

            // w1 dies in the middle of a job: SIGKILL once a job of its own is past its first steps and far from its last
            // (one seen near its end, or already ended, is passed over for w1's next one).
            string orphan = (await Api.PollAsync(async () =>
            {
                string? id = await JobOfAsync(http, gateway.Url, "w1");
                return (Id: id, Job: id is null ? null : await JobAsync(http, gateway.Url, id));
            }, o => o.Job is { } j && State(j) == "running" && (int)j["step"]! is >= 3 and <= Steps - 10, TimeSpan.FromMinutes(2), "w1 in the middle of a job", everyMs: 10)).Id!;
            w1.KillHard();
            output.WriteLine($"killed w1 during {orphan}");

            // The gateway goes away too, and another starts: clients keep polling their jobs by id there.
            await Api.PollAsync(() => CompletedAsync(http, gateway.Url, ids), n => n >= 5, TimeSpan.FromMinutes(2), "5 jobs done", everyMs: 250);
            Assert.Equal(0, gateway.Terminate(TimeSpan.FromSeconds(30)));
            gateway.Dispose();
            gateway = await ServerProcess.StartAsync("--queue", redis.Url, "--queue-size", "100");

            await Api.PollAsync(() => CompletedAsync(http, gateway.Url, ids), n => n == Jobs, TimeSpan.FromMinutes(10), "all jobs done", everyMs: 250);
            for (int i = 0; i < Jobs; i++)
            {
                var job = await JobAsync(http, gateway.Url, ids[i]);
                Assert.Equal("completed", State(job));
                var png = Convert.FromBase64String((string)job["result"]!["images"]![0]!);
                Assert.True(references[i % Kinds].AsSpan().SequenceEqual(png), $"job {i} ({ids[i]}): not the CLI's bytes for seed {Seed(i % Kinds)}");
            }

            using var client = redis.Connect();
            var db = client.GetDatabase();
            Assert.Equal(Jobs, (int)db.HashGet("sd:stats", "completed")); // each job's result written once
            var attempts = ids.ToDictionary(id => id, id => (int)db.HashGet($"sd:job:{id}", "attempts"));
            Assert.Equal(2, attempts[orphan]); // started by w1, taken over by w2
            Assert.Equal("w2", (string?)db.HashGet($"sd:job:{orphan}", "worker"));
            Assert.All(ids.Where(id => id != orphan), id => Assert.Equal(1, attempts[id]));
            Assert.Equal(0, db.StreamInfo("sd:stream:sharp-shapes").Length); // every entry acknowledged and removed
            Assert.Empty(db.StreamPendingMessages("sd:stream:sharp-shapes", RedisJobStore.Group, 10, RedisValue.Null));
            Assert.Contains($"job {orphan}: completed", w2.Output);
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}");
            throw;
        }
        finally { gateway.Dispose(); }
    }

    internal static async Task<string?> JobOfAsync(HttpClient http, string url, string worker)
    {
        var status = (await http.GetJsonAsync($"{url}/workers")).Ok().Json;
        return status["workers"]!.AsArray().Where(w => (string?)w!["name"] == worker).Select(w => (string?)w!["job"]).FirstOrDefault();
    }

    static async Task<int> CompletedAsync(HttpClient http, string url, IReadOnlyList<string> ids)
    {
        int n = 0;
        foreach (var id in ids)
        {
            var job = await JobAsync(http, url, id);
            Assert.True(State(job) is "queued" or "running" or "completed", $"{id}: {job.ToJsonString()}");
            if (State(job) == "completed") n++;
        }
        return n;
    }

    [Fact]
    public async Task Two_gateways_share_progress_cancel_interrupt_and_a_bounded_queue_and_survive_a_Redis_restart()
    {
        using var dir = new TempDir();
        var reference = Reference(1, dir);
        using var redis = RedisServer.Start();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var g1 = await ServerProcess.StartAsync("--queue", redis.Url, "--queue-size", "2", "--job-retention", "3");
        using var g2 = await ServerProcess.StartAsync("--queue", redis.Url, "--queue-size", "2", "--job-retention", "3");
        using var worker = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w", "--visibility-timeout", "5");
        try
        {
            // A long job through g1, seen running on g2, in /progress and /workers.
            var longJob = Body(0);
            longJob["steps"] = 1000;
            string a = (string)(await http.PostAsync($"{g1.Url}/jobs", longJob)).Json["id"]!;
            await Api.PollAsync(() => JobAsync(http, g2.Url, a), j => State(j) == "running" && (int)j["step"]! >= 2, TimeSpan.FromMinutes(1), "the long job running", everyMs: 20);
            var options = (await http.GetJsonAsync($"{g2.Url}/sdapi/v1/options")).Ok().Json;
            Assert.Equal("sharp-shapes", (string?)options["sd_model_checkpoint"]); // the model the workers serve
            var progress = (await http.GetJsonAsync($"{g2.Url}/sdapi/v1/progress")).Ok().Json;
            Assert.Equal(a, (string?)progress["current_task"]);
            Assert.True((double)progress["progress"]! > 0);
            Assert.Equal(a, await JobOfAsync(http, g2.Url, "w"));
            var preview = await Api.PollAsync(() => http.GetJsonAsync($"{g2.Url}/sdapi/v1/progress"), p => p.Json["current_image"] is not null,
                TimeSpan.FromSeconds(30), "a live preview from the worker, through g2");
            Assert.True(Convert.FromBase64String((string)preview.Json["current_image"]!).AsSpan().StartsWith(new byte[] { 137, 80, 78, 71 }), "a PNG preview");

            // Two wait (the queue size), a third is refused; one waiting job is cancelled from the other gateway.
            string b = (string)(await http.PostAsync($"{g1.Url}/jobs", Body(1))).Json["id"]!;
            string c = (string)(await http.PostAsync($"{g2.Url}/jobs", Body(2))).Json["id"]!;
            var full = await http.PostAsync($"{g1.Url}/jobs", Body(3));
            Assert.True(full.Code == 503, full.Body?.ToJsonString());
            Assert.NotNull(full.Headers.RetryAfter);
            Assert.Equal(2, (int)(await JobAsync(http, g1.Url, c))["queue_position"]!);
            var cancelled = (await http.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, $"{g2.Url}/jobs/{Uri.EscapeDataString(c)}"))).Ok().Json;
            Assert.Equal("cancelled", State(cancelled));

            // Interrupt on g2 stops the job g1 accepted; the waiting one then runs and answers the CLI's image.
            (await http.PostAsync($"{g2.Url}/sdapi/v1/interrupt", new JsonObject())).Ok();
            var stopped = await Api.PollAsync(() => JobAsync(http, g1.Url, a), j => State(j) != "running", TimeSpan.FromSeconds(30), "interrupted", everyMs: 20);
            Assert.Equal("cancelled", State(stopped));
            Assert.Null(stopped["result"]);
            var done = await EndedAsync(http, g1.Url, b);
            Assert.Equal("completed", State(done));
            Assert.Equal(reference, Convert.FromBase64String((string)done["result"]!["images"]![0]!));

            using (var client = redis.Connect())
            {
                var db = client.GetDatabase();
                foreach (var id in new[] { a, c })
                {
                    Assert.Equal("cancelled", (string?)db.HashGet($"sd:job:{id}", "state"));
                    Assert.False(db.HashExists($"sd:job:{id}", "result")); // a cancelled job never has an image
                }
                Assert.Equal(1, (int)db.HashGet("sd:stats", "completed"));
                // Ended jobs expire after the retention of the gateway that took them (3 minutes).
                Assert.InRange(db.KeyTimeToLive($"sd:job:{b}") ?? TimeSpan.MaxValue, TimeSpan.FromMinutes(2), TimeSpan.FromMinutes(3));
            }

            // Redis away for a while: both gateways answer 503 with Retry-After, then work again without a restart.
            redis.Stop();
            var refused = await http.PostAsync($"{g1.Url}/sdapi/v1/txt2img", Body(1));
            Assert.True(refused.Code == 503, refused.Body?.ToJsonString());
            Assert.Equal("QueueUnavailable", (string?)refused.Json["error"]);
            Assert.NotNull(refused.Headers.RetryAfter);
            Assert.Equal(503, (await http.GetJsonAsync($"{g2.Url}/jobs/{Uri.EscapeDataString(b)}")).Code);
            await Task.Delay(2000);
            redis.Restart();
            var clock = Stopwatch.StartNew();
            var again = await Api.PollAsync(() => http.PostAsync($"{g2.Url}/sdapi/v1/txt2img", Body(1)), r => r.Code != 503, TimeSpan.FromSeconds(60), "accepted again", everyMs: 250);
            output.WriteLine($"a generation answered {clock.ElapsedMilliseconds} ms after Redis restarted");
            Assert.Equal(reference, again.Ok().Png());
            Assert.Equal("completed", State(await JobAsync(http, g1.Url, b))); // kept across the restart (append-only file)
        }
        catch
        {
            output.WriteLine($"g1:\n{g1.Output}\ng2:\n{g2.Output}\nworker:\n{worker.Output}");
            throw;
        }
    }

    [Fact]
    public async Task Gateways_share_the_options_set_through_any_of_them_and_the_files_they_serve()
    {
        using var dir = new TempDir();
        var clipSkip2 = Reference(1, dir, "--clip-skip", "2");
        using var redis = RedisServer.Start();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var g1 = await ServerProcess.StartAsync("--queue", redis.Url);
        using var g2 = await ServerProcess.StartAsync("--queue", redis.Url);
        using var worker = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w", "--visibility-timeout", "5");
        try
        {
            // Set on g1, used by g2: the options and the image they make.
            (await http.PostAsync($"{g1.Url}/sdapi/v1/options", new JsonObject { ["CLIP_stop_at_last_layers"] = 2, ["some_client_key"] = "kept" })).Ok();
            var options = (await http.GetJsonAsync($"{g2.Url}/sdapi/v1/options")).Ok().Json;
            Assert.Equal(2, (int)options["CLIP_stop_at_last_layers"]!);
            Assert.Equal("kept", (string?)options["some_client_key"]);
            Assert.Equal(clipSkip2, (await http.PostAsync($"{g2.Url}/sdapi/v1/txt2img", Body(1))).Ok().Png());

            // A refused value is stored nowhere.
            var bad = await http.PostAsync($"{g2.Url}/sdapi/v1/options", new JsonObject { ["CLIP_stop_at_last_layers"] = "many", ["other_key"] = 1 });
            Assert.Equal(422, bad.Code);
            var kept = (await http.GetJsonAsync($"{g1.Url}/sdapi/v1/options")).Ok().Json;
            Assert.Equal(2, (int)kept["CLIP_stop_at_last_layers"]!);
            Assert.Null(kept["other_key"]);

            // An OpenAI "url" answered by g1 is served by g2 too.
            var openai = (await http.PostAsync($"{g1.Url}/v1/images/generations",
                new JsonObject { ["prompt"] = "a red circle", ["size"] = "64x64", ["steps"] = 2, ["response_format"] = "url" })).Ok();
            string url = (string)openai.Json["data"]![0]!["url"]!;
            string name = url[(url.LastIndexOf('/') + 1)..];
            var fromG1 = await http.GetByteArrayAsync($"{g1.Url}/v1/images/files/{name}");
            var fromG2 = await http.GetByteArrayAsync($"{g2.Url}/v1/images/files/{name}");
            Assert.Equal(fromG1, fromG2);
            Assert.True(fromG2.AsSpan().StartsWith(new byte[] { 137, 80, 78, 71 }), "a PNG");
            Assert.Equal(404, (await http.GetJsonAsync($"{g2.Url}/v1/images/files/no-such.png")).Code);
        }
        catch
        {
            output.WriteLine($"g1:\n{g1.Output}\ng2:\n{g2.Output}\nworker:\n{worker.Output}");
            throw;
        }
    }

    [Fact]
    public async Task A_gateway_and_a_worker_started_before_Redis_wait_for_it_and_then_serve()
    {
        using var redis = RedisServer.Unstarted();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var gateway = await ServerProcess.StartAsync("--queue", redis.Url);
        using var worker = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w", "--visibility-timeout", "5");
        try
        {
            var refused = await http.PostAsync($"{gateway.Url}/jobs", Body(0));
            Assert.True(refused.Code == 503, refused.Body?.ToJsonString());
            Assert.NotNull(refused.Headers.RetryAfter);

            redis.Restart();
            var accepted = await Api.PollAsync(() => http.PostAsync($"{gateway.Url}/jobs", Body(0)), r => r.Code != 503, TimeSpan.FromSeconds(60), "accepted", everyMs: 250);
            Assert.True(accepted.Code == 202, accepted.Body?.ToJsonString());
            string id = (string)accepted.Json["id"]!;
            var done = await EndedAsync(http, gateway.Url, id);
            Assert.Equal("completed", State(done));
            (await http.GetJsonAsync($"{gateway.Url}/sdapi/v1/progress")).Ok();
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nworker:\n{worker.Output}");
            throw;
        }
    }

    [Fact]
    public async Task A_worker_paused_past_the_visibility_timeout_loses_its_job_to_another_and_stops_it_when_it_resumes()
    {
        using var redis = RedisServer.Start();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var gateway = await ServerProcess.StartAsync("--queue", redis.Url);
        using var w1 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w1", "--visibility-timeout", "2");
        try
        {
            var body = Body(0);
            body["steps"] = 150;
            string id = (string)(await http.PostAsync($"{gateway.Url}/jobs", body)).Json["id"]!;
            await Api.PollAsync(() => JobAsync(http, gateway.Url, id), j => State(j) == "running" && (int)j["step"]! >= 2, TimeSpan.FromMinutes(1), "w1 running the job", everyMs: 20);
            using var w2 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w2", "--visibility-timeout", "2");

            // w1 stops dead (SIGSTOP: as a machine that swaps, or a VM paused); w2 takes the job over and starts it again.
            Assert.Equal(0, ServerProcess.Kill(w1.Id, 19));
            using var client = redis.Connect();
            var db = client.GetDatabase();
            await Api.PollAsync(() => Task.FromResult((string?)db.HashGet($"sd:job:{id}", "worker")), w => w == "w2", TimeSpan.FromMinutes(1), "w2 taking the job over", everyMs: 50);

            // w1 resumes: its next heartbeat finds the job is no longer its own, and it stops its run without ending the job.
            Assert.Equal(0, ServerProcess.Kill(w1.Id, 18));
            await Api.PollAsync(() => Task.FromResult(w1.Output), o => o.Contains($"job {id}: stopped here", StringComparison.Ordinal), TimeSpan.FromMinutes(1), "w1 stopping its copy");
            var done = await EndedAsync(http, gateway.Url, id);
            Assert.Equal("completed", State(done));
            Assert.Equal(2, (int)db.HashGet($"sd:job:{id}", "attempts"));
            Assert.Equal("w2", (string?)db.HashGet($"sd:job:{id}", "worker"));
            Assert.DoesNotContain($"job {id}: completed", w1.Output);
            Assert.Contains($"job {id}: completed", w2.Output);

            // w1 goes on taking jobs.
            var next = Body(1);
            next["steps"] = 2;
            var ids = new List<string>();
            for (int i = 0; i < 4; i++) ids.Add((string)(await http.PostAsync($"{gateway.Url}/jobs", next)).Json["id"]!);
            await Api.PollAsync(() => CompletedAsync(http, gateway.Url, ids), n => n == ids.Count, TimeSpan.FromMinutes(2), "the next jobs", everyMs: 250);
            Assert.Equal(5, (int)db.HashGet("sd:stats", "completed"));
            Assert.Equal(0, db.StreamInfo("sd:stream:sharp-shapes").Length);
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nw1:\n{w1.Output}");
            throw;
        }
    }

    [Fact]
    public async Task A_live_worker_keeps_a_job_that_outlasts_the_visibility_timeout_while_another_waits_idle()
    {
        using var redis = RedisServer.Start();
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        using var gateway = await ServerProcess.StartAsync("--queue", redis.Url);
        using var w1 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w1", "--visibility-timeout", "3");
        using var w2 = await ServerProcess.StartWorkerAsync("--queue", redis.Url, "--name", "w2", "--visibility-timeout", "3");
        try
        {
            var longJob = Body(0);
            longJob["steps"] = 1000;
            var accepted = await http.PostAsync($"{gateway.Url}/jobs", longJob);
            Assert.True(accepted.Code == 202, accepted.Body?.ToJsonString());
            string id = (string)accepted.Json["id"]!;
            await Api.PollAsync(() => JobAsync(http, gateway.Url, id), j => State(j) == "running", TimeSpan.FromMinutes(1), "the job running", everyMs: 20);
            using var client = redis.Connect();
            var db = client.GetDatabase();
            string owner = (string)db.HashGet($"sd:job:{id}", "worker")!;

            // Over three visibility timeouts; the idle worker looks for abandoned jobs every second meanwhile.
            await Task.Delay(TimeSpan.FromSeconds(10));
            var job = await JobAsync(http, gateway.Url, id);
            Assert.Equal("running", State(job));
            Assert.Equal(1, (int)db.HashGet($"sd:job:{id}", "attempts"));
            Assert.Equal(owner, (string?)db.HashGet($"sd:job:{id}", "worker"));
            Assert.Equal(id, await JobOfAsync(http, gateway.Url, owner));
            Assert.Null(await JobOfAsync(http, gateway.Url, owner == "w1" ? "w2" : "w1"));

            (await http.PostAsync($"{gateway.Url}/sdapi/v1/interrupt", new JsonObject())).Ok();
            var stopped = await Api.PollAsync(() => JobAsync(http, gateway.Url, id), j => State(j) != "running", TimeSpan.FromSeconds(30), "interrupted", everyMs: 20);
            Assert.Equal("cancelled", State(stopped));
        }
        catch
        {
            output.WriteLine($"gateway:\n{gateway.Output}\nw1:\n{w1.Output}\nw2:\n{w2.Output}");
            throw;
        }
    }

    [Theory]
    [InlineData("redis://127.0.0.1:6379/2", "127.0.0.1:6379", 2, null, null)]
    [InlineData("redis://queue.lan", "queue.lan:6379", 0, null, null)]
    [InlineData("redis://:s3cret@10.0.0.5:7000", "10.0.0.5:7000", 0, "s3cret", null)]
    [InlineData("redis://[::1]:6380/1", "[::1]:6380", 1, null, null)]
    [InlineData("redis://[::1]", "[::1]:6379", 0, null, null)]
    [InlineData("redis+sentinel://10.0.0.7,10.0.0.8:26380/queue", "10.0.0.7:26379,10.0.0.8:26380", 0, null, "queue")]
    [InlineData("redis+sentinel://:pw@s1:26379/queue/3", "s1:26379", 3, "pw", "queue")]
    public void Queue_urls_name_the_servers_database_password_and_sentinel_service(string url, string endpoints, int db, string? password, string? service) =>
        Assert.Equal(new RedisAddress(endpoints, db, password, service), RedisAddress.Parse(url));

    [Theory]
    [InlineData("http://127.0.0.1:6379", "not a redis:// URL")]
    [InlineData("redis://127.0.0.1:99999", "the port '99999'")]
    [InlineData("redis://127.0.0.1:6379/x", "the database 'x'")]
    [InlineData("redis://:6379", "no host")]
    [InlineData("redis://a:6379,b:6379", "several hosts")]
    [InlineData("redis+sentinel://s1:26379", "no Sentinel service name")]
    [InlineData("redis+sentinel://s1:26379/queue/0/1", "too many parts")]
    public void Bad_queue_urls_are_one_line_errors_that_show_the_form(string url, string why)
    {
        var e = Assert.Throws<ArgumentException>(() => RedisAddress.Parse(url));
        Assert.Contains(why, e.Message);
        Assert.Contains("redis://HOST:PORT[/DB]", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
