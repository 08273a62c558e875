using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Tests.Flux;

namespace SharpDiffusion.Tests.Server;

/// <summary>A server on the shipped model whose models folder holds the golden Flux folders, the dev model's BFL and
/// GGUF transformer files, and, in ComfyUI's layout, their component files (text_encoders/clip_l, t5xxl_fp16 with its
/// spiece.model, vae/ae.safetensors).</summary>
public sealed class FluxModelsServer : FolderServer
{
    TempDir Models => Folder;
    /// <summary>What the tiny model's shapes cannot tell (rotary axes, VAE norm groups, CLIP heads), outside the models folder.</summary>
    public readonly TempDir Config = new();

    protected override void Fill()
    {
        foreach (var model in new[] { "tiny-flux-dev", "tiny-flux-schnell" })
            Directory.CreateSymbolicLink(Models.File(model), FluxGolden.ModelDir(model));
        foreach (var file in new[] { FluxGolden.BflFile, FluxGolden.GgufFile })
            File.CreateSymbolicLink(Models.File(file), FluxGolden.SingleFile(file));
        var parts = FluxComponentFileWriter.Write("tiny-flux-dev", Directory.CreateDirectory(Models.File("parts")).FullName);
        Directory.CreateDirectory(Models.File("text_encoders"));
        Directory.CreateDirectory(Models.File("vae"));
        File.Copy(parts.Clip, Models.File("text_encoders/clip_l.safetensors"));
        File.Copy(parts.T5, Models.File("text_encoders/t5xxl_fp16.safetensors"));
        File.Copy(Path.Combine(Path.GetDirectoryName(parts.T5)!, "spiece.model"), Models.File("text_encoders/spiece.model"));
        File.Copy(parts.Vae, Models.File("vae/ae.safetensors"));
        File.Copy(parts.Vae, Models.File("ae.safetensors")); // beside the models too: a component, not a model
        CopyDir(parts.Config, Config.Path);
        Directory.Delete(Models.File("parts"), recursive: true);
    }

    protected override ServerOptions Configure(ServerOptions o) => o with { ModelsDir = Models.Path };

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Config.Dispose();
    }

    static void CopyDir(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}

/// <summary>
/// Flux.1 through AUTOMATIC1111's and OpenAI's APIs (issue 23 item 6), as Forge runs it: /sd-models lists the Flux
/// folders and the BFL/GGUF transformer files with family Flux.1 (their component files not as models); the embedded
/// guidance is cfg_scale or distilled_cfg_scale; a negative prompt is ignored with a warning; steps default to the
/// model's (schnell 4); the images are what the library draws; /progress previews the 16-channel latents.
/// </summary>
public class FluxServerTests(FluxModelsServer fixture) : IClassFixture<FluxModelsServer>
{
    HttpClient Client => fixture.Client;

    static JsonObject Body(string model, string prompt, long seed, int? steps = 2, int size = 64) => new()
    {
        ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps, ["width"] = size, ["height"] = size,
        ["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = model },
    };

    static GenerationOptions Options(string prompt, long seed, int steps, double guidance, int size = 64) => new()
    {
        Prompts = [prompt], NegativePrompts = [""], Seed = seed, NumInferenceSteps = steps, GuidanceScale = guidance, Width = size, Height = size,
    };

    [Fact]
    public async Task Sd_models_lists_flux_folders_and_transformer_files_but_not_their_components()
    {
        var models = (await Client.GetJsonAsync("/sdapi/v1/sd-models")).Ok().Json.AsArray().ToDictionary(m => (string)m!["filename"]!, m => m!.AsObject());
        foreach (var name in new[] { "tiny-flux-dev", "tiny-flux-schnell", FluxGolden.BflFile, FluxGolden.GgufFile })
        {
            Assert.Equal("Flux.1", (string?)models[name]["family"]);
            Assert.Equal(["prompt", "prompt_2"], models[name]["prompts"]!.AsArray().Select(p => (string?)p));
            // dev (and the files of the dev model) has the embedded guidance Forge calls "Distilled CFG Scale"; schnell none
            Assert.Equal(name == "tiny-flux-schnell" ? "none" : "distilled", (string?)models[name]["guidance"]);
            Assert.Equal(["Euler"], models[name]["samplers"]!.AsArray().Select(p => (string?)p));
        }
        Assert.DoesNotContain("ae.safetensors", models.Keys);
        // The files' components, found where ComfyUI keeps them.
        var catalog = new ModelCatalog(Repo.ShippedModel, fixture.Folder.Path);
        var gguf = catalog.Find(FluxGolden.GgufFile)!;
        Assert.Equal(["clip_l.safetensors", "t5xxl_fp16.safetensors"], gguf.Components!.TextEncoders.Select(Path.GetFileName));
        Assert.Equal("ae.safetensors", Path.GetFileName(gguf.Components.Vae));

        // What the scan found assembles the model the file is (its T5 tokenizer beside the T5 file), and draws.
        using var pipeline = StableDiffusionPipeline.Load(gguf.Path, new SharpDiffusion.Loading.LoadOptions(), gguf.Components with { DiffusersConfig = fixture.Config.Path });
        Assert.IsType<SharpDiffusion.Families.Flux.FluxFamily>(pipeline.Family);
        using var result = pipeline.Generate(Options("a red cube", 3, 1, guidance: 3.5));
        Assert.Equal((64, 64), (result.Images[0].Width, result.Images[0].Height));
    }

    [Fact]
    public async Task Cfg_scale_or_distilled_cfg_scale_is_devs_embedded_guidance_and_a_negative_prompt_is_ignored_with_a_warning()
    {
        var expected = Sd3Reference.Image("tiny-flux-dev", Options("a red cube", 7, 2, guidance: 2.5));
        var body = Body("tiny-flux-dev", "a red cube", 7);
        body["cfg_scale"] = 2.5;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));

