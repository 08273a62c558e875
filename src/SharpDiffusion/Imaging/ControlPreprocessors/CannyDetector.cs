namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// The Canny edge detector exactly as OpenCV's <c>cv2.Canny(image, low, high)</c> computes it (aperture 3, L1 gradient),
/// which is what sd-webui-controlnet's "canny" preprocessor and ControlNet's annotator call. Integer arithmetic
/// throughout, so the edges are OpenCV's bit for bit:
/// <list type="number">
/// <item>3×3 Sobel per channel, borders replicated: gx = [-1 0 1; -2 0 2; -1 0 1], gy its transpose.</item>
/// <item>Magnitude |gx| + |gy|; a colour picture keeps, per pixel, the channel of largest magnitude (the first on a tie)
/// with its gx, gy. There is no grey conversion: OpenCV's Canny reads the RGB channels.</item>
/// <item>Non-maximum suppression in four directions binned at tan 22.5° in 15-bit fixed point: horizontal when
/// |gy|·2¹⁵ &lt; |gx|·TG22, vertical when above |gx|·(TG22 + 2¹⁶), else the diagonal given by the signs; a pixel
/// survives when its magnitude exceeds <c>low</c> and beats the neighbour before it (&gt;) and the one after (≥; strictly
/// &gt; on diagonals). Outside the picture the magnitude is 0.</item>
/// <item>Hysteresis: a survivor whose magnitude exceeds <c>high</c> is an edge, and so is every survivor 8-connected to
/// an edge.</item>
/// </list>
/// Thresholds are swapped when low &gt; high and floored to integers, as OpenCV does.
/// </summary>
public static class CannyDetector
{
    /// <summary>tan 22.5° in 15-bit fixed point (OpenCV's TG22 = 13573).</summary>
    const int Shift = 15;
    const int Tg22 = (int)(0.4142135623730950488016887242097 * (1 << Shift) + 0.5);

    const byte MaybeEdge = 0, NotEdge = 1, Edge = 2;

    /// <summary>The 0/255 edge map of an RGB picture, one byte per pixel (as <c>cv2.Canny(rgb, low, high)</c>).</summary>
    public static byte[] Detect(RgbImage image, double low, double high) =>
        Detect(image.Rgb, image.Width, image.Height, 3, low, high);

    /// <summary>The 0/255 edge map of interleaved 8-bit pixels with <paramref name="channels"/> channels (1 to 4).</summary>
    public static byte[] Detect(byte[] pixels, int width, int height, int channels, double low, double high)
    {
        if (channels is < 1 or > 4)
            throw new ArgumentException($"CannyDetector: {channels} channels given; give 1 (grey) to 4.");
        if (width <= 0 || height <= 0 || pixels.Length != (long)width * height * channels)
            throw new ArgumentException($"CannyDetector: {pixels.Length} bytes do not make a {width}x{height} picture of {channels} channels.");
        if (!double.IsFinite(low) || !double.IsFinite(high))
            throw new ArgumentException($"CannyDetector: thresholds must be finite numbers; got {low} and {high}.");
        if (low > high) (low, high) = (high, low);
        int lowInt = (int)Math.Clamp(Math.Floor(low), int.MinValue, int.MaxValue);
        int highInt = (int)Math.Clamp(Math.Floor(high), int.MinValue, int.MaxValue);

        var (gx, gy, magnitude) = Gradients(pixels, width, height, channels);
        var map = Suppress(gx, gy, magnitude, width, height, lowInt, highInt, out var stack);
        Hysteresis(map, width + 2, stack);

        var edges = new byte[width * height];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                edges[y * width + x] = map[(y + 1) * (width + 2) + x + 1] == Edge ? (byte)255 : (byte)0;
        return edges;
    }

    /// <summary>Sobel gx, gy and the L1 magnitude of the strongest channel, per pixel. [H·W] each; |gx|, |gy| ≤ 4·255 and
    /// the magnitude ≤ 8·255 fit in 16 bits (OpenCV's CV_16S).</summary>
    static (short[] Gx, short[] Gy, short[] Magnitude) Gradients(byte[] pixels, int width, int height, int channels)
    {
        int n = width * height;
        var (gx, gy, magnitude) = (new short[n], new short[n], new short[n]);
        for (int y = 0; y < height; y++)
        {
            // Replicated border: the row/column outside the picture repeats the edge one.
            int up = Math.Max(y - 1, 0) * width, mid = y * width, down = Math.Min(y + 1, height - 1) * width;
            for (int x = 0; x < width; x++)
            {
                int left = Math.Max(x - 1, 0), right = Math.Min(x + 1, width - 1);
                int p = mid + x;
                for (int c = 0; c < channels; c++)
                {
                    int P(int row, int col) => pixels[(row + col) * channels + c];
                    int dx = P(up, right) - P(up, left) + 2 * (P(mid, right) - P(mid, left)) + P(down, right) - P(down, left);
                    int dy = P(down, left) - P(up, left) + 2 * (P(down, x) - P(up, x)) + P(down, right) - P(up, right);
                    int m = Math.Abs(dx) + Math.Abs(dy);
                    if (c == 0 || m > magnitude[p])
                        (gx[p], gy[p], magnitude[p]) = ((short)dx, (short)dy, (short)m);
                }
            }
        }
        return (gx, gy, magnitude);
    }

    /// <summary>Non-maximum suppression into a map with a one-pixel frame of NotEdge ([(H+2)·(W+2)]); the pixels above
    /// <paramref name="high"/> that survive are marked Edge and returned on <paramref name="strong"/>.</summary>
    static byte[] Suppress(short[] gx, short[] gy, short[] magnitude, int width, int height, int low, int high, out Stack<int> strong)
    {
        int step = width + 2;
        var map = new byte[step * (height + 2)];
        Array.Fill(map, NotEdge);
        strong = new Stack<int>();
        int Mag(int x, int y) => x < 0 || x >= width || y < 0 || y >= height ? 0 : magnitude[y * width + x];

        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int p = y * width + x, m = magnitude[p];
                if (m <= low) continue;
                long ax = Math.Abs(gx[p]), ay = (long)Math.Abs(gy[p]) << Shift;
                long tg22x = ax * Tg22;
                bool peak;
                if (ay < tg22x)
                    peak = m > Mag(x - 1, y) && m >= Mag(x + 1, y);          // gradient ~horizontal: compare left/right
                else if (ay > tg22x + (ax << (Shift + 1)))
                    peak = m > Mag(x, y - 1) && m >= Mag(x, y + 1);          // ~vertical: compare above/below
                else
                {
                    int s = (gx[p] ^ gy[p]) < 0 ? -1 : 1;                    // same signs: the "\" diagonal
                    peak = m > Mag(x - s, y - 1) && m > Mag(x + s, y + 1);
                }
                if (!peak) continue;
                int at = (y + 1) * step + x + 1;
                if (m > high) { map[at] = Edge; strong.Push(at); }
                else map[at] = MaybeEdge;
            }
        return map;
    }

    /// <summary>Grows the edges through 8-connected MaybeEdge pixels (the frame is NotEdge, so the walk stays inside).</summary>
    static void Hysteresis(byte[] map, int step, Stack<int> stack)
    {
        ReadOnlySpan<int> neighbours = [-1, 1, -step - 1, -step, -step + 1, step - 1, step, step + 1];
        while (stack.Count > 0)
        {
            int at = stack.Pop();
            foreach (int d in neighbours)
                if (map[at + d] == MaybeEdge)
                {
                    map[at + d] = Edge;
                    stack.Push(at + d);
                }
        }
    }
}
