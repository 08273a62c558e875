namespace SharpDiffusion.Imaging;

/// <summary>
/// AUTOMATIC1111's mask blur: a separable Gaussian of standard deviation σ pixels, kernel 2·int(2.5σ + 0.5) + 1 wide
/// (its cv2.GaussianBlur call), borders reflected without repeating the edge pixel (cv2's BORDER_REFLECT_101).
/// </summary>
public static class GaussianBlur
{
    /// <summary>Blurs one 8-bit channel (row-major <paramref name="width"/>×<paramref name="height"/>).</summary>
    public static byte[] Apply(byte[] plane, int width, int height, double sigma)
    {
        if (sigma <= 0) return (byte[])plane.Clone();
        var kernel = Kernel(sigma);
        var horizontal = new float[plane.Length];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                horizontal[y * width + x] = Sum(kernel, k => plane[y * width + Reflect(x + k, width)]);
        var result = new byte[plane.Length];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                result[y * width + x] = (byte)Math.Clamp(Math.Round(Sum(kernel, k => horizontal[Reflect(y + k, height) * width + x])), 0, 255);
        return result;
    }

    static float[] Kernel(double sigma)
    {
        int radius = (int)(2.5 * sigma + 0.5);
        var weights = Enumerable.Range(-radius, 2 * radius + 1).Select(i => Math.Exp(-i * i / (2 * sigma * sigma))).ToArray();
        double total = weights.Sum();
        return weights.Select(w => (float)(w / total)).ToArray();
    }

    static float Sum(float[] kernel, Func<int, float> at)
    {
        int radius = kernel.Length / 2;
        float sum = 0;
        for (int k = -radius; k <= radius; k++)
            sum += kernel[k + radius] * at(k);
        return sum;
    }

    // Reflect-101 (…2 1 | 0 1 2 … n-1 | n-2 …), folded until inside for kernels wider than the image.
    static int Reflect(int i, int n)
    {
        if (n == 1) return 0;
        while (i < 0 || i >= n)
            i = i < 0 ? -i : 2 * (n - 1) - i;
        return i;
    }
}
