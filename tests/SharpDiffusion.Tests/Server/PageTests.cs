using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using SharpDiffusion.Imaging;
using static Microsoft.Playwright.Assertions;

namespace SharpDiffusion.Tests.Server;

/// <summary>One server (the shipped 64×64 model) and one headless Chromium (Debian's, at /usr/bin/chromium) for all
/// page tests; files the tests make go to a temp folder, never into the repository.</summary>
public sealed class PageFixture : IAsyncLifetime
{
    IPlaywright? _playwright;

    public TestServer Server { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;
    public string TempDir { get; } = Path.Combine(Path.GetTempPath(), "sharpdiffusion-page-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(TempDir);
        // Generations on 2 shared cores take seconds; every other wait is on the page's own JS.
        SetDefaultExpectTimeout(60_000);
        DebianPackages.EnsureInstalled("/usr/bin/chromium", "chromium fonts-dejavu-core", "The page tests drive Debian's Chromium");
        Server = await TestServer.StartAsync();
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = "/usr/bin/chromium",
            // No lookups of Google's hosts: nothing but loopback resolves, so the page can only work from its own server.
            Args = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost"],
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
        try { Directory.Delete(TempDir, recursive: true); } catch (IOException) { }
    }

    /// <summary>A fresh browser context on the page, ready (its lists loaded), recording every request and every
    /// console error (a Content-Security-Policy violation is one).</summary>
    public Task<PageSession> OpenAsync(int width = 1280, int height = 900) => OpenAsync(Server.Url, width, height);

    /// <summary><see cref="OpenAsync(int, int)"/> on the page of another server (a class fixture's, with models of its own).</summary>
    public async Task<PageSession> OpenAsync(string serverUrl, int width = 1280, int height = 900)
    {
        var context = await Browser.NewContextAsync(new() { ViewportSize = new() { Width = width, Height = height }, AcceptDownloads = true });
        var page = await context.NewPageAsync();
        var session = new PageSession(page, serverUrl);
        await page.GotoAsync(serverUrl + "/");
        await Expect(page.Locator("body")).ToHaveAttributeAsync("data-ready", "true");
        return session;
    }

    /// <summary>A PNG in the temp folder: a colour gradient, so kept pixels can be told from repainted ones.</summary>
    public string GradientPng(int width = 64, int height = 64)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int i = (y * width + x) * 3;
                rgb[i] = (byte)(x * 255 / (width - 1));
                rgb[i + 1] = (byte)(y * 255 / (height - 1));
                rgb[i + 2] = 96;
            }
        string path = Path.Combine(TempDir, $"init-{width}x{height}.png");
        File.WriteAllBytes(path, PngFile.Encode(width, height, rgb));
        return path;
    }
}

[CollectionDefinition("Page")]
public sealed class PageCollection : ICollectionFixture<PageFixture>;

/// <summary>The page in a browser: what it asked for and what went wrong in its console.</summary>
public sealed class PageSession : IAsyncDisposable
{
    readonly string _origin;
    readonly List<string> _requests = [];
    readonly List<string> _errors = [];

    public PageSession(IPage page, string origin)
    {
        Page = page;
        _origin = origin;
        page.Request += (_, r) => { lock (_requests) _requests.Add(r.Url); };
        page.Console += (_, m) => { if (m.Type == "error") lock (_errors) _errors.Add(m.Text); };
        page.PageError += (_, e) => { lock (_errors) _errors.Add(e); };
    }

    public IPage Page { get; }

    /// <summary>Picks a model in the Model list and waits for the page to have switched to it.</summary>
    public async Task SelectModelAsync(string name)
    {
        await Page.Locator("#model").SelectOptionAsync(new SelectOptionValue { Label = name });
        await Expect(Page.Locator("#model-status")).ToHaveTextAsync("loaded");
    }

