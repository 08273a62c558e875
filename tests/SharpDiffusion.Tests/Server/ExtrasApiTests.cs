using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models.Upscalers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Server;

/// <summary>A server with `--upscaler-dir` holding the golden ESRGAN files (golden/v3/esrgan).</summary>
public sealed class UpscalerServer : FolderServer
{
    public string Directory => Folder.Path;

    public static readonly string[] Models = ["compact_x4_nf16", "esrgan_old_layout_nf16_nb1", "realesrgan_x2plus_layout_nf16_nb1", "realesrgan_x4plus_layout_nf16_nb2"];

    protected override void Fill()
    {
        foreach (var name in Models)
            File.Copy(Golden.Path("v3", "esrgan", name + ".pth"), Folder.File(name + ".pth"));
        File.WriteAllText(Folder.File("notes.txt"), "not a model");
    }

    protected override ServerOptions Configure(ServerOptions o) => o with { UpscalerDir = Folder.Path };
}

/// <summary>
/// AUTOMATIC1111's Extras API over real HTTP (issue 26 item 3): /upscalers lists the built-ins and the models of
/// --upscaler-dir by file stem, /latent-upscale-modes the latent modes, extra-single-image and extra-batch-images upscale
/// through the job queue (the golden Real-ESRGAN case met through the API), and hr_upscaler names a model of the folder
/// (one rule, HiresFixOptions.CheckUpscaler: paths are refused from clients).
/// </summary>
public class ExtrasApiTests(UpscalerServer fixture, ITestOutputHelper log) : IClassFixture<UpscalerServer>
{
    HttpClient Client => fixture.Client;
    static string Input => Golden.Path("v3", "esrgan", "input_28x20.png");

    [Fact]
    public async Task Upscalers_lists_the_builtins_then_the_folders_models_by_stem()
    {
        var list = (await Client.GetJsonAsync("/sdapi/v1/upscalers")).Ok().Json.AsArray();
        Assert.Equal([.. ExtrasUpscale.BuiltIn, .. UpscalerServer.Models], list.Select(i => (string)i!["name"]!).ToArray());
        foreach (var item in list)
            foreach (var key in new[] { "name", "model_name", "model_path", "model_url", "scale" })
                Assert.True(item!.AsObject().ContainsKey(key), $"upscaler item has no '{key}'");
        var model = list.Single(i => (string)i!["name"]! == "compact_x4_nf16")!;
        Assert.Equal(Path.Combine(fixture.Directory, "compact_x4_nf16.pth"), (string?)model["model_path"]);
        Assert.Equal("ESRGAN", (string?)model["model_name"]);

        var modes = (await Client.GetJsonAsync("/sdapi/v1/latent-upscale-modes")).Ok().Json.AsArray();
        Assert.Equal(HiresFixOptions.LatentUpscalers.Keys, modes.Select(m => (string)m!["name"]!));
    }

