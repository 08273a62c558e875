using System.Text.Json.Nodes;
using Microsoft.Playwright;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Server;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>
/// The page's ControlNet panel (issue 22, item 5) in Chromium, against a server on small-sd15 with the golden tiny
/// ControlNet in --controlnet-dir (as <see cref="ControlNetApiTests"/>): the model and preprocessor lists are the
/// server's, "Preview the map" shows /controlnet/detect's map (the library's canny map), and a generation sends
/// sd-webui-controlnet's unit and shows the library's picture for the same unit, with the extension's infotext.
/// Shares the page tests' Chromium.
/// </summary>
[Collection("Page")]
public sealed class ControlNetPageTests(PageFixture browser, ControlNetApiTests.Fixture server, ITestOutputHelper output)
    : IClassFixture<ControlNetApiTests.Fixture>
{
    static readonly string SmallSd = Golden.Path("models", "small-sd15");
    static readonly string ControlNetFolder = Golden.Path("models", "tiny-controlnet-small-sd15");
    static readonly string Photo = Golden.Path("img2img", "init_64x64.png");

    Task<PageSession> OpenAsync() => browser.OpenAsync(server.Server.Url);

    static RgbImage FromDataUrl(string src) => Api.Decode(Convert.FromBase64String(src[(src.IndexOf(',') + 1)..]));

    [Fact]
    public async Task A_canny_unit_previews_the_librarys_map_and_generates_the_librarys_picture_with_the_extensions_infotext()
    {
        await using var session = await OpenAsync();
        var page = session.Page;
        var client = server.Server.Client;
        await Expect(page.GetByRole(AriaRole.Group, new() { Name = "ControlNet", Exact = true })).ToBeVisibleAsync();

        // The lists are the server's: model_list's titles, module_list's names.
        var models = (await client.GetJsonAsync("/controlnet/model_list")).Ok().Json["model_list"]!.AsArray().Select(n => (string)n!).ToArray();
        var modules = (await client.GetJsonAsync("/controlnet/module_list")).Ok().Json["module_list"]!.AsArray().Select(n => (string)n!).ToArray();
        Assert.Equal(models, await page.Locator("#cn-1-model option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));
        Assert.Equal(modules, await page.Locator("#cn-1-module option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));
        await Expect(page.Locator("#cn-1-module")).ToHaveValueAsync("canny");

        // canny's sliders, from module_detail: resolution and the two thresholds.
        await page.GetByLabel("Control image").SetInputFilesAsync(Photo);
        await Expect(page.Locator("#cn-1-picture")).ToBeVisibleAsync();
        var unit = page.Locator("#cn-1-unit");
        await unit.GetByLabel("Resolution").FillAsync("64");
        await unit.GetByLabel("Low Threshold").FillAsync("60");
        await unit.GetByLabel("High Threshold").FillAsync("140");
        var detect = await page.RunAndWaitForResponseAsync(() => page.GetByRole(AriaRole.Button, new() { Name = "Preview the map" }).ClickAsync(),
            r => new Uri(r.Url).AbsolutePath == "/controlnet/detect");
        Assert.Equal(200, detect.Status);
        var sent = JsonNode.Parse(detect.Request.PostData!)!.AsObject();
        Assert.Equal(("canny", 64, 60.0, 140.0), ((string?)sent["controlnet_module"], (int)sent["controlnet_processor_res"]!,
            (double)sent["controlnet_threshold_a"]!, (double)sent["controlnet_threshold_b"]!));
        await Expect(page.Locator("#cn-1-map")).ToBeVisibleAsync();
        var map = ControlPreprocessor.Canny.Run(ImageFile.Load(Photo), 64, 60, 140);
        var shownMap = FromDataUrl((await page.Locator("#cn-1-map").GetAttributeAsync("src"))!);
        Assert.Equal((map.Width, map.Height), (shownMap.Width, shownMap.Height));
        Assert.Equal(map.Rgb, shownMap.Rgb);

        // Generate: the unit goes as alwayson_scripts.controlnet.args[0]; the picture is the library's.
        await page.Locator("#prompt").FillAsync("a small house under the sun");
        await page.Locator("#steps").FillAsync("4");
        await page.Locator("#seed").FillAsync("5");
        await page.Locator("#width").FillAsync("64");
        await page.Locator("#height").FillAsync("64");
        await page.Locator("#sampler").SelectOptionAsync("Euler");
        await unit.GetByLabel("Control weight").FillAsync("0.8");
        await unit.GetByLabel("Guidance start").FillAsync("0.25");
        await unit.GetByLabel("Guidance end").FillAsync("0.75");
        var body = await SecondPassPageTests.GenerateAsync(page);
        var args = body["alwayson_scripts"]!["controlnet"]!["args"]!.AsArray();
        var u = Assert.Single(args)!.AsObject();
        Assert.True((bool)u["enabled"]!);
        Assert.Equal(("canny", models[0], 0.8, 0.25, 0.75, false, "Crop and Resize"),
            ((string?)u["module"], (string?)u["model"], (double)u["weight"]!, (double)u["guidance_start"]!, (double)u["guidance_end"]!,
             (bool)u["pixel_perfect"]!, (string?)u["resize_mode"]));
        Assert.Equal((64, 60.0, 140.0, "Balanced"), ((int)u["processor_res"]!, (double)u["threshold_a"]!, (double)u["threshold_b"]!, (string?)u["control_mode"]));
        Assert.Equal(Convert.ToBase64String(File.ReadAllBytes(Photo)), ((string)u["image"]!).Split(',')[1]);

        var item = page.Locator("#gallery > li");
        await Expect(item).ToHaveCountAsync(1);
        await Expect(item.Locator(".infotext")).ToContainTextAsync($"ControlNet 0: \"Module: canny, Model: {models[0]}, Weight: 0.8, Resize Mode: Crop and Resize, " +
            "Processor Res: 64, Threshold A: 60.0, Threshold B: 140.0, Guidance Start: 0.25, Guidance End: 0.75, Pixel Perfect: False, Control Mode: Balanced\"");
        var expected = Api.Decode(Reference.Png(SmallSd, Reference.Options("a small house under the sun", 5, 4, 7) with
        {
            Width = 64, Height = 64,
            ControlNets = [new ControlNetUnit { ModelPath = ControlNetFolder, Image = map, Scale = 0.8, Start = 0.25, End = 0.75 }],
        }));
        var shown = await SecondPassPageTests.ShownImageAsync(page);
        output.WriteLine($"page canny unit vs library: max abs difference {expected.Rgb.Zip(shown.Rgb, (a, b) => Math.Abs(a - b)).Max()} levels");
        Assert.Equal(expected.Rgb, shown.Rgb);
        session.AssertClean();
    }

    [Fact]
    public async Task Units_are_added_removed_and_checked_before_sending()
    {
        await using var session = await OpenAsync();
        var page = session.Page;
        await page.Locator("#prompt").FillAsync("a house");
        await page.Locator("#steps").FillAsync("2");

        // An enabled unit without an image is caught before anything is sent.
        await page.Locator("#generate").ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("ControlNet unit 0 needs a control image");
        await Expect(page.Locator("#gallery > li")).ToHaveCountAsync(0);

        // A second unit; removing the first renumbers it as unit 0.
        await page.GetByRole(AriaRole.Button, new() { Name = "Add a ControlNet unit" }).ClickAsync();
        await Expect(page.Locator(".cn-unit")).ToHaveCountAsync(2);
        await Expect(page.Locator("#cn-2-unit legend")).ToHaveTextAsync("ControlNet unit 1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Remove ControlNet unit 0" }).ClickAsync();
        await Expect(page.Locator(".cn-unit")).ToHaveCountAsync(1);
        await Expect(page.Locator("#cn-2-unit legend")).ToHaveTextAsync("ControlNet unit 0");

        // Every control of the units has an accessible name.
        var unnamed = await page.EvaluateAsync<string[]>(@"() => [...document.querySelectorAll('#controlnet input, #controlnet select, #controlnet button')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
            .map(el => el.outerHTML.slice(0, 80))");
        Assert.Empty(unnamed);

        // A disabled unit sends nothing: a plain generation.
        await page.Locator("#cn-2-unit").GetByLabel("Enabled").UncheckAsync();
        var body = await SecondPassPageTests.GenerateAsync(page);
        Assert.False(body.ContainsKey("alwayson_scripts"));
        await Expect(page.Locator("#gallery > li")).ToHaveCountAsync(1);
        await Expect(page.Locator("#gallery > li .infotext")).Not.ToContainTextAsync("ControlNet");

        // The server's refusal of a model-based annotator comes back as its one-line message.
        await page.Locator("#cn-2-unit").GetByLabel("Enabled").CheckAsync();
        await page.GetByLabel("Control image").SetInputFilesAsync(Photo);
        await page.Locator("#cn-2-module").EvaluateAsync("s => { const o = document.createElement('option'); o.value = o.textContent = 'openpose'; s.append(o); s.value = 'openpose'; }");
        await page.GetByRole(AriaRole.Button, new() { Name = "Preview the map" }).ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("The server answered 422");
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("openpose");
        session.AssertClean(httpErrors: true);
    }
}
