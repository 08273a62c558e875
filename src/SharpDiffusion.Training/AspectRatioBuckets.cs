using SharpDiffusion.Imaging;

namespace SharpDiffusion.Training;

/// <summary>One bucket: a training size (width × height, both multiples of the step) and the pictures that go to it.</summary>
public sealed record AspectBucket(int Width, int Height, IReadOnlyList<int> Pictures)
{
    public double AspectRatio => (double)Width / Height;
}

/// <summary>
/// kohya's aspect-ratio bucketing (sd-scripts' <c>--enable_bucket</c>, <c>BucketManager</c> in library/train_util.py
/// and <c>make_bucket_resolutions</c> in model_util.py): the sizes of about the area of resolution² are listed once —
/// the square side ⌊√(area / step²)⌋·step, and for every width w = min, min + step, …, max the height
/// h = min(max, ⌊area / (step·(w / step))⌋·step) with both (w, h) and (h, w), where area is counted in step×step cells
/// ((R / step)², so no size exceeds it) — and each picture goes to the size whose aspect ratio w / h is nearest its own
/// (an exact size match first). It is resized to cover that size keeping its aspect ratio (Lanczos) and centre-cropped
/// to it, so at most one step's worth of either side is cut. Batches are drawn within one bucket (one latent size per
/// batch). kohya's <c>--bucket_no_upscale</c> mode (buckets from the pictures' own sizes) is not implemented.
/// </summary>
public sealed class AspectRatioBuckets
{
    /// <summary>Every size of this run, sorted (width, then height) as kohya lists them.</summary>
    public IReadOnlyList<(int Width, int Height)> Resolutions { get; }
    /// <summary>The buckets that received pictures, in <see cref="Resolutions"/> order.</summary>
    public IReadOnlyList<AspectBucket> Buckets { get; }
    /// <summary>Mean |bucket aspect − picture aspect| over the pictures (kohya's mean_img_ar_error).</summary>
    public double MeanAspectError { get; }
    /// <summary>The bounds the sizes were listed with (kohya's min_bucket_reso, max_bucket_reso).</summary>
    public int MinSide { get; }
    public int MaxSide { get; }

    AspectRatioBuckets(IReadOnlyList<(int, int)> resolutions, IReadOnlyList<AspectBucket> buckets, double error, int minSide, int maxSide) =>
        (Resolutions, Buckets, MeanAspectError, MinSide, MaxSide) = (resolutions, buckets, error, minSide, maxSide);

    /// <summary>kohya's bucket sizes for a square training <paramref name="resolution"/> with sides from
    /// <paramref name="minSide"/> to <paramref name="maxSide"/> in steps of <paramref name="step"/>; bad bounds are refused in one line.</summary>
    public static IReadOnlyList<(int Width, int Height)> MakeResolutions(int resolution, int minSide, int maxSide, int step)
    {
        if (step < 1) throw new ArgumentException($"--bucket-reso-steps must be at least 1; got {step}.");
        if (resolution < step || resolution % step != 0)
            throw new ArgumentException($"--resolution {resolution} must be a multiple of --bucket-reso-steps {step} with --buckets; choose a multiple of {step}.");
        if (minSide < step || minSide % step != 0 || maxSide % step != 0 || minSide > resolution || maxSide < resolution)
            throw new ArgumentException($"--min-bucket-reso {minSide} and --max-bucket-reso {maxSide} must be multiples of {step} with min ≤ --resolution {resolution} ≤ max.");
        int cells = (resolution / step) * (resolution / step);   // max area in step×step cells
        var sizes = new SortedSet<(int, int)> { ((int)Math.Sqrt(cells) * step, (int)Math.Sqrt(cells) * step) };
        for (int w = minSide; w <= maxSide; w += step)
        {
            int h = Math.Min(maxSide, cells / (w / step) * step);
            // kohya adds (w, h) even when h falls below the minimum side; a side of 0 is no size at all.
            if (h < step) continue;
            sizes.Add((w, h));
            sizes.Add((h, w));
        }
        return [.. sizes];
    }

    /// <summary>The bucket of a <paramref name="width"/> × <paramref name="height"/> picture: its own size if listed,
    /// else the size of nearest aspect ratio (the first listed on a tie, as numpy's argmin).</summary>
    public static (int Width, int Height) Select(IReadOnlyList<(int Width, int Height)> resolutions, int width, int height)
    {
        if (resolutions.Contains((width, height))) return (width, height);
        double aspect = (double)width / height;
        return resolutions.MinBy(r => Math.Abs((double)r.Width / r.Height - aspect));
    }

    /// <summary>Sorts pictures of the given sizes into buckets.</summary>
    public static AspectRatioBuckets Assign(IReadOnlyList<(int Width, int Height)> pictureSizes, int resolution, int minSide, int maxSide, int step)
    {
        var resolutions = MakeResolutions(resolution, minSide, maxSide, step);
        var members = new SortedDictionary<(int, int), List<int>>();
        double error = 0;
        for (int i = 0; i < pictureSizes.Count; i++)
        {
            var (w, h) = pictureSizes[i];
            var size = Select(resolutions, w, h);
            if (!members.TryGetValue(size, out var list)) members[size] = list = [];
            list.Add(i);
            error += Math.Abs((double)size.Width / size.Height - (double)w / h);
        }
        var buckets = members.Select(m => new AspectBucket(m.Key.Item1, m.Key.Item2, m.Value)).ToList();
        return new AspectRatioBuckets(resolutions, buckets, pictureSizes.Count == 0 ? 0 : error / pictureSizes.Count, minSide, maxSide);
    }

    /// <summary>One bucket of every picture: the square <paramref name="resolution"/> (no bucketing).</summary>
    public static AspectRatioBuckets Square(int count, int resolution) =>
        new([(resolution, resolution)], [new AspectBucket(resolution, resolution, Enumerable.Range(0, count).ToList())], 0, resolution, resolution);

    /// <summary>Resized (Lanczos) to cover <paramref name="width"/> × <paramref name="height"/> with its aspect ratio kept,
    /// then the centre cut out: a wider picture than the bucket is fitted by height, a taller one by width.</summary>
    public static RgbImage ResizeAndCrop(RgbImage image, int width, int height)
    {
        double scale = (double)image.Width / image.Height > (double)width / height
            ? (double)height / image.Height : (double)width / image.Width;
        int w = Math.Max(width, (int)(image.Width * scale + 0.5)), h = Math.Max(height, (int)(image.Height * scale + 0.5));
        var scaled = PictureResize.Lanczos(image, w, h);
        int x0 = (w - width) / 2, y0 = (h - height) / 2;
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            Array.Copy(scaled.Rgb, ((y0 + y) * w + x0) * 3, rgb, y * width * 3, width * 3);
        return new RgbImage(width, height, rgb);
    }
}
