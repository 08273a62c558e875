using System.Text.Json.Nodes;
using SharpDiffusion.Tests.Server;
using SharpDiffusion.Tests.Server.Distributed;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>A gateway with no ControlNets of its own, its worker and a single `serve`, each of the small SD 1.5 model, the
/// worker and the single server with the same --controlnet-dir (a canny ControlNet).</summary>
public sealed class ControlNetQueueCluster : RedisGatewayCluster
{
    public static readonly string SmallSd = Golden.Path("models", "small-sd15");

    protected override void Fill() =>
        Directory.CreateSymbolicLink(Folder.File("tiny-canny"), Golden.Path("models", "tiny-controlnet-small-sd15"));

    protected override string[] SingleArgs => ["--model", SmallSd, "--controlnet-dir", Folder.Path];
    protected override IEnumerable<string[]> WorkerArgs => [["--model", SmallSd, "--controlnet-dir", Folder.Path, "--name", "cn"]];
    protected override Task ReadyAsync() => Task.CompletedTask; // the test waits for the gateway's ControlNet list itself
}

/// <summary>
/// ControlNet units through the Redis queue: a `serve --queue` gateway with no ControlNets of its own lists and checks the
/// ones its worker announces; the unit's image travels in the job, the worker finds the model in its own --controlnet-dir,
/// and the picture is the one a single `serve --controlnet-dir` draws for the same body (each a process with one thread).
/// </summary>
public class ControlNetQueueTests(ControlNetQueueCluster cluster, ITestOutputHelper output) : IClassFixture<ControlNetQueueCluster>
{
    static JsonObject Body(string model, int controlMode) => new()
    {
        ["prompt"] = "a small house under the sun", ["seed"] = 5, ["steps"] = 4, ["width"] = 64, ["height"] = 64,
        ["alwayson_scripts"] = new JsonObject
        {
            ["controlnet"] = new JsonObject
            {
                ["args"] = new JsonArray(new JsonObject
                {
                    ["enabled"] = true, ["image"] = Api.Base64File(Golden.Path("img2img", "init_64x64.png")), ["module"] = "canny",
                    ["model"] = model, ["processor_res"] = 64, ["threshold_a"] = 60, ["threshold_b"] = 140, ["control_mode"] = controlMode,
                }),
            },
        },
    };

    [Fact]
    public async Task A_unit_sent_to_a_gateway_runs_on_a_worker_with_the_single_servers_pixels()
    {
        var (http, single, gateway) = (cluster.Http, cluster.Single, cluster.Gateway);
        try
        {
            var titles = (await http.GetJsonAsync($"{single.Url}/controlnet/model_list")).Ok().Json["model_list"]!.ToJsonString();
            // The gateway hears of the worker's ControlNets with its heartbeat.
            await Api.PollAsync(async () => (await http.GetJsonAsync($"{gateway.Url}/controlnet/model_list")).Ok().Json["model_list"]!.ToJsonString(),
                list => list == titles, TimeSpan.FromMinutes(1), "the gateway to list the worker's ControlNets", everyMs: 200);

            foreach (int mode in new[] { 0, 2 })
            {
                var expected = (await http.PostAsync($"{single.Url}/sdapi/v1/txt2img", Body("tiny-canny", mode))).Ok();
                var queued = (await http.PostAsync($"{gateway.Url}/sdapi/v1/txt2img", Body("tiny-canny", mode))).Ok();
                var (a, b) = (Api.Decode(expected.Png()), Api.Decode(queued.Png()));
                int maxDiff = a.Rgb.Zip(b.Rgb, (x, y) => Math.Abs(x - y)).Max();
                output.WriteLine($"control_mode {mode}: gateway + worker vs single server, max abs difference {maxDiff} levels");
                Assert.Equal(a.Rgb, b.Rgb);
                Assert.Contains("ControlNet 0: \"Module: canny, Model: tiny-canny [", Api.Parameters(queued.Png()));
            }

            // A model no worker has is refused by the gateway, before anything is queued.
            var refused = await http.PostAsync($"{gateway.Url}/sdapi/v1/txt2img", Body("nope", 0));
            output.WriteLine($"{refused.Code}: {refused.Json.ToJsonString()}");
            Assert.Equal(422, refused.Code);
            Assert.Contains("'nope' is not in any worker's --controlnet-dir; they have tiny-canny [", (string?)refused.Json["errors"]);
        }
        catch
        {
            cluster.LogOutput(output);
            throw;
        }
    }
}
