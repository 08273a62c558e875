using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// Replays one golden/schedulers/&lt;name&gt;_&lt;variant&gt;_&lt;steps&gt;.safetensors trajectory (golden README, "Schedulers"):
/// build the scheduler from the SD v1-4 scheduler_config.json plus the case's overrides, set_timesteps(N),
/// then scale/step through the stored model outputs, comparing every tensor the file holds.
/// </summary>
public static class SchedulerGolden
{
    /// <summary>Scheduler values are pure arithmetic on given inputs: within 1e-5 of the tensor's max magnitude.</summary>
    public const double Tolerance = 1e-5;

    public sealed record Case(string Name, string ClassName, int Steps, JsonObject Overrides, double InitNoiseSigma, long? StepSeed);

    /// <summary>A golden JSON file; Python's json writes -inf (DPM-Solver's lambda_min_clipped) as a bare -Infinity.</summary>
    public static JsonNode ReadPythonJson(params string[] parts) =>
        JsonNode.Parse(SchedulerConfig.QuoteNonFiniteLiterals(File.ReadAllText(Golden.Path(parts))))!;

    static readonly Lazy<IReadOnlyList<Case>> AllCases = new(LoadCases);

    static IReadOnlyList<Case> LoadCases()
    {
        var index = ReadPythonJson("schedulers", "index.json").AsArray();
        var manifest = ReadPythonJson("manifest.json")["files"]!;
        return index.Select(e =>
        {
            string file = e!["file"]!.GetValue<string>();
            string stepKwargs = manifest[file]!["info"]!["step_kwargs"]!.GetValue<string>();
            var seed = Regex.Match(stepKwargs, @"manual_seed\((\d+)\)");
            return new Case(
                Path.GetFileNameWithoutExtension(file),
                e["class"]!.GetValue<string>(),
                e["steps"]!.GetValue<int>(),
                e["overrides"]!.AsObject(),
                e["init_noise_sigma"]!.GetValue<double>(),
                seed.Success ? long.Parse(seed.Groups[1].Value) : null);
        }).ToList();
    }

    public static Case Get(string name) => AllCases.Value.Single(c => c.Name == name);

    /// <summary>xunit MemberData: the case names of one diffusers class.</summary>
    public static TheoryData<string> NamesOf(string className)
    {
        var data = new TheoryData<string>();
        foreach (var c in AllCases.Value.Where(c => c.ClassName == className))
            data.Add(c.Name);
        return data;
    }

    /// <summary>The SD v1-4 scheduler_config.json every scheduler golden starts from.</summary>
    public static SchedulerConfig Sd14Config() => SchedulerConfig.Load(Golden.Path("models", "tiny-sd", "scheduler", "scheduler_config.json"));

    public static SchedulerConfig ConfigFor(Case c)
    {
        var config = Sd14Config();
        foreach (var (key, value) in c.Overrides)
            config = config.With(key, value!.GetValueKind() switch
            {
                System.Text.Json.JsonValueKind.String => value.GetValue<string>(),
                System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False => value.GetValue<bool>(),
                _ => (object)value.GetValue<double>(),
            });
        return config;
    }

