using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// Issue 25 item 4 over real HTTP: A1111's sd_vae option (POST /sdapi/v1/options), GET /sdapi/v1/sd-vae listing
/// <c>serve --vae-dir</c>, override_settings.sd_vae per request ("Automatic" = the model's own), the infotext's VAE hash /
/// VAE; and item 3: <c>serve --preview-vae</c> makes A1111's "TAESD" the preview type, previews at full resolution.
/// </summary>
public class SdVaeApiTests(ITestOutputHelper output)
{
    static string SmallSd15 => Golden.Path("models", "small-sd15");
    static string TinyTaesd => Golden.Path("v3", "models", "tiny-taesd");

    static JsonObject Body(string prompt, long seed, int steps) => new()
    {
        ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps, ["cfg_scale"] = 6, ["width"] = 64, ["height"] = 64, ["sampler_name"] = "Euler",
    };

    static GenerationOptions Options(string prompt, long seed, int steps) =>
        Reference.Options(prompt, seed, steps, 6) with { Width = 64, Height = 64 };

    static async Task<TestServer> StartAsync(TempDir vaes, bool preview = false)
    {
        ModelFolderTests.CopyDir(TinyTaesd, Path.Combine(vaes.Path, "tiny-taesd"));
        ModelFolderTests.CopyDir(Path.Combine(SmallSd15, "vae"), Path.Combine(vaes.Path, "sd15-vae"));
        File.WriteAllText(Path.Combine(vaes.Path, "notes.txt"), "not a VAE");
        return await TestServer.StartAsync(o => o with { Model = SmallSd15, VaeDir = vaes.Path, PreviewVae = preview ? TinyTaesd : null });
    }

