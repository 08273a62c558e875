using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>The fast-path cache: measured once, read back under the same machine key, defaults when it cannot be trusted.
/// Measurements are replaced by a fake that records what it was asked, so nothing here depends on timings.</summary>
public class FastPathsTests
{
    static readonly MachineKey Machine = new("Test CPU 9000", "libtorch 0.0, TorchSharp 0.0", 2);
    static readonly Device Cpu = new("cpu");

    sealed class FakeMeasurements(string layout = "nchw", string attention = "sliced-matmul")
    {
        public List<string> Asked { get; } = [];

        public CachedChoice Measure(string name)
        {
            lock (Asked) Asked.Add(name);
            return new CachedChoice(name.StartsWith("layout") ? layout : attention, "fake timings", LayoutDecision.Measured);
        }
    }

    static FastPaths Paths(string? folder, FakeMeasurements fake, MachineKey? machine = null, bool enabled = true, List<string>? warnings = null) =>
        new(folder, enabled, machine ?? Machine, warnings is null ? null : warnings.Add) { MeasureOverride = fake.Measure };

    [Fact]
    public void A_measured_choice_is_saved_and_read_back_by_the_next_process()
    {
        using var dir = new TempDir();
        var first = new FakeMeasurements();
        var measured = Paths(dir.Path, first).ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((false, ChoiceSource.Measured, "fake timings"), (measured.Value, measured.Source, measured.Detail));
        var attention = Paths(dir.Path, first).Attention(ScalarType.Float32, Cpu, 40, 4096, 77);
        Assert.Equal((AttentionKernel.SlicedMatmul, ChoiceSource.Measured), (attention.Value, attention.Source));
        Assert.Equal(["layout float32", "attention float32 d40 q4096 k77"], first.Asked);
        Assert.True(File.Exists(Path.Combine(dir.Path, FastPathCache.FileName)));

        var second = new FakeMeasurements(layout: "channels-last", attention: "sdpa");
        var paths = Paths(dir.Path, second);
        var cached = paths.ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((false, ChoiceSource.Cached, "fake timings"), (cached.Value, cached.Source, cached.Detail));
        Assert.Equal(AttentionKernel.SlicedMatmul, paths.Attention(ScalarType.Float32, Cpu, 40, 3000, 64).Value); // same classes
        Assert.Empty(second.Asked);
    }

    [Fact]
    public void Each_choice_is_measured_once_per_process_even_when_asked_from_many_threads()
    {
        var fake = new FakeMeasurements();
        var paths = Paths(null, fake);
        Parallel.For(0, 16, i => paths.Attention(ScalarType.Float32, Cpu, 40, i % 2 == 0 ? 4096 : 1024, 77));
        Assert.Equal(["attention float32 d40 q1024 k77", "attention float32 d40 q4096 k77"], fake.Asked.Order());
    }

