namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// The two resamplings of OpenCV's <c>cv2.resize</c> for 8-bit pictures that sd-webui-controlnet uses before a
/// preprocessor: INTER_CUBIC to enlarge, INTER_AREA to shrink, written from OpenCV's formulas so the control maps match
/// the extension's (the edges of a resampled picture move with its values).
/// <list type="bullet">
/// <item>Cubic: source position f = (d + 0.5)·(src/dst) − 0.5, taps ⌊f⌋−1 … ⌊f⌋+2 clamped to the picture, Keys weights
/// with A = −0.75 in float, quantised to 11 bits (×2048, rounded); rows in integers, then columns as OpenCV's SSE
/// code: in float (Σ·2⁻²² rounded half to even) for each row's first multiple of 8 values, in fixed point
/// ((Σ + 2²¹) &gt;&gt; 22) for the rest; clamped to 0-255.</item>
/// <item>Area: each output pixel is the mean of the source area it covers, partly covered pixels weighted by their
/// covered fraction (OpenCV's computeResizeAreaTab), summed in float and rounded half to even; whole factors as
/// OpenCV's resizeAreaFast.</item>
/// </list>
/// </summary>
public static class OpenCvResize
{
    const int CoefBits = 11, CoefScale = 1 << CoefBits;

    public static RgbImage Cubic(RgbImage image, int width, int height)
    {
        var (xTaps, xWeights) = CubicTable(image.Width, width);
        var (yTaps, yWeights) = CubicTable(image.Height, height);
        int sw = image.Width;
        var rows = new int[image.Height][]; // each source row resampled horizontally, computed once: [W'·3]
        int[] Row(int sy)
        {
            if (rows[sy] is { } done) return done;
            var row = new int[width * 3];
            for (int dx = 0; dx < width; dx++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 0;
                    for (int k = 0; k < 4; k++)
                        sum += image.Rgb[(sy * sw + xTaps[dx * 4 + k]) * 3 + c] * xWeights[dx * 4 + k];
                    row[dx * 3 + c] = sum;
                }
            return rows[sy] = row;
        }
        var rgb = new byte[width * height * 3];
        int stride = width * 3, vectorised = stride / 8 * 8;
        const float Unscale = 1f / (CoefScale * CoefScale);
        for (int dy = 0; dy < height; dy++)
        {
            var (r0, r1, r2, r3) = (Row(yTaps[dy * 4]), Row(yTaps[dy * 4 + 1]), Row(yTaps[dy * 4 + 2]), Row(yTaps[dy * 4 + 3]));
            var (w0, w1, w2, w3) = (yWeights[dy * 4], yWeights[dy * 4 + 1], yWeights[dy * 4 + 2], yWeights[dy * 4 + 3]);
            // OpenCV's vector code (8 values at a time) sums in float, last tap first, rounding half to even...
            var (b0, b1, b2, b3) = (w0 * Unscale, w1 * Unscale, w2 * Unscale, w3 * Unscale);
            for (int i = 0; i < vectorised; i++)
            {
                float sum = r3[i] * b3;
                sum = r2[i] * b2 + sum;
                sum = r1[i] * b1 + sum;
                sum = r0[i] * b0 + sum;
                rgb[dy * stride + i] = (byte)Math.Clamp(MathF.Round(sum, MidpointRounding.ToEven), 0, 255);
            }
            // ...and the row's remaining values in fixed point, (Σ + 2²¹) >> 22.
            for (int i = vectorised; i < stride; i++)
            {
                long sum = (long)r0[i] * w0 + (long)r1[i] * w1 + (long)r2[i] * w2 + (long)r3[i] * w3;
                rgb[dy * stride + i] = (byte)Math.Clamp((sum + (1L << (2 * CoefBits - 1))) >> (2 * CoefBits), 0, 255);
            }
        }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>Per output position its four source indices (clamped) and 11-bit weights. [dst·4] each.</summary>
    static (int[] Taps, int[] Weights) CubicTable(int source, int destination)
    {
        double scale = (double)source / destination;
        var (taps, weights) = (new int[destination * 4], new int[destination * 4]);
        const float A = -0.75f;
        for (int d = 0; d < destination; d++)
        {
            float f = (float)((d + 0.5) * scale - 0.5);
            int s = (int)Math.Floor(f);
            float t = f - s;
            Span<float> w =
            [
                ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
                ((A + 2) * t - (A + 3)) * t * t + 1,
                ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
                0,
            ];
            w[3] = 1f - w[0] - w[1] - w[2];
            for (int k = 0; k < 4; k++)
            {
                taps[d * 4 + k] = Math.Clamp(s - 1 + k, 0, source - 1);
                weights[d * 4 + k] = (int)Math.Round(w[k] * CoefScale, MidpointRounding.ToEven);
            }
        }
        return (taps, weights);
    }

    public static RgbImage Area(RgbImage image, int width, int height)
    {
        if (image.Width % width == 0 && image.Height % height == 0)
            return AreaByWholeFactor(image, image.Width / width, image.Height / height);
        var xs = AreaTable(image.Width, width);
        var ys = AreaTable(image.Height, height);
        var rgb = new byte[width * height * 3];
        var sums = new float[width * 3];
        var row = new float[width * 3];
        for (int dy = 0; dy < height; dy++)
        {
            Array.Clear(sums);
            foreach (var (sy, beta) in ys[dy])
            {
                Array.Clear(row);
                for (int dx = 0; dx < width; dx++)
                    foreach (var (sx, alpha) in xs[dx])
                        for (int c = 0; c < 3; c++)
                            row[dx * 3 + c] += alpha * image.Rgb[(sy * image.Width + sx) * 3 + c];
                for (int i = 0; i < row.Length; i++)
                    sums[i] += beta * row[i];
            }
            for (int i = 0; i < sums.Length; i++)
                rgb[dy * width * 3 + i] = (byte)Math.Clamp(Math.Round(sums[i], MidpointRounding.ToEven), 0, 255);
        }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>Whole shrink factors (OpenCV's resizeAreaFast): the mean of each fx×fy block; 2×2 blocks round half up
    /// ((Σ + 2) &gt;&gt; 2, its vector code), others Σ·(1/area) in float rounded half to even.</summary>
    static RgbImage AreaByWholeFactor(RgbImage image, int fx, int fy)
    {
        int width = image.Width / fx, height = image.Height / fy, area = fx * fy;
        float inverse = 1f / area;
        var rgb = new byte[width * height * 3];
        for (int dy = 0; dy < height; dy++)
            for (int dx = 0; dx < width; dx++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 0;
                    for (int y = dy * fy; y < (dy + 1) * fy; y++)
                        for (int x = dx * fx; x < (dx + 1) * fx; x++)
                            sum += image.Rgb[(y * image.Width + x) * 3 + c];
                    rgb[(dy * width + dx) * 3 + c] = area == 4 && fx == 2
                        ? (byte)((sum + 2) >> 2)
                        : (byte)Math.Clamp(Math.Round(sum * inverse, MidpointRounding.ToEven), 0, 255);
                }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>Per output index the source indices it covers and the covered fraction over the cell's width.</summary>
    static List<(int Source, float Weight)>[] AreaTable(int source, int destination)
    {
        double scale = (double)source / destination;
        var table = new List<(int, float)>[destination];
        for (int d = 0; d < destination; d++)
        {
            var cell = table[d] = [];
            double from = d * scale, to = from + scale, cellWidth = Math.Min(scale, source - from);
            int first = (int)Math.Ceiling(from), last = Math.Min((int)Math.Floor(to), source - 1);
            first = Math.Min(first, last);
            if (first - from > 1e-3) cell.Add((first - 1, (float)((first - from) / cellWidth)));
            for (int s = first; s < last; s++) cell.Add((s, (float)(1.0 / cellWidth)));
            if (to - last > 1e-3) cell.Add((last, (float)(Math.Min(Math.Min(to - last, 1.0), cellWidth) / cellWidth)));
        }
        return table;
    }
}
