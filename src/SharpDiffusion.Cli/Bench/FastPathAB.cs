using SharpDiffusion.Conditioning;
using System.Diagnostics;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// The fast-path choices as `bench` reports them, and an A/B of each inside one process: whole UNet steps with each
/// candidate, interleaved (a, b, a, b, …) so a neighbour's load hits both alike. Besides the tuned choices (layout,
/// attention kernel, linear kernel), the per-step heap trim of the denoising loop is timed the same way.
/// </summary>
public static class FastPathAB
{
    public sealed record Result(string Choice, string A, double SecondsA, string B, double SecondsB, string InUse);

    /// <summary>"layout: channels-last (measured now, by the conv roofline: ResNet block NCHW 22.6 ms, channels-last
    /// 22.6 ms (within 5%); 3x3 conv NCHW 30.1 ms, channels-last 10.5 ms)".</summary>
    /// <param name="roofline">what decided a tie: the conv roofline (layout) or the matmul roofline (linear kernel).</param>
    public static string Describe<T>(string what, Choice<T> choice, Func<T, string> name, string roofline = "conv roofline")
    {
        string source = choice.Source switch
        {
            ChoiceSource.Measured => "measured now",
            ChoiceSource.Cached => "from the cache",
            ChoiceSource.Forced => "forced",
            _ => "default",
        } + choice.Basis switch
        {
            LayoutDecision.Measured => ", a clear win",
            LayoutDecision.Roofline => $", by the {roofline}",
            LayoutDecision.Default => ", a tie: the default",
            _ => "",
        };
        return choice.Detail.Length == 0 ? $"{what}: {name(choice.Value)} ({source})" : $"{what}: {name(choice.Value)} ({source}: {choice.Detail})";
    }

    /// <summary>The attention shapes of a UNet call as the tuner classes them: head size, query and key token classes.</summary>
    public sealed class AttentionShapes : IDisposable
    {
        readonly List<IDisposable> _hooks = [];
        readonly SortedSet<(long, long, long)> _seen = [];

        public AttentionShapes(UNet2DConditionModel unet)
        {
            foreach (var module in unet.modules().OfType<IAttentionModule>())
                _hooks.Add(module.RegisterAttentionHook((q, k) =>
                {
                    lock (_seen) _seen.Add((q.shape[3], FastPaths.TokenClass(q.shape[2]), FastPaths.TokenClass(k.shape[2])));
                }));
        }

        public List<(long HeadDim, long Queries, long Keys)> Seen
        {
            get { lock (_seen) return [.. _seen.Reverse()]; }
        }

        public void Dispose()
        {
            foreach (var hook in _hooks) hook.Dispose();
        }
    }

    /// <summary>Layout (a second UNet loaded from <paramref name="unetDir"/> in the other layout; skipped without a
    /// folder), attention kernel (every attention module switched) and heap trim, <paramref name="rounds"/> steps each.</summary>
    public static List<Result> Run(UNet2DConditionModel unet, string? unetDir, LoadOptions options, Tensor latents, TextConditioning conditioning, int rounds)
    {
        var results = new List<Result>();
        var attentions = unet.modules().OfType<Attention>().ToList();
        var inUse = attentions.FirstOrDefault()?.KernelChoice;
        if (unetDir is not null)
        {
            bool channelsLast = options.Layout().Value;
            Console.WriteLine($"  A/B layout: loading the UNet again in {(channelsLast ? "NCHW" : "channels-last")} ...");
            using var other = ComponentLoader.LoadUNet(unetDir, options with { ChannelsLast = !channelsLast });
            var (nchw, cl) = channelsLast ? (other, unet) : (unet, other);
            var (a, b) = Interleave(() => Step(nchw, latents, conditioning), () => Step(cl, latents, conditioning), rounds, "NCHW", "channels-last");
            results.Add(new Result("layout", "NCHW", a, "channels-last", b, channelsLast ? "channels-last" : "NCHW"));
        }
        if (attentions.Count > 0)
        {
            try
            {
                void Use(AttentionKernel kernel) { foreach (var m in attentions) m.KernelChoice = (_, _) => kernel; }
                var (a, b) = Interleave(
                    () => { Use(AttentionKernel.Sdpa); return Step(unet, latents, conditioning); },
                    () => { Use(AttentionKernel.SlicedMatmul); return Step(unet, latents, conditioning); }, rounds, "SDPA", "sliced matmul");
                results.Add(new Result("attention", "SDPA", a, "sliced matmul", b,
                    options.Attention is { } forced ? forced.ToString() : "per shape, as listed"));
            }
            finally
            {
                foreach (var m in attentions) m.KernelChoice = inUse;
            }
        }
        if (Linear(unet, () => Step(unet, latents, conditioning), rounds, options) is { } linear) results.Add(linear);
        // The denoising loop's heap trim after each long step (cb94f4e, for RSS): the candidate trims, then steps, so
        // its time holds the trim and the pages the step faults back in; the other steps on the untrimmed heap.
        var (kept, trimmed) = Interleave(() => Step(unet, latents, conditioning), () =>
        {
            var clock = Stopwatch.StartNew();
            NativeHeap.Trim();
            double trim = clock.Elapsed.TotalSeconds;
            return trim + Step(unet, latents, conditioning);
        }, rounds, "no trim", "trim before the step");
        results.Add(new Result("heap trim per step", "no trim", kept, "trim before the step", trimmed, "trim after each long step (DenoisingLoop)"));
        return results;
    }

