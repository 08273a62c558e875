using System.Diagnostics;
using SharpDiffusion.Models.UNet;
using TorchSharp.Modules;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// Counts a UNet's calls while it is not disposed, as they happen: every call runs conv_in, a full pass also runs the deep
/// blocks that DeepCache's shallow steps skip (the mid block, the second down block), so calls − full calls = shallow calls.
/// The first call's start is the denoising loop's start (the pipeline reports each step's end, not the loop's start).
/// </summary>
public sealed class UNetCallCounter : IDisposable
{
    readonly List<Action> _removers = [];
    int _calls, _fullCalls;
    long _firstCall;

    public int Calls => Volatile.Read(ref _calls);
    public int FullCalls => Volatile.Read(ref _fullCalls);
    public int ShallowCalls => Calls - FullCalls;

    /// <summary>The <see cref="Stopwatch.GetTimestamp"/> at which the first counted call entered conv_in; 0 = no call yet.</summary>
    public long FirstCallTimestamp => Interlocked.Read(ref _firstCall);

    public UNetCallCounter(UNet2DConditionModel unet)
    {
        var modules = unet.named_modules().ToList();
        var convIn = (Conv2d)modules.First(m => m.name == "conv_in").module;
        // Any conv of the deep blocks marks a full pass; its first one suffices (each runs once per pass).
        var deep = modules.FirstOrDefault(m => m.module is Conv2d
            && (m.name.StartsWith("mid_block.", StringComparison.Ordinal) || m.name.StartsWith("down_blocks.1.", StringComparison.Ordinal))).module as Conv2d
            ?? throw new ArgumentException("This UNet has neither a mid block nor a second down block: its full passes cannot be told from DeepCache's shallow ones.");
        var entered = convIn.register_forward_pre_hook((m, input) =>
        {
            Interlocked.CompareExchange(ref _firstCall, Stopwatch.GetTimestamp(), 0);
            Interlocked.Increment(ref _calls);
            return input;
        });
        var full = deep.register_forward_pre_hook((m, input) =>
        {
            Interlocked.Increment(ref _fullCalls);
            return input;
        });
        _removers.Add(entered.remove);
        _removers.Add(full.remove);
    }

    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        _removers.Clear();
    }
}
