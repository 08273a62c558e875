using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// The page's X/Y/Z plot section (issue 26, items 6 and 7) in Chromium against the server on the shipped model: the
/// section shows because /sdapi/v1/scripts lists the script, the page sends A1111's script_name and script_args to
/// POST /sdapi/v1/txt2img, and shows the grid (labelled, first) and each cell, every cell the library's picture.
/// </summary>
[Collection("Page")]
public sealed class XyzPlotPageTests(PageFixture fixture)
{
    [Fact]
    public async Task A_steps_axis_sends_the_scripts_args_and_shows_the_grid_then_each_librarys_picture()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        var scripts = (await fixture.Server.Client.GetJsonAsync("/sdapi/v1/scripts")).Ok().Json["txt2img"]!.AsArray().Select(n => (string)n!).ToList();
        Assert.Contains("x/y/z plot", scripts);
        await Expect(page.Locator("#xyz")).ToBeVisibleAsync();
        await page.GetByLabel("Make an X/Y/Z plot").CheckAsync();
        await page.Locator("#prompt").FillAsync("a green triangle");
        await page.Locator("#seed").FillAsync("21");
        await page.Locator("#cfg-scale").FillAsync("5");
        await page.Locator("#width").FillAsync("64");
        await page.Locator("#height").FillAsync("64");
        await page.Locator("#sampler").SelectOptionAsync("Euler");
        await page.GetByLabel("X type").SelectOptionAsync(new SelectOptionValue { Label = "Steps" });
        await page.GetByLabel("X values").FillAsync("2, 3");
        await page.GetByLabel("Include each image").CheckAsync();

        var request = await page.RunAndWaitForRequestAsync(() => page.Locator("#generate").ClickAsync(),
            r => r.Method == "POST" && new Uri(r.Url).AbsolutePath == "/sdapi/v1/txt2img");
        var body = System.Text.Json.Nodes.JsonNode.Parse(request.PostData!)!.AsObject();
        Assert.Equal("x/y/z plot", (string?)body["script_name"]);
        var args = body["script_args"]!.AsArray();
        Assert.Equal("Steps", await page.GetByLabel("X type").EvaluateAsync<string>("s => s.selectedOptions[0].textContent"));
        Assert.Equal(await page.GetByLabel("X type").InputValueAsync(), ((int)args[0]!).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("2, 3", (string?)args[1]);
        Assert.Equal(0, (int)args[3]!);      // Y: Nothing
        Assert.True((bool)args[10]!);        // include_lone_images

        var items = page.Locator("#gallery > li");
        await Expect(items).ToHaveCountAsync(3);
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "completed");
        var grid = items.Nth(0);
        await Expect(grid).ToHaveClassAsync(new System.Text.RegularExpressions.Regex("grid-result"));
        await Expect(grid.Locator(".grid-label")).ToHaveTextAsync("X/Y/Z plot grid");
        await Expect(grid.Locator(".infotext")).ToContainTextAsync("Script: X/Y/Z plot, X Type: Steps, X Values: \"2, 3\"");
        for (int i = 0; i < 2; i++)
        {
            int steps = 2 + i;
            var cell = items.Nth(1 + i);
            await Expect(cell.Locator(".infotext")).ToContainTextAsync($"Steps: {steps}, Sampler: Euler");
            string src = (await cell.Locator("img").GetAttributeAsync("src"))!;
            var shown = Api.Decode(Convert.FromBase64String(src["data:image/png;base64,".Length..]));
            var expected = Api.Decode(Reference.Png(Repo.ShippedModel, Reference.Options("a green triangle", 21, steps, 5) with { Width = 64, Height = 64 }));
            Assert.Equal(expected.Rgb, shown.Rgb);
        }
        string gridSrc = (await grid.Locator("img").GetAttributeAsync("src"))!;
        var gridImage = Api.Decode(Convert.FromBase64String(gridSrc["data:image/png;base64,".Length..]));
        Assert.True(gridImage.Width >= 128 && gridImage.Height >= 64, $"grid {gridImage.Width}x{gridImage.Height}");
        session.AssertClean();
    }
}
