using SharpDiffusion.Adapters;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tests.Flux;
using SharpDiffusion.Tuning;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Models;

/// <summary>The SD3 and Flux transformers (whose <see cref="Linear"/> layers may be compact) with the oneDNN kernel
/// forced through the load options: the golden outputs still match diffusers (golden README "sd3/", "flux/"), compact
/// (float8) layers decode then multiply with it, LoRA merges and side branches give F.linear's results, and gradients are
/// F.linear's.</summary>
public class LinearKernelParityTests(ITestOutputHelper output)
{
    static readonly LoadOptions OneDnn = new() { Linear = LinearKernel.OneDnn };

    static string Sd3Dir(string model) => Golden.Path("v3", "models", model, "transformer");

    static SD3Transformer2DInput Sd3Input(Dictionary<string, Tensor> golden) =>
        new(golden["hidden_states"], golden["timestep"], golden["encoder_hidden_states"], golden["pooled_projections"]);

    /// <summary>Each layer once (TorchSharp's named_modules lists a module under its registered and its field name).</summary>
    internal static List<Linear> Layers(nn.Module m) =>
        m.named_modules().Select(n => n.module).OfType<Linear>().Distinct(ReferenceEqualityComparer.Instance).Cast<Linear>().ToList();

    internal static void AssertKernel(nn.Module model, LinearKernel kernel)
    {
        var layers = Layers(model);
        Assert.NotEmpty(layers);
        Assert.All(layers, l => Assert.Equal(kernel, l.Kernel));
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void SD3_transformer_matches_diffusers_with_the_onednn_kernel(string model)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", model, "transformer.safetensors");
        using var oneDnn = ComponentLoader.LoadSD3Transformer(Sd3Dir(model), OneDnn);
        using var standard = ComponentLoader.LoadSD3Transformer(Sd3Dir(model));
        AssertKernel(oneDnn, LinearKernel.OneDnn);
        AssertKernel(standard, LinearKernel.Default); // tests run with tuning off: F.linear
        double diff = Golden.AssertClose(oneDnn.Forward(Sd3Input(golden)), golden["out"], what: $"{model} out (oneDNN)");
        double reference = Golden.MaxAbsDiff(standard.Forward(Sd3Input(golden)), golden["out"]);
        output.WriteLine($"{model} transformer, oneDNN linears: max |diff| {diff:E3} (F.linear: {reference:E3}; max |expected| {Golden.MaxAbs(golden["out"]):E3})");
    }

    [Theory]
    [InlineData("", "dev_96x128_seed12_6steps_g3.5")]                  // the diffusers folder: float weights
    [InlineData(FluxGolden.Fp8File, "single_file/fp8_seed19_4steps")]  // float8 weights kept compact: decoded, then oneDNN
    public void Flux_first_call_matches_diffusers_with_the_onednn_kernel(string file, string goldenCase)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(FluxGolden.File("tiny-flux-dev", goldenCase));
        string folder = Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer");
        using var transformer = file.Length == 0 ? ComponentLoader.LoadFluxTransformer(folder, OneDnn)
            : (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(FluxGolden.SingleFile(file), OneDnn,
                FluxTransformer2DConfig.From(JsonConfig.Load(Path.Combine(folder, "config.json")))).Module;
        AssertKernel(transformer, LinearKernel.OneDnn);
        int compact = Layers(transformer).Count(l => l.IsCompact);
        Assert.Equal(file.Length > 0, compact > 0);
        double diff = Golden.AssertClose(transformer.Forward(FluxGolden.FirstCall(golden)), golden["denoiser_output_call0"], what: goldenCase);
        output.WriteLine($"{goldenCase}: first call, oneDNN linears ({compact} compact): max |diff| {diff:E3}");
    }

