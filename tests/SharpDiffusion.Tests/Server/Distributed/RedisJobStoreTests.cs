using System.Text.Json.Nodes;
using SharpDiffusion.Server.Distributed;
using SharpDiffusion.Server.Jobs;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// The queue's steps one by one on a real redis-server (no model, no worker process): who may renew a claim, which
/// reports reach a record, a job left running by a worker that is gone, the bound of the waiting set, and Redis
/// replies that mean "not now" (a read-only replica) told apart from real errors.
/// </summary>
public class RedisJobStoreTests(ITestOutputHelper output)
{
    const string Model = "m";
    static readonly TimeSpan Retention = TimeSpan.FromMinutes(5);

    /// <summary>A store on its own redis-server (or on <paramref name="server"/>, left running): both go with it.</summary>
    sealed class StoreOnRedis(RedisServer? owned, RedisServer server) : IDisposable
    {
        readonly ConnectionMultiplexer _redis = RedisAddress.Parse(server.Url).Connect("store-test");
        public RedisJobStore Store => new(_redis);

        public static StoreOnRedis Start() { var server = RedisServer.Start(); return new(server, server); }
        public static StoreOnRedis On(RedisServer server) => new(null, server);

        public void Dispose()
        {
            _redis.Dispose();
            owned?.Dispose();
        }
    }

    static string Submit(RedisJobStore store, int capacity = 10)
    {
        string id = Guid.NewGuid().ToString("N");
        Assert.True(store.SubmitAsync(id, "txt2img", Model, new JsonObject { ["prompt"] = "x" }.ToJsonString(), capacity, Retention).GetAwaiter().GetResult());
        return id;
    }

    /// <summary>The next new entry of the model's stream, delivered to <paramref name="consumer"/>.</summary>
    static StreamEntry Deliver(RedisJobStore store, string consumer) =>
        Assert.Single(store.Db.StreamReadGroup(RedisJobStore.StreamKey(Model), RedisJobStore.Group, consumer, StreamPosition.NewMessages, 1));

    /// <summary>A new job, delivered to <paramref name="worker"/> and started there: its id and stream entry.</summary>
    static (string Id, StreamEntry Entry) StartedOn(RedisJobStore store, string worker)
    {
        string id = Submit(store);
        var entry = Deliver(store, worker);
        Assert.Equal("run", store.Start(id, Model, worker).Outcome);
        return (id, entry);
    }

