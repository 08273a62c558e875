using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using SharpDiffusion.Cli.Bench;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Bench;

/// <summary>`bench --sdcpp`: the LDM file it writes for stable-diffusion.cpp is the golden single file (diffusers' conversion
/// script's output for models/small-sd15) in float16, and its log parser reads the logs sd.cpp really prints (captured from
/// the sd-cli build the bench was run with, kept under Bench/Data).</summary>
public class StableDiffusionCppTests
{
    static string Data(string name, [CallerFilePath] string source = "") => Path.Combine(Path.GetDirectoryName(source)!, "Data", name);

    [Fact]
    public void The_sd15_checkpoint_for_sdcpp_is_the_golden_single_file_in_float16()
    {
        using var temp = new TempDir();
        string written = temp.File("sd15.safetensors");
        StableDiffusionCpp.WriteSd15Checkpoint(Golden.Path("models", "small-sd15"), written);
        using var ours = TensorFiles.Open(written);
        using var golden = TensorFiles.Open(Golden.Path("single_file", "small-sd15.safetensors"));

        Assert.Equal(golden.Headers.Select(h => h.Name).Order(StringComparer.Ordinal), ours.Headers.Select(h => h.Name).Order(StringComparer.Ordinal));
        foreach (var header in golden.Headers)
        {
            using var expected = golden.Load(header.Name);
            using var actual = ours.Load(header.Name);
            Assert.Equal(ScalarType.Float16, actual.dtype);
            Assert.Equal(expected.shape, actual.shape);
            using var half = expected.to(ScalarType.Float16);
            Assert.True(half.equal(actual).all().item<bool>(), $"{header.Name}: not the golden value rounded to float16");
        }
    }

    /// <summary>A real run (`bench --arch sd15 --sdcpp`: 512², 2 steps, CFG 7): one figure per step; together
    /// they make the sampling total sd.cpp prints (up to its rounding and the few milliseconds between steps).</summary>
    [Theory]
    [InlineData("sdcpp-sd15-512.log")]
    public void The_log_parser_reads_each_step_of_a_real_sdcpp_run(string file)
    {
        string log = File.ReadAllText(Data(file));
        var (steps, sampling) = StableDiffusionCpp.ParseLog(log);

        // The sampling bar's own step count ("| 2/2 - 162.43s/it"; loading bars end in MB/s): the steps the run was asked for.
        var counts = Regex.Matches(log, @"\| *\d+/(\d+) - [0-9.]+(s/it|it/s)").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().ToList();
        Assert.Single(counts);
        Assert.Equal(counts[0], steps.Count);
        Assert.All(steps, s => Assert.True(s > 0));
        Assert.NotNull(sampling);
        Assert.InRange(steps.Sum(), sampling!.Value * 0.95, sampling.Value + 0.01 * steps.Count);
    }

    /// <summary>sd.cpp's tensor-loading bars ("| 686/686 - 494.99MB/s") look like progress too: the log up to the loading
    /// that precedes sampling has bars but no steps.</summary>
    [Fact]
    public void Loading_bars_are_not_steps()
    {
        string log = File.ReadAllText(Data("sdcpp-sd15-512.log"));
        string loading = log[..log.LastIndexOf("loading tensors completed", log.IndexOf("sampling completed", StringComparison.Ordinal), StringComparison.Ordinal)];
        Assert.Contains("MB/s", loading, StringComparison.Ordinal);
        var (steps, sampling) = StableDiffusionCpp.ParseLog(loading);
        Assert.Empty(steps);
        Assert.Null(sampling);
    }
}