    /// <summary>Nothing was fetched from anywhere but the server, and no script error or CSP violation happened
    /// (with <paramref name="httpErrors"/>, Chromium's own log line for a 4xx answer the test asked for is allowed).</summary>
    public void AssertClean(bool httpErrors = false)
    {
        lock (_requests)
            Assert.All(_requests, url => Assert.True(url.StartsWith(_origin + "/", StringComparison.Ordinal) || url.StartsWith("data:", StringComparison.Ordinal) || url.StartsWith("blob:", StringComparison.Ordinal), $"The page fetched {url}"));
        lock (_errors)
            Assert.DoesNotContain(_errors, e => !(httpErrors && e.StartsWith("Failed to load resource: the server responded with a status of 4", StringComparison.Ordinal)));
    }

    public async ValueTask DisposeAsync() => await Page.Context.CloseAsync();
}

[Collection("Page")]
public sealed class PageTests(PageFixture fixture)
{
    static ILocator Gallery(IPage page) => page.Locator("#gallery > li");

    /// <summary>Another client's long job, running: a job the page starts now waits behind it (queue position 1) until
    /// <see cref="ReleaseTheWorkerAsync"/>, so the page is connected before its job runs, on any machine.</summary>
    async Task<string> HoldTheWorkerAsync()
    {
        var posted = await fixture.Server.Client.PostAsJsonAsync("/jobs", new { task = "txt2img", prompt = "other client", steps = 1000 });
        Assert.Equal(202, (int)posted.StatusCode);
        string id = (await posted.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
        await Api.PollAsync(() => fixture.Server.Client.GetJsonAsync($"/jobs/{id}"), r => (string?)r.Json["state"] == "running",
            TimeSpan.FromSeconds(60), "the other client's job running", everyMs: 20);
        return id;
    }

    async Task ReleaseTheWorkerAsync(string id) => (await fixture.Server.Client.DeleteAsync($"/jobs/{id}")).EnsureSuccessStatusCode();

    /// <summary>Records the progress bar's values, the status texts and the preview's sources as the page changes them.</summary>
    static Task WatchAsync(IPage page) => page.EvaluateAsync(@"() => {
        window.__values = []; window.__texts = []; window.__previews = [];
        const bar = document.querySelector('#progress'), status = document.querySelector('#status'), img = document.querySelector('#preview');
        new MutationObserver(() => window.__values.push(bar.getAttribute('value'))).observe(bar, { attributes: true, attributeFilter: ['value'] });
        new MutationObserver(() => window.__texts.push(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
        new MutationObserver(() => window.__previews.push((img.getAttribute('src') || '').slice(0, 22))).observe(img, { attributes: true, attributeFilter: ['src'] });
    }");

    static Task<int> PaintedPixelsAsync(IPage page) => page.EvaluateAsync<int>(@"() => {
        const c = document.querySelector('#mask-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }");

    static Task<int> MaskAlphaAsync(IPage page, int x, int y) =>
        page.EvaluateAsync<int>($"() => document.querySelector('#mask-canvas').getContext('2d').getImageData({x}, {y}, 1, 1).data[3]");

    [Fact]
    public async Task Generate_ShowsProgressPreviewAndAResultWithInfotextAndDownload()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        await page.GetByLabel("Prompt", new() { Exact = true }).FillAsync("a red circle");
        await page.GetByLabel("Negative prompt", new() { Exact = true }).FillAsync("blurry");
        await page.GetByLabel("Steps", new() { Exact = true }).FillAsync("60");
        await page.GetByLabel("Seed", new() { Exact = true }).FillAsync("4242");
        await Expect(page.GetByLabel("Sampler", new() { Exact = true })).ToHaveValueAsync("Euler a");
        await Expect(page.GetByLabel("Model", new() { Exact = true })).ToHaveValueAsync(new Regex("^sharp-shapes"));
        await WatchAsync(page);

        string other = await HoldTheWorkerAsync();
        try
        {
            await page.GetByRole(AriaRole.Button, new() { Name = "Generate" }).ClickAsync();
            await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "queued");
        }
        finally { await ReleaseTheWorkerAsync(other); }

        var item = Gallery(page);
        await Expect(item).ToHaveCountAsync(1);
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "completed");
        await Expect(page.Locator("#status")).ToContainTextAsync("Done: 1 image");
        await Expect(page.Locator("#progress")).ToHaveAttributeAsync("value", "1");
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Go to the results" })).ToBeVisibleAsync();

        // The bar moved through the steps (not just 0 then 1), the status said which step and the ETA.
        var values = await page.EvaluateAsync<string?[]>("() => window.__values");
        var texts = await page.EvaluateAsync<string[]>("() => window.__texts");
        string seen = $"values [{string.Join(", ", values)}], texts [{string.Join(" | ", texts)}]";
        Assert.True(values.Any(v => v is not null && double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) is > 0 and < 1), seen);
        Assert.True(texts.Any(t => Regex.IsMatch(t, @"Step \d+/60")), seen);
        Assert.True(texts.Any(t => t.Contains("ETA", StringComparison.Ordinal)), seen);
        // Live previews came with the events, as data: PNGs.
        Assert.True(int.Parse((await page.Locator("#job").GetAttributeAsync("data-previews"))!) > 0, "no live preview arrived");
        Assert.Contains("data:image/png;base64,", await page.EvaluateAsync<string[]>("() => window.__previews"));
        await Expect(page.Locator("#preview")).ToHaveAttributeAsync("src", new Regex("^data:image/png;base64,"));

        // The result: the image, its infotext (with the seed asked for) and a download named after the seed.
        await Expect(item.Locator("img")).ToHaveAttributeAsync("src", new Regex("^data:image/png;base64,"));
        var infotext = item.Locator(".infotext");
        await Expect(infotext).ToContainTextAsync("a red circle");
        await Expect(infotext).ToContainTextAsync("Negative prompt: blurry");
        await Expect(infotext).ToContainTextAsync("Steps: 60, Sampler: Euler a");
        await Expect(infotext).ToContainTextAsync("Seed: 4242");
        await Expect(infotext).ToContainTextAsync("Size: 64x64");
        var link = item.GetByRole(AriaRole.Link, new() { Name = "Download" });
        await Expect(link).ToHaveAttributeAsync("download", "sharpdiffusion-4242.png");
        var download = await page.RunAndWaitForDownloadAsync(() => link.ClickAsync());
        Assert.Equal("sharpdiffusion-4242.png", download.SuggestedFilename);
        string saved = Path.Combine(fixture.TempDir, "download-4242.png");
        await download.SaveAsAsync(saved);
        var (w, h, _) = PngFile.Decode(saved);
        Assert.Equal((64, 64), (w, h));
        Assert.Contains("Seed: 4242", PngFile.ReadText(File.ReadAllBytes(saved))["parameters"]);
        session.AssertClean();
    }

    [Fact]
    public async Task Reuse_PutsTheResultsParametersBackInTheForm()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        await page.Locator("#prompt").FillAsync("a blue square");
        await page.Locator("#negative-prompt").FillAsync("noise");
        await page.Locator("#steps").FillAsync("6");
        await page.Locator("#cfg-scale").FillAsync("5.5");
        await page.Locator("#seed").FillAsync("777");
        await page.Locator("#sampler").SelectOptionAsync("DPM++ 2M");
        await page.Locator("#scheduler").SelectOptionAsync("karras");
        await page.Locator("#generate").ClickAsync();
        await Expect(Gallery(page)).ToHaveCountAsync(1);
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("Sampler: DPM++ 2M Karras");

        // Change everything, then take it back from the result.
        await page.Locator("#prompt").FillAsync("something else");
        await page.Locator("#negative-prompt").FillAsync("");
        await page.Locator("#steps").FillAsync("30");
        await page.Locator("#cfg-scale").FillAsync("9");
        await page.GetByRole(AriaRole.Button, new() { Name = "Random seed (-1)" }).ClickAsync();
        await page.Locator("#sampler").SelectOptionAsync("Euler");
        await page.Locator("#scheduler").SelectOptionAsync("automatic");
        await Expect(page.Locator("#seed")).ToHaveValueAsync("-1");

        await Gallery(page).GetByRole(AriaRole.Button, new() { Name = "Reuse the parameters" }).ClickAsync();
        await Expect(page.Locator("#prompt")).ToHaveValueAsync("a blue square");
        await Expect(page.Locator("#negative-prompt")).ToHaveValueAsync("noise");
        await Expect(page.Locator("#steps")).ToHaveValueAsync("6");
        await Expect(page.Locator("#cfg-scale")).ToHaveValueAsync("5.5");
        await Expect(page.Locator("#seed")).ToHaveValueAsync("777");
        await Expect(page.Locator("#sampler")).ToHaveValueAsync("DPM++ 2M");
        await Expect(page.Locator("#scheduler")).ToHaveValueAsync("karras");
        await Expect(page.Locator("#width")).ToHaveValueAsync("64");
        await Expect(page.Locator("#height")).ToHaveValueAsync("64");
        await Expect(page.Locator("#prompt")).ToBeFocusedAsync();

        // "Last" puts the last result's seed in; clicking the picture itself reuses too.
        await page.Locator("#seed").FillAsync("-1");
        await page.GetByRole(AriaRole.Button, new() { Name = "Seed of the last result" }).ClickAsync();
        await Expect(page.Locator("#seed")).ToHaveValueAsync("777");
        await page.Locator("#steps").FillAsync("31");
        await Gallery(page).Locator("img").ClickAsync();
        await Expect(page.Locator("#steps")).ToHaveValueAsync("6");

        // "Send to img2img" makes the result the init image.
        await Gallery(page).GetByRole(AriaRole.Button, new() { Name = "as the init image" }).ClickAsync();
        await Expect(page.GetByLabel("Image to image / inpaint")).ToBeCheckedAsync();
        await Expect(page.Locator("#mask-canvas")).ToBeVisibleAsync();
        await Expect(page.Locator("#mask-canvas")).ToBeFocusedAsync();
        Assert.Equal(64, await page.Locator("#init-canvas").EvaluateAsync<int>("c => c.width"));
        Assert.True(await page.Locator("#init-canvas").EvaluateAsync<bool>("c => c.getContext('2d').getImageData(0, 0, 64, 64).data.some((v, i) => i % 4 != 3 && v > 0)"), "the init canvas is empty");
        session.AssertClean();
    }