    [Fact]
    public void A_claim_is_renewed_only_by_its_owner_and_reports_reach_only_a_job_running_on_their_worker()
    {
        using var redis = StoreOnRedis.Start();
        var store = redis.Store;
        var (id, entry) = StartedOn(store, "a");
        Assert.True(store.RenewClaim(Model, entry.Id, "a"));
        Assert.False(store.RenewClaim(Model, entry.Id, "b")); // not b's: b may not take it by renewing

        store.Report(id, "a", new JobProgress(0, 1, 3, 20, "denoising"), null, 0);
        store.Db.Ping(); // the report is fire-and-forget: a command after it on the same connection runs after it
        Assert.Equal(3, store.Read(id)!.Progress.Step);

        // b takes the entry over (as after a stall of a's longer than the visibility timeout) and starts the job again.
        var taken = store.Db.StreamAutoClaim(RedisJobStore.StreamKey(Model), RedisJobStore.Group, "b", 0, "0-0", 1).ClaimedEntries;
        Assert.Equal(entry.Id, Assert.Single(taken).Id);
        Assert.Equal("run", store.Start(id, Model, "b").Outcome);
        Assert.False(store.RenewClaim(Model, entry.Id, "a")); // a learns it lost the job, and does not take it back
        Assert.True(store.RenewClaim(Model, entry.Id, "b"));
        store.Report(id, "a", new JobProgress(0, 1, 15, 20, "denoising"), [1, 2, 3], 7);
        store.Report(id, "b", new JobProgress(0, 1, 1, 20, "denoising"), null, 0);
        store.Db.Ping();
        var record = store.Read(id)!;
        Assert.Equal((1, 0, "b", 2), (record.Progress.Step, record.PreviewVersion, record.Worker, record.Attempts)); // a's late report dropped

        Assert.Equal("completed", store.End(id, Model, entry.Id, "b", JobState.Completed, "{\"images\":[]}", null, 0));
        Assert.False(store.RenewClaim(Model, entry.Id, "b")); // acknowledged: nobody's
        // A second end (a copy that ran on) changes nothing: the first result stands, counted once. The same worker's
        // end sent again (its reply was lost) is told what it stored.
        Assert.Equal("", store.End(id, Model, entry.Id, "a", JobState.Completed, "{\"images\":[\"other\"]}", null, 0));
        Assert.Equal("completed", store.End(id, Model, entry.Id, "b", JobState.Completed, "{\"images\":[]}", null, 0));
        Assert.Equal("{\"images\":[]}", store.Read(id)!.Result);
        Assert.Equal(1, (int)store.Db.HashGet(RedisJobStore.Stats, "completed"));
        store.Report(id, "b", new JobProgress(0, 1, 20, 20, "decoding"), null, 0);
        store.Db.Ping();
        Assert.Equal(1, store.Read(id)!.Progress.Step); // an ended job's record is final

        // A record that expired is not made again (without an expiry) by a report that comes after.
        store.Db.KeyDelete(RedisJobStore.JobKey(id));
        store.Report(id, "b", new JobProgress(0, 1, 20, 20, "decoding"), [1], 1);
        store.Db.Ping();
        Assert.False(store.Db.KeyExists(RedisJobStore.JobKey(id)));
    }

    [Fact]
    public async Task A_cancelled_job_left_running_by_a_gone_worker_ends_and_its_entry_is_acknowledged_by_the_next_worker()
    {
        using var redis = StoreOnRedis.Start();
        var store = redis.Store;
        var (id, entry) = StartedOn(store, "gone");
        Assert.Equal("running", await store.CancelAsync(id, Model, "cancelled by a client"));
        Assert.False(await store.EndAbandonedAsync(id, Model, "someone-else", "cancelled by a client")); // only the worker it runs on
        Assert.True(await store.EndAbandonedAsync(id, Model, "gone", "cancelled by a client"));
        var record = store.Read(id)!;
        Assert.Equal(("cancelled", "cancelled by a client"), (record.State, record.Error));
        Assert.Null(record.Result);
        Assert.False(await store.EndAbandonedAsync(id, Model, "gone", "again")); // ended once

        // Later another worker takes the entry over: the job does not run again, and the entry goes.
        var taken = store.Db.StreamAutoClaim(RedisJobStore.StreamKey(Model), RedisJobStore.Group, "next", 0, "0-0", 1).ClaimedEntries;
        Assert.Equal(entry.Id, Assert.Single(taken).Id);
        Assert.Equal("finished", store.Start(id, Model, "next").Outcome);
        store.Acknowledge(Model, entry.Id);
        Assert.Equal(0, store.Db.StreamLength(RedisJobStore.StreamKey(Model)));
        Assert.Empty(store.Db.StreamPendingMessages(RedisJobStore.StreamKey(Model), RedisJobStore.Group, 10, RedisValue.Null));
    }

    [Fact]
    public async Task The_waiting_set_is_bounded_and_a_capacity_of_zero_still_takes_a_job_when_none_waits()
    {
        using var redis = StoreOnRedis.Start();
        var store = redis.Store;
        string first = Submit(store, capacity: 0);
        Assert.False(await store.SubmitAsync("second", "txt2img", Model, "{}", 0, Retention)); // one waits: refused
        Deliver(store, "w");
        Assert.Equal("run", store.Start(first, Model, "w").Outcome); // taken: none waits
        Submit(store, capacity: 0);

        Submit(store, capacity: 2);
        Assert.False(await store.SubmitAsync("third", "txt2img", Model, "{}", 2, Retention));
        Assert.Null(store.Read("third"));
    }

