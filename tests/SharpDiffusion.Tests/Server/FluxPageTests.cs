using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// The page with Flux.1 models in the models folder (issue 23 item 6, issue 21 item 7: the page shows the prompt fields a
/// model has): for Flux dev no negative prompt (a note instead) and Forge's "Distilled CFG Scale" in place of the CFG
/// scale; for schnell neither; the T5 prompt is Flux's prompt_2; the sampler list is the flow-matching Euler. The request
/// body, the picture (the library's, 0 levels) and Reuse (Forge's infotext back into the form) are checked over real
/// HTTP. Shares the page tests' Chromium; the server is <see cref="FluxModelsServer"/>.
/// </summary>
[Collection("Page")]
public sealed class FluxPageTests(PageFixture browser, FluxModelsServer models) : IClassFixture<FluxModelsServer>
{
    static readonly string Shipped = Path.GetFileName(Repo.ShippedModel);

    [Fact]
    public async Task Flux_dev_shows_distilled_cfg_scale_and_the_t5_prompt_without_negative_or_cfg_draws_the_librarys_image_and_reuse_restores_it()
    {
        await using var session = await browser.OpenAsync(models.Server.Url);
        var page = session.Page;
        try
        {
            await Expect(page.Locator("#negative-prompt")).ToBeVisibleAsync();
            await Expect(page.Locator("#distilled-cfg-scale")).ToBeHiddenAsync();

            await session.SelectModelAsync("tiny-flux-dev");
            await Expect(page.Locator("#negative-prompt")).ToBeHiddenAsync();
            await Expect(page.Locator("#negative-note")).ToBeVisibleAsync();
            await Expect(page.Locator("#cfg-scale")).ToBeHiddenAsync();
            await Expect(page.GetByLabel("Distilled CFG Scale")).ToHaveValueAsync("3.5"); // Forge's default
            await Expect(page.GetByLabel("T5 prompt")).ToBeVisibleAsync();
            await Expect(page.Locator("#negative-prompt-3")).ToBeHiddenAsync(); // Flux's T5 reads no negative
            Assert.Equal(["Euler"], await page.Locator("#sampler option").AllTextContentsAsync());

            await page.Locator("#prompt").FillAsync("a red cube");
            await page.GetByLabel("T5 prompt").FillAsync("a glossy red cube on grass");
            await page.GetByLabel("Distilled CFG Scale").FillAsync("2.5");
            await page.Locator("#steps").FillAsync("2");
            await page.Locator("#width").FillAsync("64");
            await page.Locator("#height").FillAsync("64");
            await page.Locator("#seed").FillAsync("9");
            var body = await SecondPassPageTests.GenerateAsync(page);
            Assert.Equal(2.5, (double?)body["distilled_cfg_scale"]);
            Assert.Equal("a glossy red cube on grass", (string?)body["prompt_2"]);
            Assert.False(body.ContainsKey("negative_prompt"), body.ToJsonString());
            Assert.False(body.ContainsKey("cfg_scale"), body.ToJsonString());
            Assert.False(body.ContainsKey("prompt_3"), body.ToJsonString());

            var item = page.Locator("#gallery > li");
            await Expect(item).ToHaveCountAsync(1);
            await Expect(item.Locator(".infotext")).ToContainTextAsync("CFG scale: 1, Distilled CFG Scale: 2.5, Seed: 9, Size: 64x64");
            await Expect(page.Locator("#warnings")).ToBeHiddenAsync(); // nothing sent that Flux ignores
            var expected = Sd3Reference.Image("tiny-flux-dev", new GenerationOptions
            {
                Prompts = ["a red cube"], NegativePrompts = [""], Prompts2 = ["a glossy red cube on grass"],
                Seed = 9, NumInferenceSteps = 2, GuidanceScale = 2.5, Width = 64, Height = 64,
            });
            Assert.Equal(0, Sd3Reference.MaxAbsDiff(expected, await SecondPassPageTests.ShownImageAsync(page)));

            // Reuse: Forge's infotext back into the form.
            await page.Locator("#prompt").FillAsync("something else");
            await page.GetByLabel("Distilled CFG Scale").FillAsync("6");
            await page.Locator("#steps").FillAsync("20");
            await item.Locator("button.reuse").ClickAsync();
            await Expect(page.Locator("#prompt")).ToHaveValueAsync("a red cube");
            await Expect(page.GetByLabel("Distilled CFG Scale")).ToHaveValueAsync("2.5");
            await Expect(page.Locator("#steps")).ToHaveValueAsync("2");
            await Expect(page.Locator("#seed")).ToHaveValueAsync("9");

            // schnell: its guidance is ignored, so neither scale is shown; the T5 prompt stays.
            await session.SelectModelAsync("tiny-flux-schnell");
            await Expect(page.Locator("#distilled-cfg-scale")).ToBeHiddenAsync();
            await Expect(page.Locator("#cfg-scale")).ToBeHiddenAsync();
            await Expect(page.Locator("#negative-prompt")).ToBeHiddenAsync();
            await Expect(page.GetByLabel("T5 prompt")).ToBeVisibleAsync();
            body = await SecondPassPageTests.GenerateAsync(page);
            Assert.False(body.ContainsKey("distilled_cfg_scale") || body.ContainsKey("cfg_scale"), body.ToJsonString());
            await Expect(page.Locator("#gallery > li")).ToHaveCountAsync(2);
            await Expect(page.Locator("#gallery > li").First.Locator(".infotext")).ToContainTextAsync("CFG scale: 1, Seed: 9, ");

            // An SD model: its negative prompt and CFG scale are back, and nothing of Flux's.
            await session.SelectModelAsync(Shipped);
            await Expect(page.Locator("#negative-prompt")).ToBeVisibleAsync();
            await Expect(page.Locator("#negative-note")).ToBeHiddenAsync();
            await Expect(page.Locator("#cfg-scale")).ToBeVisibleAsync();
            await Expect(page.Locator("#distilled-cfg-scale")).ToBeHiddenAsync();
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();
            session.AssertClean();
        }
        finally
        {
            (await models.Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = Shipped })).Ok();
        }
    }
}
