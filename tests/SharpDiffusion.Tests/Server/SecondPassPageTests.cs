using System.Text.Json.Nodes;
using Microsoft.Playwright;
using SharpDiffusion.Pipelines;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// The page's hires-fix section and its variation seed and tiling controls (issue 26, item 7), in Chromium against the
/// server on the shipped model: the body the page POSTs to /jobs carries A1111's fields, the picture it shows is the
/// library's for the same options (byte for byte), the infotext says so, and "Reuse parameters" puts them back.
/// </summary>
[Collection("Page")]
public sealed class SecondPassPageTests(PageFixture fixture)
{
    static readonly string Model = Repo.ShippedModel;

    /// <summary>Clicks Generate and returns the JSON body of the POST /jobs it sent.</summary>
    internal static async Task<JsonObject> GenerateAsync(IPage page)
    {
        var request = await page.RunAndWaitForRequestAsync(() => page.Locator("#generate").ClickAsync(),
            r => r.Method == "POST" && new Uri(r.Url).AbsolutePath == "/jobs");
        return JsonNode.Parse(request.PostData!)!.AsObject();
    }

    /// <summary>The newest result's picture, decoded from its data: URL.</summary>
    internal static async Task<SharpDiffusion.Imaging.RgbImage> ShownImageAsync(IPage page)
    {
        string src = (await page.Locator("#gallery > li").First.Locator("img").GetAttributeAsync("src"))!;
        return Api.Decode(Convert.FromBase64String(src["data:image/png;base64,".Length..]));
    }

