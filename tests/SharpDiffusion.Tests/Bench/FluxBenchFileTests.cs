using System.Text.RegularExpressions;
using SharpDiffusion.Cli.Bench;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tests.Flux;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Bench;

/// <summary>
/// `bench --arch flux-*` writes its random transformer in BFL's layout, as the files users download and stable-diffusion.cpp
/// reads (issue 23 item 5): written by the bench's own writer for the golden tiny-flux-dev config, each format has exactly
/// the tensor names and shapes of the golden BFL single file (golden/v3/flux/tiny-flux-dev/single_file, made by diffusers'
/// converter) and loads through our loader as a BFL single file with every parameter filled. The published config cut to
/// a few blocks (`--depth-scale`) keeps the same names per block, which is how sd.cpp counts the blocks.
/// </summary>
public class FluxBenchFileTests(ITestOutputHelper output)
{
    static FluxTransformer2DConfig TinyDev() =>
        FluxTransformer2DConfig.From(JsonConfig.Load(Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer", "config.json")));

    static Dictionary<string, TensorHeader> Headers(ITensorFile file) => file.Headers.ToDictionary(h => h.Name, StringComparer.Ordinal);

    [Theory]
    [InlineData("q8_0")]
    [InlineData("q4_k")]
    [InlineData("fp8")]
    [InlineData("bf16")]
    public void The_bench_file_has_the_golden_bfl_names_and_loads_as_a_bfl_single_file(string weights)
    {
        var format = RandomCompactFile.Parse(weights);
        var config = TinyDev();
        using var temp = new TempDir();
        string path = temp.File($"flux1-dev-tiny-{weights}{RandomCompactFile.Extension(format)}");
        FluxBench.WriteWeights(path, config, format);

        using (var written = TensorFiles.Open(path))
        using (var golden = TensorFiles.Open(FluxGolden.SingleFile(FluxGolden.BflFile)))
        {
            var ours = Headers(written);
            var expected = Headers(golden);
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), ours.Keys.Order(StringComparer.Ordinal));
            foreach (var (name, header) in expected)
                Assert.True(header.Shape.SequenceEqual(ours[name].Shape), $"{name}: [{string.Join(", ", ours[name].Shape)}], golden [{string.Join(", ", header.Shape)}]");
            Assert.True(BflKeyMap.IsFlux(ours.Keys));
            // RMSNorm scales (BFL's *.scale) 1 and biases 0, as in a model that was trained: random scales would shrink q·k.
            foreach (var name in ours.Keys.Where(n => n.EndsWith(".scale", StringComparison.Ordinal) || n.EndsWith(".bias", StringComparison.Ordinal)))
            {
                using var value = written.Load(name);
                Assert.True(value.eq(name.EndsWith(".scale", StringComparison.Ordinal) ? 1 : 0).all().item<bool>(), $"{name} is not {(name.EndsWith(".scale", StringComparison.Ordinal) ? 1 : 0)}");
            }
            if (written is GgufFile gguf)
            {
                Assert.Equal("flux", gguf.Architecture);
                // city96's layout: the blocks' 2-D weights quantized, 1-D tensors F32 (as the golden GGUF stores them).
                using var goldenGguf = TensorFiles.Open(FluxGolden.SingleFile(FluxGolden.GgufFile));
                foreach (var header in goldenGguf.Headers.Where(h => h.Shape.Length == 1 || Regex.IsMatch(h.Name, @"^(double|single)_blocks\.")))
                    Assert.True(header.StoredType == ours[header.Name].StoredType, $"{header.Name}: {ours[header.Name].StoredType}, golden {header.StoredType}");
            }
            output.WriteLine($"{weights}: {ours.Count} tensors, {string.Join(", ", ours.Values.GroupBy(h => h.StoredType).Select(g => $"{g.Count()} {g.Key}"))}");
        }

        using var _ = inference_mode();
        using var model = (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(path, new LoadOptions(), config).Module;
        Assert.Equal(config, model.Config);
        var compact = model.named_modules().Where(m => m.module is SharpDiffusion.Models.Linear { IsCompact: true }).Select(m => m.name + ".weight").ToHashSet(StringComparer.Ordinal);
        var unfilled = model.named_parameters().Where(p => p.parameter.device_type == TorchSharp.DeviceType.META && !compact.Contains(p.name)).Select(p => p.name).ToList();
        Assert.True(unfilled.Count == 0, $"not filled: {string.Join(", ", unfilled)}");
        foreach (var (name, parameter) in model.named_parameters().Where(p => !compact.Contains(p.name)))
            Assert.True(parameter.isfinite().all().item<bool>(), $"{name} has non-finite values");
        int layers = model.modules().OfType<SharpDiffusion.Models.Linear>().Distinct().Count(l => l.IsCompact);
        output.WriteLine($"  loaded: {model.named_parameters().Count(p => p.parameter.device_type != TorchSharp.DeviceType.META)} parameters in memory, {layers} linear layers held compact");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_depth_scaled_published_model_has_the_golden_names_per_block(bool dev)
    {
        var config = FluxBench.Published(dev, depthScale: 0.05);
        var (tensors, _) = FluxBench.BflTensors(config, BenchWeights.Q8_0);
        using var golden = TensorFiles.Open(FluxGolden.SingleFile(FluxGolden.BflFile));
        // Block numbers taken out: sd.cpp (flux.hpp) counts the blocks from the highest number it sees.
        static string Pattern(string name) => Regex.Replace(name, @"^(double|single)_blocks\.\d+\.", "$1_blocks.N.");
        var expected = golden.Headers.Select(h => Pattern(h.Name)).Where(n => dev || !n.StartsWith("guidance_in.", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(expected.Order(StringComparer.Ordinal), tensors.Select(t => Pattern(t.Name)).ToHashSet(StringComparer.Ordinal).Order(StringComparer.Ordinal));
        int Blocks(string prefix) => tensors.Select(t => Regex.Match(t.Name, $@"^{prefix}\.(\d+)\.")).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Max() + 1;
        Assert.Equal(config.NumLayers, Blocks("double_blocks"));
        Assert.Equal(config.NumSingleLayers, Blocks("single_blocks"));
        output.WriteLine($"{(dev ? "dev" : "schnell")} at depth 0.05: {config.NumLayers}+{config.NumSingleLayers} blocks, {tensors.Count} tensors");
    }
}
