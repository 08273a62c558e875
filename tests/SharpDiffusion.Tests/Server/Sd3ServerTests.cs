using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server;
using SharpDiffusion.Tests.Sd3;

namespace SharpDiffusion.Tests.Server;

/// <summary>A server started on the shipped (SD 1.x) model with a models folder holding the golden tiny-sd3 and tiny-sd35
/// folders and a tiny-sd3 copy without T5 (model_index.json's text_encoder_3 null, as diffusers saves one).</summary>
public sealed class Sd3ModelsServer : FolderServer
{
    protected override void Fill()
    {
        foreach (var model in Sd3Golden.Models)
            Directory.CreateSymbolicLink(Folder.File(model), Golden.Path("v3", "models", model));
        Directory.CreateSymbolicLink(Folder.File("tiny-sd3-no-t5"), Sd3Golden.FolderWithoutT5("tiny-sd3"));
    }

    protected override ServerOptions Configure(ServerOptions o) => o with { ModelsDir = Folder.Path };
}

/// <summary>What the library draws for an SD3 model's options (its own FlowMatchEulerDiscreteScheduler, plain prompts):
/// the reference a server image is compared with, pixel for pixel. One pipeline per folder for the test run.</summary>
public static class Sd3Reference
{
    static readonly Dictionary<string, StableDiffusionPipeline> Pipelines = new();

    public static RgbImage Image(string model, GenerationOptions options)
    {
        lock (Pipelines)
        {
            if (!Pipelines.TryGetValue(model, out var pipeline))
                Pipelines[model] = pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path("v3", "models", model));
            using var result = pipeline.Generate(options);
            var image = result.Images[0];
            return new RgbImage(image.Width, image.Height, image.Rgb);
        }
    }

    /// <summary>The largest difference of one channel of one pixel.</summary>
    public static int MaxAbsDiff(RgbImage a, RgbImage b)
    {
        Assert.Equal((a.Width, a.Height), (b.Width, b.Height));
        return a.Rgb.Zip(b.Rgb, (x, y) => Math.Abs(x - y)).Max();
    }
}

/// <summary>
/// SD3/SD3.5 through AUTOMATIC1111's API (issue 21 item 7): the models folder lists them with their family and prompt
/// fields; sd_model_checkpoint (options and override_settings) switches to them; txt2img and img2img draw what the
/// library draws; Forge's "Euler" + "Simple" is the flow-matching Euler and anything else is refused in one line;
/// prompt_3 / negative_prompt_3 / max_sequence_length reach the T5 encoder and are refused where there is none; the
/// infotext is Forge's; /progress shows a live preview of the 16-channel latents.
/// </summary>
public class Sd3ServerTests(Sd3ModelsServer fixture) : IClassFixture<Sd3ModelsServer>
{
    static readonly string Shipped = Path.GetFileName(Repo.ShippedModel);
    HttpClient Client => fixture.Client;

