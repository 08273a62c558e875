using System.Text.Json.Nodes;
using Microsoft.Playwright;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models.Upscalers;
using SharpDiffusion.Server;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>The shipped model with the golden SRVGGNetCompact model (compact_x4_nf16.pth) in --upscaler-dir as compact-x4.</summary>
public sealed class UpscalersServer : FolderServer
{
    protected override void Fill() => File.CreateSymbolicLink(Folder.File("compact-x4.pth"), Golden.Path("v3", "esrgan", "compact_x4_nf16.pth"));
    protected override ServerOptions Configure(ServerOptions o) => o with { UpscalerDir = Folder.Path };
}

/// <summary>
/// The page's upscale tab (A1111's Extras, issue 26 item 7) and the hires fix's model upscalers in Chromium: the tab
/// appears because /sdapi/v1/upscalers lists upscalers, the page POSTs /sdapi/v1/extra-single-image, and the picture
/// it shows is the library's upscale of the same image. Shares the page tests' Chromium.
/// </summary>
[Collection("Page")]
public sealed class ExtrasPageTests(PageFixture browser, UpscalersServer server) : IClassFixture<UpscalersServer>
{
    static readonly string Input = Golden.Path("v3", "esrgan", "input_28x20.png");

    Task<PageSession> OpenAsync() => browser.OpenAsync(server.Server.Url);

    [Fact]
    public async Task The_upscale_tab_sends_extra_single_image_and_shows_the_librarys_upscale()
    {
        await using var session = await OpenAsync();
        var page = session.Page;
        var names = (await server.Server.Client.GetJsonAsync("/sdapi/v1/upscalers")).Ok().Json.AsArray().Select(n => (string)n!["name"]!).ToList();
        Assert.Contains("compact-x4", names);
        // The hires fix offers the model too, after the latent modes.
        Assert.Contains("compact-x4", await page.Locator("#hr-upscaler option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));

        await page.GetByLabel("Upscale (Extras)").CheckAsync();
        await Expect(page.GetByRole(AriaRole.Group, new() { Name = "Upscale (Extras)" })).ToBeVisibleAsync();
        await Expect(page.Locator("#sampling")).ToBeHiddenAsync();
        await Expect(page.Locator("#hires")).ToBeHiddenAsync();
        Assert.Equal(names.Where(n => n != "None"), await page.Locator("#extras-upscaler option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));
        await Expect(page.GetByLabel("Upscaler", new() { Exact = true })).ToHaveValueAsync("compact-x4");

        // No image yet: said before anything is sent.
        await page.Locator("#generate").ClickAsync();
        await Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("Upscaling needs an image");

        await page.GetByLabel("Image to upscale").SetInputFilesAsync(Input);
        await page.GetByLabel("Scale by", new() { Exact = true }).FillAsync("4");
        var request = await page.RunAndWaitForRequestAsync(() => page.Locator("#generate").ClickAsync(),
            r => r.Method == "POST" && new Uri(r.Url).AbsolutePath == "/sdapi/v1/extra-single-image");
        var body = JsonNode.Parse(request.PostData!)!.AsObject();
        Assert.Equal(("compact-x4", 4.0, 0), ((string?)body["upscaler_1"], (double)body["upscaling_resize"]!, (int)body["resize_mode"]!));
        Assert.Equal(Convert.ToBase64String(File.ReadAllBytes(Input)), ((string)body["image"]!).Split(',')[1]);

        var item = page.Locator("#gallery > li");
        await Expect(item).ToHaveCountAsync(1);
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "completed");
        string src = (await item.Locator("img").GetAttributeAsync("src"))!;
        var shown = Api.Decode(Convert.FromBase64String(src["data:image/png;base64,".Length..]));
        var expected = new ExtrasUpscale { Upscaler1 = "compact-x4", Factor = 4, UpscalerDirectory = server.Folder.Path }
            .Run(ImageFile.Load(Input), 4096).Image;
        Assert.Equal((112, 80), (shown.Width, shown.Height));
        Assert.Equal(expected.Rgb, shown.Rgb);
        await Expect(item.GetByRole(AriaRole.Link, new() { Name = "Download" })).ToHaveAttributeAsync("download", new System.Text.RegularExpressions.Regex("^sharpdiffusion-upscaled-\\d+\\.png$"));
        await Expect(item.GetByRole(AriaRole.Button, new() { Name = "Reuse the parameters" })).ToHaveCountAsync(0);

        // Back to text to image: the sampling fields return, the upscale tab hides.
        await page.GetByLabel("Text to image").CheckAsync();
        await Expect(page.Locator("#sampling")).ToBeVisibleAsync();
        await Expect(page.Locator("#extras")).ToBeHiddenAsync();
        session.AssertClean();
    }
}
