using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// 100 txt2img requests at once against `serve --queue-size 20` in its own process: every request ends, with an image
/// (200) or a refusal that says when to come back (503 + Retry-After, or 429); the counts add up; at least the queue
/// plus the running job complete; the process's memory stays bounded. The figures are written to the test output.
/// </summary>
public class LoadTests(ITestOutputHelper output)
{
    const int Requests = 100, QueueSize = 20, Steps = 2;

    sealed record Outcome(int Status, string Body, string? RetryAfter, TimeSpan Latency);

    [Fact]
    public async Task Hundred_concurrent_requests_each_end_with_an_image_or_a_refusal_and_memory_stays_bounded()
    {
        using var server = await ServerProcess.StartAsync("--model", Repo.ShippedModel, "--queue-size", QueueSize.ToString());
        using var client = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(3) };
        static JsonObject Body(int seed) => new() { ["prompt"] = "a busy day", ["seed"] = seed, ["steps"] = Steps };

        // one request first: the first call's one-time costs (JIT, preview map) are not part of "before"
        var warm = await client.PostAsync("/sdapi/v1/txt2img", Body(0));
        Assert.True(warm.Code == 200, warm.Json.ToJsonString());
        var (before, _) = server.Memory();

        long peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, server.Memory().Now);
                try { await Task.Delay(50, sampling.Token); } catch (OperationCanceledException) { }
            }
        });

        var clock = Stopwatch.StartNew();
        var calls = Enumerable.Range(1, Requests).Select(async i =>
        {
            var started = Stopwatch.StartNew();
            using var response = await client.PostAsync("/sdapi/v1/txt2img", Api.JsonContent(Body(i)));
            string body = await response.Content.ReadAsStringAsync();
            return new Outcome((int)response.StatusCode, body, response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString(), started.Elapsed);
        }).ToList();
        var outcomes = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromMinutes(3)); // none hangs
        double wall = clock.Elapsed.TotalSeconds;
        sampling.Cancel();
        await sampler;
        var (after, processPeak) = server.Memory();

        var completed = outcomes.Where(o => o.Status == 200).ToList();
        var refused = outcomes.Where(o => o.Status is 503 or 429).ToList();
        foreach (var o in completed)
        {
            var json = JsonNode.Parse(o.Body)!;
            var png = Convert.FromBase64String((string)json["images"]![0]!);
            Assert.Equal(Steps.ToString(), System.Text.RegularExpressions.Regex.Match(Api.Parameters(png), @"Steps: (\d+)").Groups[1].Value);
        }
        foreach (var o in refused)
        {
            Assert.True(o.Status == 429 || double.Parse(o.RetryAfter ?? "0") >= 1, $"{o.Status} without Retry-After");
            Assert.Equal("QueueFull", (string?)JsonNode.Parse(o.Body)!["error"]);
        }
        var others = outcomes.Where(o => o.Status is not (200 or 503 or 429)).Select(o => $"{o.Status}: {o.Body}").ToList();
        Assert.True(others.Count == 0, string.Join("\n", others));

        static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[(int)Math.Ceiling(p * sorted.Count) - 1];
        var okLatency = completed.Select(o => o.Latency.TotalMilliseconds).Order().ToList();
        var allLatency = outcomes.Select(o => o.Latency.TotalMilliseconds).Order().ToList();
        const double MB = 1 << 20;
        output.WriteLine($"requests {Requests} (queue {QueueSize}, {Steps} steps, 64x64): completed {completed.Count}, refused {refused.Count} " +
                         $"(503 {refused.Count(o => o.Status == 503)}, 429 {refused.Count(o => o.Status == 429)}), in {wall:0.0} s");
        output.WriteLine($"latency of completed: p50 {Percentile(okLatency, 0.5):0} ms, p95 {Percentile(okLatency, 0.95):0} ms; " +
                         $"of all: p50 {Percentile(allLatency, 0.5):0} ms, p95 {Percentile(allLatency, 0.95):0} ms");
        output.WriteLine($"working set: before {before / MB:0} MB, peak sampled {peak / MB:0} MB, after {after / MB:0} MB, process peak (VmHWM) {processPeak / MB:0} MB");

        Assert.Equal(Requests, completed.Count + refused.Count);
        Assert.True(completed.Count >= QueueSize + 1, $"only {completed.Count} completed");
        Assert.True(after < 2 * before + 500 * MB, $"working set {after / MB:0} MB after, {before / MB:0} MB before");
        Assert.True(peak < 2 * before + 500 * MB, $"working set peaked at {peak / MB:0} MB, {before / MB:0} MB before");

        // the server is idle and answers again
        var progress = (await client.GetJsonAsync("/sdapi/v1/progress")).Ok().Json;
        Assert.Equal(0, (int)progress["state"]!["job_count"]!);
        Assert.Equal(0, (int)progress["state"]!["queued"]!);
        Assert.Equal(200, (await client.PostAsync("/sdapi/v1/txt2img", Body(1))).Code);
    }
}
