using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Lora;

/// <summary>The other file layouts (diffusers/PEFT, legacy attention processors, conv LoCon), bad input, prompt tags and
/// the infotext hash. Own pipeline, as <see cref="LoraGoldenTests"/>.</summary>
public class LoraFileTests
{
    static readonly Lazy<StableDiffusionPipeline> OwnPipeline = new(() => StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15")));
    static readonly object Gate = new();
    const string Q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";

    static Dictionary<string, Tensor> Merged(StableDiffusionPipeline p, string file, double scale = 0.7)
    {
        using var lora = LoraFile.Load(file);
        using var merged = LoraMerger.Apply([new LoraWeight(lora, scale)], p.Unet, p.TextEncoder);
        return LoraGoldenTests.Snapshot(p);
    }

    static string Write(TempDir dir, string name, Dictionary<string, Tensor> tensors)
    {
        string path = dir.File(name);
        SafetensorsWriter.Save(path, tensors);
        return path;
    }

    [Fact]
    public void Diffusers_peft_and_legacy_names_merge_exactly_as_the_kohya_file()
    {
        using var dir = new TempDir();
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            // Our parameter names, spelt kohya's way, lead back to the dotted module paths.
            var dotted = p.Unet.named_parameters().Select(kv => ("lora_unet_", kv.name, "unet."))
                .Concat(p.TextEncoder.named_parameters().Select(kv => ("lora_te_", kv.name, "text_encoder.")))
                .Where(t => t.name.EndsWith(".weight"))
                .ToDictionary(t => t.Item1 + t.name[..^7].Replace('.', '_'), t => t.Item3 + t.name[..^7]);
            var renamed = new Dictionary<string, Tensor>();
            using (var kohya = SafetensorsFile.Open(LoraGoldenTests.KohyaFile))
                foreach (var h in kohya.Headers)
                {
                    int dot = h.Name.IndexOf('.');
                    string module = dotted[h.Name[..dot]], suffix = h.Name[dot..];
                    // Alternate the three diffusers spellings across layers; the legacy processor names for the UNet's to_q.
                    string name = module.EndsWith("attn1.to_q") && suffix != ".alpha"
                        ? module.Replace("attn1.to_q", "attn1.processor.to_q_lora") + (suffix == ".lora_down.weight" ? ".down.weight" : ".up.weight")
                        : suffix switch
                        {
                            ".lora_down.weight" => module + (module.Contains("mlp") ? ".lora_linear_layer.down.weight" : ".lora_A.weight"),
                            ".lora_up.weight" => module + (module.Contains("mlp") ? ".lora_linear_layer.up.weight" : ".lora_B.weight"),
                            _ => module + ".alpha",
                        };
                    if (name.Contains("processor") && suffix == ".alpha")
                        name = module.Replace("attn1.to_q", "attn1.processor.to_q_lora") + ".alpha";
                    renamed[name] = kohya.Load(h.Name);
                }
            string peft = Write(dir, "peft.safetensors", renamed);
            var expected = Merged(p, LoraGoldenTests.KohyaFile);
            var actual = Merged(p, peft);
            foreach (var (name, t) in expected)
                Assert.True(t.bytes.SequenceEqual(actual[name].bytes), $"{name} differs");
        }
    }

