using System.Text.Json.Nodes;
using SharpDiffusion.Families;
using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using SharpDiffusion.Tests.Sd3;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 21 item 5: SD3/SD3.5 from the files users download. The golden tiny-sd3 and tiny-sd35 folders are written
/// as Stability single files (<see cref="Sd3FileWriter"/>: the MMDiT and VAE always, the text encoders inside or as
/// ComfyUI-style separate files) and must give the golden pipeline case as the folders do.</summary>
public class Sd3SingleFileTests(ITestOutputHelper output)
{
    const string Case = "flow_euler_96x128_seed11_6steps_g5";
    const string NoT5Case = "no_t5_flow_euler_64x64_seed5_4steps_g6";
    static readonly LoadOptions Exact = new() { ChannelsLast = false };

    static string Folder(string model) => Golden.Path("v3", "models", model);

    /// <summary>The tiny models' CLIPs are 32 and 48 wide (heads not inferable) and their VAE has 8 norm groups: their
    /// configs come from the golden folder, as diffusers' from_single_file(config=...).</summary>
    static SingleFileOptions WithConfig(string config, params string[] textEncoders) => new() { DiffusersConfig = config, TextEncoders = textEncoders };

    string RunCase(StableDiffusionPipeline pipeline, string model, string name)
    {
        var golden = Golden.Load(Sd3Golden.File(model, name));
        using var mode = inference_mode();
        string summary = PipelineParityTests.GenerateAndCompare(pipeline, Sd3Golden.Options(Sd3Golden.Info(model, name)), golden);
        output.WriteLine($"{model}/{name}: {summary}");
        return summary;
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Single_file_with_its_text_encoders_inside_matches_diffusers(string model)
    {
        using var dir = new TempDir();
        string file = dir.File("sd3_model.safetensors");
        Sd3FileWriter.Write(model, file);
        using (var opened = TensorFiles.Open(file))
            Assert.IsType<StableDiffusion3Family>(ModelFamily.Detect(opened));
        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact, WithConfig(Folder(model)));
        Assert.IsType<StableDiffusion3Family>(pipeline.Family);
        RunCase(pipeline, model, Case);
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Single_file_with_separate_text_encoder_files_matches_diffusers(string model)
    {
        using var dir = new TempDir();
        string file = dir.File("sd3_model.safetensors");
        Sd3FileWriter.Write(model, file, clips: false, t5: false);
        Directory.CreateDirectory(dir.File("text_encoders"));
        string clipL = dir.File("text_encoders/clip_l.safetensors"), clipG = dir.File("text_encoders/clip_g.safetensors"), t5 = dir.File("text_encoders/t5xxl_fp16.safetensors");
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder", clipL);
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder_2", clipG, withoutTextModelLevel: true);
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder_3", t5);
        // A config folder without tokenizer_3: T5's spiece.model is found beside the T5 file.
        Sd3FileWriter.WriteConfigFolder(model, dir.File("config"));
        File.Copy(Path.Combine(Folder(model), "tokenizer_3", "spiece.model"), dir.File("text_encoders/spiece.model"));

        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact, WithConfig(dir.File("config"), clipL, clipG, t5));
        Assert.NotNull(Assert.IsType<SharpDiffusion.Conditioning.Sd3TextConditioner>(pipeline.Conditioner).T5);
        RunCase(pipeline, model, Case);
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Single_file_without_T5_matches_the_no_t5_case(string model)
    {
        using var dir = new TempDir();
        string file = dir.File("sd3_medium_incl_clips.safetensors");
        Sd3FileWriter.Write(model, file, t5: false);
        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact, WithConfig(Folder(model)));
        Assert.Null(Assert.IsType<SharpDiffusion.Conditioning.Sd3TextConditioner>(pipeline.Conditioner).T5);
        RunCase(pipeline, model, NoT5Case);
    }