    /// <summary>The golden x4plus case through the API: the PNG's bytes are spandrel's output clamped and rounded, within
    /// one level (the model is within 1e-4 of it).</summary>
    [Fact]
    public async Task Extra_single_image_meets_the_golden_realesrgan_case()
    {
        var body = new JsonObject
        {
            ["image"] = Api.Base64File(Input),
            ["upscaler_1"] = "realesrgan_x4plus_layout_nf16_nb2",
            ["upscaling_resize"] = 4,
        };
        var reply = (await Client.PostAsync("/sdapi/v1/extra-single-image", body)).Ok();
        var png = Convert.FromBase64String((string)reply.Json["image"]!);
        var picture = Api.Decode(png);
        var golden = Golden.Load("v3", "esrgan", "realesrgan_x4plus_layout_nf16_nb2.safetensors")["output"];   // [1, 3, 80, 112]
        using var expected = golden.clamp(0, 1).mul(255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();
        Assert.Equal((112, 80), (picture.Width, picture.Height));
        int worst = picture.Rgb.Zip(expected.data<byte>().ToArray(), (a, b) => Math.Abs(a - b)).Max();
        log.WriteLine($"extra-single-image vs spandrel: max {worst} levels");
        Assert.True(worst <= 1, $"{worst} levels from spandrel's output");
        Assert.Equal("<p>Postprocess upscale by: 4.0, Postprocess upscaler: realesrgan_x4plus_layout_nf16_nb2</p>", (string?)reply.Json["html_info"]);
        Assert.Equal("Postprocess upscale by: 4.0, Postprocess upscaler: realesrgan_x4plus_layout_nf16_nb2", PngFile.ReadText(png)["postprocessing"]);
    }

    /// <summary>Resize to a size with crop and a second upscaler blended in: the answer equals the library's
    /// <see cref="ExtrasUpscale"/> for the same fields, for each picture of the batch, in order.</summary>
    [Fact]
    public async Task Extra_batch_images_scales_to_a_size_crops_and_blends_upscaler_2()
    {
        var small = ImageFile.Load(Input);
        var other = PictureResize.Lanczos(small, 20, 28);
        var body = new JsonObject
        {
            ["imageList"] = new JsonArray(
                new JsonObject { ["data"] = Api.Base64File(Input), ["name"] = "a.png" },
                new JsonObject { ["data"] = Convert.ToBase64String(PngFile.Encode(other.Width, other.Height, other.Rgb)), ["name"] = "b.png" }),
            ["resize_mode"] = 1,
            ["upscaling_resize_w"] = 64,
            ["upscaling_resize_h"] = 48,
            ["upscaler_1"] = "compact_x4_nf16",
            ["upscaler_2"] = "Lanczos",
            ["extras_upscaler_2_visibility"] = 0.25,
        };
        var reply = (await Client.PostAsync("/sdapi/v1/extra-batch-images", body)).Ok();
        var images = reply.Json["images"]!.AsArray();
        Assert.Equal(2, images.Count);
        var upscale = new ExtrasUpscale
        {
            ResizeMode = 1, Width = 64, Height = 48, Upscaler1 = "compact_x4_nf16", Upscaler2 = "Lanczos", Upscaler2Visibility = 0.25,
            UpscalerDirectory = fixture.Directory,
        };
        foreach (var (picture, i) in new[] { small, other }.Select((p, i) => (p, i)))
        {
            var (expected, info) = upscale.Run(picture, 4096);
            var got = Api.Decode(Convert.FromBase64String((string)images[i]!));
            Assert.Equal((64, 48), (got.Width, got.Height));
            Assert.Equal(expected.Rgb, got.Rgb);
            Assert.Contains("Postprocess crop to: 64x48", info);
        }
        Assert.Contains("Postprocess upscaler 2: Lanczos", (string?)reply.Json["html_info"]);
    }

    [Fact]
    public async Task Unknown_upscaler_and_missing_image_are_one_line_422s()
    {
        var unknown = await Client.PostAsync("/sdapi/v1/extra-single-image", new JsonObject { ["image"] = Api.Base64File(Input), ["upscaler_1"] = "4x-UltraSharp" });
        Assert.Equal(422, unknown.Code);
        string message = unknown.Json.ToJsonString();
        Assert.Contains("upscaler_1", message);
        Assert.Contains("compact_x4_nf16", message);                     // the names this server has
        var missing = await Client.PostAsync("/sdapi/v1/extra-single-image", new JsonObject { ["upscaler_1"] = "Lanczos" });
        Assert.Equal(422, missing.Code);
        Assert.Contains("image", missing.Json.ToJsonString());
    }

    /// <summary>hr_upscaler naming a model of --upscaler-dir draws what the library draws with that model file; the same
    /// model given as a path is refused (a client names models, not server files), by the library's one rule.</summary>
    [Fact]
    public async Task Hires_fix_takes_a_model_of_the_upscaler_dir_by_name_and_refuses_paths()
    {
        var body = new JsonObject
        {
            ["prompt"] = "a red circle", ["seed"] = 4, ["steps"] = 3, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64,
            ["enable_hr"] = true, ["hr_scale"] = 1.5, ["hr_upscaler"] = "compact_x4_nf16", ["denoising_strength"] = 0.5,
        };
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        var expected = Reference.Png(Repo.ShippedModel, Reference.Options("a red circle", 4, 3, 5) with
        {
            Width = 64, Height = 64,
            Hires = new HiresFixOptions { Scale = 1.5, Upscaler = Path.Combine(fixture.Directory, "compact_x4_nf16.pth"), Strength = 0.5 },
        });
        Assert.Equal(Api.Decode(expected).Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Contains("Hires upscaler: compact_x4_nf16", Api.Parameters(reply.Png()));

        body["hr_upscaler"] = Path.Combine(fixture.Directory, "compact_x4_nf16.pth");
        var refused = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, refused.Code);
        Assert.Contains("hr_upscaler", refused.Json.ToJsonString());
    }

    /// <summary>The library rule itself: a CLI caller may give a file path; a name is found in UpscalerDirectory; a server
    /// (AllowModelPaths false) only names.</summary>
    [Fact]
    public void Hires_upscaler_rule_resolves_names_and_paths_in_one_place()
    {
        string path = Path.Combine(fixture.Directory, "compact_x4_nf16.pth");
        Assert.Equal(path, new HiresFixOptions { Upscaler = path }.ModelPath);
        Assert.Equal(path, new HiresFixOptions { Upscaler = "compact_x4_nf16", UpscalerDirectory = fixture.Directory, AllowModelPaths = false }.ModelPath);
        Assert.Null(new HiresFixOptions { Upscaler = "Latent (bicubic)", UpscalerDirectory = fixture.Directory }.ModelPath);
        var refused = Assert.Throws<ArgumentException>(() => new HiresFixOptions { Upscaler = path, AllowModelPaths = false, UpscalerDirectory = fixture.Directory }.Validate());
        Assert.Contains("use one of", refused.Message);
        Assert.Throws<ArgumentException>(() => new HiresFixOptions { Upscaler = Path.Combine(fixture.Directory, "absent.pth") }.Validate());
    }
}