    static JsonObject Body(string model, string prompt, long seed, int steps, double cfg = 5, int? size = 64)
    {
        var body = new JsonObject
        {
            ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps, ["cfg_scale"] = cfg,
            ["sampler_name"] = "Euler", ["scheduler"] = "Simple",
            ["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = model },
        };
        if (size is int s) { body["width"] = s; body["height"] = s; }
        return body;
    }

    static GenerationOptions Options(string prompt, long seed, int steps, double cfg = 5, int? size = 64) => new()
    {
        Prompts = [prompt], NegativePrompts = [""], Seed = seed, NumInferenceSteps = steps, GuidanceScale = cfg, Width = size, Height = size,
    };

    static string Detail(Reply reply) => reply.Json["detail"] is JsonArray list
        ? string.Join("; ", list.Select(e => (string?)e!["msg"]))
        : (string?)reply.Json["detail"] ?? "";

    [Fact]
    public async Task Sd_models_lists_the_sd3_folders_with_their_family_prompt_fields_and_samplers()
    {
        var models = (await Client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray().ToDictionary(m => (string)m!["model_name"]!, m => m!.AsObject());
        Assert.Equal([Shipped, "tiny-sd3", "tiny-sd3-no-t5", "tiny-sd35"], models.Keys.Order(StringComparer.Ordinal));
        foreach (var name in new[] { "tiny-sd3", "tiny-sd35" })
        {
            Assert.Equal("SD3/SD3.5", (string?)models[name]["family"]);
            Assert.Equal(["prompt", "negative_prompt", "prompt_3", "negative_prompt_3"], models[name]["prompts"]!.AsArray().Select(p => (string?)p));
            Assert.Equal(["Euler"], models[name]["samplers"]!.AsArray().Select(p => (string?)p));
            Assert.Equal(["automatic", "simple"], models[name]["schedulers"]!.AsArray().Select(p => (string?)p));
        }
        Assert.DoesNotContain("prompt_3", models["tiny-sd3-no-t5"]["prompts"]!.AsArray().Select(p => (string?)p));
        Assert.Equal("SD 1.x/2.x", (string?)models[Shipped]["family"]);
        Assert.Equal(["prompt", "negative_prompt"], models[Shipped]["prompts"]!.AsArray().Select(p => (string?)p));
        Assert.Contains("DPM++ 2M", models[Shipped]["samplers"]!.AsArray().Select(p => (string?)p));
    }

    [Fact]
    public async Task Options_switch_to_sd3_and_txt2img_draws_the_librarys_image_with_forges_infotext()
    {
        try
        {
            (await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = "tiny-sd3" })).Ok();
            Assert.Equal("tiny-sd3", (string?)(await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);
            var body = Body("tiny-sd3", "a red cube", 9, 3);
            body.Remove("override_settings"); // the loaded model
            body["negative_prompt"] = "blurry";
            var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();

            var expected = Sd3Reference.Image("tiny-sd3", Options("a red cube", 9, 3) with { NegativePrompts = ["blurry"] });
            Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));
            Assert.Equal("tiny-sd3", (string?)reply.Info["sd_model_name"]);
            Assert.Equal("Euler", (string?)reply.Info["sampler_name"]);
            string infotext = Api.Parameters(reply.Png());
            Assert.Equal("a red cube\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, Schedule type: Simple, CFG scale: 5, Seed: 9, Size: 64x64, Model: tiny-sd3", infotext);
            var read = (await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = Convert.ToBase64String(reply.Png()) })).Ok().Json["parameters"]!;
            Assert.Equal("Simple", (string?)read["Schedule type"]);
            Assert.Equal("Euler", (string?)read["Sampler"]);

            // Forge's "Automatic" schedule and A1111's alias k_euler are the same sampler
            body["scheduler"] = "Automatic";
            body["sampler_name"] = "k_euler";
            Assert.Equal(reply.Png(), (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok().Png());
        }
        finally
        {
            (await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = Shipped })).Ok();
        }
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public async Task Override_settings_runs_sd3_for_one_request_with_the_t5_prompt_fields(string model)
    {
        var body = Body(model, "a blue sphere", 21, 3);
        body["negative_prompt"] = "dark";
        body["prompt_3"] = "a blue sphere on a wooden table, studio light";
        body["negative_prompt_3"] = "noise";
        body["max_sequence_length"] = 24;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var expected = Sd3Reference.Image(model, Options("a blue sphere", 21, 3) with
        {
            NegativePrompts = ["dark"], Prompts3 = ["a blue sphere on a wooden table, studio light"], NegativePrompts3 = ["noise"], MaxSequenceLength = 24,
        });
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));
        Assert.Equal(model, (string?)reply.Info["sd_model_name"]);

        // the T5 fields reach the image: without them it differs
        foreach (var field in new[] { "prompt_3", "negative_prompt_3", "max_sequence_length" }) body.Remove(field);
        Assert.NotEqual(expected.Rgb, Api.Decode((await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok().Png()).Rgb);
        // and the loaded model is the start one again (override_settings_restore_afterwards)
        Assert.Equal(Shipped, (string?)(await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);
    }

    [Fact]
    public async Task Img2img_with_sd3_draws_the_librarys_image()
    {
        string init = Golden.Path("inpaint", "init_64x64.png");
        var body = Body("tiny-sd35", "a green field", 5, 4, size: null);
        body["init_images"] = new JsonArray(Api.Base64File(init));
        body["denoising_strength"] = 0.6;
        var reply = (await Client.PostAsync("/sdapi/v1/img2img", body)).Ok();
        var expected = Sd3Reference.Image("tiny-sd35", Options("a green field", 5, 4, size: null) with
        {
            Image = ImageFile.Decode(File.ReadAllBytes(init), init), Strength = 0.6,
        });
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));
        Assert.Contains("Sampler: Euler, Schedule type: Simple, ", Api.Parameters(reply.Png()));
        Assert.Contains("Denoising strength: 0.6", Api.Parameters(reply.Png()));
    }

    [Theory]
    [InlineData("DPM++ 2M Karras", null, "sampler_name")]
    [InlineData("Euler a", "Automatic", "sampler_name")]
    [InlineData("Euler", "Karras", "scheduler")]
    [InlineData("Euler", "Beta", "scheduler")]
    public async Task A_sampler_sd3_does_not_take_is_a_one_line_422_naming_it_and_what_the_model_takes(string sampler, string? schedule, string field)
    {
        var body = Body("tiny-sd3", "x", 1, 2);
        body["sampler_name"] = sampler;
        body["scheduler"] = schedule;
        var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, reply.Code);
        Assert.Equal(field, (string?)reply.Json["detail"]![0]!["loc"]![1]);
        string detail = Detail(reply);
        Assert.DoesNotContain('\n', detail);
        Assert.Contains($"'{(field == "scheduler" ? schedule : sampler)}'", detail);
        Assert.Contains("takes sampler Euler with schedule Automatic or Simple", detail);
    }

    [Fact]
    public async Task Forges_simple_schedule_is_refused_for_an_sd_model_in_one_line()
    {
        var body = Body(Shipped, "x", 1, 2);
        var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, reply.Code);
        Assert.Contains("'Simple'", Detail(reply));
    }

    [Theory]
    [InlineData("prompt_3", "a T5 prompt")]
    [InlineData("negative_prompt_3", "a T5 negative")]
    [InlineData("max_sequence_length", 77)]
    public async Task T5_fields_are_refused_in_one_line_for_models_without_t5(string field, object value)
    {
        foreach (var model in new[] { Shipped, "tiny-sd3-no-t5" })
        {
            var body = Body(model, "x", 1, 2);
            if (model == Shipped) { body.Remove("sampler_name"); body.Remove("scheduler"); }
            body[field] = JsonValue.Create(value);
            var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
            Assert.Equal(422, reply.Code);
            Assert.Equal(field, (string?)reply.Json["detail"]![0]!["loc"]![1]);
            Assert.Contains("T5", Detail(reply));
            Assert.DoesNotContain('\n', Detail(reply));
        }
    }

    [Fact]
    public async Task Progress_shows_a_live_preview_of_the_16_channel_latents_during_an_sd3_job()
    {
        var body = Body("tiny-sd3", "a slow job", 3, 400, size: 96);
        body["task"] = "txt2img";
        var posted = (await Client.PostAsync("/jobs", body));
        Assert.Equal(202, posted.Code);
        string id = (string)posted.Json["id"]!;
        try
        {
            var progress = await Api.PollAsync(() => Client.GetJsonAsync("/sdapi/v1/progress"),
                r => r.Json["current_image"] is JsonValue && (int?)r.Json["state"]!["sampling_step"] > 0, TimeSpan.FromSeconds(120), "a preview");
            var preview = Api.Decode(Convert.FromBase64String((string)progress.Json["current_image"]!));
            Assert.Equal((96 / 4, 96 / 4), (preview.Width, preview.Height)); // one preview pixel per latent pixel (VAE factor 4)
            Assert.True(preview.Rgb.Distinct().Count() > 1, "the preview is one flat colour");
        }
        finally
        {
            await Client.DeleteAsync($"/jobs/{id}");
            await Api.PollAsync(() => Client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] is not ("running" or "queued"), TimeSpan.FromSeconds(60), "the job to end");
        }
    }
}
