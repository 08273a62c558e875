using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>
/// Debian's redis-server on a free loopback port, its data in a temporary folder (append-only file: a stop and start
/// keeps the queue, as a production Redis with persistence does; written before each reply, never fsynced, since a
/// process stop loses nothing without it and an fsync on a busy disk stalls every command for seconds — longer than the
/// tests' visibility timeout). Installed when missing
/// (<see cref="DebianPackages"/>); stopped and deleted at the end.
/// </summary>
public sealed class RedisServer : IDisposable
{
    readonly TempDir _dir = new();
    Process? _process;

    public int Port { get; } = FreePort();
    public string Url => $"redis://127.0.0.1:{Port}/0";

    readonly string[] _extra = [];
    string? _sentinelConfig;

    RedisServer(string[] extra) => _extra = extra;

    /// <summary>A free port for a Redis started later (<see cref="Restart"/>): for processes that start before Redis does.</summary>
    public static RedisServer Unstarted()
    {
        DebianPackages.EnsureInstalled("/usr/bin/redis-server", "redis-server", "The job-queue tests run Debian's redis-server");
        return new RedisServer([]);
    }

    /// <summary>A Sentinel (redis-server in sentinel mode) that watches the primary on <paramref name="primaryPort"/> as
    /// <paramref name="service"/>, alone (quorum 1), and fails over one second after the primary stops answering.</summary>
    public static RedisServer StartSentinel(string service, int primaryPort)
    {
        DebianPackages.EnsureInstalled("/usr/bin/redis-server", "redis-server", "The job-queue tests run Debian's redis-server");
        var sentinel = new RedisServer([]);
        sentinel._sentinelConfig = Path.Combine(sentinel._dir.Path, "sentinel.conf");
        File.WriteAllText(sentinel._sentinelConfig, $"""
            port {sentinel.Port}
            bind 127.0.0.1
            protected-mode no
            dir {sentinel._dir.Path}
            sentinel monitor {service} 127.0.0.1 {primaryPort} 1
            sentinel down-after-milliseconds {service} 1000
            sentinel failover-timeout {service} 5000

            """);
        sentinel.Restart();
        return sentinel;
    }

    /// <param name="extra">more redis-server options, e.g. "--replicaof", "127.0.0.1", "6380".</param>
    public static RedisServer Start(params string[] extra)
    {
        DebianPackages.EnsureInstalled("/usr/bin/redis-server", "redis-server", "The job-queue tests run Debian's redis-server");
        var redis = new RedisServer(extra);
        redis.Restart();
        return redis;
    }

    /// <summary>Starts it (again) on the same port with the same data.</summary>
    public void Restart()
    {
        var info = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] args = _sentinelConfig is { } config ? [config, "--sentinel"] : ["--port", Port.ToString(), "--bind", "127.0.0.1", "--dir", _dir.Path, "--save", "", "--appendonly", "yes",
                     "--appendfsync", "no", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning", .. _extra];
        foreach (var a in args) info.ArgumentList.Add(a);
        _process = Process.Start(info)!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (!Answers())
        {
            if (_process.HasExited) throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}");
            if (clock.Elapsed > TimeSpan.FromSeconds(20)) throw new TimeoutException("redis-server did not answer within 20 s");
            Thread.Sleep(50);
        }
    }

    /// <summary>Shuts it down (SIGTERM: it writes its data and exits) and waits.</summary>
    public void Stop()
    {
        if (_process is null || _process.HasExited) return;
        ServerProcess.Kill(_process.Id, 15); // SIGKILL would lose nothing either (the file is written before each reply), but this is the usual stop
        _process.WaitForExit(10_000);
    }

    bool Answers()
    {
        try
        {
            using var tcp = new TcpClient();
            tcp.Connect(IPAddress.Loopback, Port);
            using var stream = tcp.GetStream();
            stream.Write("PING\r\n"u8);
            var buffer = new byte[16];
            int n = stream.Read(buffer);
            return System.Text.Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException) { return false; }
        catch (IOException) { return false; }
    }

    /// <summary>A client for the test's own checks (the job records, the counters).</summary>
    public ConnectionMultiplexer Connect() => ConnectionMultiplexer.Connect($"127.0.0.1:{Port},abortConnect=false");

    static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public void Dispose()
    {
        try { _process?.Kill(); _process?.WaitForExit(10_000); } catch (InvalidOperationException) { }
        _process?.Dispose();
        _dir.Dispose();
    }
}