    /// <summary>The linear kernel A/B: <paramref name="step"/> with every <see cref="Models.Linear"/> of <paramref name="model"/>
    /// on F.linear, then on oneDNN, interleaved; the kernels in use are restored. Null when the model has no linear layer.</summary>
    public static Result? Linear(nn.Module model, Func<double> step, int rounds, LoadOptions options)
    {
        var layers = model.modules().OfType<Linear>().Distinct().ToList();
        if (layers.Count == 0 || rounds < 1) return null;
        var inUse = layers.Select(l => l.Kernel).ToList();
        try
        {
            void Use(LinearKernel kernel) { foreach (var l in layers) l.Kernel = kernel; }
            var (a, b) = Interleave(
                () => { Use(LinearKernel.Default); return step(); },
                () => { Use(LinearKernel.OneDnn); return step(); }, rounds, "F.linear", "oneDNN 1x1 conv");
            return new Result("linear", "F.linear", a, "oneDNN 1x1 conv", b, LinearDecision.Name(options.LinearChoice().Value));
        }
        finally
        {
            for (int i = 0; i < layers.Count; i++) layers[i].Kernel = inUse[i];
        }
    }

    /// <summary>Whole steps are what the layout choice is for: when the layout A/B clearly (beyond the tuner's margin)
    /// favours the layout not in use, how to override it; else null.</summary>
    public static string? LayoutAdvice(IEnumerable<Result> results)
    {
        if (results.FirstOrDefault(r => r.Choice == "layout") is not { } layout
            || LayoutDecision.Winner(new(layout.SecondsA, layout.SecondsB)) is not bool faster
            || faster == (layout.InUse == "channels-last")) return null;
        return $"Whole steps favour {(faster ? "channels-last" : "NCHW")} over the layout in use: run with --channels-last {(faster ? "true" : "false")} " +
               $"(or {FastPaths.LayoutVariable}={(faster ? "channels-last" : "nchw")}); first more --ab-steps if the machine is busy.";
    }

    static (double A, double B) Interleave(Func<double> a, Func<double> b, int rounds, string nameA, string nameB)
    {
        a(); // warm-up: first calls allocate and pick kernels
        b();
        var (timesA, timesB) = (new List<double>(), new List<double>());
        for (int i = 0; i < rounds; i++)
        {
            timesA.Add(a());
            timesB.Add(b());
            Console.WriteLine($"  A/B round {i + 1}/{rounds}: {nameA} {timesA[^1]:F2}s, {nameB} {timesB[^1]:F2}s");
        }
        return (Roofline.Median(timesA), Roofline.Median(timesB));
    }

    static double Step(UNet2DConditionModel unet, Tensor latents, TextConditioning conditioning)
    {
        var clock = Stopwatch.StartNew();
        using var noise = unet.Forward(latents, 500f, conditioning);
        return clock.Elapsed.TotalSeconds;
    }
}