    /// <summary>Runs the case and asserts every stored tensor; returns the largest deviations, relative to
    /// each tensor's max magnitude.</summary>
    public static Deviations Run(string name, ITestOutputHelper? output = null)
    {
        var c = Get(name);
        var g = Golden.Load("schedulers", name + ".safetensors");
        using var scheduler = (SchedulerBase)SchedulerFactory.Create(c.ClassName, ConfigFor(c));
        Assert.Equal(c.ClassName, scheduler.Name);

        var dev = new Deviations();
        using (var acp = tensor(scheduler.NoiseSchedule.AlphasCumprod))
            dev.Schedule = Math.Max(dev.Schedule, Relative(acp, g["alphas_cumprod"], 1e-6, "alphas_cumprod"));

        scheduler.SetTimesteps(c.Steps);
        var expectedTimesteps = g["timesteps"];
        using (var ts = tensor(scheduler.Timesteps.ToArray()))
        {
            if (expectedTimesteps.dtype == ScalarType.Int64)
                Assert.Equal(expectedTimesteps.data<long>().Select(t => (float)t), scheduler.Timesteps);
            else
                dev.Schedule = Math.Max(dev.Schedule, Relative(ts, expectedTimesteps, 1e-6, "timesteps"));
        }
        if (g.TryGetValue("sigmas", out var expectedSigmas))
        {
            Assert.NotNull(scheduler.Sigmas);
            using var sigmas = tensor(scheduler.Sigmas!.ToArray());
            dev.Schedule = Math.Max(dev.Schedule, Relative(sigmas, expectedSigmas, 1e-6, "sigmas"));
        }
        double initRel = Math.Abs(scheduler.InitNoiseSigma - c.InitNoiseSigma) / c.InitNoiseSigma;
        Assert.True(initRel <= 1e-6, $"init_noise_sigma {scheduler.InitNoiseSigma} vs {c.InitNoiseSigma}");
        dev.Schedule = Math.Max(dev.Schedule, initRel);

        var sample = g["randn_sample"] * scheduler.InitNoiseSigma;
        Relative(sample, g["init_sample"], Tolerance, "init_sample");

        using var stepGenerator = c.StepSeed is long seed ? new Generator((ulong)seed) : null;
        var modelOutputs = g["model_outputs"];
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            float t = scheduler.Timesteps[i];
            var scaled = scheduler.ScaleModelInput(sample, t);
            dev.ScaledModelInputs = Math.Max(dev.ScaledModelInputs, Relative(scaled, g["scaled_model_inputs"][i], Tolerance, $"scaled_model_inputs[{i}] (t={t})"));
            sample = scheduler.Step(modelOutputs[i], t, sample, stepGenerator);
            dev.PrevSamples = Math.Max(dev.PrevSamples, Relative(sample, g["prev_samples"][i], Tolerance, $"prev_samples[{i}] (t={t})"));
        }

        if (g.TryGetValue("step_noise", out var stepNoise))
            dev.StepNoise = CheckStepNoise(stepNoise, c.StepSeed!.Value, stepGenerator!);

        output?.WriteLine($"{name}: schedule {dev.Schedule:E2}, scaled_model_inputs {dev.ScaledModelInputs:E2}, prev_samples {dev.PrevSamples:E2}" +
                          (dev.StepNoise is { } n ? $", step_noise {n:E2}" : "") + " (max |diff| / max |expected|)");
        return dev;
    }

    /// <summary>A fresh generator with the same seed must reproduce the stored draws, and after as many draws it
    /// must be where the scheduler's generator is: the scheduler drew exactly those tensors, in that order.</summary>
    static double CheckStepNoise(Tensor stepNoise, long seed, Generator used)
    {
        using var reference = new Generator((ulong)seed);
        double worst = 0;
        for (int i = 0; i < stepNoise.shape[0]; i++)
        {
            var expected = stepNoise[i];
            var drawn = randn(expected.shape, generator: reference);
            worst = Math.Max(worst, Golden.MaxAbsDiff(drawn, expected));
        }
        Assert.True(worst <= 1e-6, $"step_noise draws differ by {worst:E3}");
        Assert.Equal(randn([4], generator: reference).data<float>().ToArray(), randn([4], generator: used).data<float>().ToArray());
        return worst;
    }

    static double Relative(Tensor actual, Tensor expected, double rel, string what)
    {
        double scale = Golden.MaxAbs(expected);
        double diff = Golden.MaxAbsDiff(actual, expected);
        Assert.True(diff <= rel * scale, $"{what}: max |diff| {diff:E3} exceeds {rel:E0} x max |expected| {scale:E3}");
        return scale > 0 ? diff / scale : diff;
    }

    public sealed class Deviations
    {
        public double Schedule { get; set; }
        public double ScaledModelInputs { get; set; }
        public double PrevSamples { get; set; }
        public double? StepNoise { get; set; }
    }
}
