using SharpDiffusion.Conditioning;
using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;


namespace SharpDiffusion.Cli.Bench;

/// <summary>Each measurement in a process of its own, so the peak RSS it reports is its own.</summary>
public static class BenchChild
{
    /// <summary>Runs this same command for one dtype (and one whole generation) in a new process: peak RSS then belongs to that
    /// measurement alone. The child writes its row as JSON to a file named by the hidden --report option.</summary>
    public static T Measure<T>(string modelDir, ScalarType dtype, CommandLine cl, int width, int height, string? generation)
    {
        string report = Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-{Environment.ProcessId}-{Name(dtype)}.json");
        var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        start.ArgumentList.Add("bench");
        foreach (var key in new[] { "steps", "total-steps", "threads", "ab-steps", "deep-cache", "generation-steps" })
            if (cl.Int(key) is int value) { start.ArgumentList.Add("--" + key); start.ArgumentList.Add(value.ToString(CultureInfo.InvariantCulture)); }
        start.ArgumentList.Add("--width"); start.ArgumentList.Add(width.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--height"); start.ArgumentList.Add(height.ToString(CultureInfo.InvariantCulture));
        foreach (var key in new[] { "channels-last", "attention", "linear", "sizes" })
            if (cl.String(key) is { } value) { start.ArgumentList.Add("--" + key); start.ArgumentList.Add(value); }
        if (cl.Flag("skip-vae")) start.ArgumentList.Add("--skip-vae");
        if (generation is not null) { start.ArgumentList.Add("--generation"); start.ArgumentList.Add(generation); }
        foreach (var a in new[] { "--model", modelDir, "--dtype", Name(dtype), "--report", report }) start.ArgumentList.Add(a);
        using var child = Process.Start(start)!;
        child.WaitForExit();
        try
        {
            if (child.ExitCode != 0 || !File.Exists(report))
                throw new InvalidOperationException($"The {Name(dtype)} {generation ?? ""} measurement failed (exit code {child.ExitCode}).");
            return System.Text.Json.JsonSerializer.Deserialize<T>(File.ReadAllText(report))!;
        }
        finally
        {
            File.Delete(report);
        }
    }

    public static string Name(ScalarType t) => t switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };

    public static ScalarType ParseDType(string name) => name.ToLowerInvariant() switch
    {
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" => ScalarType.Float16,
        _ => throw new UsageException($"--dtype takes float32, bfloat16, float16 or auto; got '{name}'."),
    };
}