    [Fact]
    public void Conv_locon_layer_adds_up_times_down_reshaped_to_the_kernel()
    {
        using var dir = new TempDir();
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var conv = p.Unet.named_parameters().Single(kv => kv.name == "down_blocks.0.resnets.0.conv1.weight").parameter; // [C, C, 3, 3]
            long c = conv.shape[0], cin = conv.shape[1];
            var gen = new Generator(5);
            var down = randn([2, cin, 3, 3], generator: gen);
            var up = randn([c, 2, 1, 1], generator: gen);
            string path = Write(dir, "locon.safetensors", new()
            {
                ["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"] = down,
                ["lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight"] = up,
                ["lora_unet_down_blocks_0_resnets_0_conv1.alpha"] = tensor(1.0f),
            });
            using var before = conv.detach().contiguous().clone();
            var merged = Merged(p, path, scale: 0.8)["unet.down_blocks.0.resnets.0.conv1.weight"];
            using var expected = before + 0.8 * 0.5 * up.flatten(1).matmul(down.flatten(1)).reshape(c, cin, 3, 3);
            Assert.True(Golden.MaxAbsDiff(merged, expected) < 1e-5);
            Assert.True(before.bytes.SequenceEqual(conv.detach().contiguous().bytes), "restored");
        }
    }

    [Fact]
    public void Lora_for_another_architecture_names_the_first_key_that_matches_nothing()
    {
        using var dir = new TempDir();
        string path = Write(dir, "other-model.safetensors", new()
        {
            ["lora_unet_input_blocks_1_1_proj_in.lora_down.weight"] = zeros(4, 32),
            ["lora_unet_input_blocks_1_1_proj_in.lora_up.weight"] = zeros(32, 4),
            ["lora_unet_single_transformer_blocks_0_attn_to_q.lora_down.weight"] = zeros(4, 32),
            ["lora_unet_single_transformer_blocks_0_attn_to_q.lora_up.weight"] = zeros(32, 4),
        });
        using var lora = LoraFile.Load(path);
        var p = OwnPipeline.Value;
        var e = Assert.Throws<InvalidDataException>(() => LoraMerger.Apply([new LoraWeight(lora)], p.Unet, p.TextEncoder));
        Assert.Contains(path, e.Message);
        Assert.Contains("lora_unet_single_transformer_blocks_0_attn_to_q.lora_down.weight", e.Message);
        Assert.Contains("another architecture", e.Message);
    }

    /// <summary>Older kohya LoRAs trained on single-file checkpoints name UNet layers the LDM way (input_blocks_1_1_…):
    /// the golden LoRA renamed so merges exactly as the original, through the single-file loader's key tables.</summary>
    [Fact]
    public void Ldm_named_unet_layers_merge_exactly_as_diffusers_named_ones()
    {
        using var dir = new TempDir();
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var byKohya = p.Unet.named_parameters().Select(kv => kv.name).Where(n => n.EndsWith(".weight"))
                .ToDictionary(n => "lora_unet_" + n[..^7].Replace('.', '_'), n => n);
            var ldm = SharpDiffusion.Loading.SingleFile.LdmKeyMap.UNet(byKohya.Values, p.Unet.Config);
            var renamed = new Dictionary<string, Tensor>();
            int ldmNamed = 0;
            using (var kohya = SafetensorsFile.Open(LoraGoldenTests.KohyaFile))
                foreach (var h in kohya.Headers)
                {
                    int dot = h.Name.IndexOf('.');
                    string name = h.Name;
                    if (byKohya.TryGetValue(h.Name[..dot], out var diffusers))
                    {
                        string ldmModule = ldm[diffusers][SharpDiffusion.Loading.SingleFile.LdmKeyMap.UNetPrefix.Length..^7];
                        name = "lora_unet_" + ldmModule.Replace('.', '_') + h.Name[dot..];
                        ldmNamed++;
                    }
                    renamed[name] = kohya.Load(h.Name);
                }
            Assert.True(ldmNamed > 0 && renamed.Keys.Any(k => k.StartsWith("lora_unet_input_blocks_")), "the renamed file uses LDM names");
            string path = Write(dir, "ldm-named.safetensors", renamed);
            var expected = Merged(p, LoraGoldenTests.KohyaFile);
            var actual = Merged(p, path);
            foreach (var (name, t) in expected)
                Assert.True(t.bytes.SequenceEqual(actual[name].bytes), $"{name} differs");
        }
    }

    [Fact]
    public void Sdxl_lora_keys_target_the_first_and_second_text_encoders()
    {
        using var dir = new TempDir();
        string path = Write(dir, "xl.safetensors", new()
        {
            ["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = zeros(4, 32),
            ["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = zeros(37, 4),
            ["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = zeros(4, 32),
            ["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = zeros(37, 4),
        });
        using var lora = LoraFile.Load(path);
        Assert.Equal([LoraTarget.TextEncoder, LoraTarget.TextEncoder2], lora.Layers.Select(l => l.Target).Order());
        Assert.All(lora.Layers, l => Assert.Equal("text_model_encoder_layers_0_mlp_fc1", l.Module));
    }

    [Fact]
    public void Lora_whose_shapes_do_not_fit_is_refused_and_changes_nothing()
    {
        using var dir = new TempDir();
        string path = Write(dir, "sd2-sized.safetensors", new()
        {
            [Q + ".lora_down.weight"] = ones(4, 320),
            [Q + ".lora_up.weight"] = ones(320, 4),
        });
        using var good = LoraFile.Load(LoraGoldenTests.KohyaFile);
        using var lora = LoraFile.Load(path);
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var before = LoraGoldenTests.Snapshot(p);
            var e = Assert.Throws<InvalidDataException>(() => LoraMerger.Apply([new LoraWeight(good), new LoraWeight(lora)], p.Unet, p.TextEncoder));
            Assert.Contains(path, e.Message);
            Assert.Contains("do not fit", e.Message);
            Assert.DoesNotContain("\n", e.Message);
            LoraGoldenTests.AssertBitIdentical(before, p);
        }
    }

    [Fact]
    public void Prompt_tags_are_cut_out_with_their_multipliers()
    {
        var tags = new List<LoraTag>();
        var ignored = new List<string>();
        string text = LoraPromptTags.Extract("a (cat:1.2) <lora:style:0.8>, <lora:two:0.5:0.3> <hypernet:h:1><lora:plain>", tags, ignored);
        Assert.Equal("a (cat:1.2) ,  ", text);
        Assert.Equal([new LoraTag("style", 0.8, 0.8), new LoraTag("two", 0.3, 0.5), new LoraTag("plain", 1.0, 1.0)], tags);
        Assert.Equal(["<hypernet:h:1>"], ignored);
    }

    [Fact]
    public void Missing_lora_of_a_prompt_tag_names_the_file_and_folder()
    {
        using var dir = new TempDir();
        var p = OwnPipeline.Value;
        var options = new GenerationOptions { Prompts = ["a cat <lora:nothere:0.8>"], PromptSyntax = PromptSyntax.A1111, LoraDirectory = dir.Path, NumInferenceSteps = 1 };
        var e = Assert.Throws<FileNotFoundException>(() => p.Generate(options));
        Assert.Contains("nothere.safetensors", e.Message);
        Assert.Contains(dir.Path, e.Message);
    }

    [Fact]
    public void Prompt_tag_applies_the_lora_and_the_infotext_records_its_hash()
    {
        using var dir = new TempDir();
        File.Copy(LoraGoldenTests.KohyaFile, dir.File("kohya.safetensors"));
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var baseOptions = new GenerationOptions { Prompts = ["a cat"], NumInferenceSteps = 2, Seed = 1, Scheduler = "Euler", PromptSyntax = PromptSyntax.A1111 };
            using var lora = LoraFile.Load(dir.File("kohya.safetensors"));
            using var given = p.Generate(baseOptions with { Loras = [new LoraWeight(lora, 0.6)] });
            var tagged = baseOptions with { Prompts = ["a cat<lora:kohya:0.6>"], LoraDirectory = dir.Path };
            using var fromTag = p.Generate(tagged);
            Assert.Equal(given.Images[0].Rgb, fromTag.Images[0].Rgb);
            Assert.Equal([("kohya", "b82f7d71af47")], fromTag.Loras);                 // sha256 of the data after the header
            string info = ImageOutput.InfoTextFor(tagged, fromTag, fromTag.Images[0], "small-sd15");
            Assert.StartsWith("a cat<lora:kohya:0.6>\n", info);                          // the prompt as written, as A1111
            Assert.Contains("Lora hashes: \"kohya: b82f7d71af47\"", info);
        }
    }
}
