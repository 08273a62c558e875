using System.Text.Json.Nodes;

namespace SharpDiffusion.Tests.Server;

/// <summary>OpenAI's Images API over HTTP: generations as b64_json and as url (the same images as A1111's txt2img for
/// the same settings), GET /v1/models, and OpenAI's error shape naming the bad parameter.</summary>
public class OpenAITests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    [Fact]
    public async Task Generations_as_b64_json_and_as_url_are_the_images_txt2img_makes()
    {
        var a1111 = (await Client.PostAsync("/sdapi/v1/txt2img", new JsonObject
        {
            ["prompt"] = "a lighthouse", ["seed"] = 77, ["steps"] = 2, ["batch_size"] = 2, ["width"] = 64, ["height"] = 64,
        })).Ok();

        var request = new JsonObject { ["prompt"] = "a lighthouse", ["n"] = 2, ["size"] = "64x64", ["seed"] = 77, ["steps"] = 2, ["response_format"] = "b64_json" };
        var b64 = (await Client.PostAsync("/v1/images/generations", request)).Ok().Json;
        Assert.True((long)b64["created"]! > 0);
        var data = b64["data"]!.AsArray();
        Assert.Equal(2, data.Count);
        for (int i = 0; i < 2; i++)
            Assert.Equal(a1111.Png(i), Convert.FromBase64String((string)data[i]!["b64_json"]!));

        request["response_format"] = "url";
        var urls = (await Client.PostAsync("/v1/images/generations", request)).Ok().Json["data"]!.AsArray();
        Assert.Equal(2, urls.Count);
        for (int i = 0; i < 2; i++)
        {
            string url = (string)urls[i]!["url"]!;
            Assert.StartsWith(fixture.Server.Url + "/", url);
            using var response = await Client.GetAsync(url);
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal("image/png", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal(a1111.Png(i), await response.Content.ReadAsByteArrayAsync());
        }
        var gone = await Client.GetJsonAsync("/v1/images/files/no-such-file.png");
        Assert.Equal(404, gone.Code);
        Assert.NotNull(gone.Json["error"]!["message"]);
    }

    [Fact]
    public async Task Models_lists_the_loaded_model()
    {
        var models = (await Client.GetJsonAsync("/v1/models")).Ok().Json;
        Assert.Equal("list", (string?)models["object"]);
        var model = Assert.Single(models["data"]!.AsArray())!;
        Assert.Equal(Path.GetFileName(Repo.ShippedModel), (string?)model["id"]);
        Assert.Equal("model", (string?)model["object"]);
    }

    [Theory]
    [InlineData("{\"n\":1}", "prompt")]
    [InlineData("{\"prompt\":\"\"}", "prompt")]
    [InlineData("{\"prompt\":\"x\",\"size\":\"64\"}", "size")]
    [InlineData("{\"prompt\":\"x\",\"size\":\"axb\"}", "size")]
    [InlineData("{\"prompt\":\"x\",\"size\":\"20000x20000\"}", "size")]
    [InlineData("{\"prompt\":\"x\",\"n\":0}", "n")]
    [InlineData("{\"prompt\":\"x\",\"n\":11}", "n")]
    [InlineData("{\"prompt\":\"x\",\"n\":\"two\"}", "n")]
    [InlineData("{\"prompt\":\"x\",\"response_format\":\"gif\"}", "response_format")]
    public async Task Bad_requests_answer_openais_error_shape_naming_the_parameter(string body, string param)
    {
        var reply = await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/images/generations")
        {
            Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
        });
        Assert.Equal(400, reply.Code);
        var error = reply.Json["error"]!.AsObject();
        Assert.Equal(["message", "type", "param", "code"], error.Select(kv => kv.Key));
        Assert.Equal("invalid_request_error", (string?)error["type"]);
        Assert.Equal(param, (string?)error["param"]);
        Assert.False(string.IsNullOrEmpty((string?)error["message"]));
    }

    [Fact]
    public async Task Malformed_json_is_an_openai_error()
    {
        var reply = await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/images/generations")
        {
            Content = new StringContent("{\"prompt\": ", System.Text.Encoding.UTF8, "application/json"),
        });
        Assert.Equal(400, reply.Code);
        Assert.Equal("invalid_request_error", (string?)reply.Json["error"]!["type"]);
    }
}
