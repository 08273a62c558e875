using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// A class fixture: a real redis-server, one single `serve` (<see cref="SingleArgs"/>), a `serve --queue` gateway with
/// nothing of its own, and a `worker --queue` per <see cref="WorkerArgs"/> entry; the single process gives the answers
/// the gateway must give for the same folder (<see cref="BothAsync"/>). <see cref="Folder"/> holds the files the
/// arguments name (filled by <see cref="Fill"/> before anything starts); everything goes at the end.
/// </summary>
public abstract class RedisGatewayCluster : IAsyncLifetime
{
    RedisServer _redis = null!;
    readonly List<ServerProcess> _workers = [];

    /// <summary>The folder the processes are given (VAEs, upscalers, ControlNets, models).</summary>
    public TempDir Folder { get; } = new();
    public ServerProcess Single { get; private set; } = null!;
    public ServerProcess Gateway { get; private set; } = null!;
    public IReadOnlyList<ServerProcess> Workers => _workers;
    /// <summary>The first worker (most clusters have one).</summary>
    public ServerProcess Worker => _workers[0];
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromMinutes(5) };
    public string RedisUrl => _redis.Url;

    /// <summary>A client of the cluster's Redis for the test's own reads and writes.</summary>
    public StackExchange.Redis.ConnectionMultiplexer ConnectRedis() => _redis.Connect();

    /// <summary>Puts the files the arguments name in <see cref="Folder"/>, before any process starts.</summary>
    protected virtual void Fill() { }

    /// <summary>The single `serve` process's arguments.</summary>
    protected abstract string[] SingleArgs { get; }

    /// <summary>Each worker's arguments after `--queue URL` (its --name among them).</summary>
    protected abstract IEnumerable<string[]> WorkerArgs { get; }

    /// <summary>Waits until the gateway has heard what the workers announce (it reads the worker list every second).</summary>
    protected abstract Task ReadyAsync();

    public async Task InitializeAsync()
    {
        Fill();
        _redis = RedisServer.Start();
        Single = await ServerProcess.StartAsync(SingleArgs);
        Gateway = await ServerProcess.StartAsync("--queue", _redis.Url);
        foreach (var args in WorkerArgs)
            _workers.Add(await ServerProcess.StartWorkerAsync(["--queue", _redis.Url, .. args]));
        await ReadyAsync();
    }

    /// <summary>GET <paramref name="path"/> of the gateway until <paramref name="done"/> says its JSON is what the workers announce.</summary>
    protected Task PollGatewayAsync(string path, Func<JsonNode, bool> done, string what) =>
        Api.PollAsync(async () => (await Http.GetJsonAsync($"{Gateway.Url}{path}")).Json, done, TimeSpan.FromSeconds(30), what, everyMs: 100);

    /// <summary>The same request POSTed to the single server, then to the gateway; on a failure the gateway's and the
    /// workers' output go to <paramref name="log"/>.</summary>
    public async Task<(Reply Single, Reply Gateway)> BothAsync(string path, JsonObject body, ITestOutputHelper log)
    {
        try
        {
            var single = await Http.PostAsync($"{Single.Url}{path}", body);
            var gateway = await Http.PostAsync($"{Gateway.Url}{path}", body);
            return (single, gateway);
        }
        catch
        {
            LogOutput(log);
            throw;
        }
    }

    /// <summary>What the gateway and the workers printed, for a failed test's log.</summary>
    public void LogOutput(ITestOutputHelper log)
    {
        log.WriteLine($"gateway:\n{Gateway.Output}");
        foreach (var worker in _workers) log.WriteLine($"worker:\n{worker.Output}");
    }

    public virtual Task DisposeAsync()
    {
        Gateway?.Dispose();
        foreach (var worker in _workers) worker.Dispose();
        Single?.Dispose();
        _redis?.Dispose();
        Http.Dispose();
        Folder.Dispose();
        return Task.CompletedTask;
    }
}
