using System.Text.Json.Nodes;
using Microsoft.Playwright;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Refiner;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// The page's refiner choice (issue 26, item 7) in Chromium: hidden for an SD 1.x model, shown for an SDXL base when
/// /sdapi/v1/sd-models lists a refiner; the page sends refiner_checkpoint and refiner_switch_at and shows the library's
/// base → refiner picture with A1111's infotext. Shares the page tests' Chromium.
/// </summary>
[Collection("Page")]
public sealed class RefinerPageTests(PageFixture browser, RefinerModelsServer models) : IClassFixture<RefinerModelsServer>
{
    static readonly string Shipped = Path.GetFileName(Repo.ShippedModel);

    [Fact]
    public async Task An_sdxl_base_offers_the_refiner_and_draws_the_librarys_base_then_refiner_picture()
    {
        await using var session = await browser.OpenAsync(models.Server.Url);
        var page = session.Page;
        try
        {
            await Expect(page.Locator("#model")).ToHaveValueAsync(Shipped);
            await Expect(page.Locator("#refiner")).ToBeHiddenAsync();

            await session.SelectModelAsync("tiny-sdxl");
            await Expect(page.GetByRole(AriaRole.Group, new() { Name = "Refiner" })).ToBeVisibleAsync();
            Assert.Equal(["None", "tiny-sdxl-refiner"], await page.Locator("#refiner-checkpoint option").AllTextContentsAsync());

            await page.Locator("#prompt").FillAsync("a lighthouse at dusk");
            await page.Locator("#steps").FillAsync("5");
            await page.Locator("#cfg-scale").FillAsync("5");
            await page.Locator("#seed").FillAsync("14");
            await page.Locator("#width").FillAsync("64");
            await page.Locator("#height").FillAsync("64");
            await page.Locator("#sampler").SelectOptionAsync("Euler");
            await page.GetByLabel("Refiner model").SelectOptionAsync(new SelectOptionValue { Label = "tiny-sdxl-refiner" });
            await page.GetByLabel("Switch at").FillAsync("0.6");
            var body = await SecondPassPageTests.GenerateAsync(page);
            string refinerTitle = await page.GetByLabel("Refiner model").InputValueAsync();
            Assert.Equal((refinerTitle, 0.6), ((string?)body["refiner_checkpoint"], (double)body["refiner_switch_at"]!));

            var item = page.Locator("#gallery > li");
            await Expect(item).ToHaveCountAsync(1);
            await Expect(item.Locator(".infotext")).ToContainTextAsync("Refiner: tiny-sdxl-refiner");
            await Expect(item.Locator(".infotext")).ToContainTextAsync("Refiner switch at: 0.6");
            using var expected = SdxlRefinerTests.Base.Generate(Reference.Options("a lighthouse at dusk", 14, 5, 5) with
            {
                Width = 64, Height = 64, Refiner = new RefinerOptions { Refiner = SdxlRefinerTests.Refiner, SwitchAt = 0.6 },
            });
            Assert.Equal(expected.Images[0].Rgb, (await SecondPassPageTests.ShownImageAsync(page)).Rgb);

            // Reuse takes the refiner back; "None" sends nothing.
            await page.GetByLabel("Refiner model").SelectOptionAsync("None");
            await item.GetByRole(AriaRole.Button, new() { Name = "Reuse the parameters" }).ClickAsync();
            await Expect(page.GetByLabel("Refiner model")).ToHaveValueAsync(refinerTitle);
            await Expect(page.GetByLabel("Switch at")).ToHaveValueAsync("0.6");
            session.AssertClean();
        }
        finally
        {
            (await models.Server.Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = Shipped })).Ok();
        }
    }
}