    [Fact]
    public void Url_files_are_shared_through_Redis_and_only_the_newest_are_kept()
    {
        using var server = RedisServer.Start();
        using var gateway = RedisGateway.Connect(server.Url, new SharpDiffusion.Server.ServerOptions { Model = "unused", Queue = server.Url });
        static byte[] Png(int i) => [137, 80, 78, 71, .. BitConverter.GetBytes(i)];
        var names = Enumerable.Range(0, RedisImageFiles.MaxFiles + 10).Select(i => gateway.Files.Add(Png(i))).ToList();
        Assert.Null(gateway.Files.Get(names[0])); // the oldest went
        Assert.Null(gateway.Files.Get(names[9]));
        Assert.Equal(Png(10), gateway.Files.Get(names[10]));
        Assert.Equal(Png(RedisImageFiles.MaxFiles + 9), gateway.Files.Get(names[^1]));
        using var client = server.Connect();
        var db = client.GetDatabase();
        Assert.Equal(RedisImageFiles.MaxFiles, (int)db.SortedSetLength("sd:files"));
        var ttl = db.KeyTimeToLive($"sd:file:{names[^1]}");
        Assert.InRange(ttl ?? TimeSpan.Zero, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1));
        Assert.Null(gateway.Files.Get("no-such.png"));
    }

    [Fact]
    public async Task A_read_only_replica_is_unavailable_for_now_and_a_gateway_answers_it_with_503()
    {
        using var primary = RedisServer.Start();
        using var replica = RedisServer.Start("--replicaof", "127.0.0.1", primary.Port.ToString());
        using var onReplica = StoreOnRedis.On(replica);
        var store = onReplica.Store;
        var refused = Assert.IsAssignableFrom<RedisServerException>(Record.Exception(() => Submit(store)));
        output.WriteLine(refused.Message);
        Assert.StartsWith("READONLY", refused.Message, StringComparison.Ordinal);
        Assert.True(RedisUnavailable.Is(refused));
        Assert.False(RedisUnavailable.Is(Record.Exception(() => store.Db.Execute("NO-SUCH-COMMAND"))!)); // a real error stays one

        // A worker announced on the primary (so the replica lists it too, and the gateway has a model to queue for).
        using var primaryClient = primary.Connect();
        using var announcing = new CancellationTokenSource();
        var worker = new WorkerInfo("w", "sharp-shapes", "sharp-shapes", null, false, "sharp-shapes", [], null, "host", 1, 1, DateTimeOffset.UtcNow);
        var heartbeat = Task.Run(async () =>
        {
            while (!announcing.IsCancellationRequested)
            {
                WorkerRegistry.Announce(primaryClient.GetDatabase(), worker);
                try { await Task.Delay(500, announcing.Token); } catch (OperationCanceledException) { }
            }
        });
        try
        {
            await Api.PollAsync(() => WorkerRegistry.LiveAsync(store.Db), live => live.Count == 1, TimeSpan.FromSeconds(30), "the replica in sync");
            using var gateway = await ServerProcess.StartAsync("--queue", replica.Url);
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(1) };
            var reply = await http.PostAsync($"{gateway.Url}/jobs", new JsonObject { ["prompt"] = "x" });
            output.WriteLine(reply.Body?.ToJsonString());
            Assert.True(reply.Code == 503, reply.Body?.ToJsonString());
            Assert.Equal("QueueUnavailable", (string?)reply.Json["error"]);
            Assert.Contains("READONLY", (string?)reply.Json["detail"]);
            Assert.NotNull(reply.Headers.RetryAfter);
        }
        finally
        {
            announcing.Cancel();
            await heartbeat;
        }
    }
}
