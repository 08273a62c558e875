namespace SharpDiffusion.Training;

/// <summary>
/// Draws scenes into RGB bytes with 4×4 supersampled coverage (anti-aliased edges). Written here rather than with
/// SkiaSharp so the dataset is bit-identical on every platform and needs nothing native.
/// </summary>
public static class ShapeRasterizer
{
    const int Sub = 4;

    /// <summary>The scene as [H, W, 3] bytes, row-major.</summary>
    public static byte[] Render(Scene scene, int size = ShapeVocabulary.ImageSize)
    {
        var rgb = new float[size * size * 3];
        for (int i = 0; i < size * size; i++)
        {
            rgb[3 * i] = scene.Background.R;
            rgb[3 * i + 1] = scene.Background.G;
            rgb[3 * i + 2] = scene.Background.B;
        }
        foreach (var o in scene.Objects)
        {
            int x0 = Math.Max(0, (int)MathF.Floor(o.CenterX - o.Radius - 1)), x1 = Math.Min(size - 1, (int)MathF.Ceiling(o.CenterX + o.Radius + 1));
            int y0 = Math.Max(0, (int)MathF.Floor(o.CenterY - o.Radius - 1)), y1 = Math.Min(size - 1, (int)MathF.Ceiling(o.CenterY + o.Radius + 1));
            for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
            {
                int hits = 0;
                for (int sy = 0; sy < Sub; sy++)
                for (int sx = 0; sx < Sub; sx++)
                {
                    // Sample points at pixel x + (sx + ½)/Sub; pixel centres are at x + ½.
                    float u = (x + (sx + 0.5f) / Sub - o.CenterX) / o.Radius;
                    float v = (y + (sy + 0.5f) / Sub - o.CenterY) / o.Radius;
                    if (Inside(o.Shape, u, v)) hits++;
                }
                if (hits == 0) continue;
                float a = hits / (float)(Sub * Sub);
                int k = 3 * (y * size + x);
                rgb[k] += a * (o.Color.R - rgb[k]);
                rgb[k + 1] += a * (o.Color.G - rgb[k + 1]);
                rgb[k + 2] += a * (o.Color.B - rgb[k + 2]);
            }
        }
        var bytes = new byte[rgb.Length];
        for (int i = 0; i < rgb.Length; i++) bytes[i] = (byte)Math.Clamp(MathF.Round(rgb[i]), 0, 255);
        return bytes;
    }

    const float CrossHalfWidth = 0.35f;
    static readonly (float X, float Y)[] Triangle = [(0f, -1f), (1f, 0.75f), (-1f, 0.75f)];
    static readonly (float X, float Y)[] Star = StarPolygon();

    // Five points, the first straight up; inner radius 0.45 of the outer.
    static (float X, float Y)[] StarPolygon() => Enumerable.Range(0, 10).Select(i =>
    {
        double angle = -Math.PI / 2 + i * Math.PI / 5, r = i % 2 == 0 ? 1.0 : 0.45;
        return ((float)(r * Math.Cos(angle)), (float)(r * Math.Sin(angle)));
    }).ToArray();

    /// <summary>Whether the point (u, v), in units of the shape's half-size around its centre (v down), is inside.</summary>
    public static bool Inside(ShapeKind shape, float u, float v) => shape switch
    {
        ShapeKind.Circle => u * u + v * v <= 1f,
        ShapeKind.Square => MathF.Abs(u) <= 0.85f && MathF.Abs(v) <= 0.85f,
        ShapeKind.Triangle => InPolygon(Triangle, u, v),
        // A plus sign: two bars of half-width 0.35 reaching 0.9 from the centre.
        ShapeKind.Cross => MathF.Max(MathF.Abs(u), MathF.Abs(v)) <= 0.9f && MathF.Min(MathF.Abs(u), MathF.Abs(v)) <= CrossHalfWidth,
        // A capital L: the square with its top-right quarter cut away (v points down).
        ShapeKind.Ell => MathF.Abs(u) <= 0.85f && MathF.Abs(v) <= 0.85f && !(u > 0 && v < 0),
        _ => InPolygon(Star, u, v),
    };

    /// <summary>The shape's extent in the same units: (minU, minV, maxU, maxV).</summary>
    public static (float MinU, float MinV, float MaxU, float MaxV) Bounds(ShapeKind shape) => shape switch
    {
        ShapeKind.Circle => (-1, -1, 1, 1),
        ShapeKind.Square => (-0.85f, -0.85f, 0.85f, 0.85f),
        ShapeKind.Triangle => (-1, -1, 1, 0.75f),
        ShapeKind.Cross => (-0.9f, -0.9f, 0.9f, 0.9f),
        ShapeKind.Ell => (-0.85f, -0.85f, 0.85f, 0.85f),
        _ => (Star.Min(p => p.X), Star.Min(p => p.Y), Star.Max(p => p.X), Star.Max(p => p.Y)),
    };

    // Even-odd rule.
    static bool InPolygon((float X, float Y)[] poly, float x, float y)
    {
        bool inside = false;
        for (int i = 0, j = poly.Length - 1; i < poly.Length; j = i++)
        {
            var (xi, yi) = poly[i];
            var (xj, yj) = poly[j];
            if ((yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi)
                inside = !inside;
        }
        return inside;
    }
}
