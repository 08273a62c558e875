using System.Diagnostics;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Diagnostics;

/// <summary>The op-class timer's linear class on an SD 1.5 UNet, with either kernel: every call of every linear layer is
/// timed. Each layer is made to take at least <see cref="Delay"/> longer (a pre-hook registered after the timer's, so inside
/// its window), so the linear seconds must be at least calls × delay, counted by a hook of the test's own.</summary>
public class OpClassTimerUNetLinearTests(ITestOutputHelper output)
{
    static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(2);

    [Theory]
    [InlineData(LinearKernel.Default)]
    [InlineData(LinearKernel.OneDnn)]
    public void Times_every_linear_layer_of_a_unet(LinearKernel kernel)
    {
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", "small-sd15", "unet"), new LoadOptions { Linear = kernel });
        using var _ = inference_mode();
        using var latents = randn(2, unet.Config.InChannels, 16, 12);
        using var context = randn(2, 5, unet.Config.CrossAttentionDim[0]);
        var layers = FlopCounterUNetLinearTests.LinearLayers(unet).Select(l => l.Layer).ToList();
        unet.Forward(latents, 500f, context).Dispose(); // warm-up

        var timer = new OpClassTimer(unet);
        int calls = 0;
        long delayTicks = (long)(Delay.TotalSeconds * Stopwatch.Frequency);
        var hooks = layers.Select(l => l.register_forward_pre_hook((m, x) =>
        {
            calls++;
            long until = Stopwatch.GetTimestamp() + delayTicks;
            while (Stopwatch.GetTimestamp() < until) { } // busy: a sleep may end early on some clocks
            return x;
        })).ToList();
        var clock = Stopwatch.StartNew();
        unet.Forward(latents, 500f, context).Dispose();
        var times = timer.Result(clock.Elapsed.TotalSeconds, steps: 1);
        timer.Dispose();
        foreach (var h in hooks) h.remove();

        Assert.True(calls >= layers.Count, $"{calls} calls of {layers.Count} layers");
        Assert.True(times.Linear >= calls * Delay.TotalSeconds, $"linear {times.Linear:F4} s for {calls} calls of at least {Delay.TotalSeconds} s each");
        Assert.True(times.Conv > 0 && times.Conv + times.Linear <= times.Step, $"conv {times.Conv} s, linear {times.Linear} s, step {times.Step} s");
        output.WriteLine($"{SharpDiffusion.Tuning.LinearDecision.Name(kernel)}: {calls} linear calls, linear {times.Linear:F4} s " +
            $"(≥ {calls * Delay.TotalSeconds:F4}), conv {times.Conv:F4} s, step {times.Step:F4} s");
    }
}
