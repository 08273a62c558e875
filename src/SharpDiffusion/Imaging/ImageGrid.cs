namespace SharpDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's grids (modules/images.py): <see cref="Grid"/> is image_grid (pictures in rows, left to right, on
/// black), <see cref="Annotate"/> is draw_grid_annotations (a white border above and left of the cells with each
/// column's and row's label, wrapped and centred), and <see cref="Xyz"/> is the X/Y/Z plot's layout (one annotated grid
/// per Z value, side by side under the Z labels). Labels are drawn with <see cref="BitmapFont"/>.
/// </summary>
public static class ImageGrid
{
    static readonly (byte, byte, byte) Text = (0, 0, 0);

    /// <summary>image_grid: <paramref name="rows"/> rows of ceil(n / rows) columns, every cell the first picture's size.</summary>
    public static RgbImage Grid(IReadOnlyList<RgbImage> images, int rows)
    {
        if (images.Count == 0 || rows < 1) throw new ArgumentException("A grid needs at least one picture and one row.");
        int cols = (images.Count + rows - 1) / rows, w = images[0].Width, h = images[0].Height;
        var rgb = new byte[cols * w * rows * h * 3];
        for (int i = 0; i < images.Count; i++)
            Paste(rgb, cols * w, rows * h, images[i], i % cols * w, i / cols * h);
        return new RgbImage(cols * w, rows * h, rgb);
    }

