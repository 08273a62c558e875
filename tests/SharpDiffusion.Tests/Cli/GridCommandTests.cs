using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Cli;

/// <summary>
/// `grid` (issue 26 item 6): AUTOMATIC1111's X/Y/Z plot from the command line. Each cell is what `generate` draws for
/// that cell's options (the golden tiny-sd cases for two guidance values, seed held), the grid holds the cells under
/// drawn labels with A1111's grid infotext, and a grid of more than 100 cells without --yes is refused with nothing written.
/// </summary>
[Collection(ProcessWide.Settings)]
public class GridCommandTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");
    const string Prompt = "a photograph of an astronaut riding a horse";

    static (int Code, string Out, string Err) Run(params string[] args) => GenerateCommandTests.Run(args);

    [Fact]
    public void Cfg_axis_draws_the_golden_cells_and_one_labelled_grid()
    {
        using var dir = new TempDir();
        string output = dir.File("grid.png");
        var (code, stdout, err) = Run("grid", "--model", TinySd, "--prompt", Prompt, "--seed", "42", "--steps", "20", "--scheduler", "LMS",
            "--x", "cfg=8,1", "--output", output);
        Assert.True(code == 0, err);
        Assert.Contains("grid.png", stdout);
        // Each cell is the golden diffusers picture of its guidance (seed 42 held in both).
        Golden.AssertPngWithinOneLevel(dir.File("grid-0.png"), "pipelines", "tiny-sd", "lms_seed42_20steps_g8.safetensors");
        Golden.AssertPngWithinOneLevel(dir.File("grid-1.png"), "pipelines", "tiny-sd", "lms_nocfg_seed42_20steps_g1.safetensors");

        var (w, h, rgb) = PngFile.Decode(output);
        var cells = new[] { "grid-0.png", "grid-1.png" }.Select(f => PngFile.Decode(dir.File(f))).ToList();
        Assert.Equal(2 * cells[0].Width, w);                      // no row labels: no left border
        int top = h - cells[0].Height;                            // the column labels' border
        Assert.True(top > 0, "the grid has no label border");
        for (int c = 0; c < 2; c++)
            Assert.Equal(cells[c].Rgb, Crop(rgb, w, c * cells[0].Width, top, cells[0].Width, cells[0].Height));
        var border = Crop(rgb, w, 0, 0, w, top);
        Assert.Contains((byte)0, border);                          // black text drawn on the white border
        Assert.True(border.Count(b => b == 255) > border.Length / 2, "the border is mostly white");
        // The two labels differ ("CFG Scale: 8.0", "CFG Scale: 1.0"): the left and right halves of the border differ.
        Assert.NotEqual(Crop(rgb, w, 0, 0, w / 2, top), Crop(rgb, w, w / 2, 0, w / 2, top));

        string info = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        string first = PngFile.ReadText(File.ReadAllBytes(dir.File("grid-0.png")))["parameters"];
        Assert.Equal(first + ", Script: X/Y/Z plot, X Type: CFG Scale, X Values: \"8,1\"", info);
    }

    [Fact]
    public void Two_axes_with_ranges_make_every_cell_with_the_seed_held()
    {
        using var dir = new TempDir();
        string output = dir.File("g.png");
        var (code, _, err) = Run("grid", "--model", TinySd, "--prompt", "a red horse", "--steps", "2", "--width", "32", "--height", "32",
            "--x", "steps=1-3 (+2)", "--y", "prompt-sr=red,blue", "--output", output);
        Assert.True(code == 0, err);
        var infos = Enumerable.Range(0, 4).Select(i => InfoText.Parse(PngFile.ReadText(File.ReadAllBytes(dir.File($"g-{i}.png")))["parameters"])).ToList();
        Assert.Equal(["1", "3", "1", "3"], infos.Select(i => i["Steps"]));                       // x fastest
        Assert.Equal(["a red horse", "a red horse", "a blue horse", "a blue horse"], infos.Select(i => i["Prompt"]));
        Assert.Single(infos.Select(i => i["Seed"]).Distinct());                                 // a random seed, drawn once
        var (w, h, _) = PngFile.Decode(output);
        Assert.True(w > 2 * 32 && h > 2 * 32, $"{w}x{h}: no room for the row and column labels");
        Assert.Contains("Y Type: Prompt S/R, Y Values: \"red,blue\"", PngFile.ReadText(File.ReadAllBytes(output))["parameters"]);
    }

    [Fact]
    public void More_than_100_cells_without_yes_is_refused_and_nothing_is_written()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("grid", "--model", TinySd, "--prompt", Prompt, "--x", "steps=1-11", "--y", "cfg=1-10", "--output", dir.File("g.png"));
        Assert.Equal(2, code);
        Assert.Contains("110 cells", err);
        Assert.Contains("--yes", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("model=a,b", "cannot be an axis")]
    [InlineData("colour=red", "not a generate option")]
    [InlineData("steps=ten", "not a whole number")]
    [InlineData("steps", "NAME=VALUES")]
    public void Bad_axes_are_one_line_errors(string axis, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("grid", "--model", TinySd, "--prompt", Prompt, "--x", axis, "--output", dir.File("g.png"));
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Theory]
    [InlineData("--preview", "p.png")]
    [InlineData("--preview-every", "2")]
    [InlineData("--preview-vae", "taesd")]
    public void Live_preview_options_are_refused_in_one_line_naming_the_option(string option, string value)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("grid", "--model", TinySd, "--prompt", Prompt, "--x", "cfg=8,1", option, value, "--output", dir.File("g.png"));
        Assert.Equal(2, code);
        Assert.Contains($"{option} ", err);
        Assert.Contains("no live preview", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    static byte[] Crop(byte[] rgb, int width, int x, int y, int w, int h)
    {
        var result = new byte[w * h * 3];
        for (int row = 0; row < h; row++)
            Array.Copy(rgb, ((y + row) * width + x) * 3, result, row * w * 3, w * 3);
        return result;
    }
}