    /// <summary>A horizontal mouse stroke through the middle of the canvas, from 30% to 70% of its width.</summary>
    static async Task StrokeAsync(IPage page, ILocator canvas)
    {
        await canvas.ScrollIntoViewIfNeededAsync();
        var box = (await canvas.BoundingBoxAsync())!;
        await page.Mouse.MoveAsync(box.X + box.Width * 0.3f, box.Y + box.Height / 2);
        await page.Mouse.DownAsync();
        await page.Mouse.MoveAsync(box.X + box.Width * 0.7f, box.Y + box.Height / 2, new() { Steps = 8 });
        await page.Mouse.UpAsync();
    }

    [Fact]
    public async Task Inpainting_PaintsTheMaskWithTheMouseAndTheKeyboard_AndKeepsWhatIsNotMasked()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        await page.GetByLabel("Image to image / inpaint").CheckAsync();
        await Expect(page.GetByRole(AriaRole.Group, new() { Name = "Image to image and inpainting" })).ToBeVisibleAsync();
        await page.GetByLabel("Init image", new() { Exact = true }).SetInputFilesAsync(fixture.GradientPng());
        var mask = page.Locator("#mask-canvas");
        await Expect(mask).ToBeVisibleAsync();
        Assert.Equal(64, await mask.EvaluateAsync<int>("c => c.width"));
        Assert.Equal(0, await PaintedPixelsAsync(page));

