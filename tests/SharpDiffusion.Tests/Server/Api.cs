using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Server;

/// <summary>One HTTP answer of the server: status, headers and the JSON body (every route answers JSON, errors too).</summary>
public sealed record Reply(HttpStatusCode Status, JsonNode? Body, HttpResponseHeaders Headers, string MediaType)
{
    public int Code => (int)Status;
    public JsonNode Json => Body ?? throw new InvalidOperationException("no body");

    /// <summary>The response's "info" string, parsed (A1111 sends it as a JSON string).</summary>
    public JsonObject Info => JsonNode.Parse(Json["info"]!.GetValue<string>())!.AsObject();

    /// <summary>Image <paramref name="i"/> of "images": the PNG bytes.</summary>
    public byte[] Png(int i = 0) => Convert.FromBase64String(Json["images"]![i]!.GetValue<string>());

    public int ImageCount => Json["images"]!.AsArray().Count;
}

/// <summary>JSON requests for the server tests; every answer is checked to be JSON before it is returned.</summary>
public static class Api
{
    public static Task<Reply> PostAsync(this HttpClient client, string path, JsonNode body, CancellationToken cancellation = default) =>
        SendJsonAsync(client, new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent(body) }, cancellation);

    public static Task<Reply> GetJsonAsync(this HttpClient client, string path, CancellationToken cancellation = default) =>
        SendJsonAsync(client, new HttpRequestMessage(HttpMethod.Get, path), cancellation);

    public static StringContent JsonContent(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    public static async Task<Reply> SendJsonAsync(this HttpClient client, HttpRequestMessage request, CancellationToken cancellation = default)
    {
        using var response = await client.SendAsync(request, cancellation);
        return await ReadAsync(response);
    }

    public static async Task<Reply> ReadAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync();
        string type = response.Content.Headers.ContentType?.MediaType ?? "";
        Assert.True(type == "application/json", $"{(int)response.StatusCode} {response.RequestMessage?.RequestUri}: Content-Type '{type}', body '{Trim(text)}'");
        JsonNode? body;
        try { body = JsonNode.Parse(text); }
        catch (System.Text.Json.JsonException e) { throw new Xunit.Sdk.XunitException($"{response.RequestMessage?.RequestUri}: not JSON ({e.Message}): {Trim(text)}"); }
        return new Reply(response.StatusCode, body, response.Headers, type);
    }

    static string Trim(string s) => s.Length > 300 ? s[..300] + "…" : s;

    /// <summary>A 200 answer, or a failure that shows the body.</summary>
    public static Reply Ok(this Reply reply)
    {
        Assert.True(reply.Status == HttpStatusCode.OK, $"{reply.Code}: {reply.Body?.ToJsonString()}");
        return reply;
    }

    /// <summary>The "parameters" text chunk of a PNG (the infotext).</summary>
    public static string Parameters(byte[] png) => PngFile.ReadText(png)["parameters"];

    public static RgbImage Decode(byte[] png) => ImageFile.Decode(png, "png");

    public static string Base64File(string path) => Convert.ToBase64String(File.ReadAllBytes(path));

    /// <summary>Polls <paramref name="read"/> until <paramref name="done"/> holds; fails with the last value after <paramref name="timeout"/>.</summary>
    public static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout, string what, int everyMs = 20)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var value = await read();
            if (done(value)) return value;
            if (clock.Elapsed > timeout)
                throw new Xunit.Sdk.XunitException($"{what}: not reached in {timeout.TotalSeconds:0.#} s; last: {(value is JsonNode n ? n.ToJsonString() : value)}");
            await Task.Delay(everyMs);
        }
    }
}

/// <summary>
/// What the CLI's `generate` writes for the same settings, made with the library directly (the calls `generate` makes:
/// <see cref="StableDiffusionPipeline.Generate"/>, then the PNG with <see cref="ImageOutput.InfoTextFor"/>): the reference
/// the server's images are compared with, byte for byte. Pipelines are kept per model for the test run.
/// </summary>
public static class Reference
{
    static readonly Dictionary<string, StableDiffusionPipeline> Pipelines = new();
    static readonly object Gate = new();

    /// <summary>A1111-style options as the CLI gets them from `--prompt-syntax a1111 --scheduler S --seed N --steps N --guidance G`.</summary>
    public static GenerationOptions Options(string prompt, long seed, int steps, double cfg, string scheduler = "Euler", string negative = "") => new()
    {
        Prompts = [prompt],
        NegativePrompts = [negative],
        Seed = seed,
        NumInferenceSteps = steps,
        GuidanceScale = cfg,
        Scheduler = scheduler,
        PromptSyntax = PromptSyntax.A1111,
    };

    public static byte[] Png(string model, GenerationOptions options)
    {
        lock (Gate)
        {
            if (!Pipelines.TryGetValue(model, out var pipeline))
                Pipelines[model] = pipeline = StableDiffusionPipeline.FromPretrained(model);
            using var result = pipeline.Generate(options);
            var image = result.Images[0];
            return PngFile.Encode(image.Width, image.Height, image.Rgb,
                new Dictionary<string, string> { ["parameters"] = ImageOutput.InfoTextFor(options, result, image, pipeline.ModelName, pipeline.ModelHash) });
        }
    }
}

/// <summary>A server on the shipped model shared by the tests of one class.</summary>
public sealed class ShippedServer : IAsyncLifetime
{
    public TestServer Server { get; private set; } = null!;
    public HttpClient Client => Server.Client;

    public async Task InitializeAsync() => Server = await TestServer.StartAsync();
    public async Task DisposeAsync() => await Server.DisposeAsync();
}
