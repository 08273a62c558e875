namespace SharpDiffusion.Training;

/// <summary>What a simple analysis finds in a one-shape image.</summary>
public sealed record SceneReading(NamedColor Background, NamedColor? Color, ShapePosition? Position, ShapeSize? Size, ShapeKind? Shape,
    int Area, float CentroidX, float CentroidY);

/// <summary>
/// Reads back a generated one-shape picture: the background is the median colour of the border; the shape is the
/// largest 4-connected region of pixels far from it. Its colour is the nearest palette colour to the region's median,
/// its position the anchor nearest its centroid, its size small or large by its bounding box, and its kind the
/// template (drawn by <see cref="ShapeRasterizer"/> into the same bounding box) that overlaps it best.
/// </summary>
public static class SceneJudge
{
    /// <summary>RGB distance from the background beyond which a pixel belongs to a shape.</summary>
    public const double ForegroundDistance = 60;
    /// <summary>Bounding-box extent (pixels) separating small (7–9 px half-size) from large (13–15 px) shapes.</summary>
    public const int LargeExtent = 22;
    const int MinArea = 12;

    /// <param name="kinds">the templates the shape is matched against (default: <see cref="ShapeVocabulary.TrainedShapes"/>,
    /// what the shipped model knows, so its held-out numbers stay comparable); the LoRA proof adds its new shape (<see cref="ShapeLoraDemo"/>).</param>
    public static SceneReading Read(byte[] rgb, int size = ShapeVocabulary.ImageSize, IReadOnlyList<ShapeKind>? kinds = null)
    {
        var border = new List<int>();
        for (int i = 0; i < size; i++)
            foreach (var (x, y) in new[] { (i, 0), (i, size - 1), (0, i), (size - 1, i) })
                border.Add(y * size + x);
        var (br, bg, bb) = Median(rgb, border);
        var background = Nearest(br, bg, bb);

        var foreground = new bool[size * size];
        for (int i = 0; i < size * size; i++)
            foreground[i] = Distance(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], br, bg, bb) > ForegroundDistance;
        var region = LargestRegion(foreground, size);
        if (region.Count < MinArea)
            return new SceneReading(background, null, null, null, null, region.Count, float.NaN, float.NaN);

        var (r, g, b) = Median(rgb, region);
        float cx = (float)region.Average(i => i % size + 0.5), cy = (float)region.Average(i => i / size + 0.5);
        var position = Enum.GetValues<ShapePosition>().MinBy(p =>
        {
            var (ax, ay) = ShapeVocabulary.Anchor(p);
            return (ax - cx) * (ax - cx) + (ay - cy) * (ay - cy);
        });
        int x0 = region.Min(i => i % size), x1 = region.Max(i => i % size), y0 = region.Min(i => i / size), y1 = region.Max(i => i / size);
        int extent = Math.Max(x1 - x0 + 1, y1 - y0 + 1);
        var sizeClass = extent >= LargeExtent ? ShapeSize.Large : ShapeSize.Small;
        var shape = BestTemplate(kinds ?? ShapeVocabulary.TrainedShapes, region, size, x0, y0, x1 + 1, y1 + 1);
        return new SceneReading(background, Nearest(r, g, b), position, sizeClass, shape, region.Count, cx, cy);
    }

    /// <summary>The template with the highest intersection-over-union with the region, each stretched to the region's box.</summary>
    static ShapeKind BestTemplate(IReadOnlyList<ShapeKind> kinds, List<int> region, int size, int x0, int y0, int x1, int y1)
    {
        var inRegion = new HashSet<int>(region);
        return kinds.MaxBy(shape =>
        {
            var (minU, minV, maxU, maxV) = ShapeRasterizer.Bounds(shape);
            int both = 0, either = 0;
            for (int y = Math.Max(0, y0 - 1); y < Math.Min(size, y1 + 1); y++)
            for (int x = Math.Max(0, x0 - 1); x < Math.Min(size, x1 + 1); x++)
            {
                float u = minU + (x + 0.5f - x0) / (x1 - x0) * (maxU - minU);
                float v = minV + (y + 0.5f - y0) / (y1 - y0) * (maxV - minV);
                bool t = ShapeRasterizer.Inside(shape, u, v), m = inRegion.Contains(y * size + x);
                if (t && m) both++;
                if (t || m) either++;
            }
            return either == 0 ? 0 : both / (double)either;
        });
    }

    static List<int> LargestRegion(bool[] mask, int size)
    {
        var seen = new bool[mask.Length];
        var best = new List<int>();
        for (int start = 0; start < mask.Length; start++)
        {
            if (!mask[start] || seen[start]) continue;
            var region = new List<int>();
            var stack = new Stack<int>([start]);
            seen[start] = true;
            while (stack.Count > 0)
            {
                int i = stack.Pop();
                region.Add(i);
                int x = i % size, y = i / size;
                foreach (var (nx, ny) in new[] { (x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1) })
                {
                    if (nx < 0 || ny < 0 || nx >= size || ny >= size) continue;
                    int j = ny * size + nx;
                    if (mask[j] && !seen[j])
                    {
                        seen[j] = true;
                        stack.Push(j);
                    }
                }
            }
            if (region.Count > best.Count) best = region;
        }
        return best;
    }

    static (double R, double G, double B) Median(byte[] rgb, List<int> pixels)
    {
        double M(int c)
        {
            var values = pixels.Select(i => rgb[3 * i + c]).OrderBy(v => v).ToList();
            return values[values.Count / 2];
        }
        return (M(0), M(1), M(2));
    }

    static double Distance(double r1, double g1, double b1, double r2, double g2, double b2) =>
        Math.Sqrt((r1 - r2) * (r1 - r2) + (g1 - g2) * (g1 - g2) + (b1 - b2) * (b1 - b2));

    public static NamedColor Nearest(double r, double g, double b) =>
        ShapeVocabulary.Colors.MinBy(c => Distance(r, g, b, c.R, c.G, c.B))!;
}