    /// <summary>A LoRA merged into float weights (W + s·up·down, in place) and the same LoRA as side branches on compact
    /// layers give, with the oneDNN kernel, what they give with F.linear; the output returns to the base one after.</summary>
    [Fact]
    public void Lora_merges_and_side_branches_with_the_onednn_kernel_equal_F_linears()
    {
        using var dir = new TempDir();
        string loraPath = dir.File("flux_lora.safetensors");
        const int rank = 4;
        using var generator = new Generator(11);
        string folder = Path.Combine(FluxGolden.ModelDir("tiny-flux-dev"), "transformer");
        var config = FluxTransformer2DConfig.From(JsonConfig.Load(Path.Combine(folder, "config.json")));
        FluxTransformer2DModel Load(LinearKernel kernel, bool compact) => (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(
            FluxGolden.SingleFile(FluxGolden.Fp8File), new LoadOptions { Linear = kernel, CompactWeights = compact }, config).Module;
        using var compactOneDnn = Load(LinearKernel.OneDnn, compact: true);
        using var decodedOneDnn = Load(LinearKernel.OneDnn, compact: false);
        using var decodedDefault = Load(LinearKernel.Default, compact: false);

        var shapes = decodedDefault.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (kohya, dotted) in new[] { ("transformer_blocks_0_attn_to_q", "transformer_blocks.0.attn.to_q"), ("single_transformer_blocks_0_proj_out", "single_transformer_blocks.0.proj_out") })
        {
            var shape = shapes[dotted + ".weight"]; // [out, in]
            tensors[$"lora_unet_{kohya}.lora_down.weight"] = randn([rank, shape[1]], generator: generator) * 0.1;
            tensors[$"lora_unet_{kohya}.lora_up.weight"] = randn([shape[0], rank], generator: generator) * 0.1;
            tensors[$"lora_unet_{kohya}.alpha"] = tensor(2.0f);
        }
        SafetensorsWriter.Save(loraPath, tensors);
        using var lora = LoraFile.Load(loraPath);
        var input = FluxGolden.FirstCall(Golden.Load(FluxGolden.File("tiny-flux-dev", "single_file/fp8_seed19_4steps")));
        using var none = nn.Sequential(); // no text encoder here

        using var _ = inference_mode();
        using var before = decodedOneDnn.Forward(input);
        Tensor With(FluxTransformer2DModel model, Func<LoraMerger, int> count, int expected)
        {
            using var merger = LoraMerger.Apply([new LoraWeight(lora, 0.8)], model, none);
            Assert.Equal(expected, count(merger));
            return model.Forward(input);
        }
        using var merged = With(decodedOneDnn, m => m.PatchedCount, 2);
        using var mergedReference = With(decodedDefault, m => m.PatchedCount, 2);
        using var branched = With(compactOneDnn, m => m.BranchCount, 2);
        using var after = decodedOneDnn.Forward(input);

        double moved = Golden.MaxAbsDiff(merged, before);
        Assert.True(moved > 1e-3, "the LoRA changed nothing");
        double mergeDiff = Golden.AssertClose(merged, mergedReference, what: "merged, oneDNN vs F.linear");
        double branchDiff = Golden.AssertClose(branched, mergedReference, what: "side branches (oneDNN) vs merged (F.linear)");
        Assert.Equal(0, Golden.MaxAbsDiff(after, before)); // restored bit for bit
        output.WriteLine($"LoRA moves the output by {moved:E3}; oneDNN merged vs F.linear merged {mergeDiff:E3}; oneDNN side branches vs F.linear merged {branchDiff:E3}");
        foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>Training's autograd through the same modules: every parameter's gradient of an SD3 transformer's loss is
    /// F.linear's with the oneDNN kernel, to float32 rounding.</summary>
    [Fact]
    public void SD3_gradients_with_the_onednn_kernel_equal_F_linears()
    {
        var golden = Golden.Load("v3", "sd3", "tiny-sd3", "transformer.safetensors");
        using var transformer = ComponentLoader.LoadSD3Transformer(Sd3Dir("tiny-sd3"));
        var parameters = transformer.named_parameters().ToList();
        foreach (var (_, p) in parameters) p.requires_grad = true;
        using var generator = new Generator(7);
        using var upstream = randn(golden["out"].shape, generator: generator);
        Dictionary<string, Tensor> Gradients(LinearKernel kernel)
        {
            foreach (var l in Layers(transformer)) l.Kernel = kernel;
            foreach (var (_, p) in parameters) p.grad = null;
            using var loss = (transformer.Forward(Sd3Input(golden)) * upstream).sum();
            loss.backward();
            return parameters.Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var reference = Gradients(LinearKernel.Default);
        var oneDnn = Gradients(LinearKernel.OneDnn);
        Assert.Equal(parameters.Count, reference.Count);
        Assert.Equal(reference.Keys.Order(), oneDnn.Keys.Order());
        double worst = 0;
        foreach (var (name, g) in reference)
            worst = Math.Max(worst, Golden.AssertClose(oneDnn[name], g, what: $"d loss / d {name}") / Math.Max(Golden.MaxAbs(g), 1e-30));
        output.WriteLine($"{reference.Count} parameter gradients; largest max |diff| relative to its gradient's max |value|: {worst:E2}");
    }

    /// <summary>Left to the tuner, the load options' kernel is measured once per process and given to every linear layer of
    /// every model: the VAE's attention projections as the transformer's.</summary>
    [Fact]
    public void The_measured_kernel_reaches_every_layer_of_every_model_and_is_measured_once()
    {
        int measured = 0;
        var paths = new FastPaths(null, machine: new MachineKey("Test CPU 9000", "libtorch 0.0, TorchSharp 0.0", 2))
        {
            LinearTimingsOverride = _ => { Interlocked.Increment(ref measured); return new(0.05, 0.03); },
            LinearRooflineOverride = _ => new(0.05, 0.05),
            BlockTimingsOverride = _ => new(0.05, 0.05),
            ConvTimingsOverride = _ => new(0.05, 0.05),
        };
        var options = new LoadOptions { Tuning = paths };
        using (var vae = ComponentLoader.LoadVae(Golden.Path("v3", "models", "tiny-sd3", "vae"), options))
            AssertKernel(vae, LinearKernel.OneDnn);
        Assert.Equal(2, measured); // the clear win, repeated
        using var transformer = ComponentLoader.LoadSD3Transformer(Sd3Dir("tiny-sd3"), options);
        AssertKernel(transformer, LinearKernel.OneDnn);
        using var again = ComponentLoader.LoadSD3Transformer(Sd3Dir("tiny-sd35"), options);
        AssertKernel(again, LinearKernel.OneDnn);
        Assert.Equal(2, measured); // once per process
    }
}
