using System.Net;
using System.Net.Http.Headers;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Server;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// Who may call the server and what it refuses: Basic auth on every route, CORS, loopback by default, bad JSON and
/// wrong types (422 naming the field), bodies and images over the limits (413), sizes out of range, path traversal
/// through model names, LoRA tags and job ids, and files written only to OUTPUT_DIR. Every answer is JSON.
/// </summary>
public class SecurityTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    static JsonObject Body(string prompt, long seed, int steps) => new() { ["prompt"] = prompt, ["seed"] = seed, ["steps"] = steps };

    static HttpRequestMessage Request(HttpMethod method, string path, string? user = null, string? password = null, string? rawAuth = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (method == HttpMethod.Post)
            request.Content = Api.JsonContent(path.StartsWith("/v1/") ? new JsonObject { ["prompt"] = "x", ["steps"] = 2 } : Body("x", 1, 2));
        if (rawAuth is not null)
            request.Headers.TryAddWithoutValidation("Authorization", rawAuth);
        else if (user is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));
        return request;
    }

    static readonly (HttpMethod Method, string Path)[] Routes =
    [
        (HttpMethod.Get, "/"),
        (HttpMethod.Get, "/index.html"),
        (HttpMethod.Get, "/sdapi/v1/progress"),
        (HttpMethod.Get, "/sdapi/v1/sd-models"),
        (HttpMethod.Get, "/sdapi/v1/samplers"),
        (HttpMethod.Get, "/sdapi/v1/options"),
        (HttpMethod.Get, "/sdapi/v1/loras"),
        (HttpMethod.Get, "/sdapi/v1/memory"),
        (HttpMethod.Post, "/sdapi/v1/txt2img"),
        (HttpMethod.Post, "/sdapi/v1/interrupt"),
        (HttpMethod.Post, "/sdapi/v1/refresh-checkpoints"),
        (HttpMethod.Get, "/v1/models"),
        (HttpMethod.Post, "/v1/images/generations"),
        (HttpMethod.Post, "/jobs"),
        (HttpMethod.Get, "/jobs/task(none)"),
        (HttpMethod.Get, "/no/such/route"),
    ];

    [Fact]
    public async Task Api_auth_guards_every_route_page_included()
    {
        await using var server = await TestServer.StartAsync(o => o with { ApiAuth = [("alice", "s3cret:with-colon")] });
        foreach (var (method, path) in Routes)
        {
            foreach (var (user, password, raw) in new (string?, string?, string?)[]
                     {
                         (null, null, null), ("alice", "wrong", null), ("bob", "s3cret:with-colon", null), ("alice", "", null),
                         (null, null, "Basic !!!not-base64"), (null, null, "Bearer s3cret"),
                     })
            {
                var reply = await server.Client.SendJsonAsync(Request(method, path, user, password, raw));
                Assert.True(reply.Code == 401, $"{method} {path} as {user ?? raw ?? "nobody"}: {reply.Code}");
                Assert.Equal("Basic", reply.Headers.WwwAuthenticate.Single().Scheme);
                Assert.NotNull(reply.Json["detail"]);
            }
            using var allowed = await server.Client.SendAsync(Request(method, path, "alice", "s3cret:with-colon"));
            int expected = path == "/no/such/route" || path.StartsWith("/jobs/") ? 404 : path == "/jobs" ? 202 : 200;
            Assert.True((int)allowed.StatusCode == expected, $"{method} {path} with the right credentials: {(int)allowed.StatusCode} {await allowed.Content.ReadAsStringAsync()}");
        }
    }

    [Fact]
    public async Task Cors_answers_the_allowed_origin_only()
    {
        const string allowed = "http://allowed.example:3000";
        await using var server = await TestServer.StartAsync(o => o with { CorsOrigins = [allowed] });
        foreach (var (origin, expected) in new[] { (allowed, allowed), ("http://evil.example", null) })
        {
            var get = new HttpRequestMessage(HttpMethod.Get, "/sdapi/v1/samplers");
            get.Headers.Add("Origin", origin);
            using var response = await server.Client.SendAsync(get);
            Assert.Equal(200, (int)response.StatusCode);
            Assert.Equal(expected, response.Headers.TryGetValues("Access-Control-Allow-Origin", out var v) ? v.Single() : null);

            var preflight = new HttpRequestMessage(HttpMethod.Options, "/sdapi/v1/txt2img");
            preflight.Headers.Add("Origin", origin);
            preflight.Headers.Add("Access-Control-Request-Method", "POST");
            preflight.Headers.Add("Access-Control-Request-Headers", "content-type");
            using var pre = await server.Client.SendAsync(preflight);
            Assert.Equal(expected, pre.Headers.TryGetValues("Access-Control-Allow-Origin", out var p) ? p.Single() : null);
        }
        // without --cors-origin no origin is allowed
        var plain = new HttpRequestMessage(HttpMethod.Get, "/sdapi/v1/samplers");
        plain.Headers.Add("Origin", allowed);
        using var none = await Client.SendAsync(plain);
        Assert.False(none.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task Listens_on_loopback_only_by_default()
    {
        Assert.Equal("127.0.0.1", new ServerOptions { Model = "m" }.Host);
        var url = new Uri(fixture.Server.Url);
        Assert.Equal("127.0.0.1", url.Host);
        var other = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses).Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        if (other is null) return; // no other interface on this machine
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5)); // a firewall may drop instead of refusing
        var failed = await Record.ExceptionAsync(async () => await socket.ConnectAsync(new IPEndPoint(other, url.Port), timeout.Token));
        Assert.True(failed is SocketException or OperationCanceledException, $"connected to {other}:{url.Port}");
    }

    [Theory]
    [InlineData("{\"prompt\": \"x\", ", "body")]
    [InlineData("[1, 2]", "body")]
    [InlineData("{\"prompt\": \"x\", \"steps\": \"many\"}", "steps")]
    [InlineData("{\"prompt\": 5}", "prompt")]
    [InlineData("{\"prompt\": \"x\", \"cfg_scale\": {\"a\": 1}}", "cfg_scale")]
    [InlineData("{\"prompt\": \"x\", \"batch_size\": [2]}", "batch_size")]
    [InlineData("{\"prompt\": \"x\", \"seed\": 1.5}", "seed")]
    [InlineData("{\"prompt\": \"x\", \"send_images\": \"perhaps\"}", "send_images")]
    [InlineData("{\"prompt\": \"x\", \"width\": 20000}", "width")]
    [InlineData("{\"prompt\": \"x\", \"height\": 20000}", "height")]
    [InlineData("{\"prompt\": \"x\", \"steps\": 0}", "steps")]
    [InlineData("{\"prompt\": \"x\", \"sampler_name\": \"No Such Sampler\"}", "sampler_name")]
    [InlineData("{\"prompt\": \"x\", \"sampler_index\": \"No Such Sampler\"}", "sampler_index")]
    [InlineData("{\"prompt\": \"x\", \"sampler_name\": \"Euler\", \"scheduler\": \"No Such Schedule\"}", "scheduler")]
    [InlineData("{\"prompt\": \"x\", \"override_settings\": {\"CLIP_stop_at_last_layers\": \"two\"}}", "override_settings.CLIP_stop_at_last_layers")]
    public async Task Bad_json_and_wrong_types_are_422_naming_the_field(string body, string field)
    {
        var reply = await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "/sdapi/v1/txt2img")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        });
        Assert.Equal(422, reply.Code);
        var loc = reply.Json["detail"]![0]!["loc"]!.AsArray().Select(x => (string?)x).ToList();
        Assert.Equal(["body", field], loc);
        Assert.Contains(field, (string?)reply.Json["errors"]);
    }

    [Fact]
    public async Task Init_images_of_the_wrong_type_or_not_an_image_are_422()
    {
        foreach (var (images, needle) in new (JsonNode, string)[]
                 {
                     ("not a list", "init_images"),
                     (new JsonArray("%%%"), "init_images[0]"),
                     (new JsonArray(Convert.ToBase64String("not an image"u8.ToArray())), "init_images[0]"),
                     (new JsonArray("http://127.0.0.1:1/x.png"), "init_images[0]"),
                 })
        {
            var body = Body("x", 1, 2);
            body["init_images"] = images;
            var reply = await Client.PostAsync("/sdapi/v1/img2img", body);
            Assert.True(reply.Code == 422, $"{images.ToJsonString()}: {reply.Code} {reply.Json.ToJsonString()}");
            Assert.Contains(needle, reply.Json.ToJsonString());
        }
    }

    [Fact]
    public async Task Bodies_and_images_over_the_limits_are_413_in_json()
    {
        await using var server = await TestServer.StartAsync(o => o with { MaxBodyBytes = 100_000, MaxImageSide = 128 });
        var body = Body("x", 1, 2);
        body["init_images"] = new JsonArray(Convert.ToBase64String(new byte[300_000]));
        var tooBig = await server.Client.PostAsync("/sdapi/v1/img2img", body);
        Assert.Equal(413, tooBig.Code);
        Assert.Contains("larger", (string?)tooBig.Json["detail"]);
        var openAi = await server.Client.PostAsync("/v1/images/generations", new JsonObject { ["prompt"] = new string('x', 200_000) });
        Assert.Equal(413, openAi.Code);
        Assert.NotNull(openAi.Json["error"]!["message"]);

        var large = PngFile.Encode(256, 200, new byte[256 * 200 * 3]);
        var small = PngFile.Encode(64, 64, new byte[64 * 64 * 3]);
        foreach (var (init, mask) in new[] { (large, (byte[]?)null), (small, large) })
        {
            var img = Body("x", 1, 2);
            img["init_images"] = new JsonArray(Convert.ToBase64String(init));
            if (mask is not null) img["mask"] = Convert.ToBase64String(mask);
            var reply = await server.Client.PostAsync("/sdapi/v1/img2img", img);
            Assert.Equal(413, reply.Code);
            Assert.Contains("256x200", (string?)reply.Json["detail"]);
        }

        var wide = await server.Client.PostAsync("/sdapi/v1/txt2img", new JsonObject { ["prompt"] = "x", ["width"] = 256 });
        Assert.Equal(422, wide.Code);
        Assert.Contains("width", (string?)wide.Json["errors"]);
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("/etc/passwd")]
    [InlineData("../../../../../../etc/passwd")]
    [InlineData("..")]
    [InlineData("models/../../sharp-shapes")]
    public async Task Model_names_that_are_paths_are_refused(string name)
    {
        var reply = await Client.PostAsync("/sdapi/v1/options", new JsonObject { ["sd_model_checkpoint"] = name });
        Assert.Equal(422, reply.Code);
        Assert.Contains("not found", (string?)reply.Json["detail"]);
        Assert.Equal(Path.GetFileName(Repo.ShippedModel), (string?)(await Client.GetJsonAsync("/sdapi/v1/options")).Ok().Json["sd_model_checkpoint"]);

        var body = Body("x", 1, 2);
        body["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = name };
        var generation = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, generation.Code);
        Assert.Contains("not found", (string?)generation.Json["detail"]);
    }

    [Fact]
    public async Task Lora_tags_that_are_paths_are_refused_and_the_file_there_is_never_read()
    {
        using var root = new TempDir();
        string loras = Directory.CreateDirectory(root.File("Lora")).FullName;
        // A file where each tag would lead: if it were read, the answer would be about a broken safetensors file.
        File.WriteAllText(root.File("outside.safetensors"), "not a safetensors file");
        await using var server = await TestServer.StartAsync(o => o with { LoraDir = loras });
        foreach (var tag in new[] { "../outside", "..\\outside", root.File("outside"), "../Lora/../outside" })
        {
            var reply = await server.Client.PostAsync("/sdapi/v1/txt2img", Body($"a cat <lora:{tag}:1>", 1, 2));
            Assert.True(reply.Code == 422, $"{tag}: {reply.Code} {reply.Json.ToJsonString()}");
            Assert.Contains($"<lora:{tag}>: no ", (string?)reply.Json["detail"]);
        }
    }

    [Theory]
    [InlineData("/jobs/..%2F..%2Fetc%2Fpasswd")]
    [InlineData("/jobs/%2Fetc%2Fpasswd")]
    [InlineData("/jobs/..%2F..%2Fetc%2Fpasswd/events")]
    public async Task Job_ids_that_are_paths_are_not_found(string path)
    {
        var reply = await Client.GetJsonAsync(path);
        Assert.Equal(404, reply.Code);
        Assert.StartsWith("No job", (string?)reply.Json["detail"]);
        Assert.Equal(404, (await Client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, path.Replace("/events", "")))).Code);
    }

    /// <summary>Whether the file has exactly these bytes (a file another process deletes meanwhile — the temp folder is
    /// shared — does not).</summary>
    static bool Holds(string file, byte[] bytes)
    {
        try { return new FileInfo(file).Length == bytes.Length && File.ReadAllBytes(file).AsSpan().SequenceEqual(bytes); }
        catch (IOException) { return false; }
    }

    [Fact]
    public async Task Images_are_written_only_to_output_dir_and_only_inside_it()
    {
        // Without OUTPUT_DIR: the image is in no file of the places a server could write by default.
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body("nowhere", 8080, 2))).Ok();
        byte[] png = reply.Png();
        foreach (var dir in new[] { Directory.GetCurrentDirectory(), Path.GetTempPath(), Repo.Root, AppContext.BaseDirectory })
            foreach (var file in Directory.EnumerateFiles(dir, "*.png"))
                Assert.False(Holds(file, png), $"{file} holds the image");

        using var root = new TempDir();
        string output = root.File("out");
        await using var server = await TestServer.StartAsync(o => o with { OutputDir = output });
        var body = Body("somewhere", 8081, 2);
        body["batch_size"] = 2;
        body["force_task_id"] = "../../escape";
        var saved = (await server.Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var files = Directory.GetFiles(output).Order().ToList();
        Assert.Equal(2, files.Count);
        Assert.Equal([saved.Png(0), saved.Png(1)], files.Select(File.ReadAllBytes));
        Assert.Equal([output], Directory.GetFileSystemEntries(root.Path));
    }

    [Theory]
    [InlineData("GET", "/no/such/route")]
    [InlineData("GET", "/nothing.png")]
    [InlineData("GET", "/sdapi/v1/nothing.json")]
    [InlineData("GET", "/sdapi/v1/txt2img")]
    [InlineData("PUT", "/sdapi/v1/options")]
    [InlineData("DELETE", "/sdapi/v1/progress")]
    public async Task Unknown_routes_and_methods_answer_json(string method, string path)
    {
        var reply = await Client.SendJsonAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.True(reply.Code is 404 or 405, $"{method} {path}: {reply.Code}");
        Assert.NotNull(reply.Json["detail"]);
    }
}
