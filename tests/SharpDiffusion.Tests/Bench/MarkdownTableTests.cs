using System.Globalization;
using SharpDiffusion.Cli.Bench;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Tests.Bench;

/// <summary>The benches' shared table printer: GitHub markdown with number columns right-aligned, cells formatted the same
/// under any culture, and a row that does not fit the columns refused in one line naming them.</summary>
public class MarkdownTableTests
{
    [Fact]
    public void Header_alignment_row_and_cells_are_github_markdown()
    {
        var table = new MarkdownTable(Label("dtype"), Number("step s"), Label("size"));
        table.Add($"bf16", $"{1.25:F2}", $"{64}x{64}");
        Assert.Equal(["| dtype | step s | size |", "|---|---:|---|", "| bf16 | 1.25 | 64x64 |"], table.Lines());
    }

    [Fact]
    public void Cells_are_formatted_with_the_invariant_culture()
    {
        var before = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE"); // a decimal comma
            var table = new MarkdownTable(Number("GB"), Number("of roofline"));
            table.Add($"{1234.5:F1}", $"{0.5:P0}");
            var row = table.Lines().Last();
            Assert.Equal(FormattableString.Invariant($"| {1234.5:F1} | {0.5:P0} |"), row);
            Assert.DoesNotContain(",", row);
        }
        finally
        {
            CultureInfo.CurrentCulture = before;
        }
    }

    [Fact]
    public void A_row_of_the_wrong_width_is_refused_in_one_line()
    {
        var table = new MarkdownTable(Label("dtype"), Number("step s"));
        var e = Assert.Throws<ArgumentException>(() => table.Add($"bf16"));
        Assert.Contains("1 cells", e.Message);
        Assert.Contains("dtype, step s", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
