using System.Diagnostics;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// Jobs by id and the ways a job ends early: POST /jobs (202) and GET /jobs/{id}; the Server-Sent Events stream;
/// force_task_id; DELETE of a queued job; /sdapi/v1/interrupt and /skip while a job runs; a client that goes away.
/// Times are measured against the step time seen in the same run, so a slow machine does not fail them.
/// </summary>
public class JobTests(ShippedServer fixture, ITestOutputHelper output) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    static JsonObject Body(string prompt, long seed, int steps) => new() { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps };

    async Task<JsonNode> Job(string id) => (await Client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}")).Ok().Json;

    /// <summary>Polls the job until <paramref name="done"/>. A job a request that is still on its way will create (a
    /// synchronous call not awaited, with force_task_id) answers 404 at first: that counts as not yet, never as done.</summary>
    Task<JsonNode> UntilAsync(string id, Func<JsonNode, bool> done, string what, double seconds = 60) =>
        Api.PollAsync(() => JobOrPending(id), j => j["state"] is not null && done(j), TimeSpan.FromSeconds(seconds), what, everyMs: 10);

    async Task<JsonNode> JobOrPending(string id)
    {
        var reply = await Client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}");
        return reply.Code == 404 ? new JsonObject { ["pending"] = "not created yet" } : reply.Ok().Json;
    }

    static string State(JsonNode job) => (string)job["state"]!;

    /// <summary>Seconds per step of a running job: the time between two steps it reports (after the first one).</summary>
    async Task<double> StepSecondsAsync(string id)
    {
        var a = await UntilAsync(id, j => (int)j["step"]! >= 2, "step 2");
        var clock = Stopwatch.StartNew();
        int from = (int)a["step"]!;
        var b = await UntilAsync(id, j => (int)j["step"]! >= from + 3, "three more steps");
        return clock.Elapsed.TotalSeconds / ((int)b["step"]! - from);
    }

    /// <summary>"Soon" for a hang-up the server learns of asynchronously: generous, because the test process itself can
    /// stall for seconds on loaded cores; a job that did not stop would run on for its remaining hundreds of steps.</summary>
    static double Prompt(double step) => 5 * step + 10.0;

    [Fact]
    public async Task The_queue_takes_its_size_plus_the_running_job_whether_or_not_the_worker_has_started_it()
    {
        const int size = 3;
        using var release = new ManualResetEventSlim();
        using var queue = new SharpDiffusion.Server.Jobs.JobQueue(size, TimeSpan.FromMinutes(1));
        SharpDiffusion.Server.Jobs.Job NewJob(int i) => new($"q{i}", "test", _ => { release.Wait(); return new JsonObject(); });
        var accepted = Enumerable.Range(0, size + 1).Select(i => queue.Enqueue(NewJob(i))).ToList(); // at once: the worker may not have begun
        var refused = Assert.Throws<SharpDiffusion.Server.Jobs.QueueRefusedException>(() => queue.Enqueue(NewJob(size + 1)));
        Assert.Equal(503, refused.Status);
        Assert.True(refused.RetryAfterSeconds >= 1);
        release.Set();
        await Task.WhenAll(accepted.Select(j => j.Finished)).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(accepted, j => Assert.Equal(SharpDiffusion.Server.Jobs.JobState.Completed, j.State));
    }

    [Fact]
    public async Task Post_jobs_answers_202_at_once_and_the_job_completes_with_txt2imgs_result()
    {
        var posted = await Client.PostAsync("/jobs", Body("a kite", 12, 3));
        Assert.Equal(202, posted.Code);
        string id = (string)posted.Json["id"]!;
        Assert.Contains(State(posted.Json), new[] { "queued", "running", "completed" }); // 3 steps may end before the answer is written

        var done = await UntilAsync(id, j => State(j) == "completed", "completed");
        Assert.Equal(1.0, (double)done["progress"]!);
        var result = done["result"]!;
        var sync = (await Client.PostAsync("/sdapi/v1/txt2img", Body("a kite", 12, 3))).Ok();
        Assert.Equal(sync.Png(), Convert.FromBase64String((string)result["images"]![0]!));

        var img2img = await Client.PostAsync("/jobs", new JsonObject { ["task"] = "img2img", ["prompt"] = "x", ["steps"] = 2,
            ["init_images"] = new JsonArray(Api.Base64File(Golden.Path("img2img", "init_64x64.png"))) });
        Assert.Equal(202, img2img.Code);
        Assert.Equal("img2img", (string?)img2img.Json["kind"]);
        await UntilAsync((string)img2img.Json["id"]!, j => State(j) == "completed", "img2img completed");

        var badTask = await Client.PostAsync("/jobs", new JsonObject { ["task"] = "upscale", ["prompt"] = "x" });
        Assert.Equal(422, badTask.Code);
    }

    [Fact]
    public async Task Event_stream_sends_progress_events_then_done_with_the_result()
    {
        // Another job holds the worker until the stream is open, so the stream sees this one from its start on any machine.
        string blocker = (string)(await Client.PostAsync("/jobs", Body("blocker", 4, 1000))).Json["id"]!;
        await UntilAsync(blocker, j => State(j) == "running", "the blocker running");
        string id = (string)(await Client.PostAsync("/jobs", Body("a boat", 5, 30))).Json["id"]!;
        using var response = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}/events"), HttpCompletionOption.ResponseHeadersRead);
        (await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, $"/jobs/{blocker}"))).Ok();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<(string Name, JsonNode Data)>();
        string? name = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add((name!, JsonNode.Parse(line[6..])!));
        }
        Assert.True(events.Count >= 2, $"{events.Count} events");
        Assert.Equal("done", events[^1].Name);
        Assert.All(events.SkipLast(1), e => Assert.Equal("progress", e.Name));
        var steps = events.SkipLast(1).Select(e => (int)e.Data["step"]!).ToList();
        Assert.Equal(steps.Order(), steps); // never backwards
        Assert.Contains(steps, s => s > 0);
        var done = events[^1].Data;
        Assert.Equal("completed", State(done));
        Assert.Single(done["result"]!["images"]!.AsArray());
        Assert.Contains(events, e => ((string?)e.Data["preview"])?.StartsWith("data:image/png;base64,", StringComparison.Ordinal) == true);

        var unknown = await Client.GetJsonAsync("/jobs/no-such-job/events");
        Assert.Equal(404, unknown.Code);
    }

    [Fact]
    public async Task Force_task_id_names_the_job_and_cannot_be_used_twice()
    {
        string id = $"my-task-{Guid.NewGuid():N}";
        var body = Body("a tree", 3, 2);
        body["force_task_id"] = id;
        var posted = await Client.PostAsync("/jobs", body);
        Assert.Equal(202, posted.Code);
        Assert.Equal(id, (string?)posted.Json["id"]);
        Assert.Equal("completed", State(await UntilAsync(id, j => State(j) is "completed" or "failed", "completed")));

        var again = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(409, again.Code);
        Assert.Contains(id, (string?)again.Json["detail"]);

        // a synchronous call's job is readable by its id too, without the images it already answered with
        string sync = $"sync-{Guid.NewGuid():N}";
        body["force_task_id"] = sync;
        (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var answered = await Job(sync);
        Assert.Equal("completed", State(answered));
        Assert.Null(answered["result"]);

        var unknown = await Client.GetJsonAsync("/jobs/task(unknown)");
        Assert.Equal(404, unknown.Code);
        Assert.Contains("task(unknown)", (string?)unknown.Json["detail"]);
        Assert.Equal(404, (await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, "/jobs/task(unknown)"))).Code);
    }

    [Fact]
    public async Task Deleting_a_queued_job_cancels_it_and_it_never_runs()
    {
        string running = (string)(await Client.PostAsync("/jobs", Body("long", 1, 1000))).Json["id"]!;
        string queued = (string)(await Client.PostAsync("/jobs", Body("never", 2, 2))).Json["id"]!;
        try
        {
            await UntilAsync(running, j => State(j) == "running", "running");
            Assert.Equal(1, (int?)(await Job(queued))["queue_position"]);
            var deleted = await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, $"/jobs/{queued}"));
            Assert.Equal(200, deleted.Code);
            Assert.Equal("cancelled", State(deleted.Json));
        }
        finally
        {
            (await Client.PostAsync("/sdapi/v1/interrupt", new JsonObject())).Ok();
        }
        await UntilAsync(running, j => State(j) == "cancelled", "the long job cancelled");
        // a job after it runs, and the deleted one stays as it was: never started
        string after = (string)(await Client.PostAsync("/jobs", Body("after", 3, 2))).Json["id"]!;
        await UntilAsync(after, j => State(j) == "completed", "the next job");
        var never = await Job(queued);
        Assert.Equal("cancelled", State(never));
        Assert.Equal(0, (int)never["step"]!);
        Assert.Equal("queued", (string?)never["stage"]);
        Assert.Equal(0, (double)never["elapsed"]!);
        Assert.Null(never["result"]);
    }

    [Fact]
    public async Task Interrupt_ends_the_running_job_within_a_few_steps_and_the_next_job_runs()
    {
        string running = (string)(await Client.PostAsync("/jobs", Body("long", 1, 1000))).Json["id"]!;
        string next = (string)(await Client.PostAsync("/jobs", Body("next", 2, 2))).Json["id"]!;
        await UntilAsync(running, j => (int)j["step"]! >= 2, "step 2");
        Assert.Equal("{}", (await Client.PostAsync("/sdapi/v1/interrupt", new JsonObject())).Ok().Json.ToJsonString());
        // Counted in steps, not seconds (a loaded machine can stall the test itself): the job stops at its next step check.
        int after = (int)(await Job(running))["step"]!;
        var ended = await UntilAsync(running, j => State(j) != "running", "the interrupted job to end");
        output.WriteLine($"interrupt answered by step {after}; the job ended at step {(int)ended["step"]!}");
        Assert.Equal("cancelled", State(ended));
        Assert.True((int)ended["step"]! <= after + 2, $"ran on from step {after} to {(int)ended["step"]!}");
        Assert.Equal("completed", State(await UntilAsync(next, j => State(j) is "completed" or "failed" or "cancelled", "the next job")));
    }

    [Fact]
    public async Task Skip_drops_the_current_image_and_the_job_goes_on_with_the_next()
    {
        // Long images, so the poll sees the second one under way even on loaded cores (one CI run missed a 40-step one).
        const int steps = 150;
        var body = Body("three", 500, steps);
        body["n_iter"] = 3;
        string id = (string)(await Client.PostAsync("/jobs", body)).Json["id"]!;
        await UntilAsync(id, j => (int)j["image_index"]! == 1 && (int)j["step"]! >= 1, "the second image under way", seconds: 120);
        (await Client.PostAsync("/sdapi/v1/skip", new JsonObject())).Ok();
        var done = await UntilAsync(id, j => State(j) is "completed" or "failed" or "cancelled", "the job to end", seconds: 180);
        Assert.Equal("completed", State(done));
        var result = done["result"]!;
        Assert.Equal(2, result["images"]!.AsArray().Count);
        var info = JsonNode.Parse((string)result["info"]!)!;
        Assert.Equal([500L, 502], info["all_seeds"]!.AsArray().Select(s => (long)s!));
        Assert.Contains(info["warnings"]!.AsArray(), w => ((string?)w)!.Contains("skipped"));
    }

    [Fact]
    public async Task A_client_that_disconnects_frees_the_worker_within_a_few_steps()
    {
        string id = $"gone-{Guid.NewGuid():N}";
        var body = Body("long", 1, 1000);
        body["force_task_id"] = id;
        using var hangUp = new CancellationTokenSource();
        var call = Client.PostAsync("/sdapi/v1/txt2img", body, hangUp.Token);
        double step = await StepSecondsAsync(id);

        // a client waiting in the queue that hangs up: its job leaves the queue at once and never runs
        string waiting = $"gone-queued-{Guid.NewGuid():N}";
        var queuedBody = Body("queued", 2, 2);
        queuedBody["force_task_id"] = waiting;
        using var hangUpQueued = new CancellationTokenSource();
        var queuedCall = Client.PostAsync("/sdapi/v1/txt2img", queuedBody, hangUpQueued.Token);
        await Api.PollAsync(() => Client.GetJsonAsync($"/jobs/{waiting}"), r => r.Code == 200 && (int?)r.Json["queue_position"] == 1,
            TimeSpan.FromSeconds(30), "the second request queued");
        hangUpQueued.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queuedCall);
        var left = await UntilAsync(waiting, j => State(j) == "cancelled", "the queued request cancelled", seconds: 10);
        Assert.Null(left["queue_position"]);
        Assert.Equal("queued", (string?)left["stage"]);

        string next = (string)(await Client.PostAsync("/jobs", Body("next", 2, 2))).Json["id"]!;

        var clock = Stopwatch.StartNew();
        hangUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await UntilAsync(next, j => State(j) != "queued", "the next job to start");
        double took = clock.Elapsed.TotalSeconds;
        output.WriteLine($"step {step * 1000:0} ms; disconnect → next job started in {took * 1000:0} ms");
        Assert.True(took < Prompt(step), $"took {took:0.00} s with {step:0.000} s per step");
        var gone = await Job(id);
        Assert.Equal("cancelled", State(gone));
        Assert.Contains("disconnected", (string?)gone["error"]);
        await UntilAsync(next, j => State(j) == "completed", "the next job");
    }
}
