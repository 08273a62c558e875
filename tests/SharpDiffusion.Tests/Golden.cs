using SharpDiffusion.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests;

/// <summary>Locates ../shared/golden (beside the repository) and compares tensors with its tolerances.</summary>
public static class Golden
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        string? fromEnv = Environment.GetEnvironmentVariable("SHARPDIFFUSION_GOLDEN");
        if (!string.IsNullOrEmpty(fromEnv))
            return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "SharpDiffusion.slnx")))
            {
                string golden = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "golden"));
                if (!Directory.Exists(golden))
                    throw new DirectoryNotFoundException($"Golden data not found at {golden}; set SHARPDIFFUSION_GOLDEN");
                return golden;
            }
        }
        throw new DirectoryNotFoundException("Repository root (SharpDiffusion.slnx) not found above " + AppContext.BaseDirectory);
    }

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>Reads every tensor of a golden safetensors file.</summary>
    public static Dictionary<string, Tensor> Load(params string[] parts)
    {
        using var file = SafetensorsFile.Open(Path(parts));
        return file.Tensors.Keys.ToDictionary(k => k, file.Load);
    }

    /// <summary>Largest |actual - expected|.</summary>
    public static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var d = (actual.to(float64) - expected.to(float64)).abs().max();
        return d.item<double>();
    }

    public static double MaxAbs(Tensor t)
    {
        using var m = t.to(float64).abs().max();
        return m.item<double>();
    }

    /// <summary>A PNG the CLI wrote against a golden run's image_uint8: same size, every value within one level.</summary>
    public static void AssertPngWithinOneLevel(string png, params string[] goldenFile)
    {
        var (w, h, rgb) = SharpDiffusion.Imaging.PngFile.Decode(png);
        var golden = Load(goldenFile)["image_uint8"];
        Assert.Equal(new long[] { 1, h, w, 3 }, golden.shape);
        int maxDiff = rgb.Zip(golden.data<byte>().ToArray(), (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff <= 1, $"{png} differs from diffusers by {maxDiff} levels");
    }

    /// <summary>The golden README's check for single model calls: |a-b| &lt;= rel * max|b| + abs.</summary>
    public static double AssertClose(Tensor actual, Tensor expected, double rel = 1e-4, double abs = 1e-5, string what = "")
    {
        double diff = MaxAbsDiff(actual, expected);
        double bound = rel * MaxAbs(expected) + abs;
        Assert.True(diff <= bound, $"{what}: max |diff| {diff:E3} exceeds {bound:E3} (max |expected| {MaxAbs(expected):E3})");
        return diff;
    }
}
