using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// Models, LoRAs and embeddings through AUTOMATIC1111's API: sd_model_checkpoint switches the model (options and
/// override_settings), refresh-checkpoints finds a new one; &lt;lora:NAME:1&gt; in a prompt and an embedding from the
/// embeddings folder draw diffusers' golden images (golden/lora, golden/textual_inversion on small-sd15).
/// </summary>
public class A1111ModelTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");
    static readonly string SmallSd = Golden.Path("models", "small-sd15");

    static JsonObject Body(string prompt, long seed, int steps) => new() { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps };

    [Fact]
    public async Task Sd_model_checkpoint_switches_the_model_and_refresh_finds_new_ones()
    {
        using var models = new TempDir();
        Directory.CreateSymbolicLink(models.File("second"), TinySd);
        await using var server = await TestServer.StartAsync(o => o with { ModelsDir = models.Path });
        var client = server.Client;
        string shipped = Path.GetFileName(Repo.ShippedModel);

        var listed = (await client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray().Select(m => (string)m!["model_name"]!).ToList();
        Assert.Equal([shipped, "second"], listed);
        Assert.Equal(shipped, (string?)(await client.PostAsync("/sdapi/v1/txt2img", Body("x", 1, 2))).Ok().Info["sd_model_name"]);

        (await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = "second" })).Ok();
        Assert.Equal("second", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);
        var switched = (await client.PostAsync("/sdapi/v1/txt2img", Body("a cat", 3, 2))).Ok();
        Assert.Equal("second", (string?)switched.Info["sd_model_name"]);
        Assert.Contains("Model: second", Api.Parameters(switched.Png()));
        // the same weights as tiny-sd: the same pixels (the name differs, so only the pixels are compared)
        var expected = Api.Decode(Reference.Png(TinySd, Reference.Options("a cat", 3, 2, 7)));
        Assert.Equal(expected.Rgb, Api.Decode(switched.Png()).Rgb);

        // override_settings: this request only (A1111's override_settings_restore_afterwards, true by default)
        var once = Body("x", 1, 2);
        once["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = shipped };
        Assert.Equal(shipped, (string?)(await client.PostAsync("/sdapi/v1/txt2img", once)).Ok().Info["sd_model_name"]);
        Assert.Equal("second", (string?)(await client.PostAsync("/sdapi/v1/txt2img", Body("x", 1, 2))).Ok().Info["sd_model_name"]);

        Directory.CreateSymbolicLink(models.File("third"), TinySd);
        Assert.DoesNotContain("third", (await client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray().Select(m => (string?)m!["model_name"]));
        (await client.PostAsync("/sdapi/v1/refresh-checkpoints", new JsonObject())).Ok();
        Assert.Contains("third", (await client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray().Select(m => (string?)m!["model_name"]));

        var unknown = await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = "no-such-model" });
        Assert.Equal(422, unknown.Code);
        Assert.Contains("no-such-model", (string?)unknown.Json["detail"]);
        Assert.Equal("second", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);
    }

    [Fact]
    public async Task A_model_that_does_not_load_leaves_the_loaded_one_working()
    {
        using var models = new TempDir();
        File.WriteAllText(models.File("broken.safetensors"), "not a checkpoint");
        Directory.CreateDirectory(models.File("half"));
        File.WriteAllText(models.File("half/model_index.json"), "{}"); // a folder without its components
        await using var server = await TestServer.StartAsync(o => o with { ModelsDir = models.Path });
        var client = server.Client;
        string shipped = Path.GetFileName(Repo.ShippedModel);
        var expected = (await client.PostAsync("/sdapi/v1/txt2img", Body("x", 4, 2))).Ok().Png();

        foreach (var broken in new[] { "broken.safetensors", "half" })
        {
            var switched = await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = broken });
            Assert.True(switched.Code is >= 400 and < 600, switched.Json.ToJsonString());
            Assert.False(string.IsNullOrEmpty((string?)switched.Json["detail"]));
            Assert.Equal(shipped, (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);
            Assert.Equal(expected, (await client.PostAsync("/sdapi/v1/txt2img", Body("x", 4, 2))).Ok().Png());

            var once = Body("x", 4, 2);
            once["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = broken };
            var failed = await client.PostAsync("/sdapi/v1/txt2img", once);
            Assert.True(failed.Code is >= 400 and < 600, failed.Json.ToJsonString());
            Assert.Equal(expected, (await client.PostAsync("/sdapi/v1/txt2img", Body("x", 4, 2))).Ok().Png());
        }
    }

    [Fact]
    public async Task Lora_tags_and_embeddings_from_their_folders_draw_the_golden_images()
    {
        using var loras = new TempDir();
        using var embeddings = new TempDir();
        const string lora = "astro";
        File.Copy(Golden.Path("lora", "small-sd15_kohya_lora.safetensors"), loras.File(lora + ".safetensors"));
        var tiInfo = GoldenManifest.Info("textual_inversion/pipelines/ti_a1111st_cat-toy-st_euler_seed42_10steps_g7.5.safetensors");
        string token = tiInfo.GetProperty("token").GetString()!; // an A1111 embedding triggers on its file name
        File.Copy(Golden.Path(tiInfo.GetProperty("embedding_file").GetString()!.Split('/')), embeddings.File(token + ".safetensors"));
        await using var server = await TestServer.StartAsync(o => o with { Model = SmallSd, LoraDir = loras.Path, EmbeddingsDir = embeddings.Path });
        var client = server.Client;

        var listed = (await client.GetJsonAsync("/sdapi/v1/loras")).Ok().Json.AsArray();
        Assert.Equal(lora, (string?)Assert.Single(listed)!["name"]);
        Assert.Contains(token, (await client.GetJsonAsync("/sdapi/v1/embeddings")).Ok().Json["loaded"]!.AsObject().Select(kv => kv.Key));

        foreach (var (file, suffix) in new[]
                 {
                     ("lora/pipelines/lora_scale1.0_euler_seed42_10steps_g7.5.safetensors", $"<lora:{lora}:1>"),
                     ("lora/pipelines/nolora_euler_seed42_10steps_g7.5.safetensors", ""),
                     ("textual_inversion/pipelines/ti_a1111st_cat-toy-st_euler_seed42_10steps_g7.5.safetensors", ""),
                 })
        {
            var info = GoldenManifest.Info(file);
            var kwargs = info.GetProperty("kwargs");
            Assert.Equal("EulerDiscreteScheduler", info.GetProperty("scheduler").GetProperty("class").GetString());
            var reply = (await client.PostAsync("/sdapi/v1/txt2img", new JsonObject
            {
                ["prompt"] = kwargs.GetProperty("prompt").GetString() + suffix,
                ["seed"] = GoldenManifest.Seed(info),
                ["steps"] = kwargs.GetProperty("num_inference_steps").GetInt32(),
                ["cfg_scale"] = kwargs.GetProperty("guidance_scale").GetDouble(),
                ["sampler_name"] = "Euler",
            })).Ok();
            using (var dir = new TempDir())
            {
                File.WriteAllBytes(dir.File("server.png"), reply.Png());
                Golden.AssertPngWithinOneLevel(dir.File("server.png"), file.Split('/'));
            }
            if (suffix != "")
                Assert.Contains($"Lora hashes: \"{lora}: ", Api.Parameters(reply.Png()));
        }

        // a tag naming no file of the folder: the request fails with a message, nothing is drawn
        var missing = await client.PostAsync("/sdapi/v1/txt2img", Body("a cat <lora:gone:1>", 1, 2));
        Assert.Equal(422, missing.Code);
        Assert.Contains("gone", (string?)missing.Json["detail"]);
    }
}
