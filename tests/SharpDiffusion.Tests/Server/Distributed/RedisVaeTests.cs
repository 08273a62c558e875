using System.Text.Json.Nodes;
using SharpDiffusion.Tests.Loading;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>A real redis-server, a `serve --queue` gateway and a `worker --vae-dir` (a TAESD folder and a full VAE folder)
/// of the small SD 1.5 model, and one `serve --vae-dir` of it with the same folder: the single process whose answers the
/// gateway must give.</summary>
public sealed class RedisVaeCluster : RedisGatewayCluster
{
    /// <summary>The model of every process (its latents fit TAESD's, unlike the shipped model's).</summary>
    public static string Model => Golden.Path("models", "small-sd15");

    protected override void Fill()
    {
        ModelFolderTests.CopyDir(Golden.Path("v3", "models", "tiny-taesd"), Folder.File("tiny-taesd"));
        ModelFolderTests.CopyDir(Path.Combine(Model, "vae"), Folder.File("sd15-vae"));
    }

    protected override string[] SingleArgs => ["--model", Model, "--vae-dir", Folder.Path];
    protected override IEnumerable<string[]> WorkerArgs => [["--model", Model, "--name", "vae-w1", "--vae-dir", Folder.Path]];

    protected override Task ReadyAsync() =>
        PollGatewayAsync("/sdapi/v1/sd-vae", vaes => vaes.AsArray().Count == 2, "the gateway to list the worker's VAEs");
}

/// <summary>
/// Issue 25 item 4 through a gateway of a Redis queue: workers take --vae-dir and announce their VAEs, the gateway lists
/// them in /sdapi/v1/sd-vae, takes sd_vae (POST /options and override_settings) and sends the job to the model's workers,
/// which answer what one `serve --vae-dir` process answers, byte for byte (real HTTP, real Redis). A VAE a worker of the
/// model lacks is refused in one line before the job is queued.
/// </summary>
public class RedisVaeTests(RedisVaeCluster cluster, ITestOutputHelper log) : IClassFixture<RedisVaeCluster>
{
    HttpClient Http => cluster.Http;

    static JsonObject Body(string prompt, long seed, string? vae = null)
    {
        var body = new JsonObject { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = 2, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64 };
        if (vae is not null) body["override_settings"] = new JsonObject { ["sd_vae"] = vae };
        return body;
    }

    Task<(Reply Single, Reply Gateway)> BothAsync(string path, JsonObject body) => cluster.BothAsync(path, body, log);

    [Fact]
    public async Task Gateway_lists_the_workers_vaes_as_the_single_server_lists_its_folder()
    {
        var single = (await Http.GetJsonAsync($"{cluster.Single.Url}/sdapi/v1/sd-vae")).Ok().Json;
        var gateway = (await Http.GetJsonAsync($"{cluster.Gateway.Url}/sdapi/v1/sd-vae")).Ok().Json;
        Assert.Equal(["sd15-vae", "tiny-taesd"], single.AsArray().Select(v => (string)v!["model_name"]!).ToArray());
        Assert.Equal(single.ToJsonString(), gateway.ToJsonString());
        var workers = (await Http.GetJsonAsync($"{cluster.Gateway.Url}/workers")).Ok().Json["workers"]!.AsArray();
        Assert.Equal(["sd15-vae", "tiny-taesd"], workers.Single()!["vaes"]!.AsArray().Select(n => (string)n!).ToArray());
    }

    [Fact]
    public async Task Override_settings_and_the_sd_vae_option_through_the_gateway_answer_the_single_servers_bytes()
    {
        // The model's own VAE, and TAESD by override_settings: each as the single server draws it.
        var (single, gateway) = await BothAsync("/sdapi/v1/txt2img", Body("a red cube", 3));
        var own = single.Ok().Png();
        Assert.Equal(own, gateway.Ok().Png());
        (single, gateway) = await BothAsync("/sdapi/v1/txt2img", Body("a red cube", 3, vae: "tiny-taesd"));
        Assert.NotEqual(own, single.Ok().Png());
        Assert.Equal(single.Png(), gateway.Ok().Png());
        Assert.Contains(", VAE: tiny-taesd", Api.Parameters(gateway.Png()));
        Assert.Equal(single.Info["infotexts"]!.ToJsonString(), gateway.Info["infotexts"]!.ToJsonString());

        // The option, set on both (the gateway keeps it in Redis and sends it with the job).
        try
        {
            foreach (var url in new[] { cluster.Single.Url, cluster.Gateway.Url })
                (await Http.PostAsync($"{url}/sdapi/v1/options", new JsonObject { ["sd_vae"] = "sd15-vae" })).Ok();
            Assert.Equal("sd15-vae", (string?)(await Http.GetJsonAsync($"{cluster.Gateway.Url}/sdapi/v1/options")).Ok().Json["sd_vae"]);
            (single, gateway) = await BothAsync("/sdapi/v1/txt2img", Body("a blue ring", 8));
            Assert.Contains("VAE: sd15-vae", Api.Parameters(single.Ok().Png()));
            Assert.Equal(single.Png(), gateway.Ok().Png());
        }
        finally
        {
            foreach (var url in new[] { cluster.Single.Url, cluster.Gateway.Url })
                (await Http.PostAsync($"{url}/sdapi/v1/options", new JsonObject { ["sd_vae"] = "Automatic" })).Ok();
        }
    }

    [Fact]
    public async Task A_vae_no_worker_has_is_refused_in_one_line_by_options_and_by_a_request()
    {
        var option = await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/options", new JsonObject { ["sd_vae"] = "no-such-vae" });
        Assert.Equal(422, option.Code);
        Assert.Contains("no-such-vae", option.Json.ToJsonString());
        Assert.Equal("Automatic", (string?)(await Http.GetJsonAsync($"{cluster.Gateway.Url}/sdapi/v1/options")).Ok().Json["sd_vae"]);

        var reply = await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/txt2img", Body("a red cube", 3, vae: "no-such-vae"));
        Assert.Equal(422, reply.Code);
        string text = (string)reply.Json["detail"]!;
        Assert.Contains("no-such-vae", text);
        Assert.Contains("vae-w1", text); // the worker of the model that lacks it
        Assert.DoesNotContain('\n', text);
    }

    [Fact]
    public async Task A_second_worker_of_the_model_without_the_vae_makes_the_gateway_refuse_it_naming_that_worker()
    {
        using (var bare = await ServerProcess.StartWorkerAsync("--queue", cluster.RedisUrl, "--model", RedisVaeCluster.Model, "--name", "vae-w2"))
        {
            await Api.PollAsync(async () => (await Http.GetJsonAsync($"{cluster.Gateway.Url}/workers")).Json["workers"]!.AsArray().Count,
                n => n == 2, TimeSpan.FromSeconds(30), "the gateway to see the second worker", everyMs: 100);
            var reply = await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/txt2img", Body("a red cube", 3, vae: "tiny-taesd"));
            Assert.Equal(422, reply.Code);
            string text = (string)reply.Json["detail"]!;
            Assert.Contains("vae-w2", text);
            Assert.DoesNotContain("vae-w1", text);
            Assert.Contains("--vae-dir", text);
            // The model's own VAE needs nothing of the workers.
            (await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/txt2img", Body("a red cube", 3))).Ok();
        }
        // Killed without withdrawing: gone from the list once its heartbeat expires.
        await Api.PollAsync(async () => (await Http.GetJsonAsync($"{cluster.Gateway.Url}/workers")).Json["workers"]!.AsArray().Count,
            n => n == 1, TimeSpan.FromSeconds(30), "the second worker to leave the list", everyMs: 200);
    }
}
