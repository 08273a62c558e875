using System.Text.Json.Nodes;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server;
using SharpDiffusion.Tests.Refiner;

namespace SharpDiffusion.Tests.Server;

/// <summary>A server on the shipped (SD 1.x) model whose models folder holds the golden tiny-sdxl and tiny-sdxl-refiner.</summary>
public sealed class RefinerModelsServer : FolderServer
{
    protected override void Fill()
    {
        Directory.CreateSymbolicLink(Folder.File("tiny-sdxl"), Golden.Path("models", "tiny-sdxl"));
        Directory.CreateSymbolicLink(Folder.File("tiny-sdxl-refiner"), Golden.Path("v3", "models", "tiny-sdxl-refiner"));
    }

    protected override ServerOptions Configure(ServerOptions o) => o with { ModelsDir = Folder.Path };
}

/// <summary>
/// AUTOMATIC1111's refiner_checkpoint and refiner_switch_at over real HTTP: an SDXL model refined by a refiner of the
/// models folder draws what the library's <see cref="RefinerPass"/> draws for the same options, with A1111's infotext;
/// a refiner for a model that is not SDXL is a one-line 422.
/// </summary>
public class RefinerApiTests(RefinerModelsServer fixture) : IClassFixture<RefinerModelsServer>
{
    HttpClient Client => fixture.Client;

    static JsonObject Body(string? model) => new()
    {
        ["prompt"] = "a mountain lake", ["negative_prompt"] = "fog", ["seed"] = 14, ["steps"] = 6, ["cfg_scale"] = 6, ["width"] = 64, ["height"] = 64,
        ["refiner_checkpoint"] = "tiny-sdxl-refiner", ["refiner_switch_at"] = 0.7,
        ["override_settings"] = model is null ? null : new JsonObject { ["sd_model_checkpoint"] = model },
    };

    [Fact]
    public async Task Refiner_checkpoint_draws_the_librarys_base_then_refiner_and_writes_its_infotext()
    {
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", Body("tiny-sdxl"))).Ok();
        var options = Reference.Options("a mountain lake", 14, 6, 6, negative: "fog") with
        {
            Width = 64, Height = 64, Refiner = new RefinerOptions { Refiner = SdxlRefinerTests.Refiner, SwitchAt = 0.7 },
        };
        using var expected = SdxlRefinerTests.Base.Generate(options);
        Assert.Equal(expected.Images[0].Rgb, Api.Decode(reply.Png()).Rgb);
        Assert.Contains("Refiner: tiny-sdxl-refiner, Refiner switch at: 0.7", Api.Parameters(reply.Png()));
    }

    [Fact]
    public async Task A_refiner_for_a_model_that_is_not_SDXL_is_a_one_line_422()
    {
        var refused = await Client.PostAsync("/sdapi/v1/txt2img", Body(null));
        Assert.Equal(422, refused.Code);
        string body = refused.Body!.ToJsonString();
        Assert.Contains("SDXL base models", body);
        Assert.DoesNotContain("\\n", body);
    }
}
