using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Configuration;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Models;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench --controlnet`: what a ControlNet adds to a step. A full-size SD 1.5 UNet and a ControlNet with the real config of
/// lllyasviel/control_v11p_sd15_canny (random weights, float32, in this process) at the bench size with the CFG batch of 2:
/// the UNet step alone, the ControlNet pass alone, and the step with its residuals, each the median of --steps, plus the
/// ControlNet's FLOPs, parameters and the memory its weights add. Each time is also given as the process's CPU seconds per
/// thread, which other work on a shared machine inflates less than the wall clock. Outside control_guidance_start/end a step runs the UNet
/// alone (the run skips the ControlNet there), so it costs nothing then.
/// </summary>
public static class ControlNetBench
{
    public static int Run(int width, int height, int steps)
    {
        Console.WriteLine($"SharpDiffusion bench --controlnet: {MachineKey.CpuName()}, {Environment.ProcessorCount} cores, libtorch threads {get_num_threads()}, " +
                          $"{width}x{height}, CFG batch 2, float32, SD 1.5 UNet + control_v11p_sd15_canny (random weights)");
        using var _ = inference_mode();
        long before = ProcessMemory.ResidentBytes ?? 0;
        var unetConfig = UNet2DConditionConfig.From(JsonConfig.Parse(StableDiffusion15.UNetConfig, "SD 1.5 UNet config"));
        using var unet = new UNet2DConditionModel(unetConfig);
        long withUnet = ProcessMemory.ResidentBytes ?? 0;
        // control_v11p_sd15_canny is SD 1.5's down path (diffusers' ControlNetModel.from_unet) with the default
        // conditioning embedding [16, 32, 96, 256], RGB order: the config's other keys are the defaults.
        using var controlNet = new ControlNetModel(new ControlNetModelConfig { Unet = unetConfig });
        long withControlNet = ProcessMemory.ResidentBytes ?? 0;
        unet.eval();
        controlNet.eval();
        long parameters = controlNet.parameters().Sum(p => p.numel()), unetParameters = unet.parameters().Sum(p => p.numel());

        using var generator = new Generator(0);
        using var latents = randn([2, 4, height / 8, width / 8], generator: generator);       // [uncond; cond]
        using var context = randn([2, 77, 768], generator: generator);
        using var image = rand([2, 3, height, width], generator: generator);                  // a control map in [0, 1]
        var conditioning = new TextConditioning(context);

        Tensor Plain(float t) => unet.Forward(latents, t, conditioning);
        ControlNetResiduals Residuals(float t)
        {
            using var time = tensor(t, ScalarType.Float32);
            return controlNet.Forward(latents, time, conditioning, image);
        }
        Tensor Steered(float t)
        {
            using var residuals = Residuals(t);
            return unet.Forward(latents, t, conditioning, control: residuals);
        }

        long controlFlops, unetFlops;
        using (var counter = new FlopCounter(controlNet)) { Residuals(999f).Dispose(); controlFlops = counter.Total; } // also the warm-up
        using (var counter = new FlopCounter(unet)) { Plain(999f).Dispose(); unetFlops = counter.Total; }
        var (plain, plainCpu) = Median(steps, t => Plain(t).Dispose());
        var (alone, aloneCpu) = Median(steps, t => Residuals(t).Dispose());
        var (steered, steeredCpu) = Median(steps, t => Steered(t).Dispose());
        long peak = ProcessMemory.PeakResidentBytes ?? 0;

        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"  UNet step                     {plain,7:F2} s (CPU {plainCpu:F2} s/thread)   {unetFlops / 1e12:F2} TFLOP  {unetParameters / 1e6:F0} M parameters"));
        Console.WriteLine(string.Create(inv, $"  ControlNet pass               {alone,7:F2} s (CPU {aloneCpu:F2} s/thread)   {controlFlops / 1e12:F2} TFLOP  {parameters / 1e6:F0} M parameters"));
        Console.WriteLine(string.Create(inv, $"  UNet step with the ControlNet {steered,7:F2} s (CPU {steeredCpu:F2} s/thread)   {steered - plain:+0.00;-0.00} s = x{steered / plain:F2} " +
            $"(CPU x{steeredCpu / plainCpu:F2}; medians of {steps})"));
        Console.WriteLine(string.Create(inv, $"  Memory: the UNet's weights add {(withUnet - before) / 1e9:F2} GB, the ControlNet's {(withControlNet - withUnet) / 1e9:F2} GB " +
            $"(float32 {parameters * 4 / 1e9:F2} GB); peak RSS {peak / 1e9:F2} GB"));
        Console.WriteLine("  Outside control_guidance_start/end the step is the UNet step alone.");
        return 0;
    }

    /// <summary>The median wall time of <paramref name="steps"/> calls (at timesteps 900, 880, …) and the median of the process's
    /// CPU time over the libtorch threads in them.</summary>
    static (double Wall, double CpuPerThread) Median(int steps, Action<float> call)
    {
        var (times, cpu) = (new List<double>(), new List<double>());
        using var process = Process.GetCurrentProcess();
        for (int i = 0; i < steps; i++)
        {
            process.Refresh();
            var cpuBefore = process.TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            call(900f - 20 * i);
            times.Add(clock.Elapsed.TotalSeconds);
            process.Refresh();
            cpu.Add((process.TotalProcessorTime - cpuBefore).TotalSeconds / get_num_threads());
        }
        return (Roofline.Median(times), Roofline.Median(cpu));
    }
}