        // A horizontal stroke through the middle with the mouse.
        await StrokeAsync(page, mask);
        Assert.Equal(255, await MaskAlphaAsync(page, 32, 32));   // under the stroke
        Assert.Equal(0, await MaskAlphaAsync(page, 2, 2));       // far from it
        int stroke = await PaintedPixelsAsync(page);
        Assert.InRange(stroke, 20, 64 * 64 / 2);

        // Invert swaps painted and not painted; clear empties it.
        await page.GetByRole(AriaRole.Button, new() { Name = "Invert mask" }).ClickAsync();
        Assert.Equal(0, await MaskAlphaAsync(page, 32, 32));
        Assert.Equal(255, await MaskAlphaAsync(page, 2, 2));
        await page.GetByRole(AriaRole.Button, new() { Name = "Clear mask" }).ClickAsync();
        Assert.Equal(0, await PaintedPixelsAsync(page));

        // The keyboard brush: Space paints where the brush is, Shift+arrows paint as it moves.
        await mask.FocusAsync();
        await Expect(page.Locator("#brush-cursor")).ToBeVisibleAsync();
        await page.Keyboard.PressAsync("Space");
        int dot = await PaintedPixelsAsync(page);
        Assert.True(dot > 0, "Space painted nothing");
        await page.Keyboard.PressAsync("Shift+ArrowLeft");
        await page.Keyboard.PressAsync("Shift+ArrowLeft");
        Assert.True(await PaintedPixelsAsync(page) > dot, "Shift+arrow painted nothing");
        int before = await PaintedPixelsAsync(page);
        await page.Keyboard.PressAsync("ArrowUp");
        await page.Keyboard.PressAsync("ArrowUp");
        Assert.Equal(before, await PaintedPixelsAsync(page));   // moving without Shift paints nothing

