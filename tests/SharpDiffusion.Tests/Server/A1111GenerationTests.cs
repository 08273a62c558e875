using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// POST /sdapi/v1/txt2img and img2img over HTTP: AUTOMATIC1111's response shape, and images byte-identical to what the
/// library (the CLI's `generate`) makes for the same settings: seeds, batches, samplers and schedules, clip skip,
/// init images, inpainting; png-info reads the infotext back.
/// </summary>
public class A1111GenerationTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    static readonly string Model = Repo.ShippedModel;
    static readonly string InitImage = Golden.Path("inpaint", "init_64x64.png");
    static readonly string MaskImage = Golden.Path("inpaint", "mask_64x64.png");
    HttpClient Client => fixture.Client;

    static JsonObject Body(string prompt, long seed, int steps, double cfg = 5) =>
        new() { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps, ["cfg_scale"] = cfg };

    /// <summary>`serve --low-memory`: every job reads the weights it needs and frees them; the pictures do not change.</summary>
    [Fact]
    public async Task A_low_memory_server_answers_the_pngs_of_the_resident_one_job_after_job()
    {
        await using var server = await TestServer.StartAsync(o => o with { Load = o.Load with { LowMemory = true } });
        var expected = Reference.Png(Model, Reference.Options("a red circle", 7, 3, 5.5, negative: "blurry"));
        for (int i = 0; i < 2; i++)
        {
            var body = Body("a red circle", 7, 3, 5.5);
            body["negative_prompt"] = "blurry";
            Assert.Equal(expected, (await server.Client.PostAsync("/sdapi/v1/txt2img", body)).Ok().Png());
        }
        var img2img = Body("a blue square", 3, 4);
        img2img["init_images"] = new JsonArray(Convert.ToBase64String(File.ReadAllBytes(InitImage)));
        img2img["denoising_strength"] = 0.6;
        var withImage = await Client.PostAsync("/sdapi/v1/img2img", img2img.DeepClone());
        Assert.Equal(withImage.Ok().Png(), (await server.Client.PostAsync("/sdapi/v1/img2img", img2img)).Ok().Png()); // as the resident server's
    }

    [Fact]
    public async Task Txt2img_answers_a1111s_shape_with_the_png_generate_writes()
    {
        var body = Body("a red circle", 7, 3, 5.5);
        body["negative_prompt"] = "blurry";
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();

        Assert.Equal(1, reply.ImageCount);
        byte[] png = reply.Png();
        Assert.Equal(Reference.Png(Model, Reference.Options("a red circle", 7, 3, 5.5, negative: "blurry")), png);

        // "parameters": the request with A1111's defaults for what was not sent (modules/api/models.py).
        var p = reply.Json["parameters"]!;
        Assert.Equal("a red circle", (string?)p["prompt"]);
        Assert.Equal(7, (long)p["seed"]!);
        Assert.Equal(3, (int)p["steps"]!);
        Assert.Equal(5.5, (double)p["cfg_scale"]!);
        Assert.Equal(1, (int)p["batch_size"]!);
        Assert.Equal(1, (int)p["n_iter"]!);
        Assert.Equal("Euler", (string?)p["sampler_index"]);
        Assert.Null(p["sampler_name"]);
        Assert.Null(p["denoising_strength"]);
        Assert.True((bool)p["send_images"]!);
        Assert.False((bool)p["save_images"]!);
        Assert.True((bool)p["override_settings_restore_afterwards"]!);

        // "info": a JSON string with Processed.js()'s keys.
        Assert.Equal(JsonValueKind.String, reply.Json["info"]!.GetValueKind());
        var info = reply.Info;
        foreach (var key in new[] { "prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
                     "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size",
                     "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash",
                     "seed_resize_from_w", "seed_resize_from_h", "denoising_strength", "extra_generation_params", "index_of_first_image",
                     "infotexts", "styles", "job_timestamp", "clip_skip", "is_using_inpainting_conditioning", "version" })
            Assert.True(info.ContainsKey(key), $"info has no '{key}'");
        var image = Api.Decode(png);
        Assert.Equal(Api.Parameters(png), (string?)info["infotexts"]![0]);
        Assert.Equal(7, (long)info["seed"]!);
        Assert.Equal([7L], info["all_seeds"]!.AsArray().Select(s => (long)s!));
        Assert.Equal("blurry", (string?)info["negative_prompt"]);
        Assert.Equal(image.Width, (int)info["width"]!);
        Assert.Equal(image.Height, (int)info["height"]!);
        Assert.Equal(Path.GetFileName(Model), (string?)info["sd_model_name"]);
        Assert.Equal("Euler", (string?)info["sampler_name"]);
        Assert.Equal(0, (int)info["index_of_first_image"]!);
        Assert.False((bool)info["is_using_inpainting_conditioning"]!);
    }

    [Fact]
    public async Task Seed_minus_one_draws_a_seed_that_is_reported_and_makes_the_same_image_again()
    {
        var first = (await Client.PostAsync("/sdapi/v1/txt2img", Body("a square", -1, 2))).Ok();
        long seed = (long)first.Info["seed"]!;
        Assert.InRange(seed, 0, uint.MaxValue);
        Assert.Equal(seed, (long)first.Info["all_seeds"]![0]!);
        Assert.Contains($"Seed: {seed},", Api.Parameters(first.Png()));
        Assert.Equal(-1, (long)first.Json["parameters"]!["seed"]!); // the request as sent

        var again = (await Client.PostAsync("/sdapi/v1/txt2img", Body("a square", seed, 2))).Ok();
        Assert.Equal(first.Png(), again.Png());
    }

    [Fact]
    public async Task Batch_size_2_times_n_iter_2_makes_four_images_with_consecutive_seeds_each_reproducible()
    {
        var body = Body("two shapes", 100, 2);
        body["batch_size"] = 2;
        body["n_iter"] = 2;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();

        Assert.Equal(4, reply.ImageCount);
        var info = reply.Info;
        Assert.Equal([100L, 101, 102, 103], info["all_seeds"]!.AsArray().Select(s => (long)s!));
        Assert.Equal(4, info["infotexts"]!.AsArray().Count);
        Assert.Equal(2, (int)info["batch_size"]!);
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal((string?)info["infotexts"]![i], Api.Parameters(reply.Png(i)));
            Assert.Equal(Reference.Png(Model, Reference.Options("two shapes", 100 + i, 2, 5)), reply.Png(i));
        }
    }

    [Fact]
    public async Task Sampler_with_the_karras_schedule_and_the_old_combined_name_draw_the_same_image()
    {
        var separate = Body("a blue triangle", 11, 3);
        separate["sampler_name"] = "DPM++ 2M";
        separate["scheduler"] = "Karras";
        var combined = Body("a blue triangle", 11, 3);
        combined["sampler_name"] = "DPM++ 2M Karras"; // before A1111 1.9 the schedule was part of the name

        byte[] expected = Reference.Png(Model, Reference.Options("a blue triangle", 11, 3, 5, scheduler: "DPM++ 2M Karras"));
        var a = (await Client.PostAsync("/sdapi/v1/txt2img", separate)).Ok();
        var b = (await Client.PostAsync("/sdapi/v1/txt2img", combined)).Ok();
        Assert.Equal(expected, a.Png());
        Assert.Equal(expected, b.Png());
        Assert.NotEqual(Reference.Png(Model, Reference.Options("a blue triangle", 11, 3, 5, scheduler: "DPM++ 2M")), expected);
    }

    [Fact]
    public async Task Every_listed_sampler_and_schedule_is_accepted_and_drawn_as_the_library_draws_it()
    {
        var samplers = (await Client.GetJsonAsync("/sdapi/v1/samplers")).Ok().Json.AsArray().Select(s => (string)s!["name"]!).ToList();
        var schedules = (await Client.GetJsonAsync("/sdapi/v1/schedulers")).Ok().Json.AsArray().Select(s => (string)s!["label"]!).ToList();
        Assert.Contains("Euler", samplers);
        Assert.Contains("Karras", schedules);
        foreach (var sampler in samplers)
        {
            var body = Body("a shape", 3, 2);
            body["sampler_name"] = sampler;
            var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
            Assert.True(reply.Code == 200, $"{sampler}: {reply.Body?.ToJsonString()}");
            Assert.Equal(Reference.Png(Model, Reference.Options("a shape", 3, 2, 5, scheduler: sampler)), reply.Png());
        }
        Assert.Contains("Exponential", schedules);
        Assert.Contains("Beta", schedules);
        Assert.Contains("LCM", samplers);
        // Euler has every listed schedule; each draws what the library's scheduler of that name draws.
        var euler = new Dictionary<string, string>
        {
            ["Automatic"] = "Euler", ["Uniform"] = "Euler", ["Karras"] = "euler_karras", ["Exponential"] = "euler_exponential", ["Beta"] = "euler_beta",
            ["SGM Uniform"] = "euler_sgm_uniform", ["Align Your Steps"] = "euler_ays",
        };
        Assert.Equal(euler.Keys.Order(), schedules.Order());
        foreach (var schedule in schedules)
        {
            var body = Body("a shape", 3, 2);
            body["sampler_name"] = "Euler";
            body["scheduler"] = schedule;
            var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
            Assert.True(reply.Code == 200, $"Euler + {schedule}: {reply.Body?.ToJsonString()}");
            Assert.Equal(Api.Decode(Reference.Png(Model, Reference.Options("a shape", 3, 2, 5, scheduler: euler[schedule]))).Rgb, Api.Decode(reply.Png()).Rgb);
            if (schedule is not ("Automatic" or "Uniform"))
                Assert.Contains($"Sampler: Euler, Schedule type: {schedule}, ", Api.Parameters(reply.Png()));
        }
        // DPM++ 2M has Automatic, Uniform, Karras, and exponential and beta σ's ending at 0 (diffusers >= 0.32's use_exponential_sigmas).
        var dpmpp = new Dictionary<string, string>
        {
            ["Automatic"] = "DPM++ 2M", ["Uniform"] = "DPM++ 2M", ["Karras"] = "DPM++ 2M Karras", ["Exponential"] = "dpmpp_2m_exponential", ["Beta"] = "dpmpp_2m_beta",
        };
        foreach (var (schedule, library) in dpmpp)
        {
            var body = Body("a shape", 3, 2);
            body["sampler_name"] = "DPM++ 2M";
            body["scheduler"] = schedule;
            var reply = await Client.PostAsync("/sdapi/v1/txt2img", body);
            Assert.True(reply.Code == 200, $"DPM++ 2M + {schedule}: {reply.Body?.ToJsonString()}");
            Assert.Equal(Api.Decode(Reference.Png(Model, Reference.Options("a shape", 3, 2, 5, scheduler: library))).Rgb, Api.Decode(reply.Png()).Rgb);
            if (schedule is "Exponential" or "Beta") // Karras stays in the name, as before: "DPM++ 2M Karras"
                Assert.Contains($"Sampler: DPM++ 2M, Schedule type: {schedule}, ", Api.Parameters(reply.Png()));
        }
        // A pair the library has no scheduler for is refused in one line naming the samplers that have that schedule.
        var refused = Body("a shape", 3, 2);
        refused["sampler_name"] = "DPM++ 2M";
        refused["scheduler"] = "Align Your Steps";
        var no = await Client.PostAsync("/sdapi/v1/txt2img", refused);
        Assert.Equal(422, no.Code);
        string detail = (string)no.Json["detail"]![0]!["msg"]!;
        Assert.Contains("'DPM++ 2M' has no Align Your Steps schedule", detail);
        Assert.Contains("Euler", detail);
    }

    [Fact]
    public async Task Clip_skip_in_override_settings_reaches_the_image_and_its_infotext()
    {
        var body = Body("a green star", 21, 2);
        body["override_settings"] = new JsonObject { ["CLIP_stop_at_last_layers"] = 2 };
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();

        Assert.Equal(Reference.Png(Model, Reference.Options("a green star", 21, 2, 5) with { ClipSkip = 2 }), reply.Png());
        Assert.EndsWith(", Clip skip: 2", Api.Parameters(reply.Png()));
        Assert.Equal(2, (int)reply.Info["clip_skip"]!);
        // an override lasts for its request only
        var options = (await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json;
        Assert.Equal(1, (int)options["CLIP_stop_at_last_layers"]!);
    }

    [Fact]
    public async Task Init_image_as_raw_base64_or_as_a_data_url_gives_the_img2img_image_generate_makes()
    {
        string raw = Api.Base64File(InitImage);
        var body = Body("a photo", 5, 4);
        body["init_images"] = new JsonArray(raw);
        var a = (await Client.PostAsync("/sdapi/v1/img2img", body)).Ok();
        body["init_images"] = new JsonArray("data:image/png;base64," + raw);
        var b = (await Client.PostAsync("/sdapi/v1/img2img", body)).Ok();

        var expected = Reference.Png(Model, Reference.Options("a photo", 5, 4, 5) with { Image = ImageFile.Load(InitImage), Strength = 0.75 });
        Assert.Equal(expected, a.Png());
        Assert.Equal(expected, b.Png());
        Assert.Contains("Denoising strength: 0.75", Api.Parameters(a.Png()));
        Assert.Equal(0.75, (double)a.Info["denoising_strength"]!);
        Assert.Null(a.Json["parameters"]!["init_images"]); // not echoed back
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Inpainting_repaints_only_the_masked_part(int invert)
    {
        var body = Body("a cat", 9, 4);
        body["init_images"] = new JsonArray(Api.Base64File(InitImage));
        body["mask"] = Api.Base64File(MaskImage);
        body["inpainting_mask_invert"] = invert;
        body["mask_blur"] = 4;
        var blurred = (await Client.PostAsync("/sdapi/v1/img2img", body)).Ok();
        var expected = Reference.Png(Model, Reference.Options("a cat", 9, 4, 5) with
        {
            Image = ImageFile.Load(InitImage), MaskImage = ImageFile.Load(MaskImage), Strength = 0.75, MaskBlur = 4,
            InvertMask = invert == 1, PasteOriginal = true,
        });
        Assert.Equal(expected, blurred.Png());
        Assert.Contains("Mask blur: 4", Api.Parameters(blurred.Png()));

        // Without blur, A1111 keeps every pixel outside the mask exactly as it was.
        body["mask_blur"] = 0;
        var sharp = Api.Decode((await Client.PostAsync("/sdapi/v1/img2img", body)).Ok().Png());
        var init = ImageFile.Load(InitImage);
        var mask = ImageFile.Load(MaskImage).Luma();
        int kept = 0, changed = 0;
        for (int i = 0; i < mask.Length; i++)
        {
            bool keep = invert == 0 ? mask[i] == 0 : mask[i] == 255;
            bool same = sharp.Rgb[3 * i] == init.Rgb[3 * i] && sharp.Rgb[3 * i + 1] == init.Rgb[3 * i + 1] && sharp.Rgb[3 * i + 2] == init.Rgb[3 * i + 2];
            if (keep) { Assert.True(same, $"pixel {i} outside the mask changed"); kept++; }
            else if (!same) changed++;
        }
        Assert.True(kept > 0 && changed > 0, $"kept {kept}, changed {changed}");
    }

    [Fact]
    public async Task Unknown_and_null_fields_are_ignored()
    {
        var plain = (await Client.PostAsync("/sdapi/v1/txt2img", Body("a ring", 31, 2))).Ok();
        var noisy = Body("a ring", 31, 2);
        noisy["no_such_field"] = new JsonObject { ["x"] = 1 };
        noisy["another"] = "value";
        foreach (var field in new[] { "negative_prompt", "sampler_name", "scheduler", "batch_size", "n_iter", "width", "height", "styles",
                     "override_settings", "alwayson_scripts", "script_args", "restore_faces", "tiling", "eta", "denoising_strength" })
            noisy[field] = null;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", noisy)).Ok();
        Assert.Equal(plain.Png(), reply.Png());

        // A1111 reads `sampler_name or sampler_index`: an empty name is the default sampler too
        var empty = Body("a ring", 31, 2);
        empty["sampler_name"] = "";
        empty["sampler_index"] = "";
        Assert.Equal(plain.Png(), (await Client.PostAsync("/sdapi/v1/txt2img", empty)).Ok().Png());
    }

    [Fact]
    public async Task Png_info_reads_back_the_infotext_of_a_generated_image()
    {
        var body = Body("a yellow moon", 4242, 2, 6.5);
        body["negative_prompt"] = "dark";
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        string b64 = reply.Json["images"]![0]!.GetValue<string>();
        string infotext = Api.Parameters(reply.Png());
        var size = Api.Decode(reply.Png());

        foreach (var image in new[] { b64, "data:image/png;base64," + b64 })
        {
            var info = (await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = image })).Ok().Json;
            Assert.Equal(infotext, (string?)info["info"]);
            var p = info["parameters"]!;
            Assert.Equal("a yellow moon", (string?)p["Prompt"]);
            Assert.Equal("dark", (string?)p["Negative prompt"]);
            Assert.Equal("2", (string?)p["Steps"]);
            Assert.Equal("4242", (string?)p["Seed"]);
            Assert.Equal("6.5", (string?)p["CFG scale"]);
            Assert.Equal((string?)reply.Info["sampler_name"], (string?)p["Sampler"]);
            Assert.Equal(size.Width.ToString(), (string?)p["Size-1"]);
            Assert.Equal(size.Height.ToString(), (string?)p["Size-2"]);
            Assert.Equal((string?)reply.Info["sd_model_name"], (string?)p["Model"]);
        }

        // a PNG without an infotext: empty info
        var bare = PngFile.Encode(size.Width, size.Height, size.Rgb);
        var none = (await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = Convert.ToBase64String(bare) })).Ok().Json;
        Assert.Equal("", (string?)none["info"]);
    }

    [Fact]
    public async Task A_prompt_outside_latin1_round_trips_through_the_png_and_png_info()
    {
        const string prompt = "un chat noir 🐈‍⬛, 黒猫, (кот:1.2)";
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body(prompt, 6, 2))).Ok();
        Assert.Equal(Reference.Png(Model, Reference.Options(prompt, 6, 2, 5)), reply.Png());
        Assert.StartsWith(prompt + "\n", Api.Parameters(reply.Png()));
        var info = (await Client.PostAsync("/sdapi/v1/png-info", new JsonObject { ["image"] = Convert.ToBase64String(reply.Png()) })).Ok().Json;
        Assert.Equal(prompt, (string?)info["parameters"]!["Prompt"]);
        Assert.Equal(prompt, (string?)reply.Info["prompt"]);
    }

    [Fact]
    public async Task Img2img_without_an_init_image_is_an_error_naming_the_field()
    {
        var reply = await Client.PostAsync("/sdapi/v1/img2img", Body("x", 1, 2));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, reply.Status);
        Assert.Contains("init_images", reply.Json.ToJsonString());
    }
}
