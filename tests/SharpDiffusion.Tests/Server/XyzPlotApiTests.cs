using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// txt2img with script_name "x/y/z plot" and A1111's script_args over real HTTP: every cell is the picture the library
/// draws for that cell's options with the seed held, the grid comes first (then the cells with include_lone_images),
/// infotexts hold the grid's A1111 text and each cell's, and a bad axis is a 422 before anything runs.
/// </summary>
public class XyzPlotApiTests(ShippedServer fixture) : IClassFixture<ShippedServer>
{
    HttpClient Client => fixture.Client;

    /// <summary>script_args in xyz_grid.py's order: x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown,
    /// z_type, z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
    /// margin_size, csv_mode.</summary>
    static JsonArray Args(JsonNode xType, string xValues, JsonNode yType, string yValues, bool lone, JsonArray? yDropdown = null) =>
        [xType, xValues, new JsonArray(), yType, yValues, yDropdown ?? [], 0, "", new JsonArray(), true, lone, false, false, 0, false];

    [Fact]
    public async Task Steps_by_sampler_grid_answers_the_grid_then_the_librarys_cells()
    {
        var body = new JsonObject
        {
            ["prompt"] = "a green triangle", ["seed"] = 11, ["cfg_scale"] = 5, ["width"] = 64, ["height"] = 64,
            ["script_name"] = "X/Y/Z plot",
            // 4 = "Steps", 9 = "Sampler" in the script's txt2img axis list; the sampler values come from the dropdown.
            ["script_args"] = Args(4, "2-4 (+2)", 9, "", lone: true, yDropdown: ["Euler", "DDIM"]),
        };
        var reply = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(5, reply.ImageCount);                           // the grid, then 2 × 2 cells
        var cells = new[] { (2, "Euler"), (4, "Euler"), (2, "DDIM"), (4, "DDIM") };
        for (int i = 0; i < 4; i++)
        {
            var expected = Reference.Png(Repo.ShippedModel, Reference.Options("a green triangle", 11, cells[i].Item1, 5, cells[i].Item2) with { Width = 64, Height = 64 });
            Assert.Equal(Api.Decode(expected).Rgb, Api.Decode(reply.Png(i + 1)).Rgb);
        }
        var grid = Api.Decode(reply.Png(0));
        Assert.True(grid.Width > 128 && grid.Height > 128, $"{grid.Size}: no room for labels");
        var infotexts = reply.Info["infotexts"]!.AsArray().Select(n => (string)n!).ToList();
        Assert.Equal(5, infotexts.Count);
        Assert.Equal(infotexts[1] + ", Script: X/Y/Z plot, X Type: Steps, X Values: 2-4 (+2), Y Type: Sampler, Y Values: \"Euler,DDIM\"", infotexts[0]);
        Assert.Equal(infotexts[0], Api.Parameters(reply.Png(0)));
        Assert.Equal(1, (int)reply.Info["index_of_first_image"]!);

        body["script_args"] = Args(4, "2-4 (+2)", 9, "", lone: false, yDropdown: ["Euler", "DDIM"]);
        var gridOnly = (await Client.PostAsync("/sdapi/v1/txt2img", body)).Ok();
        Assert.Equal(1, gridOnly.ImageCount);                        // A1111 without include_lone_images: the grid alone
        Assert.Equal(grid.Rgb, Api.Decode(gridOnly.Png(0)).Rgb);
    }

    [Fact]
    public async Task Unsupported_axis_and_bad_values_are_422_before_anything_runs()
    {
        var scripts = (await Client.GetJsonAsync("/sdapi/v1/scripts")).Ok().Json;       // A1111 lists script titles lowercased
        Assert.Contains("x/y/z plot", scripts["txt2img"]!.AsArray().Select(n => (string)n!));
        var body = new JsonObject { ["prompt"] = "x", ["steps"] = 2, ["script_name"] = "x/y/z plot", ["script_args"] = Args(13, "1,2", 0, "", lone: false) };
        var refused = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, refused.Code);
        Assert.Contains("Sigma Churn", refused.Json.ToJsonString());
        body["script_args"] = Args("Steps", "two", 0, "", lone: false);
        var bad = await Client.PostAsync("/sdapi/v1/txt2img", body);
        Assert.Equal(422, bad.Code);
        Assert.Contains("not a whole number", bad.Json.ToJsonString());
    }
}