    static async Task FillFirstPassAsync(IPage page, string prompt, int seed, int steps)
    {
        await page.Locator("#prompt").FillAsync(prompt);
        await page.Locator("#steps").FillAsync(steps.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.Locator("#cfg-scale").FillAsync("5");
        await page.Locator("#seed").FillAsync(seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await page.Locator("#width").FillAsync("64");
        await page.Locator("#height").FillAsync("64");
        await page.Locator("#sampler").SelectOptionAsync("Euler");
    }

    [Fact]
    public async Task Hires_fix_sends_the_hr_fields_and_shows_the_librarys_two_pass_picture_then_reuse_restores_them()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;

        // The upscaler list is the server's latent modes (then its picture upscalers); the fields show when ticked.
        var latent = (await fixture.Server.Client.GetJsonAsync("/sdapi/v1/latent-upscale-modes")).Ok().Json.AsArray().Select(n => (string)n!["name"]!).ToList();
        Assert.NotEmpty(latent);
        var offered = await page.Locator("#hr-upscaler option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)");
        Assert.Equal(latent, offered.Take(latent.Count));
        await Expect(page.GetByLabel("Upscale by", new() { Exact = true })).ToBeHiddenAsync();
        await page.GetByLabel("Hires fix", new() { Exact = true }).CheckAsync();
        await Expect(page.GetByLabel("Upscale by", new() { Exact = true })).ToBeVisibleAsync();
        // The second pass's sampler list follows the model's samplers.
        Assert.Equal(["Use same sampler", .. await page.Locator("#sampler option").AllTextContentsAsync()],
            await page.Locator("#hr-sampler option").AllTextContentsAsync());

        await FillFirstPassAsync(page, "a red circle", 5, 3);
        await page.GetByLabel("Upscaler for the second pass").SelectOptionAsync("Latent (nearest-exact)");
        await page.GetByLabel("Upscale by", new() { Exact = true }).FillAsync("1.5");
        await page.GetByLabel("Hires steps").FillAsync("4");
        await page.GetByLabel("Hires denoising strength").FillAsync("0.6");
        var body = await GenerateAsync(page);
        Assert.True((bool)body["enable_hr"]!);
        Assert.Equal("Latent (nearest-exact)", (string?)body["hr_upscaler"]);
        Assert.Equal(1.5, (double)body["hr_scale"]!);
        Assert.Equal(0, (int)body["hr_resize_x"]!);
        Assert.Equal(4, (int)body["hr_second_pass_steps"]!);
        Assert.Equal(0.6, (double)body["denoising_strength"]!);
        Assert.Equal("Use same sampler", (string?)body["hr_sampler_name"]);
        Assert.False(body.ContainsKey("hr_prompt") || body.ContainsKey("hr_cfg") || body.ContainsKey("subseed") || body.ContainsKey("tiling"));

        var item = page.Locator("#gallery > li");
        await Expect(item).ToHaveCountAsync(1);
        await Expect(item.Locator(".infotext")).ToContainTextAsync("Denoising strength: 0.6, Hires upscale: 1.5, Hires steps: 4, Hires upscaler: Latent (nearest-exact)");
        var expected = Api.Decode(Reference.Png(Model, Reference.Options("a red circle", 5, 3, 5) with
        {
            Width = 64, Height = 64,
            Hires = new HiresFixOptions { Scale = 1.5, Upscaler = "Latent (nearest-exact)", Steps = 4, Strength = 0.6 },
        }));
        var shown = await ShownImageAsync(page);
        Assert.Equal((96, 96), (shown.Width, shown.Height));
        Assert.Equal(expected.Rgb, shown.Rgb);

        // A resize target, its own prompt and CFG: the second pass the library makes with them.
        await page.GetByLabel("Resize width to").FillAsync("80");
        await page.GetByLabel("Resize height to").FillAsync("96");
        await page.GetByLabel("Hires prompt").FillAsync("a red circle, sharp");
        await page.GetByLabel("Hires CFG scale").FillAsync("4");
        body = await GenerateAsync(page);
        Assert.Equal((80, 96, "a red circle, sharp", 4.0), ((int)body["hr_resize_x"]!, (int)body["hr_resize_y"]!, (string?)body["hr_prompt"], (double)body["hr_cfg"]!));
        await Expect(item).ToHaveCountAsync(2);
        await Expect(item.First.Locator(".infotext")).ToContainTextAsync("Hires resize: 80x96");
        expected = Api.Decode(Reference.Png(Model, Reference.Options("a red circle", 5, 3, 5) with
        {
            Width = 64, Height = 64,
            Hires = new HiresFixOptions
            {
                ResizeWidth = 80, ResizeHeight = 96, Upscaler = "Latent (nearest-exact)", Steps = 4, Strength = 0.6,
                Prompt = "a red circle, sharp", GuidanceScale = 4,
            },
        }));
        shown = await ShownImageAsync(page);
        Assert.Equal((80, 96), (shown.Width, shown.Height));
        Assert.Equal(expected.Rgb, shown.Rgb);

        // Reuse of the first result: the hires fields come back from its infotext.
        await page.GetByLabel("Hires fix", new() { Exact = true }).UncheckAsync();
        await item.Last.GetByRole(AriaRole.Button, new() { Name = "Reuse the parameters" }).ClickAsync();
        await Expect(page.GetByLabel("Hires fix", new() { Exact = true })).ToBeCheckedAsync();
        await Expect(page.GetByLabel("Upscale by", new() { Exact = true })).ToHaveValueAsync("1.5");
        await Expect(page.GetByLabel("Resize width to")).ToHaveValueAsync("0");
        await Expect(page.GetByLabel("Hires steps")).ToHaveValueAsync("4");
        await Expect(page.GetByLabel("Hires denoising strength")).ToHaveValueAsync("0.6");
        await Expect(page.GetByLabel("Upscaler for the second pass")).ToHaveValueAsync("Latent (nearest-exact)");
        await Expect(page.GetByLabel("Hires prompt")).ToHaveValueAsync("");
        session.AssertClean();
    }

    [Fact]
    public async Task Variation_seed_and_tiling_send_their_fields_and_show_the_librarys_picture()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        await FillFirstPassAsync(page, "a blue square", 8, 3);
        await page.GetByLabel("Variation seed", new() { Exact = true }).FillAsync("99");
        await page.GetByLabel("Variation strength").FillAsync("0.4");
        await page.GetByLabel("Resize seed from width").FillAsync("48");
        await page.GetByLabel("Resize seed from height").FillAsync("80");
        await page.GetByLabel("Tiling").CheckAsync();
        var body = await GenerateAsync(page);
        Assert.Equal((99, 0.4, 48, 80, true),
            ((int)body["subseed"]!, (double)body["subseed_strength"]!, (int)body["seed_resize_from_w"]!, (int)body["seed_resize_from_h"]!, (bool)body["tiling"]!));
        Assert.False(body.ContainsKey("enable_hr"));

        var item = page.Locator("#gallery > li");
        await Expect(item).ToHaveCountAsync(1);
        await Expect(item.Locator(".infotext")).ToContainTextAsync("Variation seed: 99, Variation seed strength: 0.4, Seed resize from: 48x80");
        await Expect(item.Locator(".infotext")).ToContainTextAsync("Tiling: True");
        var expected = Api.Decode(Reference.Png(Model, Reference.Options("a blue square", 8, 3, 5) with
        {
            Width = 64, Height = 64, VariationSeed = 99, VariationStrength = 0.4, SeedResizeFromWidth = 48, SeedResizeFromHeight = 80, Tiling = true,
        }));
        Assert.Equal(expected.Rgb, (await ShownImageAsync(page)).Rgb);

        // Strength 0 and sizes 0 are the defaults: nothing of them is sent. Reuse brings the values back.
        await page.GetByLabel("Variation strength").FillAsync("0");
        await page.GetByLabel("Resize seed from width").FillAsync("0");
        await page.GetByLabel("Resize seed from height").FillAsync("0");
        await page.GetByLabel("Tiling").UncheckAsync();
        body = await GenerateAsync(page);
        Assert.False(body.ContainsKey("subseed") || body.ContainsKey("subseed_strength") || body.ContainsKey("seed_resize_from_w") || body.ContainsKey("tiling"));
        await Expect(item).ToHaveCountAsync(2);
        await Expect(item.First.Locator(".infotext")).Not.ToContainTextAsync("Variation seed");
        await item.Last.GetByRole(AriaRole.Button, new() { Name = "Reuse the parameters" }).ClickAsync();
        await Expect(page.GetByLabel("Variation seed", new() { Exact = true })).ToHaveValueAsync("99");
        await Expect(page.GetByLabel("Variation strength")).ToHaveValueAsync("0.4");
        await Expect(page.GetByLabel("Resize seed from width")).ToHaveValueAsync("48");
        await Expect(page.GetByLabel("Resize seed from height")).ToHaveValueAsync("80");
        await Expect(page.GetByLabel("Tiling")).ToBeCheckedAsync();
        session.AssertClean();
    }

    [Fact]
    public async Task Sections_the_server_cannot_serve_are_hidden_and_img2img_hides_the_hires_fix()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        // The shipped server: no --controlnet-dir, no refiner model, no X/Y/Z script listed.
        Assert.Empty((await fixture.Server.Client.GetJsonAsync("/controlnet/model_list")).Ok().Json["model_list"]!.AsArray());
        await Expect(page.Locator("#controlnet")).ToBeHiddenAsync();
        await Expect(page.Locator("#refiner")).ToBeHiddenAsync();
        await Expect(page.Locator("#hires")).ToBeVisibleAsync();
        await Expect(page.Locator("#variation")).ToBeVisibleAsync();
        // The hires fix is txt2img's (A1111 reads enable_hr there only); variation and tiling stay for img2img.
        await page.GetByLabel("Image to image / inpaint").CheckAsync();
        await Expect(page.Locator("#hires")).ToBeHiddenAsync();
        await Expect(page.Locator("#variation")).ToBeVisibleAsync();
        await page.GetByLabel("Text to image").CheckAsync();
        await Expect(page.Locator("#hires")).ToBeVisibleAsync();
        session.AssertClean();
    }
}
