using System.Security.Cryptography;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server;
using SharpDiffusion.Tests.Server;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>
/// sd-webui-controlnet's API over HTTP on small-sd15 with the golden tiny ControlNet in --controlnet-dir:
/// /controlnet/model_list, a txt2img canny unit drawing the library's pixels for the same <see cref="ControlNetUnit"/>
/// with the extension's infotext entry, disabled units skipped, and the one-line 422s.
/// </summary>
public class ControlNetApiTests(ControlNetApiTests.Fixture fixture, ITestOutputHelper output) : IClassFixture<ControlNetApiTests.Fixture>
{
    static readonly string SmallSd = Golden.Path("models", "small-sd15");
    static readonly string ControlNetFolder = Golden.Path("models", "tiny-controlnet-small-sd15");
    static readonly string Photo = Golden.Path("img2img", "init_64x64.png");

    public sealed class Fixture : FolderServer
    {
        protected override void Fill() => Directory.CreateSymbolicLink(Folder.File("tiny-canny"), ControlNetFolder);
        protected override ServerOptions Configure(ServerOptions o) => o with { Model = SmallSd, ControlNetDir = Folder.Path };
    }

    HttpClient Client => fixture.Server.Client;

    static JsonObject Body(params JsonObject[] units) => new()
    {
        ["prompt"] = "a small house under the sun", ["seed"] = 5, ["steps"] = 4, ["width"] = 64, ["height"] = 64,
        ["alwayson_scripts"] = new JsonObject { ["controlnet"] = new JsonObject { ["args"] = new JsonArray(units) } },
    };

    static JsonObject CannyUnit(string model = "tiny-canny") => new()
    {
        ["enabled"] = true, ["image"] = Api.Base64File(Photo), ["module"] = "canny", ["model"] = model,
        ["processor_res"] = 64, ["threshold_a"] = 60, ["threshold_b"] = 140,
    };

    /// <summary>A1111's legacy model_hash, computed here independently: sha256 of the 64 KiB at 1 MiB, 8 hex digits.</summary>
    static string LegacyHash(string file)
    {
        var bytes = File.ReadAllBytes(file);
        int from = Math.Min(bytes.Length, 0x100000);
        return Convert.ToHexStringLower(SHA256.HashData(bytes.AsSpan(from, Math.Min(0x10000, bytes.Length - from))))[..8];
    }

    [Fact]
    public async Task Model_list_names_the_folders_controlnets_with_a1111s_hash()
    {
        var list = (await Client.GetJsonAsync("/controlnet/model_list")).Ok().Json["model_list"]!.AsArray().Select(n => (string?)n).ToList();
        string weights = Directory.GetFiles(ControlNetFolder, "*.safetensors").Single();
        Assert.Equal([$"tiny-canny [{LegacyHash(weights)}]"], list);
    }