        body["cfg_scale"] = 7;
        body["distilled_cfg_scale"] = 2.5; // Forge's field wins
        body["negative_prompt"] = "blurry";
        reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));
        Assert.Contains(reply.Info["warnings"]!.AsArray(), w => ((string?)w)!.Contains("takes no negative prompt"));
        Assert.Equal(1.0, (double?)reply.Info["cfg_scale"]); // no classifier-free guidance, as Forge writes it
        Assert.Equal(2.5, (double?)reply.Info["distilled_cfg_scale"]);
    }

    [Fact]
    public async Task The_infotext_writes_forges_distilled_cfg_scale_for_dev_none_for_schnell_and_png_info_reads_it_back()
    {
        var dev = Body("tiny-flux-dev", "a red cube", 7);
        dev["distilled_cfg_scale"] = 2.5;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", dev)).Ok();
        string info = Api.Parameters(reply.Png());
        // Forge's create_infotext: "CFG scale" (1: Flux runs without CFG), then "Distilled CFG Scale", then the seed.
        Assert.Contains(", CFG scale: 1, Distilled CFG Scale: 2.5, Seed: 7, Size: 64x64, ", info);
        Assert.Equal(info, (string?)reply.Info["infotexts"]![0]);
        var read = (await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = Convert.ToBase64String(reply.Png()) })).Ok().Json;
        Assert.Equal("2.5", (string?)read["parameters"]!["Distilled CFG Scale"]);
        Assert.Equal("1", (string?)read["parameters"]!["CFG scale"]);
        Assert.Equal("a red cube", (string?)read["parameters"]!["Prompt"]);

        // schnell ignores the guidance: Forge writes no "Distilled CFG Scale" for it (use_distilled_cfg_scale is off).
        var schnell = Body("tiny-flux-schnell", "a blue sphere", 11, steps: 1);
        schnell["cfg_scale"] = 6;
        info = Api.Parameters((await Client.PostAsync("/sdapi/v1/txt2img", schnell)).Ok().Png());
        Assert.Contains(", CFG scale: 1, Seed: 11, ", info);
        Assert.DoesNotContain("Distilled", info);
    }

    [Fact]
    public async Task Prompt_2_is_fluxs_t5_prompt_and_a_model_with_one_prompt_refuses_it_in_one_line()
    {
        var expected = Sd3Reference.Image("tiny-flux-dev", Options("a red cube", 5, 2, guidance: 3.5) with { Prompts2 = ["a glossy red cube on grass"] });
        var plain = Sd3Reference.Image("tiny-flux-dev", Options("a red cube", 5, 2, guidance: 3.5));
        Assert.NotEqual(plain.Rgb, expected.Rgb); // the T5 prompt changes the picture
        var body = Body("tiny-flux-dev", "a red cube", 5);
        body["prompt_2"] = "a glossy red cube on grass";
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));

        var sd = new JsonObject { ["prompt"] = "a red cube", ["prompt_2"] = "more", ["steps"] = 1 }; // the shipped SD model
        var refused = await Client.PostAsync("/sdapi/v1/txt2img", sd);
        Assert.Equal(422, refused.Code);
        Assert.Contains("prompt_2", refused.Json.ToJsonString());
    }

    [Fact]
    public async Task Schnell_without_steps_or_cfg_scale_runs_its_defaults_and_openai_draws_the_same()
    {
        var defaults = SharpDiffusion.Families.Flux.FluxDefaults.Schnell;
        var expected = Sd3Reference.Image("tiny-flux-schnell", Options("a blue sphere", 11, defaults.NumInferenceSteps, defaults.GuidanceScale));
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body("tiny-flux-schnell", "a blue sphere", 11, steps: null))).Ok();
        Assert.Equal(defaults.NumInferenceSteps, (int?)reply.Info["steps"]);
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(reply.Png())));

        var openai = (await Client.PostAsync("/v1/images/generations", new JsonObject
        {
            ["prompt"] = "a blue sphere", ["model"] = "tiny-flux-schnell", ["size"] = "64x64", ["seed"] = 11,
        })).Ok();
        Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, Api.Decode(Convert.FromBase64String((string)openai.Json["data"]![0]!["b64_json"]!))));
    }

    [Fact]
    public async Task Progress_shows_a_live_preview_of_the_flux_latents()
    {
        var body = Body("tiny-flux-dev", "a slow job", 3, steps: 400, size: 96);
        body["task"] = "txt2img";
        var posted = await Client.PostAsync("/jobs", body);
        Assert.Equal(202, posted.Code);
        string id = (string)posted.Json["id"]!;
        try
        {
            var progress = await Api.PollAsync(() => Client.GetJsonAsync("/sdapi/v1/progress"),
                r => r.Json["current_image"] is JsonValue && (int?)r.Json["state"]!["sampling_step"] > 0, TimeSpan.FromSeconds(120), "a preview");
            var preview = Api.Decode(Convert.FromBase64String((string)progress.Json["current_image"]!));
            Assert.Equal((96 / 4, 96 / 4), (preview.Width, preview.Height)); // one preview pixel per (unpacked) latent pixel, VAE factor 4
            Assert.True(preview.Rgb.Distinct().Count() > 1, "the preview is one flat colour");
        }
        finally
        {
            await Client.DeleteAsync($"/jobs/{id}");
            await Api.PollAsync(() => Client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] is not ("running" or "queued"), TimeSpan.FromSeconds(60), "the job to end");
        }
    }
}
