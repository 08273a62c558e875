using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// AUTOMATIC1111's other routes over HTTP: progress (idle, and during a job with growing steps and a PNG preview), the
/// lists (samplers, schedulers, sd-models, loras, embeddings, memory, cmd-flags), options GET/POST, png-info errors.
/// </summary>
public class A1111EndpointTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    [Fact]
    public async Task Progress_when_idle_is_zero_with_an_empty_job()
    {
        var p = (await Client.GetJsonAsync("/sdapi/v1/progress")).Ok().Json;
        Assert.Equal(0, (double)p["progress"]!);
        Assert.Equal(0, (double)p["eta_relative"]!);
        Assert.Null(p["current_image"]);
        var state = p["state"]!;
        foreach (var key in new[] { "skipped", "interrupted", "stopping_generation", "job", "job_count", "job_timestamp", "job_no", "sampling_step", "sampling_steps" })
            Assert.True(state.AsObject().ContainsKey(key), $"state has no '{key}'");
        Assert.Equal("", (string?)state["job"]);
        Assert.Equal(0, (int)state["job_count"]!);
    }

    [Fact]
    public async Task Progress_during_a_job_counts_its_steps_and_shows_a_png_preview()
    {
        const int steps = 400;
        var job = (await Client.PostAsync("/jobs", new JsonObject { ["prompt"] = "a long one", ["steps"] = steps, ["seed"] = 1 })).Json;
        string id = (string)job["id"]!;
        try
        {
            var first = await Api.PollAsync(() => Progress(), p => (int)p["state"]!["sampling_step"]! >= 2 && p["current_image"] is not null,
                TimeSpan.FromSeconds(60), "a running job with a preview");
            int step = (int)first["state"]!["sampling_step"]!;
            var later = await Api.PollAsync(() => Progress(), p => (int)p["state"]!["sampling_step"]! > step, TimeSpan.FromSeconds(30), "a later step");

            foreach (var p in new[] { first, later })
            {
                Assert.Equal(steps, (int)p["state"]!["sampling_steps"]!);
                Assert.Equal(1, (int)p["state"]!["job_count"]!);
                Assert.Equal(0, (int)p["state"]!["job_no"]!);
                Assert.InRange((double)p["progress"]!, 0.0001, 1);
                Assert.Equal(id, (string?)p["state"]!["job"]);
            }
            Assert.True((double)later["progress"]! > (double)first["progress"]!);
            byte[] preview = Convert.FromBase64String((string)later["current_image"]!);
            var image = Api.Decode(preview);
            Assert.True(image.Width > 0 && image.Height > 0);
            Assert.True(preview.AsSpan().StartsWith(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }), "current_image is a PNG");

            var skipped = (await Client.GetJsonAsync("/sdapi/v1/progress?skip_current_image=true")).Ok().Json;
            Assert.Null(skipped["current_image"]);
        }
        finally
        {
            (await Client.PostAsync("/sdapi/v1/interrupt", new JsonObject())).Ok();
            await Api.PollAsync(() => Client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] != "running", TimeSpan.FromSeconds(30), "the job to end");
        }
    }

    async Task<JsonNode> Progress() => (await Client.GetJsonAsync("/sdapi/v1/progress")).Ok().Json;

    [Fact]
    public async Task Lists_describe_this_servers_samplers_schedules_and_model()
    {
        var samplers = (await Client.GetJsonAsync("/sdapi/v1/samplers")).Ok().Json.AsArray();
        Assert.NotEmpty(samplers);
        Assert.All(samplers, s =>
        {
            Assert.False(string.IsNullOrEmpty((string?)s!["name"]));
            Assert.IsType<JsonArray>(s["aliases"]);
            Assert.IsType<JsonObject>(s["options"]);
        });
        Assert.Contains("k_euler", samplers.Single(s => (string?)s!["name"] == "Euler")!["aliases"]!.AsArray().Select(a => (string?)a));

        var schedulers = (await Client.GetJsonAsync("/sdapi/v1/schedulers")).Ok().Json.AsArray();
        Assert.Contains(schedulers, s => (string?)s!["name"] == "karras" && (string?)s["label"] == "Karras");
        Assert.Contains(schedulers, s => (string?)s!["label"] == "Automatic");

        var models = (await Client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray();
        var model = Assert.Single(models)!;
        Assert.Equal(Path.GetFileName(Repo.ShippedModel), (string?)model["model_name"]);
        foreach (var key in new[] { "title", "model_name", "hash", "sha256", "filename", "config" })
            Assert.True(model.AsObject().ContainsKey(key), $"sd-models item has no '{key}'");

        Assert.Empty((await Client.GetJsonAsync("/sdapi/v1/loras")).Ok().Json.AsArray()); // no LoRA folder
        var embeddings = (await Client.GetJsonAsync("/sdapi/v1/embeddings")).Ok().Json;
        Assert.Empty(embeddings["loaded"]!.AsObject());
        Assert.Empty(embeddings["skipped"]!.AsObject());
        Assert.False((bool)(await Client.GetJsonAsync("/sdapi/v1/cmd-flags")).Ok().Json["listen"]!);
        foreach (var empty in new[] { "sd-vae", "upscalers", "hypernetworks", "face-restorers", "prompt-styles" })
            Assert.IsType<JsonArray>((await Client.GetJsonAsync($"/sdapi/v1/{empty}")).Ok().Json);
    }

    [Fact]
    public async Task Memory_reports_this_process_and_the_machines_ram()
    {
        var ram = (await Client.GetJsonAsync("/sdapi/v1/memory")).Ok().Json["ram"]!;
        double total = (double)ram["total"]!, used = (double)ram["used"]!, free = (double)ram["free"]!, rss = (double)ram["process_rss"]!;
        Assert.True(total > 0 && free >= 0 && used >= 0 && used <= total, ram.ToJsonString());
        long ours = System.Diagnostics.Process.GetCurrentProcess().WorkingSet64; // the server runs in this process
        Assert.InRange(rss, ours / 2.0, ours * 2.0);
    }

    [Fact]
    public async Task Options_are_read_and_set_and_clip_skip_applies_to_the_next_image()
    {
        var before = (await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json;
        Assert.Equal(1, (int)before["CLIP_stop_at_last_layers"]!);
        Assert.Equal(Path.GetFileName(Repo.ShippedModel), (string?)before["sd_model_checkpoint"]);

        var set = (await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["CLIP_stop_at_last_layers"] = 2, ["some_client_key"] = "kept" })).Ok();
        try
        {
            var after = (await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json;
            Assert.Equal(2, (int)after["CLIP_stop_at_last_layers"]!);
            Assert.Equal("kept", (string?)after["some_client_key"]);
            var reply = (await Client.PostAsync("/sdapi/v1/txt2img", new JsonObject { ["prompt"] = "x", ["seed"] = 2, ["steps"] = 2 })).Ok();
            Assert.EndsWith(", Clip skip: 2", Api.Parameters(reply.Png()));
            Assert.Equal(Reference.Png(Repo.ShippedModel, Reference.Options("x", 2, 2, 7) with { ClipSkip = 2 }), reply.Png());
        }
        finally
        {
            (await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["CLIP_stop_at_last_layers"] = 1 })).Ok();
        }

        var bad = await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["CLIP_stop_at_last_layers"] = "many" });
        Assert.Equal(422, bad.Code);
        Assert.Contains("CLIP_stop_at_last_layers", (string?)bad.Json["detail"]);
    }

    [Fact]
    public async Task Png_info_without_an_image_or_with_garbage_is_an_error_in_json()
    {
        var missing = await Client.PostAsync("/sdapi/v1/png-info", new JsonObject());
        Assert.Equal(422, missing.Code);
        Assert.Contains("image", missing.Json.ToJsonString());
        var garbage = await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = "%%% not base64 %%%" });
        Assert.Equal(422, garbage.Code);
        var notPng = await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = Convert.ToBase64String("hello"u8.ToArray()) });
        Assert.Equal(200, notPng.Code);
        Assert.Equal("", (string?)notPng.Json["info"]);
    }
}
