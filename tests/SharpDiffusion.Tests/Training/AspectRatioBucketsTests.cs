using System.Globalization;
using System.Text.Json;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Training;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Training;

/// <summary>kohya's aspect-ratio buckets (--enable_bucket): the sizes listed, the bucket a picture goes to, the crop, and
/// a short training run whose batches come from three buckets of different latent sizes.</summary>
[Collection(ProcessWide.Settings)]
public class AspectRatioBucketsTests(ITestOutputHelper output)
{
    [Fact]
    public void Bucket_sizes_for_512_follow_kohyas_rules()
    {
        // kohya's defaults: resolution 512, sides 256..1024 in steps of 64.
        var sizes = AspectRatioBuckets.MakeResolutions(512, 256, 1024, 64);
        output.WriteLine($"{sizes.Count} sizes: {string.Join(" ", sizes.Select(s => $"{s.Width}x{s.Height}"))}");
        Assert.Contains((512, 512), sizes);
        Assert.Equal(sizes.OrderBy(s => s.Width).ThenBy(s => s.Height), sizes);
        foreach (var (w, h) in sizes)
        {
            Assert.True(w % 64 == 0 && h % 64 == 0, $"{w}x{h} is not on the 64 grid");
            Assert.True(w * h <= 512 * 512, $"{w}x{h} is larger than 512²");
            Assert.True(Math.Max(w, h) <= 1024, $"{w}x{h} has a side over 1024");
            Assert.Contains((h, w), sizes);                                  // every size in both orientations
        }
        for (int w = 256; w <= 1024; w += 64)
            Assert.Contains(sizes, s => s.Width == w);                        // every width of the range is listed
    }

    [Fact]
    public void A_picture_goes_to_the_bucket_of_nearest_aspect_ratio()
    {
        var sizes = AspectRatioBuckets.MakeResolutions(512, 256, 1024, 64);
        foreach (var (w, h) in new[] { (1024, 512), (512, 1024), (600, 600), (768, 512), (3000, 1000), (640, 448) })
        {
            var chosen = AspectRatioBuckets.Select(sizes, w, h);
            double error = Math.Abs((double)chosen.Width / chosen.Height - (double)w / h);
            output.WriteLine($"{w}x{h} -> {chosen.Width}x{chosen.Height} (aspect error {error:F3})");
            Assert.All(sizes, s => Assert.True(error <= Math.Abs((double)s.Width / s.Height - (double)w / h) + 1e-12));
            if (sizes.Contains((w, h))) Assert.Equal((w, h), chosen);        // a listed size is its own bucket
        }
    }

    [Fact]
    public void ResizeAndCrop_fits_the_short_side_and_cuts_the_centre()
    {
        // 90x30 into 64x32: wider than the bucket, so fitted by height (x32/30 -> 96x32) and 16 columns cut from each side.
        var rgb = new byte[90 * 30 * 3];
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 90; x++)
                rgb[(y * 90 + x) * 3] = (byte)(x < 30 ? 255 : 0);              // red left third, black elsewhere
        var cut = AspectRatioBuckets.ResizeAndCrop(new RgbImage(90, 30, rgb), 64, 32);
        Assert.Equal((64, 32), (cut.Width, cut.Height));
        int redColumns = Enumerable.Range(0, 64).Count(x => cut.Rgb[(16 * 64 + x) * 3] > 127);
        output.WriteLine($"red columns left after the crop: {redColumns} (32 scaled, 16 cut)");
        Assert.InRange(redColumns, 15, 17);
    }

    [Fact]
    public void Bucketed_training_sorts_pictures_by_shape_and_batches_within_a_bucket()
    {
        TorchRuntime.Initialize(1);
        using var dir = new TempDir();
        string images = Path.Combine(dir.Path, "images");
        ShapeLoraDemo.WriteDataset(images, 6, ShapeKind.Cross);
        // Two wide, two tall and two square pictures, cut from the 64x64 renders.
        var files = Directory.GetFiles(Path.Combine(images, "1_cross"), "*.png").Order(StringComparer.Ordinal).ToList();
        for (int i = 0; i < 4; i++)
        {
            var (w, h, px) = PngFile.Decode(files[i]);
            var cut = AspectRatioBuckets.ResizeAndCrop(new RgbImage(w, h, px), i < 2 ? 64 : 32, i < 2 ? 32 : 64);
            PngFile.Save(files[i], cut.Width, cut.Height, cut.Rgb);
        }
        var o = new LoraTrainingOptions
        {
            Model = ShortLoraRuns.ShippedModel, Images = images, Output = dir.File("buckets.safetensors"),
            Rank = 2, Steps = 6, Batch = 2, Resolution = 48, LearningRate = 5e-3, LossCsv = dir.File("loss.csv"),
            Buckets = true, BucketResoSteps = 16, MinBucketReso = 16, MaxBucketReso = 96,
        };
        new LoraTrainer(o).Run();

        var expected = AspectRatioBuckets.Assign(KohyaImageFolder.Open(images).Sizes(), 48, 16, 96, 16);
        using var file = SafetensorsFile.Open(o.Output);
        Assert.Equal("True", file.Metadata["ss_enable_bucket"]);
        var info = JsonDocument.Parse(file.Metadata["ss_bucket_info"]).RootElement.GetProperty("buckets");
        var written = info.EnumerateObject().Select(b => (b.Value.GetProperty("resolution")[0].GetInt32(), b.Value.GetProperty("resolution")[1].GetInt32(),
            b.Value.GetProperty("count").GetInt32())).ToList();
        output.WriteLine("buckets: " + string.Join(", ", written.Select(b => $"{b.Item1}x{b.Item2} ({b.Item3} pictures)")));
        Assert.Equal(expected.Buckets.Select(b => (b.Width, b.Height, b.Pictures.Count)), written);
        Assert.Equal(3, written.Count);                                           // wide, tall, square: three latent sizes
        Assert.All(written, b => Assert.Equal(2, b.Item3));
        var losses = File.ReadAllLines(o.LossCsv!).Skip(1).Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToList();
        output.WriteLine($"{losses.Count} steps of batch 2 over three buckets, losses {string.Join(" ", losses.Select(l => l.ToString("F4", CultureInfo.InvariantCulture)))}");
        Assert.Equal(o.Steps, losses.Count);
        Assert.All(losses, l => Assert.True(double.IsFinite(l) && l > 0));
    }

    [Fact]
    public void Bucket_steps_the_model_cannot_halve_evenly_are_refused_before_training()
    {
        using var dir = new TempDir();
        ShapeLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 1, ShapeKind.Cross);
        // The shipped model halves 64 px to 16 latents (VAE 4) and 16 to 4 (UNet): a side of 8 cannot go through it.
        var o = new LoraTrainingOptions
        {
            Model = ShortLoraRuns.ShippedModel, Images = Path.Combine(dir.Path, "images"), Output = dir.File("x.safetensors"),
            Resolution = 48, Buckets = true, BucketResoSteps = 8, MinBucketReso = 8, MaxBucketReso = 96,
        };
        var e = Assert.Throws<ArgumentException>(() => new LoraTrainer(o).Run());
        output.WriteLine(e.Message);
        Assert.Contains("--bucket-reso-steps 8", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(File.Exists(o.Output));
    }
}
