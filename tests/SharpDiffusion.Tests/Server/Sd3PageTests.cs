using System.Text.Json.Nodes;
using Microsoft.Playwright;
using SharpDiffusion.Pipelines;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>The page with SD3 models in the models folder: the T5 prompt fields appear only for a model with a T5
/// encoder, the sampler list narrows to what the model takes, and a generation with the T5 prompt draws the library's image.
/// Shares the page tests' Chromium; the server is <see cref="Sd3ModelsServer"/>.</summary>
[Collection("Page")]
public sealed class Sd3PageTests(PageFixture browser, Sd3ModelsServer models) : IClassFixture<Sd3ModelsServer>
{
    static readonly string Shipped = Path.GetFileName(Repo.ShippedModel);

    async Task<PageSession> OpenAsync()
    {
        var context = await browser.Browser.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();
        var session = new PageSession(page, models.Server.Url);
        await page.GotoAsync(models.Server.Url + "/");
        await Expect(page.Locator("body")).ToHaveAttributeAsync("data-ready", "true");
        return session;
    }

    /// <summary>Picks a model in the Model list and waits for the page to have switched to it.</summary>
    static async Task SelectModelAsync(IPage page, string name)
    {
        await page.Locator("#model").SelectOptionAsync(new SelectOptionValue { Label = name });
        await Expect(page.Locator("#model-status")).ToHaveTextAsync("loaded");
    }

    [Fact]
    public async Task Selecting_sd3_shows_the_t5_prompt_an_sd_model_hides_it_and_a_t5_generation_draws_the_librarys_image()
    {
        await using var session = await OpenAsync();
        var page = session.Page;
        try
        {
            await Expect(page.Locator("#model")).ToHaveValueAsync(Shipped);
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();

            await SelectModelAsync(page, "tiny-sd3");
            await Expect(page.GetByLabel("T5 prompt")).ToBeVisibleAsync();
            await Expect(page.GetByLabel("T5 negative")).ToBeVisibleAsync();
            // the sampler list is what an SD3 model takes: Forge's Euler with Automatic or Simple
            Assert.Equal(["Euler"], await page.Locator("#sampler option").AllTextContentsAsync());
            Assert.Equal(["automatic", "simple"], await page.Locator("#scheduler option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));

            await SelectModelAsync(page, Shipped);
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();
            Assert.Contains("DPM++ 2M", await page.Locator("#sampler option").AllTextContentsAsync());

            await SelectModelAsync(page, "tiny-sd3-no-t5"); // SD3 without its T5 encoder: no T5 field
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();

            await SelectModelAsync(page, "tiny-sd3");
            await page.Locator("#prompt").FillAsync("a yellow cone");
            await page.GetByLabel("T5 prompt").FillAsync("a tall yellow cone in the snow");
            await page.GetByLabel("T5 negative").FillAsync("grass");
            await page.Locator("#steps").FillAsync("3");
            await page.Locator("#cfg-scale").FillAsync("4");
            await page.Locator("#width").FillAsync("64");
            await page.Locator("#height").FillAsync("64");
            await page.Locator("#seed").FillAsync("31");
            await page.Locator("#scheduler").SelectOptionAsync("simple");
            await page.Locator("#generate").ClickAsync();
            var item = page.Locator("#gallery > li");
            await Expect(item).ToHaveCountAsync(1);
            await Expect(item.Locator(".infotext")).ToContainTextAsync("Steps: 3, Sampler: Euler, Schedule type: Simple, CFG scale: 4, Seed: 31, Size: 64x64, Model: tiny-sd3");

            string src = (await item.Locator("img").GetAttributeAsync("src"))!;
            var shown = Api.Decode(Convert.FromBase64String(src["data:image/png;base64,".Length..]));
            var expected = Sd3Reference.Image("tiny-sd3", new GenerationOptions
            {
                Prompts = ["a yellow cone"], NegativePrompts = [""], Prompts3 = ["a tall yellow cone in the snow"], NegativePrompts3 = ["grass"],
                Seed = 31, NumInferenceSteps = 3, GuidanceScale = 4, Width = 64, Height = 64,
            });
            Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, shown));
            session.AssertClean();
        }
        finally
        {
            (await models.Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = Shipped })).Ok();
        }
    }
}
