using System.Text.Json.Nodes;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>golden/v3 pipeline cases as the scheduler tests read them: manifest3.json's <c>info</c> (kwargs, seed,
/// the scheduler's class and full config) and the stored tensors.</summary>
public static class V3Golden
{
    static readonly Lazy<JsonObject> Manifest = new(() => SchedulerGolden.ReadPythonJson("v3", "manifest3.json").AsObject());

    /// <summary>The case files (relative to v3/) under <paramref name="prefix"/> that hold <paramref name="tensor"/>.</summary>
    public static TheoryData<string> Cases(string prefix, string tensor)
    {
        var data = new TheoryData<string>();
        foreach (var (file, entry) in Manifest.Value.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            if (file.StartsWith(prefix, StringComparison.Ordinal) && file.EndsWith(".safetensors", StringComparison.Ordinal) &&
                entry!["tensors"]?[tensor] is not null)
                data.Add(file);
        return data;
    }

    public static JsonNode Info(string file) => Manifest.Value[file]!["info"]!;

    public static Dictionary<string, Tensor> Load(string file) => Golden.Load(["v3", .. file.Split('/')]);

    /// <summary>The scheduler the pipeline used: its class from the config diffusers reported (with _use_default_values).</summary>
    public static IScheduler Scheduler(JsonNode info) =>
        SchedulerFactory.Create(info["scheduler"]!["class"]!.GetValue<string>(), SchedulerConfig.Parse(info["scheduler"]!["config"]!.ToJsonString()));

    public static long Seed(JsonNode info) =>
        long.Parse(System.Text.RegularExpressions.Regex.Match(info["generator"]!.GetValue<string>(), @"manual_seed\((\d+)\)").Groups[1].Value);

    public static double Kwarg(JsonNode info, string key) => info["kwargs"]![key]!.GetValue<double>();

    /// <summary>The SD pipelines' classifier-free guidance on a [2B, …] output (uncond rows first): uncond + g·(cond - uncond);
    /// the output itself when guidance is off (g ≤ 1).</summary>
    public static Tensor Guided(Tensor output, double guidance)
    {
        if (guidance <= 1)
            return output;
        var halves = output.chunk(2);
        return halves[0] + guidance * (halves[1] - halves[0]);
    }

    /// <summary>max |actual - expected| / max |expected|, asserted within <paramref name="rel"/>.</summary>
    public static double Relative(Tensor actual, Tensor expected, double rel, string what)
    {
        double scale = Golden.MaxAbs(expected), diff = Golden.MaxAbsDiff(actual, expected);
        Assert.True(diff <= rel * scale, $"{what}: max |diff| {diff:E3} exceeds {rel:E0} x max |expected| {scale:E3}");
        return scale > 0 ? diff / scale : diff;
    }

    /// <summary>Largest |a - b| of two float lists of equal length.</summary>
    public static double MaxAbsDiff(IReadOnlyList<float> actual, Tensor expected)
    {
        var e = expected.to(ScalarType.Float32).data<float>().ToArray();
        Assert.Equal(e.Length, actual.Count);
        return e.Zip(actual, (x, y) => Math.Abs((double)x - y)).DefaultIfEmpty(0).Max();
    }
}
