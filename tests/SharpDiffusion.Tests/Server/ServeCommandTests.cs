using System.Net;
using System.Net.Sockets;
using SharpDiffusion.Cli;
using SharpDiffusion.Tests.Cli;

namespace SharpDiffusion.Tests.Server;

/// <summary>`sharpdiffusion serve`: its help, its one-line errors, and a real process that answers and stops cleanly.</summary>
[Collection(ProcessWide.Settings)]
public class ServeCommandTests
{
    [Fact]
    public void Help_lists_every_option()
    {
        var (code, output, _) = GenerateCommandTests.Run("serve", "--help");
        Assert.Equal(0, code);
        Assert.NotEmpty(ServeCommand.Options);
        foreach (var option in ServeCommand.Options.Where(o => !o.Hidden))
        {
            Assert.Contains("--" + option.Name, output);
            Assert.Contains(option.Help.Split(' ')[0], output);
        }
    }

    public static IEnumerable<object[]> BadOptions() =>
    [
        [new[] { "--port", "99999" }, "--port"],
        [new[] { "--port", "-1" }, "--port"],
        [new[] { "--port", "http" }, "port"],
        [new[] { "--models-dir", "/nonexistent/models" }, "/nonexistent/models"],
        [new[] { "--lora-dir", "/nonexistent/loras" }, "/nonexistent/loras"],
        [new[] { "--model", "/nonexistent/model" }, "/nonexistent/model"],
        [new[] { "--queue-size", "-1" }, "--queue-size"],
        [new[] { "--max-body-mb", "0" }, "--max-body-mb"],
        [new[] { "--max-image-side", "10" }, "--max-image-side"],
        [new[] { "--api-auth", "no-password" }, "--api-auth"],
        [new[] { "--dtype", "float8" }, "float8"],
        [new[] { "--frobnicate" }, "--frobnicate"],
    ];

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Bad_options_fail_with_one_line_naming_them(string[] args, string named)
    {
        var (code, _, err) = GenerateCommandTests.Run(["serve", "--threads", "1", .. args]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Contains(named, err);
    }

    [Fact]
    public void A_port_in_use_is_a_one_line_error()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var (code, _, err) = GenerateCommandTests.Run("serve", "--threads", "1", "--port", port.ToString());
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Contains(port.ToString(), err);
    }

    [Fact]
    public async Task A_served_process_answers_on_loopback_and_stops_cleanly_on_sigterm()
    {
        using var server = await ServerProcess.StartAsync("--model", Repo.ShippedModel);
        var url = new Uri(server.Url);
        Assert.Equal("127.0.0.1", url.Host);
        using var client = new HttpClient { BaseAddress = url };
        var models = (await client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray();
        Assert.Equal(Path.GetFileName(Repo.ShippedModel), (string?)Assert.Single(models)!["model_name"]);

        int? exit = server.Terminate(TimeSpan.FromSeconds(30));
        Assert.True(exit == 0, $"exit {exit?.ToString() ?? "none (still running)"}; output:\n{server.Output}");
        Assert.Contains("Stopped.", server.Output);
        Assert.DoesNotContain("Unhandled exception", server.Output);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var refused = await Assert.ThrowsAsync<SocketException>(async () => await socket.ConnectAsync(IPAddress.Loopback, url.Port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }
}
