using SharpDiffusion.Models;

namespace SharpDiffusion.Tuning;

/// <summary>
/// How the float32 linear kernel is chosen from timings, by <see cref="PairDecision"/>'s rule: the UNet's and the
/// transformers' linear shapes (<see cref="MicroBenchmarks.LinearLayers"/>) decide on a clear, repeated win; a tie goes
/// to the matmul roofline (one large square-ish product, <see cref="MicroBenchmarks.LinearRoofline"/>, bench's "matmul"
/// rows), and a tie there keeps F.linear, today's kernel.
/// </summary>
public static class LinearDecision
{
    /// <summary>Seconds per call of the same products with each kernel.</summary>
    public sealed record Timings(double Default, double OneDnn);

    static PairDecision.Timed Timed(string what, Timings t) => new(what, t.Default, t.OneDnn);

    static readonly PairDecision.Candidates Kernels = new(Name(LinearKernel.Default), "F.linear (MKL)", Name(LinearKernel.OneDnn), "oneDNN 1x1 conv",
        DefaultIsB: FastPaths.DefaultLinear == LinearKernel.OneDnn);

    /// <summary>The kernel choice ("default" or "onednn") with its basis and the timings behind it.</summary>
    public static CachedChoice Decide(Func<Timings> layers, Func<Timings> roofline) => PairDecision.Decide(Kernels,
        () => Timed("linear layers", layers()),
        () => Timed("matmul roofline", roofline()));

    /// <summary>The name a kernel is stored, forced and printed by: "default" or "onednn".</summary>
    public static string Name(LinearKernel kernel) => kernel == LinearKernel.OneDnn ? "onednn" : "default";

    /// <summary>The kernel named "default"/"f.linear"/"mkl" or "onednn"/"conv"; null for anything else.</summary>
    public static LinearKernel? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "default" or "f.linear" or "linear" or "mkl" => LinearKernel.Default,
        "onednn" or "one-dnn" or "dnnl" or "conv" or "conv1x1" => LinearKernel.OneDnn,
        _ => null,
    };
}