    /// <summary>
    /// draw_grid_annotations: the grid of <paramref name="cellWidth"/>×<paramref name="cellHeight"/> cells with
    /// <paramref name="columnTexts"/> above the columns and <paramref name="rowTexts"/> left of the rows (a left border of
    /// ¾ of a cell when any row has text; a top border as tall as the tallest column label plus one line space on each
    /// side, none when every column label is empty), and <paramref name="margin"/> pixels between cells.
    /// </summary>
    public static RgbImage Annotate(RgbImage grid, int cellWidth, int cellHeight, IReadOnlyList<string> columnTexts,
        IReadOnlyList<string> rowTexts, int margin = 0)
    {
        int cols = grid.Width / cellWidth, rows = grid.Height / cellHeight;
        if (cols != columnTexts.Count || rows != rowTexts.Count)
            throw new ArgumentException($"A {cols}x{rows} grid needs {cols} column and {rows} row labels; got {columnTexts.Count} and {rowTexts.Count}.");
        // A1111's font size is (w + h) // 25 pixels; our glyphs are 8 pixels a cell, so the scale is that over 8 (at least 1).
        int fontSize = (cellWidth + cellHeight) / 25, scale = Math.Max(1, fontSize / 8), spacing = Math.Max(1, 8 * scale / 2);
        int padLeft = rowTexts.Any(t => t.Length > 0) ? cellWidth * 3 / 4 : 0;
        var columnLines = columnTexts.Select(t => Wrap(t, cellWidth, scale)).ToList();
        var rowLines = rowTexts.Select(t => Wrap(t, padLeft, scale)).ToList();
        // As A1111: a column block is its lines plus the spaces between; a row block (its quirk) leaves out every space.
        var columnHeights = columnLines.Select(lines => lines.Sum(l => l.Height + spacing) - spacing).ToList();
        var rowHeights = rowLines.Select(lines => lines.Sum(l => l.Height + spacing) - spacing * lines.Count).ToList();
        int padTop = columnHeights.Sum() == 0 ? 0 : columnHeights.Max() + spacing * 2;

        int width = grid.Width + padLeft + margin * (cols - 1), height = grid.Height + padTop + margin * (rows - 1);
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);
        for (int row = 0; row < rows; row++)
        for (int col = 0; col < cols; col++)
            Paste(rgb, width, height, Crop(grid, col * cellWidth, row * cellHeight, cellWidth, cellHeight),
                padLeft + (cellWidth + margin) * col, padTop + (cellHeight + margin) * row);
        for (int col = 0; col < cols; col++)
            DrawLines(rgb, width, height, padLeft + (cellWidth + margin) * col + cellWidth / 2.0, padTop / 2.0 - columnHeights[col] / 2.0,
                columnLines[col], scale, cellWidth, spacing);
        for (int row = 0; row < rows; row++)
            DrawLines(rgb, width, height, padLeft / 2.0, padTop + (cellHeight + margin) * row + cellHeight / 2.0 - rowHeights[row] / 2.0,
                rowLines[row], scale, padLeft, spacing);
        return new RgbImage(width, height, rgb);
    }

    /// <summary>
    /// The X/Y/Z plot's picture (scripts/xyz_grid.py's draw_xyz_grid): for each Z value, the cells of that Z as a grid of
    /// <paramref name="xLabels"/>.Count columns and <paramref name="yLabels"/>.Count rows, annotated; then those grids in
    /// one row under the Z labels. <paramref name="cells"/> are in A1111's order: x fastest, then y, then z.
    /// </summary>
    public static RgbImage Xyz(IReadOnlyList<RgbImage> cells, IReadOnlyList<string> xLabels, IReadOnlyList<string> yLabels,
        IReadOnlyList<string> zLabels, int margin = 0)
    {
        int perGrid = xLabels.Count * yLabels.Count;
        if (cells.Count != perGrid * zLabels.Count)
            throw new ArgumentException($"An X/Y/Z grid of {xLabels.Count}x{yLabels.Count}x{zLabels.Count} needs {perGrid * zLabels.Count} pictures; got {cells.Count}.");
        var first = cells[0];
        var subGrids = Enumerable.Range(0, zLabels.Count).Select(z =>
        {
            var slice = cells.Skip(z * perGrid).Take(perGrid).Select(c => c.Width == first.Width && c.Height == first.Height ? c : c.Resize(first.Width, first.Height)).ToList();
            return Annotate(Grid(slice, yLabels.Count), first.Width, first.Height, xLabels, yLabels, margin);
        }).ToList();
        var zGrid = Grid(subGrids, 1);
        return Annotate(zGrid, subGrids[0].Width, subGrids[0].Height, zLabels, [""]);
    }

    /// <summary>A1111's wrap: words joined while the line fits <paramref name="allowed"/> pixels, at least one word a line.</summary>
    static List<(string Text, int Width, int Height)> Wrap(string text, int allowed, int scale)
    {
        var lines = new List<string> { "" };
        foreach (var word in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            string line = $"{lines[^1]} {word}".Trim();
            if (BitmapFont.Width(line, scale) <= allowed) lines[^1] = line;
            else lines.Add(word);
        }
        return lines.Select(l => (l, BitmapFont.Width(l, scale), BitmapFont.Height(l, scale))).ToList();
    }

    /// <summary>Each line centred on (<paramref name="centreX"/>, its slot's middle), slots from <paramref name="top"/> down;
    /// a line still wider than <paramref name="allowed"/> is drawn smaller (A1111 shrinks the font), down to scale 1.</summary>
    static void DrawLines(byte[] rgb, int width, int height, double centreX, double top, List<(string Text, int Width, int Height)> lines,
        int scale, int allowed, int spacing)
    {
        double y = top;
        foreach (var (text, _, h) in lines)
        {
            int s = scale;
            while (s > 1 && BitmapFont.Width(text, s) > allowed) s--;
            int w = BitmapFont.Width(text, s), drawnHeight = BitmapFont.Height(text, s);
            BitmapFont.Draw(rgb, width, height, (int)Math.Round(centreX - w / 2.0), (int)Math.Round(y + (h - drawnHeight) / 2.0), text, s, Text);
            y += h + spacing;
        }
    }

    static RgbImage Crop(RgbImage image, int x, int y, int w, int h)
    {
        var rgb = new byte[w * h * 3];
        for (int row = 0; row < h; row++)
            Array.Copy(image.Rgb, ((y + row) * image.Width + x) * 3, rgb, row * w * 3, w * 3);
        return new RgbImage(w, h, rgb);
    }

    static void Paste(byte[] rgb, int width, int height, RgbImage image, int x, int y)
    {
        int w = Math.Min(image.Width, width - x);
        for (int row = 0; row < image.Height && y + row < height; row++)
            Array.Copy(image.Rgb, row * image.Width * 3, rgb, ((y + row) * width + x) * 3, w * 3);
    }
}