    [Fact]
    public void A_corrupt_cache_file_gives_the_defaults_with_one_warning_and_is_left_alone()
    {
        using var dir = new TempDir();
        string file = Path.Combine(dir.Path, FastPathCache.FileName);
        File.WriteAllText(file, "{\"machines\": [ {\"cpu\": ");
        var fake = new FakeMeasurements();
        var warnings = new List<string>();
        var paths = Paths(dir.Path, fake, warnings: warnings);

        var layout = paths.ChannelsLast(ScalarType.Float32, Cpu);
        var attention = paths.Attention(ScalarType.Float32, Cpu, 64, 4096, 4096);
        Assert.Equal((FastPaths.DefaultChannelsLast, ChoiceSource.Default), (layout.Value, layout.Source));
        Assert.Equal((FastPaths.DefaultAttention, ChoiceSource.Default), (attention.Value, attention.Source));
        Assert.Empty(fake.Asked);
        Assert.Contains(file, Assert.Single(warnings));
        Assert.Equal("{\"machines\": [ {\"cpu\": ", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("[1, 2, 3]")]
    [InlineData("{\"machines\": [{\"cpu\": \"x\", \"torch\": \"y\", \"threads\": 2, \"choices\": {\"layout float32\": {\"detail\": \"\"}}}]}")]
    [InlineData("null")]
    public void A_cache_file_this_version_did_not_write_counts_as_corrupt(string content)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, FastPathCache.FileName), content);
        Assert.Throws<InvalidDataException>(() => new FastPathCache(dir.Path).Read(Machine));
    }

    [Fact]
    public void An_unknown_value_in_the_cache_gives_the_default()
    {
        using var dir = new TempDir();
        new FastPathCache(dir.Path).Save(Machine, "layout float32", new CachedChoice("diagonal", "", LayoutDecision.Measured));
        var choice = Paths(dir.Path, new FakeMeasurements()).ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((FastPaths.DefaultChannelsLast, ChoiceSource.Default), (choice.Value, choice.Source));
    }

    [Fact]
    public void Another_machine_key_measures_again_and_keeps_the_first_machines_choices()
    {
        using var dir = new TempDir();
        Paths(dir.Path, new FakeMeasurements(layout: "nchw")).ChannelsLast(ScalarType.Float32, Cpu);

        var moreThreads = Machine with { Threads = 4 };
        var fake = new FakeMeasurements(layout: "channels-last");
        var choice = Paths(dir.Path, fake, moreThreads).ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((true, ChoiceSource.Measured), (choice.Value, choice.Source));
        Assert.Equal(["layout float32"], fake.Asked);

        var cache = new FastPathCache(dir.Path);
        Assert.Equal("nchw", cache.Read(Machine)["layout float32"].Value);
        Assert.Equal("channels-last", cache.Read(moreThreads)["layout float32"].Value);
        Assert.Empty(cache.Read(Machine with { Torch = "libtorch 9.9" }));
    }

    [Fact]
    public void A_failed_measurement_gives_the_default_with_one_warning()
    {
        var warnings = new List<string>();
        var paths = new FastPaths(null, machine: Machine, warn: warnings.Add) { MeasureOverride = _ => throw new InvalidOperationException("out of memory") };
        var layout = paths.ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((FastPaths.DefaultChannelsLast, ChoiceSource.Default), (layout.Value, layout.Source));
        Assert.Equal(FastPaths.DefaultAttention, paths.Attention(ScalarType.Float32, Cpu, 40, 4096, 4096).Value);
        Assert.Contains("out of memory", Assert.Single(warnings));
    }

    [Fact]
    public void Each_dtype_has_its_own_layout_choice()
    {
        var fake = new FakeMeasurements();
        var paths = Paths(null, fake);
        paths.ChannelsLast(ScalarType.Float32, Cpu);
        paths.ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal(["layout float32", "layout bfloat16"], fake.Asked);
    }

    [Fact]
    public void Disabled_tuning_gives_the_defaults_without_measuring_or_writing()
    {
        using var dir = new TempDir();
        var fake = new FakeMeasurements();
        var paths = Paths(dir.Path, fake, enabled: false);
        var layout = paths.ChannelsLast(ScalarType.Float32, Cpu);
        var attention = paths.Attention(ScalarType.Float32, Cpu, 40, 4096, 4096);
        Assert.Equal((FastPaths.DefaultChannelsLast, ChoiceSource.Default), (layout.Value, layout.Source));
        Assert.Equal((FastPaths.DefaultAttention, ChoiceSource.Default), (attention.Value, attention.Source));
        Assert.Empty(fake.Asked);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void Float64_and_other_devices_are_not_measured()
    {
        var fake = new FakeMeasurements();
        var paths = Paths(null, fake);
        Assert.Equal(ChoiceSource.Default, paths.ChannelsLast(ScalarType.Float64, Cpu).Source);
        Assert.Equal(ChoiceSource.Default, paths.Attention(ScalarType.Float32, new Device("meta"), 40, 4096, 77).Source);
        Assert.Empty(fake.Asked);
    }

    [Fact]
    public void An_unwritable_cache_folder_keeps_this_processes_measurement_with_one_warning()
    {
        using var dir = new TempDir();
        string notAFolder = dir.File("a-file");
        File.WriteAllText(notAFolder, "");
        var warnings = new List<string>();
        var paths = Paths(Path.Combine(notAFolder, "cache"), new FakeMeasurements(), warnings: warnings);
        var layout = paths.ChannelsLast(ScalarType.Float32, Cpu);
        paths.Attention(ScalarType.Float32, Cpu, 40, 4096, 77);
        Assert.Equal((false, ChoiceSource.Measured), (layout.Value, layout.Source));
        Assert.Single(warnings);
    }

    [Fact]
    public void Load_options_and_the_environment_force_a_choice()
    {
        var fake = new FakeMeasurements(layout: "nchw", attention: "sliced-matmul");
        var paths = Paths(null, fake);
        var forced = new LoadOptions { ChannelsLast = true, Tuning = paths }.Layout();
        Assert.Equal((true, ChoiceSource.Forced), (forced.Value, forced.Source));
        using var q = zeros(1, 1, 4096, 40);
        using var k = zeros(1, 1, 77, 40);
        Assert.Equal(AttentionKernel.Sdpa, paths.AttentionChoice(new LoadOptions { Attention = AttentionKernel.Sdpa }.Attention)(q, k));
        Assert.Empty(fake.Asked);
        Assert.Equal(AttentionKernel.SlicedMatmul, paths.AttentionChoice(new LoadOptions().Attention)(q, k));
        Assert.Equal(["attention float32 d40 q4096 k77"], fake.Asked);
    }

    [Theory]
    [InlineData(77, 77)]
    [InlineData(64, 77)]
    [InlineData(256, 256)]
    [InlineData(1024, 1024)]
    [InlineData(1200, 1024)]
    [InlineData(4096, 4096)]
    [InlineData(16384, 4096)]
    public void Token_counts_are_measured_by_class(long tokens, long measuredAs) => Assert.Equal(measuredAs, FastPaths.TokenClass(tokens));

    [Theory]
    [InlineData("nchw", false)]
    [InlineData("NCHW", false)]
    [InlineData("channels-last", true)]
    [InlineData("true", true)]
    [InlineData("sideways", null)]
    [InlineData(null, null)]
    public void Layout_names(string? value, bool? channelsLast) => Assert.Equal(channelsLast, FastPaths.ParseLayout(value));

    [Fact]
    public void The_real_measurements_choose_and_save_a_known_value()
    {
        using var dir = new TempDir();
        var paths = new FastPaths(dir.Path, machine: Machine);
        var layout = paths.ChannelsLast(ScalarType.Float32, Cpu);
        var attention = paths.Attention(ScalarType.Float32, Cpu, 40, 256, 77);
        Assert.Equal(ChoiceSource.Measured, layout.Source);
        Assert.Contains("channels-last", layout.Detail);
        Assert.Contains("SDPA", attention.Detail);
        Assert.Contains(layout.Basis, new[] { LayoutDecision.Measured, LayoutDecision.Roofline, LayoutDecision.Default });
        Assert.Contains(attention.Basis, new[] { LayoutDecision.Measured, LayoutDecision.Default });
        var stored = new FastPathCache(dir.Path).Read(Machine);
        Assert.Contains(stored["layout float32"].Value, new[] { "nchw", "channels-last" });
        Assert.Contains(stored["attention float32 d40 q256 k77"].Value, new[] { "sdpa", "sliced-matmul" });
    }
}
