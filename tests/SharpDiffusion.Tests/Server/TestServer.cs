using System.Diagnostics;
using System.Runtime.InteropServices;
using SharpDiffusion.Server;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Tests.Server;

/// <summary>The repository's folders, found from the test binaries.</summary>
public static class Repo
{
    public static string Root { get; } = Find();

    /// <summary>The shipped model (64×64, fast): what `serve` loads by default.</summary>
    public static string ShippedModel => Path.Combine(Root, "models", "sharp-shapes");

    static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpDiffusion.slnx")))
                return dir.FullName;
        throw new DirectoryNotFoundException("Repository root (SharpDiffusion.slnx) not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>A server in this process, listening on a free loopback port: tests talk to it over real HTTP.</summary>
public sealed class TestServer : IAsyncDisposable
{
    TestServer(SharpDiffusionServer server) => Server = server;

    public SharpDiffusionServer Server { get; }
    public string Url => Server.Url;
    public HttpClient Client { get; } = new() { Timeout = TimeSpan.FromMinutes(5) };

    public static async Task<TestServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null)
    {
        var options = new ServerOptions { Model = Repo.ShippedModel, Port = 0 };
        var server = await SharpDiffusionServer.StartAsync(configure?.Invoke(options) ?? options);
        var test = new TestServer(server);
        test.Client.BaseAddress = new Uri(server.Url);
        return test;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}

/// <summary>`sharpdiffusion serve` as its own process (the CLI's dll run by dotnet), on a free port it prints.</summary>
public sealed partial class ServerProcess : IDisposable
{
    readonly Process _process;
    readonly System.Text.StringBuilder _output;
    ServerProcess(Process process, string url, System.Text.StringBuilder output) => (_process, Url, _output) = (process, url, output);

    public string Url { get; }
    public int Id => _process.Id;

    /// <summary>What it printed so far, stdout and stderr.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>Its working set now and its peak so far (VmHWM), in bytes.</summary>
    public (long Now, long Peak) Memory()
    {
        _process.Refresh();
        return (_process.WorkingSet64, _process.PeakWorkingSet64);
    }

    /// <summary>Stops it as a service manager or `kill` does (SIGTERM) and waits: its exit code, or null if it is still running after <paramref name="timeout"/>.</summary>
    public int? Terminate(TimeSpan timeout)
    {
        if (Kill(_process.Id, 15) != 0)
            throw new InvalidOperationException($"kill({_process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        if (!_process.WaitForExit(timeout)) return null;
        _process.WaitForExit(); // drains the output readers
        return _process.ExitCode;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    /// <summary>Kills it at once (SIGKILL: no clean-up, as a crash or an out-of-memory kill) and waits for it to be gone.</summary>
    public void KillHard()
    {
        Kill(_process.Id, 9);
        _process.WaitForExit(10_000);
    }

    /// <summary>`serve` on a free port, 1 thread, with <paramref name="args"/>; returns once it prints its address.</summary>
    public static Task<ServerProcess> StartAsync(params string[] args) =>
        StartCommandAsync(["serve", "--port", "0", "--threads", "1", .. args], line =>
        {
            int at = line.IndexOf(" on http://", StringComparison.Ordinal);
            return line.StartsWith("Serving ", StringComparison.Ordinal) && at > 0 ? line[(at + 4)..].Split(' ')[0] : null;
        });

    /// <summary>`worker`, 1 thread, with <paramref name="args"/>; returns once it is taking jobs (<see cref="Url"/> is its name).</summary>
    public static Task<ServerProcess> StartWorkerAsync(params string[] args) =>
        StartCommandAsync(["worker", "--threads", "1", .. args], line =>
            line.StartsWith("Worker ", StringComparison.Ordinal) && line.Contains(" serving ", StringComparison.Ordinal) ? line.Split(' ')[1] : null);

    /// <param name="ready">The line that says it is up → its address (or name); null for other lines.</param>
    static async Task<ServerProcess> StartCommandAsync(string[] args, Func<string, string?> ready)
    {
        string cli = typeof(SharpDiffusion.Cli.Cli).Assembly.Location;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[cli, .. args]) info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        var url = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { url.TrySetException(new InvalidOperationException($"{args[0]} exited: " + output)); return; }
            lock (output) output.AppendLine(e.Data);
            if (ready(e.Data) is { } address) url.TrySetResult(address);
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try { return new ServerProcess(process, await url.Task.WaitAsync(TimeSpan.FromMinutes(2)), output); }
        catch
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw;
        }
    }

    public void Dispose()
    {
        try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}