/// <summary>A1111's axis value syntax, as its wiki documents it ("1-5" = 1, 2, 3, 4, 5; "1-10 (+2)" = 1, 3, 5, 7, 9;
/// "10-20 [3]" = 10, 15, 20; number ranges likewise; CSV quoting for values with commas), quirks included.</summary>
public class AxisValuesTests
{
    [Theory]
    [InlineData("1-5", AxisValueType.Integer, "1 2 3 4 5")]
    [InlineData("1-10 (+2)", AxisValueType.Integer, "1 3 5 7 9")]
    [InlineData("10-20 [3]", AxisValueType.Integer, "10 15 20")]
    [InlineData("5-1 (-2)", AxisValueType.Integer, "5 3")]          // A1111 adds 1 to the end whatever the step's sign
    [InlineData("10, 20,30", AxisValueType.Integer, "10 20 30")]
    [InlineData("1-2 (+0.5)", AxisValueType.Number, "1 1.5 2")]
    [InlineData("4-8 [3]", AxisValueType.Number, "4 6 8")]
    [InlineData("7.5, 4", AxisValueType.Number, "7.5 4")]
    public void Ranges_expand_as_a1111(string text, AxisValueType type, string expected) =>
        Assert.Equal(expected.Split(' '), AxisValues.Parse(text, type, "x"));

    [Fact]
    public void Quoted_values_keep_their_commas() =>
        Assert.Equal(["Euler a", "DPM++ 2M, Karras", "say \"hi\""], AxisValues.Parse("Euler a, \"DPM++ 2M, Karras\", \"say \"\"hi\"\"\"", AxisValueType.Text, "x"));

    [Fact]
    public void A_huge_range_is_refused_before_it_is_built()
    {
        var e = Assert.Throws<ArgumentException>(() => AxisValues.Parse("1-1000000000", AxisValueType.Integer, "--x steps"));
        Assert.Contains("--x steps", e.Message);
    }
}

/// <summary>A1111's grid layout (image_grid, draw_grid_annotations) with the bitmap font.</summary>
public class ImageGridTests
{
    static RgbImage Solid(int w, int h, byte value) => new(w, h, Enumerable.Repeat(value, w * h * 3).ToArray());

    [Fact]
    public void Cells_sit_below_and_right_of_the_labels_and_text_is_drawn_only_in_the_borders()
    {
        var cells = Enumerable.Range(0, 6).Select(i => Solid(40, 30, (byte)(100 + i))).ToList();
        var grid = ImageGrid.Xyz(cells, ["a: 1", "a: 2", "a: 3"], ["b: 1", "b: 2"], [""]);
        int padLeft = 40 * 3 / 4, padTop = grid.Height - 2 * 30;            // A1111: ¾ of a cell left of the rows
        Assert.Equal(padLeft + 3 * 40, grid.Width);
        Assert.True(padTop > 0);
        for (int i = 0; i < 6; i++)
        {
            int x0 = padLeft + i % 3 * 40, y0 = padTop + i / 3 * 30;
            for (int y = y0; y < y0 + 30; y++)
            for (int x = x0; x < x0 + 40; x++)
                Assert.Equal(100 + i, grid.Rgb[(y * grid.Width + x) * 3]);
        }
        bool Dark(int x, int y) => grid.Rgb[(y * grid.Width + x) * 3] == 0;
        Assert.Contains(true, Enumerable.Range(0, padTop).SelectMany(y => Enumerable.Range(padLeft, 3 * 40).Select(x => Dark(x, y))));   // column labels
        Assert.Contains(true, Enumerable.Range(padTop, 60).SelectMany(y => Enumerable.Range(0, padLeft).Select(x => Dark(x, y))));       // row labels
    }

    [Fact]
    public void Every_printable_character_has_a_distinct_glyph()
    {
        var drawn = new HashSet<string>();
        for (char c = '!'; c <= '~'; c++)
        {
            var rgb = new byte[8 * 8 * 3];
            BitmapFont.Draw(rgb, 8, 8, 0, 0, c.ToString(), 1, (255, 255, 255));
            Assert.True(drawn.Add(Convert.ToHexString(rgb)), $"'{c}' looks like another character");
        }
    }
}