        // Start over with the mouse stroke, and generate.
        await page.GetByRole(AriaRole.Button, new() { Name = "Clear mask" }).ClickAsync();
        await StrokeAsync(page, mask);
        Assert.Equal(stroke, await PaintedPixelsAsync(page));
        await page.GetByLabel("Denoising strength", new() { Exact = true }).FillAsync("0.6");
        await page.GetByLabel("Mask blur", new() { Exact = true }).FillAsync("3");
        await page.Locator("#prompt").FillAsync("a green triangle");
        await page.Locator("#steps").FillAsync("8");
        await page.Locator("#seed").FillAsync("99");
        await page.Locator("#generate").ClickAsync();

        await Expect(Gallery(page)).ToHaveCountAsync(1);
        var infotext = Gallery(page).Locator(".infotext");
        await Expect(infotext).ToContainTextAsync("Denoising strength: 0.6");
        await Expect(infotext).ToContainTextAsync("Mask blur: 3");
        await Expect(infotext).ToContainTextAsync("Seed: 99");
        // Outside the mask the original comes back (A1111 pastes it); under the stroke the picture was repainted.
        var corner = await Gallery(page).Locator("img").EvaluateAsync<int[]>(@"img => {
            const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
            return [...ctx.getImageData(2, 2, 1, 1).data.slice(0, 3), c.width, c.height]; }");
        Assert.Equal(64, corner[3]);
        Assert.Equal(64, corner[4]);
        Assert.InRange(corner[0], 8 - 3, 8 + 3);     // 2·255/63 ≈ 8
        Assert.InRange(corner[1], 8 - 3, 8 + 3);
        Assert.InRange(corner[2], 96 - 3, 96 + 3);
        session.AssertClean();
    }

    [Fact]
    public async Task Errors_FromTheServerAreShownWithItsMessage()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        await page.Locator("#prompt").FillAsync("too big");
        await page.GetByLabel("Width", new() { Exact = true }).FillAsync("20000");
        await page.GetByLabel("Steps", new() { Exact = true }).FillAsync("0");
        await page.Locator("#generate").ClickAsync();
        var alert = page.GetByRole(AriaRole.Alert);
        await Expect(alert).ToBeVisibleAsync();
        await Expect(alert).ToContainTextAsync("422");
        await Expect(alert).ToContainTextAsync("width: must be between 8 and 4096; got 20000");
        await Expect(alert).ToContainTextAsync("steps: must be between 1 and 1000; got 0");
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "failed");
        await Expect(Gallery(page)).ToHaveCountAsync(0);
        await Expect(page.Locator("#cancel")).ToBeDisabledAsync();

        // img2img without an image is caught before anything is sent.
        await page.GetByLabel("Width", new() { Exact = true }).FillAsync("");
        await page.GetByLabel("Steps", new() { Exact = true }).FillAsync("4");
        await page.GetByLabel("Image to image / inpaint").CheckAsync();
        await page.Locator("#generate").ClickAsync();
        await Expect(alert).ToContainTextAsync("needs an init image");

        // What the server did differently from the request comes back as warnings, shown with the result.
        await page.GetByLabel("Text to image").CheckAsync();
        await page.GetByLabel("Width", new() { Exact = true }).FillAsync("100");
        await page.Locator("#generate").ClickAsync();
        await Expect(Gallery(page)).ToHaveCountAsync(1);
        await Expect(alert).ToBeHiddenAsync();
        await Expect(page.GetByRole(AriaRole.List, new() { Name = "Warnings" })).ToContainTextAsync("width 100 is not a multiple of 8; 96 was used.");
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("Size: 96x64");
        session.AssertClean(httpErrors: true);
    }

    [Fact]
    public async Task KeyboardOnly_TabToThePromptTypeAndGenerate_WithVisibleFocus()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;
        async Task TabTo(string id, bool back = false)
        {
            for (int i = 0; i < 30; i++)
            {
                await page.Keyboard.PressAsync(back ? "Shift+Tab" : "Tab");
                if (await page.EvaluateAsync<string>("() => document.activeElement.id") == id) return;
            }
            Assert.Fail($"Tab never reached #{id}");
        }
        await TabTo("prompt");
        await page.Keyboard.TypeAsync("a yellow star");
        await TabTo("steps");
        await page.Keyboard.PressAsync("Control+A");
        await page.Keyboard.TypeAsync("6");
        await TabTo("generate", back: true);
        // Focus is visible on the button the keyboard is on.
        Assert.Equal("solid 3px", await page.Locator("#generate").EvaluateAsync<string>("b => getComputedStyle(b).outlineStyle + ' ' + getComputedStyle(b).outlineWidth"));
        await page.Keyboard.PressAsync("Enter");
        await Expect(Gallery(page)).ToHaveCountAsync(1);
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("a yellow star");
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("Steps: 6");

        // Ctrl+Enter in the prompt generates again; the Reuse button is reachable by Tab.
        await page.Locator("#prompt").FocusAsync();
        await page.Keyboard.PressAsync("Control+Enter");
        await Expect(Gallery(page)).ToHaveCountAsync(2);
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "completed");

        // Every control has an accessible name.
        var unnamed = await page.EvaluateAsync<string[]>(@"() => [...document.querySelectorAll('input, select, textarea, button, a[href], canvas[tabindex]')]
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
            .map(el => el.outerHTML.slice(0, 80))");
        Assert.Empty(unnamed);
        session.AssertClean();
    }

    [Fact]
    public async Task NarrowScreen_EverythingFitsIn375PixelsWithoutHorizontalScrolling()
    {
        await using var session = await fixture.OpenAsync(375, 800);
        var page = session.Page;
        await Expect(page.Locator("#generate")).ToBeVisibleAsync();
        await page.GetByLabel("Image to image / inpaint").CheckAsync();
        await page.GetByLabel("Init image", new() { Exact = true }).SetInputFilesAsync(fixture.GradientPng(96, 64));
        await Expect(page.Locator("#mask-canvas")).ToBeVisibleAsync();
        await page.Locator("#steps").FillAsync("4");
        await page.Locator("#prompt").FillAsync("a long prompt with a_very_long_token_that_does_not_break_anywhere_at_all_in_the_infotext");
        await page.Locator("#generate").ClickAsync();
        await Expect(Gallery(page)).ToHaveCountAsync(1);

        Assert.True(await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth") <= 375, "the page scrolls sideways at 375 px");
        await page.Locator("#generate").ScrollIntoViewIfNeededAsync();
        await Expect(page.Locator("#generate")).ToBeInViewportAsync();
        var outside = await page.EvaluateAsync<string[]>(@"() => [...document.querySelectorAll('input, select, textarea, button, a[href], canvas, img, progress')]
            .filter(el => el.offsetParent !== null)
            .filter(el => { const r = el.getBoundingClientRect(); return r.left < -0.5 || r.right > 375.5; })
            .map(el => el.id || el.className || el.tagName)");
        Assert.Empty(outside);
        session.AssertClean();
    }

    [Fact]
    public async Task Reload_WhileAJobRunsOrWaits_KeepsFollowingIt_ToItsResult()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;

        // A running job (long enough to outlast any reload) is followed again after the reload, and can be cancelled.
        await page.Locator("#steps").FillAsync("1000");
        await page.Locator("#generate").ClickAsync();
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "running");
        await page.ReloadAsync();
        await Expect(page.Locator("body")).ToHaveAttributeAsync("data-ready", "true");
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "running");
        await Expect(page.Locator("#status")).ToContainTextAsync("Step");
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "cancelled");

        // A waiting job (someone else's long job holds the worker, so it cannot finish before the reload) is followed
        // again after the reload, through its start, to its result.
        string otherId = await HoldTheWorkerAsync();
        try
        {
            await page.Locator("#prompt").FillAsync("a white circle");
            await page.Locator("#steps").FillAsync("6");
            await page.Locator("#seed").FillAsync("5");
            await page.Locator("#generate").ClickAsync();
            await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "queued");
            await page.ReloadAsync();
            await Expect(page.Locator("body")).ToHaveAttributeAsync("data-ready", "true");
            await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "queued");
            await Expect(page.Locator("#status")).ToContainTextAsync("Queued: position 1");
        }
        finally { await ReleaseTheWorkerAsync(otherId); }
        await Expect(Gallery(page)).ToHaveCountAsync(1);
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("Seed: 5");
        await Expect(Gallery(page).Locator(".infotext")).ToContainTextAsync("Steps: 6");
        await Expect(page.Locator("#cancel")).ToBeDisabledAsync();

        // Finished: another reload starts empty.
        await page.ReloadAsync();
        await Expect(page.Locator("body")).ToHaveAttributeAsync("data-ready", "true");
        await Expect(Gallery(page)).ToHaveCountAsync(0);
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "idle");
        session.AssertClean();
    }

    [Fact]
    public async Task Cancel_AQueuedJobShowsItsPositionThenCancelled_AndARunningOneStops()
    {
        await using var session = await fixture.OpenAsync();
        var page = session.Page;

        // Someone else's long job holds the worker: the page's job waits, with its place in the queue.
        string otherId = await HoldTheWorkerAsync();
        try
        {
            await page.Locator("#steps").FillAsync("4");
            await page.Locator("#generate").ClickAsync();
            await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "queued");
            await Expect(page.Locator("#status")).ToContainTextAsync("Queued: position 1");
            await page.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
            await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "cancelled");
            await Expect(page.Locator("#status")).ToHaveTextAsync("Cancelled.");
        }
        finally { await ReleaseTheWorkerAsync(otherId); }

        // The page's own long job, running, stops at the next step.
        await page.Locator("#steps").FillAsync("1000");
        await page.Locator("#generate").ClickAsync();
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "running");
        await Expect(page.Locator("#status")).ToContainTextAsync("Step");
        await page.GetByRole(AriaRole.Button, new() { Name = "Cancel" }).ClickAsync();
        await Expect(page.Locator("#job")).ToHaveAttributeAsync("data-state", "cancelled");
        await Expect(page.Locator("#status")).ToHaveTextAsync("Cancelled.");
        await Expect(page.Locator("#cancel")).ToBeDisabledAsync();
        await Expect(Gallery(page)).ToHaveCountAsync(0);
        await Expect(page.GetByRole(AriaRole.Alert)).ToBeHiddenAsync();
        session.AssertClean();
    }
}
