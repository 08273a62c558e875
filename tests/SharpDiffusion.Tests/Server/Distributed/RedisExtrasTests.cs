using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server.Distributed;

/// <summary>A real redis-server, a `serve --queue` gateway and a `worker --upscaler-dir` (the golden ESRGAN files), and
/// one `serve --upscaler-dir` with the same folder: the single process whose answers the gateway must give.</summary>
public sealed class RedisUpscalerCluster : RedisGatewayCluster
{
    protected override void Fill()
    {
        foreach (var name in UpscalerServer.Models)
            File.Copy(Golden.Path("v3", "esrgan", name + ".pth"), Folder.File(name + ".pth"));
    }

    protected override string[] SingleArgs => ["--upscaler-dir", Folder.Path];
    protected override IEnumerable<string[]> WorkerArgs => [["--name", "w1", "--upscaler-dir", Folder.Path]];

    protected override Task ReadyAsync() =>
        PollGatewayAsync("/sdapi/v1/upscalers", upscalers => upscalers.AsArray().Count > 3, "the gateway to list the worker's upscalers");
}

/// <summary>
/// The Extras API, hires with a named upscaler model and the X/Y/Z plot through a gateway of a Redis queue: each runs on
/// a worker and answers what one `serve` process answers for the same request, byte for byte (real HTTP, real Redis).
/// </summary>
public class RedisExtrasTests(RedisUpscalerCluster cluster, ITestOutputHelper log) : IClassFixture<RedisUpscalerCluster>
{
    HttpClient Http => cluster.Http;
    static string Input => Golden.Path("v3", "esrgan", "input_28x20.png");

    Task<(Reply Single, Reply Gateway)> BothAsync(string path, JsonObject body) => cluster.BothAsync(path, body, log);

    [Fact]
    public async Task Gateway_lists_the_workers_upscalers_as_the_single_server_lists_its_folder()
    {
        var single = (await Http.GetJsonAsync($"{cluster.Single.Url}/sdapi/v1/upscalers")).Ok().Json;
        var gateway = (await Http.GetJsonAsync($"{cluster.Gateway.Url}/sdapi/v1/upscalers")).Ok().Json;
        Assert.Equal(single.ToJsonString(), gateway.ToJsonString());
        var workers = (await Http.GetJsonAsync($"{cluster.Gateway.Url}/workers")).Ok().Json["workers"]!.AsArray();
        Assert.Equal(UpscalerServer.Models, workers.Single()!["upscalers"]!.AsArray().Select(n => (string)n!).ToArray());
    }

    [Fact]
    public async Task Extras_single_and_batch_through_the_gateway_answer_the_single_servers_bytes()
    {
        var one = new JsonObject
        {
            ["image"] = Api.Base64File(Input), ["upscaler_1"] = UpscalerServer.Models[2], ["upscaling_resize"] = 2,
            ["upscaler_2"] = "Lanczos", ["extras_upscaler_2_visibility"] = 0.3,
        };
        var (single, gateway) = await BothAsync("/sdapi/v1/extra-single-image", one);
        Assert.Equal(single.Ok().Json.ToJsonString(), gateway.Ok().Json.ToJsonString());

        var batch = new JsonObject
        {
            ["imageList"] = new JsonArray(
                new JsonObject { ["data"] = Api.Base64File(Input), ["name"] = "a.png" },
                new JsonObject { ["data"] = Api.Base64File(Input), ["name"] = "b.png" }),
            ["upscaler_1"] = UpscalerServer.Models[0], ["resize_mode"] = 1, ["upscaling_resize_w"] = 40, ["upscaling_resize_h"] = 40,
        };
        (single, gateway) = await BothAsync("/sdapi/v1/extra-batch-images", batch);
        Assert.Equal(2, single.Ok().ImageCount);
        Assert.Equal(single.Json.ToJsonString(), gateway.Ok().Json.ToJsonString());
    }

    [Fact]
    public async Task Extras_naming_an_upscaler_no_worker_has_is_a_422_naming_what_the_workers_have()
    {
        var body = new JsonObject { ["image"] = Api.Base64File(Input), ["upscaler_1"] = "no-such-model" };
        var reply = await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/extra-single-image", body);
        Assert.Equal(422, reply.Code);
        string text = reply.Json.ToJsonString();
        Assert.Contains("no-such-model", text);
        Assert.Contains(UpscalerServer.Models[0], text);
    }

    [Fact]
    public async Task Hires_naming_an_upscaler_no_worker_has_is_a_422_naming_what_the_workers_have()
    {
        var body = new JsonObject { ["prompt"] = "x", ["steps"] = 2, ["enable_hr"] = true, ["hr_upscaler"] = "no-such-model" };
        var reply = await Http.PostAsync($"{cluster.Gateway.Url}/sdapi/v1/txt2img", body);
        Assert.Equal(422, reply.Code);
        string text = reply.Json.ToJsonString();
        Assert.Contains("no-such-model", text);
        Assert.Contains(UpscalerServer.Models[0], text);
    }

    [Fact]
    public async Task Hires_with_a_named_upscaler_model_runs_on_the_worker_with_the_single_servers_bytes()
    {
        var body = new JsonObject
        {
            ["prompt"] = "a red circle", ["seed"] = 21, ["steps"] = 2, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64,
            ["enable_hr"] = true, ["hr_upscaler"] = UpscalerServer.Models[0], ["hr_scale"] = 1.5, ["hr_second_pass_steps"] = 2,
            ["denoising_strength"] = 0.5,
        };
        var (single, gateway) = await BothAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(single.Ok().Png(0), gateway.Ok().Png(0));
        Assert.Equal(single.Info["infotexts"]!.ToJsonString(), gateway.Info["infotexts"]!.ToJsonString());
    }

    [Fact]
    public async Task Xyz_plot_through_the_gateway_answers_the_single_servers_grid_cells_and_infotexts()
    {
        var body = new JsonObject
        {
            ["prompt"] = "a green triangle", ["seed"] = 11, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64,
            ["script_name"] = "X/Y/Z plot",
            // x: 4 = Steps; y: 9 = Sampler from its dropdown; include_lone_images.
            ["script_args"] = new JsonArray(4, "2-3", new JsonArray(), 9, "", new JsonArray("Euler", "DDIM"), 0, "", new JsonArray(),
                true, true, false, false, 0, false),
        };
        var (single, gateway) = await BothAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(5, single.Ok().ImageCount);
        Assert.Equal(single.ImageCount, gateway.Ok().ImageCount);
        for (int i = 0; i < single.ImageCount; i++)
            Assert.True(single.Png(i).AsSpan().SequenceEqual(gateway.Png(i)), $"image {i} differs");
        Assert.Equal(single.Info["infotexts"]!.ToJsonString(), gateway.Info["infotexts"]!.ToJsonString());
        Assert.Equal(single.Info["all_seeds"]!.ToJsonString(), gateway.Info["all_seeds"]!.ToJsonString());
    }
}
