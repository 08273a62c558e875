using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Tests.Server;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>sd-webui-controlnet's /controlnet/module_list and /controlnet/detect over HTTP: our four modules with the
/// extension's sliders; detect's maps equal OpenCV's; its 422 answers (unknown module, no image, model-based annotator).</summary>
public class ControlNetEndpointTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    static readonly string Photo = Golden.Path("img2img", "init_64x64.png");

    [Fact]
    public async Task Module_list_gives_the_model_free_modules_with_their_sliders()
    {
        var json = (await Client.GetJsonAsync("/controlnet/module_list")).Ok().Json;
        Assert.Equal(ControlPreprocessor.All.Select(p => p.Name), json["module_list"]!.AsArray().Select(n => (string?)n));
        var canny = json["module_detail"]!["canny"]!;
        Assert.False((bool)canny["model_free"]!);
        var sliders = canny["sliders"]!.AsArray();
        Assert.Equal(["Resolution", "Low Threshold", "High Threshold"], sliders.Select(s => (string?)s!["name"]));
        Assert.Equal(ControlPreprocessor.Canny.ThresholdA!.Value, (double)sliders[1]!["value"]!);
        Assert.Equal(ControlPreprocessor.Canny.ThresholdB!.Value, (double)sliders[2]!["value"]!);
        Assert.Empty(json["module_detail"]!["invert"]!["sliders"]!.AsArray());

        var aliases = (await Client.GetJsonAsync("/controlnet/module_list?alias_names=true")).Ok().Json;
        Assert.Contains("invert (from white bg & black line)", aliases["module_list"]!.AsArray().Select(n => (string?)n));
    }

    [Fact]
    public async Task Detect_canny_answers_opencvs_edges_for_every_input_image()
    {
        var body = new JsonObject
        {
            ["controlnet_module"] = "canny",
            ["controlnet_input_images"] = new JsonArray(Api.Base64File(Photo), Api.Base64File(Golden.Path("controlnet", "control_edges_64x64.png"))),
            ["controlnet_processor_res"] = 64,
            ["controlnet_threshold_a"] = 60,
            ["controlnet_threshold_b"] = 140,
        };
        var reply = (await Client.PostAsync("/controlnet/detect", body)).Ok();
        Assert.Equal("Success", (string?)reply.Json["info"]);
        Assert.Equal(2, reply.ImageCount);
        var photo = ImageFile.Load(Photo);
        Assert.Equal(OpenCvReference.A1111Canny(photo, 60, 140).Rgb, Api.Decode(reply.Png(0)).Rgb);
    }

    [Fact]
    public async Task Detect_defaults_are_the_extensions_when_fields_are_missing_or_out_of_range()
    {
        string photo = Api.Base64File(Photo);
        var given = await Client.PostAsync("/controlnet/detect", new JsonObject
        {
            ["controlnet_module"] = "canny", ["controlnet_input_images"] = new JsonArray(photo),
            ["controlnet_processor_res"] = -100, ["controlnet_threshold_a"] = -100, ["controlnet_threshold_b"] = -100,
        });
        var expected = ControlPreprocessor.Canny.Run(ImageFile.Load(Photo));
        Assert.Equal(expected.Rgb, Api.Decode(given.Ok().Png(0)).Rgb);
        Assert.Equal("512x512", expected.Size);

        var none = await Client.PostAsync("/controlnet/detect", new JsonObject { ["controlnet_input_images"] = new JsonArray(photo) });
        Assert.Equal(ImageFile.Load(Photo).Rgb, Api.Decode(none.Ok().Png(0)).Rgb);
    }

    [Theory]
    [InlineData("openpose", "needs an annotator model SharpDiffusion does not run")]
    [InlineData("depth_midas", "make the map elsewhere and pass it with module 'none'")]
    [InlineData("INVALID", "Module not available")]
    public async Task Detect_refuses_modules_it_cannot_run_with_422(string module, string detail)
    {
        var reply = await Client.PostAsync("/controlnet/detect", new JsonObject
        {
            ["controlnet_module"] = module, ["controlnet_input_images"] = new JsonArray(Api.Base64File(Photo)),
        });
        Assert.Equal(422, reply.Code);
        Assert.Contains(detail, (string?)reply.Json["detail"]);
    }

    [Fact]
    public async Task Detect_without_images_or_with_a_bad_one_answers_422()
    {
        var empty = await Client.PostAsync("/controlnet/detect", new JsonObject { ["controlnet_module"] = "canny" });
        Assert.Equal(422, empty.Code);
        Assert.Equal("No image selected", (string?)empty.Json["detail"]);
        var bad = await Client.PostAsync("/controlnet/detect", new JsonObject
        {
            ["controlnet_module"] = "canny", ["controlnet_input_images"] = new JsonArray("bm90IGFuIGltYWdl"),
        });
        Assert.Equal(422, bad.Code);
        Assert.Contains("controlnet_input_images[0]", (string?)bad.Json["detail"]);
    }
}