    [Fact]
    public async Task A_canny_unit_draws_the_librarys_pixels_and_writes_the_extensions_infotext()
    {
        string title = (string)(await Client.GetJsonAsync("/controlnet/model_list")).Ok().Json["model_list"]![0]!;
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body(CannyUnit(title)))).Ok();

        var map = ControlPreprocessor.Canny.Run(ImageFile.Load(Photo), 64, 60, 140);
        var options = Reference.Options("a small house under the sun", 5, 4, 7) with
        {
            Width = 64, Height = 64,
            ControlNets = [new ControlNetUnit { ModelPath = ControlNetFolder, Image = map }],
        };
        var expected = Api.Decode(Reference.Png(SmallSd, options));
        var got = Api.Decode(reply.Png());
        int maxDiff = expected.Rgb.Zip(got.Rgb, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"HTTP canny unit vs library: max abs difference {maxDiff} levels");
        Assert.Equal(expected.Rgb, got.Rgb);

        // The unit changes the picture (a plain run differs).
        var plain = Api.Decode((await Client.PostAsync("/sdapi/v1/txt2img", Body())).Ok().Png());
        Assert.NotEqual(plain.Rgb, got.Rgb);

        // sd-webui-controlnet's serialize(): its eleven infotext fields, Python's str() of the values, A1111-quoted.
        string entry = $"ControlNet 0: \"Module: canny, Model: {title}, Weight: 1.0, Resize Mode: Crop and Resize, Processor Res: 64, " +
            "Threshold A: 60.0, Threshold B: 140.0, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced\"";
        Assert.Contains(entry, Api.Parameters(reply.Png()));
        Assert.Contains(entry, (string?)reply.Info["infotexts"]![0]);
    }

    [Theory]
    [InlineData("My prompt is more important", ControlMode.PromptMoreImportant)]
    [InlineData("2", ControlMode.ControlNetMoreImportant)]
    public async Task Control_modes_by_name_or_value_draw_the_librarys_pixels_for_that_mode(string value, ControlMode mode)
    {
        var unit = CannyUnit();
        unit["control_mode"] = int.TryParse(value, out int n) ? n : value; // the extension takes its enum's value or its name
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body(unit))).Ok();
        var options = Reference.Options("a small house under the sun", 5, 4, 7) with
        {
            Width = 64, Height = 64,
            ControlNets = [new ControlNetUnit { ModelPath = ControlNetFolder, Image = ControlPreprocessor.Canny.Run(ImageFile.Load(Photo), 64, 60, 140), ControlMode = mode }],
        };
        var expected = Api.Decode(Reference.Png(SmallSd, options));
        Assert.Equal(expected.Rgb, Api.Decode(reply.Png()).Rgb);
        var balanced = Api.Decode((await Client.PostAsync("/sdapi/v1/txt2img", Body(CannyUnit()))).Ok().Png());
        Assert.NotEqual(balanced.Rgb, expected.Rgb);
        Assert.Contains($"Pixel Perfect: False, Control Mode: {mode.ExtensionName()}\"", Api.Parameters(reply.Png()));
    }

    [Fact]
    public async Task Disabled_units_are_skipped_and_the_name_without_hash_is_enough()
    {
        var off = CannyUnit();
        off["enabled"] = false;
        off["model"] = "not-even-there"; // a disabled unit is not checked
        var skipped = (await Client.PostAsync("/sdapi/v1/txt2img", Body(off))).Ok();
        var plain = (await Client.PostAsync("/sdapi/v1/txt2img", Body())).Ok();
        Assert.Equal(Api.Decode(plain.Png()).Rgb, Api.Decode(skipped.Png()).Rgb);
        Assert.DoesNotContain("ControlNet 0", Api.Parameters(skipped.Png()));
    }

    [Fact]
    public async Task Img2img_takes_the_same_units()
    {
        JsonObject Img2Img(params JsonObject[] units)
        {
            var body = Body(units);
            body["init_images"] = new JsonArray(Api.Base64File(Photo));
            body["denoising_strength"] = 0.6;
            return body;
        }
        var steered = (await Client.PostAsync("/sdapi/v1/img2img", Img2Img(CannyUnit()))).Ok();
        var plain = (await Client.PostAsync("/sdapi/v1/img2img", Img2Img())).Ok();
        Assert.NotEqual(Api.Decode(plain.Png()).Rgb, Api.Decode(steered.Png()).Rgb);
        Assert.Contains("ControlNet 0: \"Module: canny, Model: tiny-canny [", Api.Parameters(steered.Png()));
    }

    [Theory]
    [InlineData("model", "nope", "'nope' is not in --controlnet-dir; it has tiny-canny [")]
    [InlineData("image", "bm90IGFuIGltYWdl", "body.alwayson_scripts.controlnet.args[0].image: ")]
    [InlineData("module", "openpose", "openpose")]
    [InlineData("control_mode", "Prompt first", "'Prompt first' is not a control mode; use 0/\"Balanced\"")]
    [InlineData("resize_mode", "Resize and Fill", "\"Resize and Fill\" (2) is not supported")]
    public async Task Bad_units_are_refused_with_a_one_line_422(string field, string value, string expected)
    {
        var unit = CannyUnit();
        unit[field] = value;
        var reply = await Client.PostAsync("/sdapi/v1/txt2img", Body(unit));
        Assert.Equal(422, reply.Code);
        string text = Messages(reply);
        output.WriteLine(text);
        Assert.Contains(expected, text);
        Assert.DoesNotContain("\n", text);
    }

    static string Messages(Reply reply) => reply.Json["detail"] is JsonArray detail
        ? string.Join(" | ", detail.Select(d => $"{string.Join(".", d!["loc"]!.AsArray().Select(l => l!.ToString()))}: {d["msg"]}"))
        : (string?)reply.Json["detail"] ?? reply.Json.ToJsonString();

    [Fact]
    public async Task A_controlnet_for_another_base_is_refused_with_422()
    {
        // small-sd15's ControlNet (cross-attention 64) on tiny-sd (32): the library's refusal, over HTTP.
        await using var server = await TestServer.StartAsync(o => o with { Model = Golden.Path("models", "tiny-sd"), ControlNetDir = fixture.Folder.Path });
        var reply = await server.Client.PostAsync("/sdapi/v1/txt2img", Body(CannyUnit()));
        string text = Messages(reply);
        output.WriteLine($"{reply.Code}: {text}");
        Assert.Equal(422, reply.Code);
        Assert.DoesNotContain("\n", text);
    }
}
