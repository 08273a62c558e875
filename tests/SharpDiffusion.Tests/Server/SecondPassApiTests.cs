using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// AUTOMATIC1111's txt2img fields for the second passes and seeds (issue 26) over real HTTP: enable_hr with its hr_*
/// fields, subseed/subseed_strength/seed_resize_from_w/h and tiling draw exactly what the library draws for the same
/// options (the shipped model), the infotext says so as A1111 writes it, and an unknown upscaler is a one-line 422.
/// </summary>
public class SecondPassApiTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    static readonly string Model = Repo.ShippedModel;
    HttpClient Client => fixture.Client;

    static JsonObject Body(string prompt, long seed, int steps) =>
        new() { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64 };

    static GenerationOptions Options(string prompt, long seed, int steps) => Reference.Options(prompt, seed, steps, 5) with { Width = 64, Height = 64 };

    [Fact]
    public async Task Enable_hr_draws_the_librarys_hires_fix_and_writes_its_infotext()
    {
        var body = Body("a red circle", 5, 3);
        body["enable_hr"] = true;
        body["hr_scale"] = 1.5;
        body["hr_upscaler"] = "Latent (nearest-exact)";
        body["hr_second_pass_steps"] = 4;
        body["denoising_strength"] = 0.6;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var expected = Reference.Png(Model, Options("a red circle", 5, 3) with
        {
            Hires = new HiresFixOptions { Scale = 1.5, Upscaler = "Latent (nearest-exact)", Steps = 4, Strength = 0.6 },
        });
        Assert.Equal(Api.Decode(expected).Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Equal((96, 96), (Api.Decode(reply.Png()).Width, Api.Decode(reply.Png()).Height));
        string infotext = Api.Parameters(reply.Png());
        Assert.Contains("Size: 64x64", infotext);
        Assert.Contains("Denoising strength: 0.6, Hires upscale: 1.5, Hires steps: 4, Hires upscaler: Latent (nearest-exact)", infotext);

        body["hr_upscaler"] = "4x-UltraSharp";
        var refused = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, refused.Code);
        Assert.Contains("hr_upscaler", refused.Body!.ToJsonString());
    }

    [Fact]
    public async Task Variation_seeds_and_tiling_draw_the_librarys_pictures()
    {
        var body = Body("a blue square", 8, 3);
        body["subseed"] = 99;
        body["subseed_strength"] = 0.4;
        body["seed_resize_from_w"] = 48;
        body["seed_resize_from_h"] = 80;
        body["tiling"] = true;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var expected = Reference.Png(Model, Options("a blue square", 8, 3) with
        {
            VariationSeed = 99, VariationStrength = 0.4, SeedResizeFromWidth = 48, SeedResizeFromHeight = 80, Tiling = true,
        });
        Assert.Equal(Api.Decode(expected).Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Contains("Variation seed: 99, Variation seed strength: 0.4, Seed resize from: 48x80", Api.Parameters(reply.Png()));
        Assert.Contains("Tiling: True", Api.Parameters(reply.Png()));
        Assert.Equal(99, (long?)reply.Info["subseed"]);
        var plain = (await Client.PostAsync("/sdapi/v1/txt2img", Body("a blue square", 8, 3))).Ok();
        Assert.NotEqual(plain.Png(), reply.Png());
    }
}
