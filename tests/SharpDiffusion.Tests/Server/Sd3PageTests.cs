using System.Net.Http.Json;
using System.Text.Json.Nodes;
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

    [Fact]
    public async Task Selecting_sd3_shows_the_t5_prompt_an_sd_model_hides_it_and_a_t5_generation_draws_the_librarys_image()
    {
        await using var session = await browser.OpenAsync(models.Server.Url);
        var page = session.Page;
        try
        {
            await Expect(page.Locator("#model")).ToHaveValueAsync(Shipped);
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();

            await session.SelectModelAsync("tiny-sd3");
            await Expect(page.GetByLabel("T5 prompt")).ToBeVisibleAsync();
            await Expect(page.GetByLabel("T5 negative")).ToBeVisibleAsync();
            // the sampler list is what an SD3 model takes: Forge's Euler with Automatic or Simple
            Assert.Equal(["Euler"], await page.Locator("#sampler option").AllTextContentsAsync());
            Assert.Equal(["automatic", "simple"], await page.Locator("#scheduler option").EvaluateAllAsync<string[]>("os => os.map(o => o.value)"));

            await session.SelectModelAsync(Shipped);
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();
            Assert.Contains("DPM++ 2M", await page.Locator("#sampler option").AllTextContentsAsync());

            await session.SelectModelAsync("tiny-sd3-no-t5"); // SD3 without its T5 encoder: no T5 field
            await Expect(page.Locator("#prompt-3")).ToBeHiddenAsync();

            await session.SelectModelAsync("tiny-sd3");
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

    [Fact]
    public async Task An_sd3_generation_shows_live_previews_of_its_latents()
    {
        await using var session = await browser.OpenAsync(models.Server.Url);
        var page = session.Page;
        try
        {
            await session.SelectModelAsync("tiny-sd3");
            await page.Locator("#prompt").FillAsync("a purple ring");
            await page.Locator("#steps").FillAsync("60");
            await page.Locator("#width").FillAsync("64");
            await page.Locator("#height").FillAsync("64");
            await page.Locator("#seed").FillAsync("5");

            // Another client's long SD3 job holds the worker, so the page follows its own job from its first step.
            var posted = await models.Client.PostAsJsonAsync("/jobs", new { task = "txt2img", prompt = "other client", steps = 1000, width = 64, height = 64 });
            Assert.Equal(202, (int)posted.StatusCode);
            string other = (await posted.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
            try
            {
                await Api.PollAsync(() => models.Client.GetJsonAsync($"/jobs/{other}"), r => (string?)r.Json["state"] == "running",
                    TimeSpan.FromSeconds(60), "the other client's job running");
                await page.Locator("#generate").ClickAsync();
                await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "queued");
            }
            finally { (await models.Client.DeleteAsync($"/jobs/{other}")).EnsureSuccessStatusCode(); }

            await Expect(page.Locator("#gallery > li")).ToHaveCountAsync(1);
            Assert.True(int.Parse((await page.Locator("#job").GetAttributeAsync("data-previews"))!) > 0, "no live preview arrived");
            await Expect(page.Locator("#gallery > li .infotext")).ToContainTextAsync("Steps: 60, Sampler: Euler, Schedule type: Simple");
            session.AssertClean();
        }
        finally
        {
            (await models.Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = Shipped })).Ok();
        }
    }
}