    [Fact]
    public void Low_memory_reads_each_component_when_it_runs_and_matches_diffusers()
    {
        const string model = "tiny-sd3";
        using var dir = new TempDir();
        string file = dir.File("sd3_model.safetensors"), t5 = dir.File("t5xxl_fp16.safetensors");
        Sd3FileWriter.Write(model, file, t5: false);
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder_3", t5);
        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact with { LowMemory = true }, WithConfig(Folder(model), t5));
        RunCase(pipeline, model, Case);
    }

    [Fact]
    public void A_CLIP_L_file_without_text_projection_gets_the_identity_as_diffusers_sets_it()
    {
        const string model = "tiny-sd3";
        using var dir = new TempDir();
        string file = dir.File("sd3_model.safetensors"), clipL = dir.File("clip_l.safetensors");
        Sd3FileWriter.Write(model, file, t5: false);
        using (var source = SafetensorsFile.Open(Path.Combine(Folder(model), "text_encoder", "model.safetensors")))
        {
            var tensors = source.Tensors.Keys.Where(k => k != "text_projection.weight").ToDictionary(k => k, source.Load);
            SafetensorsWriter.Save(clipL, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        var loaded = Sd3SingleFileLoader.Load(file, Exact, WithConfig(Folder(model), clipL));
        try
        {
            var projection = loaded.TextEncoder.Module.named_parameters().Single(p => p.name == "text_projection.weight").parameter;
            Assert.True(Exactly.Same(projection, eye(projection.shape[0])));
        }
        finally
        {
            foreach (var w in loaded.All) w.Module.Dispose();
        }
    }

    [Fact]
    public void A_text_encoder_file_replaces_the_one_inside()
    {
        const string model = "tiny-sd35";
        using var dir = new TempDir();
        string file = dir.File("sd35.safetensors");
        Sd3FileWriter.Write(model, file);
        // Another model's CLIP-L inside (tiny-sd3's own folder holds the same encoders, so use a perturbed copy) ...
        string wrong = dir.File("wrong.safetensors"), clipL = dir.File("clip_l.safetensors");
        using (var source = SafetensorsFile.Open(file))
        {
            var tensors = source.Tensors.Keys.ToDictionary(k => k, k => k.StartsWith("text_encoders.clip_l.") ? source.Load(k) * 1.5 : source.Load(k));
            SafetensorsWriter.Save(wrong, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        // ... and the right one beside it.
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder", clipL);
        var golden = Golden.Load(Sd3Golden.File(model, Case));
        var prompts = Sd3Golden.Options(Sd3Golden.Info(model, Case)).Prompts;
        using var mode = inference_mode();
        using (var bad = StableDiffusionPipeline.FromSingleFile(wrong, Exact, WithConfig(Folder(model))))
        {
            var (embeds, _) = ((SharpDiffusion.Conditioning.Sd3TextConditioner)bad.Conditioner).EncodePrompt(prompts, prompts, prompts);
            Assert.True(Golden.MaxAbsDiff(embeds, golden["prompt_embeds"]) > 1e-2, "the perturbed CLIP-L changes the prompt embeddings");
        }
        using var good = StableDiffusionPipeline.FromSingleFile(wrong, Exact, WithConfig(Folder(model), clipL));
        var (goodEmbeds, pooled) = ((SharpDiffusion.Conditioning.Sd3TextConditioner)good.Conditioner).EncodePrompt(prompts, prompts, prompts);
        double worst = Math.Max(Golden.AssertClose(goodEmbeds, golden["prompt_embeds"], what: "prompt_embeds"),
            Golden.AssertClose(pooled, golden["pooled_prompt_embeds"], what: "pooled_prompt_embeds"));
        output.WriteLine($"encode_prompt with --text-encoder clip_l: max |diff| {worst:E3}");
    }

    [Fact]
    public void Configs_inferred_from_the_shapes_equal_the_golden_configs()
    {
        const string model = "tiny-sd35"; // qk norm: the head size comes from ln_q, so the whole transformer config is inferable
        using var dir = new TempDir();
        string file = dir.File("sd35.safetensors");
        Sd3FileWriter.Write(model, file);
        File.Copy(Path.Combine(Folder(model), "tokenizer_3", "spiece.model"), dir.File("spiece.model"));
        Sd3Checkpoint checkpoint;
        // The tiny CLIPs are not 64-channel-headed: give them as configs, infer the rest.
        string config = dir.File("config");
        foreach (string component in (string[])["text_encoder", "text_encoder_2"])
        {
            Directory.CreateDirectory(Path.Combine(config, component));
            File.Copy(Path.Combine(Folder(model), component, "config.json"), Path.Combine(config, component, "config.json"));
        }
        using (var f = TensorFiles.Open(file)) checkpoint = Sd3Checkpoint.Inspect(f, new SingleFileOptions { DiffusersConfig = config });

        AssertSameValues(Path.Combine(Folder(model), "transformer", "config.json"), checkpoint.TransformerConfig, exceptKeys: ["sample_size"]);
        AssertSameValues(Path.Combine(Folder(model), "vae", "config.json"), checkpoint.VaeConfig,
            exceptKeys: ["norm_num_groups", "sample_size", "scaling_factor", "shift_factor", "latents_mean", "latents_std"]);
        AssertSameValues(Path.Combine(Folder(model), "text_encoder_3", "config.json"), checkpoint.TextEncoders[Sd3TextEncoder.T5].Config,
            exceptKeys: ["classifier_dropout", "dropout_rate", "eos_token_id", "initializer_factor", "is_encoder_decoder", "num_decoder_layers", "pad_token_id",
                "tie_word_embeddings", "torch_dtype", "transformers_version", "use_cache"]);
        Assert.Equal(dir.Path, checkpoint.T5TokenizerFolder);
        // SD3's own latent constants and scheduler (the golden's equal them).
        var vae = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder(model), "vae", "config.json")))!;
        Assert.Equal(vae["scaling_factor"]!.GetValue<double>(), checkpoint.VaeConfig["scaling_factor"]!.GetValue<double>());
        Assert.Equal(vae["shift_factor"]!.GetValue<double>(), checkpoint.VaeConfig["shift_factor"]!.GetValue<double>());
        AssertSameValues(Path.Combine(Folder(model), "scheduler", "scheduler_config.json"), checkpoint.SchedulerConfig, exceptKeys: ["_diffusers_version"]);
    }

    /// <summary>Every key of the golden config.json (but <paramref name="exceptKeys"/>) has the same value in <paramref name="inferred"/>.</summary>
    static void AssertSameValues(string goldenConfig, JsonObject inferred, string[] exceptKeys)
    {
        var golden = JsonNode.Parse(File.ReadAllText(goldenConfig))!.AsObject();
        foreach (var (key, value) in golden)
        {
            if (exceptKeys.Contains(key) || key == "_class_name" && !inferred.ContainsKey(key) || key is "_diffusers_version" or "architectures") continue;
            Assert.True(inferred.ContainsKey(key), $"{goldenConfig}: {key} not inferred");
            string want = value?.ToJsonString() ?? "null", have = inferred[key]?.ToJsonString() ?? "null";
            if (double.TryParse(want, out double w) && double.TryParse(have, out double h)) Assert.True(w == h, $"{key}: {have}, golden {want}");
            else Assert.True(want == have, $"{key}: {have}, golden {want}");
        }
    }

    [Fact]
    public void Convert_writes_a_folder_that_loads_with_identical_output()
    {
        const string model = "tiny-sd35";
        using var dir = new TempDir();
        string file = dir.File("sd3.5_tiny.safetensors");
        Sd3FileWriter.Write(model, file, t5: false);
        string t5 = dir.File("t5xxl_fp16.safetensors");
        Sd3FileWriter.WriteTextEncoder(model, "text_encoder_3", t5);
        var singleFile = WithConfig(Folder(model), t5);
        DiffusersFolderWriter.Convert(file, dir.File("converted"), ScalarType.Float32, singleFile);

        var options = Sd3Golden.Options(Sd3Golden.Info(model, Case));
        using var mode = inference_mode();
        using var fromFolder = StableDiffusionPipeline.FromPretrained(dir.File("converted"), Exact);
        Assert.IsType<StableDiffusion3Family>(fromFolder.Family);
        RunCase(fromFolder, model, Case);
        using var fromFile = StableDiffusionPipeline.FromSingleFile(file, Exact, singleFile);
        using var a = fromFolder.Generate(options);
        using var b = fromFile.Generate(options);
        Assert.Equal(0, Golden.MaxAbsDiff(a.ImageFloat, b.ImageFloat));
    }

    [Fact]
    public void A_float8_T5_file_loads_the_values_it_stores()
    {
        const string model = "tiny-sd3";
        using var dir = new TempDir();
        string file = dir.File("sd3_medium_incl_clips.safetensors"), t5 = dir.File("t5xxl_fp8_e4m3fn.safetensors");
        Sd3FileWriter.Write(model, file, t5: false);
        using (var source = SafetensorsFile.Open(Path.Combine(Folder(model), "text_encoder_3", "model.safetensors")))
        {
            var tensors = source.Tensors.Keys.ToDictionary(k => k, source.Load);
            Float8FileWriter.Write(t5, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact, WithConfig(Folder(model), t5));
        var encoder = Assert.IsType<SharpDiffusion.Conditioning.Sd3TextConditioner>(pipeline.Conditioner).T5!;
        using var stored = TensorFiles.Open(t5);
        Assert.Contains(stored.Headers, h => h.StoredType == "F8_E4M3");
        var parameters = encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(stored.Headers.Select(h => h.Name).Order(), parameters.Keys.Order());
        // The float8 linear weights stay compact (issue 21 item 6): compared as the values they dequantize to.
        var compact = encoder.named_modules().DistinctBy(m => m.name).Where(m => m.module is SharpDiffusion.Models.Linear { IsCompact: true })
            .ToDictionary(m => m.name + ".weight", m => (SharpDiffusion.Models.Linear)m.module);
        Assert.NotEmpty(compact);
        foreach (var header in stored.Headers)
        {
            using var decoded = stored.Load(header.Name);
            using var held = compact.TryGetValue(header.Name, out var layer) ? layer.DequantizedWeight() : parameters[header.Name].detach();
            Assert.True(Exactly.Same(held, decoded), header.Name);
        }
        // The float8 T5 runs: the pipeline gives an image of the golden case's size (its values differ by the rounding).
        var options = Sd3Golden.Options(Sd3Golden.Info(model, Case)) with { NumInferenceSteps = 1 };
        using var mode = inference_mode();
        using var result = pipeline.Generate(options);
        Assert.Equal(options.Height, result.Height);
    }
}
