using SharpDiffusion.Imaging;

namespace SharpDiffusion.Pipelines;

/// <summary>AUTOMATIC1111's X/Y/Z plot script (scripts/xyz_grid.py): what is shared by every front end that draws one
/// (the CLI's `grid`, the API's script_name "x/y/z plot"). The axis values are <see cref="AxisValues"/>, the picture
/// <see cref="ImageGrid.Xyz"/>.</summary>
public static class XyzPlot
{
    /// <summary>The script's title, as its infotext names it.</summary>
    public const string Title = "X/Y/Z plot";

    /// <summary>The most cells a grid has without the caller's explicit consent (the CLI's --yes).</summary>
    public const int MaxCellsUnconfirmed = 100;

    /// <summary>The grid's infotext as A1111 writes it: the first cell's, with "Script: X/Y/Z plot" and each axis's
    /// "X Type" / "X Values" (the values as typed) appended to its last line, X then Y then Z; an axis that is not used
    /// is left out.</summary>
    public static string GridInfoText(string firstCellInfoText, params (string Letter, string Type, string Values)?[] axes)
    {
        var pairs = new List<string> { $"Script: {Title}" };
        foreach (var axis in axes)
            if (axis is var (letter, type, values))
            {
                pairs.Add($"{letter} Type: {InfoText.Quote(type)}");
                pairs.Add($"{letter} Values: {InfoText.Quote(values)}");
            }
        return firstCellInfoText + ", " + string.Join(", ", pairs);
    }
}
