using System.Text.Json.Nodes;
using SharpDiffusion.Adapters;
using SharpDiffusion.Server.Jobs;
using SharpDiffusion.Tests.Server;
using SharpDiffusion.Training;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Training;

/// <summary>The train-lora job over real HTTP: queued, its progress readable, the LoRA listed by /sdapi/v1/loras once
/// written; interrupted by /sdapi/v1/interrupt; bad requests refused before anything is queued.</summary>
[Collection(ProcessWide.Settings)]
public class LoraTrainingJobTests(ITestOutputHelper output)
{
    static JsonObject Request(string imagesDir, string name, int steps) => new()
    {
        ["name"] = name,
        ["images"] = new JsonArray(Directory.GetFiles(Path.Combine(imagesDir, "1_cross"), "*.png").Order(StringComparer.Ordinal)
            .Select(f => (JsonNode?)new JsonObject { ["image"] = Api.Base64File(f), ["caption"] = File.ReadAllText(Path.ChangeExtension(f, ".txt")) })
            .ToArray()),
        ["steps"] = steps,
        ["batch"] = 2,
        ["rank"] = 2,
        ["resolution"] = 32,
        ["lr"] = 5e-3,
        ["checkpoint_every"] = 2,
    };

    [Fact]
    public async Task A_train_lora_job_reports_progress_and_its_lora_is_listed_once_done()
    {
        using var loras = new TempDir();
        using var images = new TempDir();
        ShapeLoraDemo.WriteDataset(images.Path, 4, ShapeKind.Cross);
        await using var server = await TestServer.StartAsync(o => o with { LoraDir = loras.Path });
        var client = server.Client;

        var accepted = await client.PostAsync(LoraTrainingEndpoints.Route, Request(images.Path, "cross", 6));
        Assert.Equal(202, accepted.Code);
        Assert.Equal(LoraTrainingEndpoints.Kind, (string?)accepted.Json["kind"]);
        string id = (string)accepted.Json["id"]!;
        int seenStep = 0;
        var done = await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}"), r =>
        {
            if ((string?)r.Json["stage"] == "training") seenStep = Math.Max(seenStep, (int)r.Json["step"]!);
            return (string?)r.Json["state"] is "completed" or "failed" or "cancelled";
        }, TimeSpan.FromMinutes(5), "the training job");
        output.WriteLine($"job {done.Json.ToJsonString()[..Math.Min(300, done.Json.ToJsonString().Length)]}");
        Assert.Equal("completed", (string?)done.Json["state"]);
        Assert.Equal((6, 6), ((int)done.Json["step"]!, (int)done.Json["steps"]!));
        output.WriteLine($"highest step seen while running: {seenStep} of 6");
        Assert.Equal("cross", (string?)done.Json["result"]!["name"]);

        var listed = (await client.GetJsonAsync("/sdapi/v1/loras")).Ok().Json.AsArray();
        Assert.Equal("cross", (string?)Assert.Single(listed)!["name"]);             // the LoRA only: no checkpoint in the folder
        using var lora = LoraFile.Load(loras.File("cross.safetensors"));
        Assert.NotEmpty(lora.Layers);

        // Again under the same name: refused (409-like 422) unless overwrite is asked for.
        var again = await client.PostAsync(LoraTrainingEndpoints.Route, Request(images.Path, "cross", 6));
        Assert.Equal(422, again.Code);
        Assert.Contains("exists", again.Json.ToJsonString());
    }

    [Fact]
    public async Task Interrupt_cancels_a_running_training_and_writes_no_lora()
    {
        using var loras = new TempDir();
        using var images = new TempDir();
        ShapeLoraDemo.WriteDataset(images.Path, 2, ShapeKind.Cross);
        await using var server = await TestServer.StartAsync(o => o with { LoraDir = loras.Path });
        var client = server.Client;
        string id = (string)(await client.PostAsync(LoraTrainingEndpoints.Route, Request(images.Path, "long", 100_000))).Json["id"]!;
        await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}"), r => (int)r.Json["step"]! >= 1,
            TimeSpan.FromMinutes(5), "the first training step");
        var progress = (await client.GetJsonAsync("/sdapi/v1/progress")).Ok().Json;
        output.WriteLine($"/sdapi/v1/progress while training: {progress["progress"]} , state {progress["state"]?.ToJsonString()}");
        Assert.True((double)progress["progress"]! > 0);
        (await client.PostAsync("/sdapi/v1/interrupt", new JsonObject())).Ok();
        var ended = await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}"),
            r => (string?)r.Json["state"] != "running", TimeSpan.FromMinutes(2), "the interrupted job");
        Assert.Equal("cancelled", (string?)ended.Json["state"]);
        Assert.Empty(Directory.GetFiles(loras.Path));
    }

    [Fact]
    public async Task Bad_requests_are_refused_in_one_line_before_anything_is_queued()
    {
        using var loras = new TempDir();
        using var images = new TempDir();
        ShapeLoraDemo.WriteDataset(images.Path, 1, ShapeKind.Cross);
        await using var server = await TestServer.StartAsync(o => o with { LoraDir = loras.Path });
        var client = server.Client;
        foreach (var (change, expected) in new (Action<JsonObject>, string)[]
                 {
                     (b => b["name"] = "../escape", "name"),
                     (b => b["images"] = new JsonArray(), "images"),
                     (b => b["images"] = new JsonArray(new JsonObject { ["image"] = "bm90IGEgcGljdHVyZQ==" }), "images[0]"),
                     (b => b["dtype"] = "float16", "dtype"),
                 })
        {
            var body = Request(images.Path, "bad", 2);
            change(body);
            var reply = await client.PostAsync(LoraTrainingEndpoints.Route, body);
            output.WriteLine($"{reply.Code}: {reply.Json.ToJsonString()}");
            Assert.Equal(422, reply.Code);
            Assert.Contains(expected, reply.Json.ToJsonString());
        }
        Assert.Empty(Directory.GetFiles(loras.Path));

        // A rank larger than a layer is known only once the model is loaded: the job fails with the trainer's one line.
        var tooLarge = Request(images.Path, "rank", 2);
        tooLarge["rank"] = 1000;
        string id = (string)(await client.PostAsync(LoraTrainingEndpoints.Route, tooLarge)).Json["id"]!;
        var failed = await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{Uri.EscapeDataString(id)}"),
            r => (string?)r.Json["state"] is "failed" or "completed" or "cancelled", TimeSpan.FromMinutes(2), "the rank-1000 job");
        output.WriteLine($"rank 1000: {failed.Json["state"]}: {failed.Json["error"]}");
        Assert.Equal("failed", (string?)failed.Json["state"]);
        Assert.Contains("is larger than the layer", (string?)failed.Json["error"]);
        Assert.Empty(Directory.GetFiles(loras.Path));
    }
}