    [Fact]
    public async Task Sd_vae_option_and_override_settings_choose_the_vae_and_the_infotext_names_it()
    {
        using var vaes = new TempDir();
        await using var server = await StartAsync(vaes);
        var client = server.Client;

        var listed = (await client.GetJsonAsync("/sdapi/v1/sd-vae")).Ok().Json.AsArray();
        Assert.Equal(["sd15-vae", "tiny-taesd"], listed.Select(v => (string)v!["model_name"]!).ToArray());
        Assert.Equal(Path.Combine(vaes.Path, "tiny-taesd"), (string)listed[1]!["filename"]!);
        Assert.Equal("Automatic", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_vae"]);

        // The library's pictures: the model's own VAE, and TAESD in its place.
        using var pipeline = StableDiffusionPipeline.Load(SmallSd15);
        using var own = pipeline.Generate(Options("a red cube", 3, 3));
        pipeline.VaeCodec.UseVae(Path.Combine(vaes.Path, "tiny-taesd"), new LoadOptions());
        string hash = pipeline.VaeCodec.VaeHash!;
        using var tiny = pipeline.Generate(Options("a red cube", 3, 3));
        Assert.NotEqual(own.Images[0].Rgb, tiny.Images[0].Rgb);

        (await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_vae"] = "tiny-taesd" })).Ok();
        Assert.Equal("tiny-taesd", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_vae"]);
        var reply = (await client.PostAsync("/sdapi/v1/txt2img", Body("a red cube", 3, 3))).Ok();
        Assert.Equal(tiny.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Contains($", VAE hash: {hash}, VAE: tiny-taesd", Api.Parameters(reply.Png()));
        Assert.Equal("tiny-taesd", (string?)reply.Info["sd_vae_name"]);
        Assert.Equal(hash, (string?)reply.Info["sd_vae_hash"]);

        // override_settings: this request only; "Automatic" is the model's own VAE, and nothing is written about it.
        var body = Body("a red cube", 3, 3);
        body["override_settings"] = new JsonObject { ["sd_vae"] = "Automatic" };
        reply = (await client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(own.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.DoesNotContain("VAE", Api.Parameters(reply.Png()));
        reply = (await client.PostAsync("/sdapi/v1/txt2img", Body("a red cube", 3, 3))).Ok();
        Assert.Equal(tiny.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);   // the option again

        // A full VAE folder by name (the model's own weights: the model's picture) and the name without extension rules.
        body["override_settings"] = new JsonObject { ["sd_vae"] = "sd15-vae" };
        reply = (await client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(own.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Contains("VAE: sd15-vae", Api.Parameters(reply.Png()));

        // Unknown names: refused in one line, the option unchanged.
        var refused = await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_vae"] = "notes.txt" });
        Assert.InRange(refused.Code, 400, 499);
        string message = refused.Body!.ToJsonString();
        Assert.Contains("sd-vae", message);
        Assert.DoesNotContain("\\n", message);
        Assert.Equal("tiny-taesd", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_vae"]);
        body["override_settings"] = new JsonObject { ["sd_vae"] = "no-such-vae" };
        refused = await client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.InRange(refused.Code, 400, 499);
        Assert.Contains("no-such-vae", refused.Body!.ToJsonString());
        (await client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_vae"] = "None" })).Ok();
        reply = (await client.PostAsync("/sdapi/v1/txt2img", Body("a red cube", 3, 3))).Ok();
        Assert.Equal(own.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);
    }

    [Fact]
    public async Task Taesd_previews_are_the_full_resolution_decode_of_the_steps_clean_estimate()
    {
        using var vaes = new TempDir();
        await using var server = await StartAsync(vaes, preview: true);
        var client = server.Client;
        Assert.Equal("TAESD", (string?)(await client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["show_progress_type"]);

        string id = (string)(await client.PostAsync("/jobs", Body("a blue ball", 8, 3))).Json["id"]!;
        await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] == "completed", TimeSpan.FromSeconds(120), "the job");
        // The stream of a finished job: one "done" event carrying the last preview (the last step's).
        using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}/events"), HttpCompletionOption.ResponseHeadersRead);
        string? preview = null;
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
            while (await reader.ReadLineAsync() is { } line)
                if (line.StartsWith("data: ", StringComparison.Ordinal) && JsonNode.Parse(line[6..])!["preview"] is JsonValue p)
                    preview = (string)p!;
        Assert.NotNull(preview);
        var picture = Api.Decode(Convert.FromBase64String(preview!["data:image/png;base64,".Length..]));
        Assert.Equal((64, 64), (picture.Width, picture.Height));   // full resolution, not 8×8

        // Euler's last step goes to σ = 0, so its x̂₀ is the final latents; decode them with the TAESD module directly.
        using var pipeline = StableDiffusionPipeline.Load(SmallSd15);
        using var result = pipeline.Generate(Options("a blue ball", 8, 3));
        // A block, not a using declaration: the awaits below may resume on another thread, and inference mode is
        // per thread (left on here, it would leak into the next test this thread runs).
        using (inference_mode())
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyTaesd, "config.json")))!.AsObject();
            using var taesd = AutoencoderTinyFiles.LoadFolder(TinyTaesd, config);
            var decoded = (taesd.Decode(result.Latents) / 2 + 0.5).clamp(0, 1);
            var expected = (decoded * 255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
            int worst = expected.Zip(picture.Rgb, (e, a) => Math.Abs(e - a)).Max();
            output.WriteLine($"server TAESD preview vs TAESD decode of x̂₀ (last step): max {worst} levels");
            Assert.True(worst <= 1, $"{worst} levels apart");
        }

        // A client may still choose the cheap map.
        (await client.PostAsync("/sdapi/v1/options", new JsonObject { ["show_progress_type"] = "Approx cheap" })).Ok();
        id = (string)(await client.PostAsync("/jobs", Body("a blue ball", 8, 2))).Json["id"]!;
        await Api.PollAsync(() => client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] == "completed", TimeSpan.FromSeconds(120), "the job");
        using var second = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}/events"), HttpCompletionOption.ResponseHeadersRead);
        preview = null;
        using (var reader = new StreamReader(await second.Content.ReadAsStreamAsync()))
            while (await reader.ReadLineAsync() is { } line)
                if (line.StartsWith("data: ", StringComparison.Ordinal) && JsonNode.Parse(line[6..])!["preview"] is JsonValue p)
                    preview = (string)p!;
        Assert.Equal(8, Api.Decode(Convert.FromBase64String(preview!["data:image/png;base64,".Length..])).Width);
    }
}
