using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 21 item 8 for SD3: what users get wrong with the files they download is refused in one line that names
/// the file and the value (never a stack trace or a native crash).</summary>
public class Sd3BadInputTests
{
    const string Model = "tiny-sd35";
    static readonly LoadOptions Exact = new() { ChannelsLast = false };
    static string Folder => Golden.Path("v3", "models", Model);

    static void OneLine(Exception e, params string[] mentions)
    {
        Assert.DoesNotContain('\n', e.Message);
        foreach (string m in mentions) Assert.Contains(m, e.Message);
    }

    static (TempDir Dir, string File, string Config) SingleFileAndConfig(bool t5 = true)
    {
        var dir = new TempDir();
        string file = dir.File("sd35.safetensors");
        Sd3FileWriter.Write(Model, file, t5: t5);
        Sd3FileWriter.WriteConfigFolder(Model, dir.File("config"));
        return (dir, file, dir.File("config"));
    }

    static void Edit(string configJson, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(configJson))!.AsObject();
        edit(json);
        File.WriteAllText(configJson, json.ToJsonString());
    }

    [Fact]
    public void A_transformer_config_that_disagrees_with_the_weights_is_refused_naming_the_key()
    {
        var (dir, file, config) = SingleFileAndConfig();
        using var _ = dir;
        string transformer = Path.Combine(config, "transformer", "config.json");
        int layers = JsonNode.Parse(File.ReadAllText(transformer))!["num_layers"]!.GetValue<int>();
        Edit(transformer, j => j["num_layers"] = layers + 1);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = config }));
        OneLine(e, transformer, $"num_layers is {layers + 1}", $"have {layers}", file);

        Edit(transformer, j => { j["num_layers"] = layers; j["qk_norm"] = null; });
        e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = config }));
        OneLine(e, transformer, "qk_norm is null", "\"rms_norm\"");
    }

    [Fact]
    public void A_diffusers_folder_whose_transformer_config_disagrees_with_its_weights_names_them()
    {
        // The folder path: StateDictLoader's report names the config and the differing tensors.
        using var dir = new TempDir();
        foreach (var component in Directory.GetDirectories(Folder).Select(Path.GetFileName))
            if (component != "transformer")
                Directory.CreateSymbolicLink(dir.File(component!), Path.Combine(Folder, component!));
        File.Copy(Path.Combine(Folder, "model_index.json"), dir.File("model_index.json"));
        Directory.CreateDirectory(dir.File("transformer"));
        File.CreateSymbolicLink(dir.File("transformer/diffusion_pytorch_model.safetensors"), Path.Combine(Folder, "transformer", "diffusion_pytorch_model.safetensors"));
        File.Copy(Path.Combine(Folder, "transformer", "config.json"), dir.File("transformer/config.json"));
        Edit(dir.File("transformer/config.json"), j => j["num_layers"] = 2);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(dir.Path, Exact));
        Assert.Contains("transformer_blocks.2.", e.Message);
        Assert.Contains("Check that config.json belongs to these weights", e.Message);
    }

    [Fact]
    public void A_T5_whose_width_is_not_the_joint_attention_dim_is_refused()
    {
        var (dir, file, config) = SingleFileAndConfig(t5: false);
        using var _ = dir;
        // A T5 64 wide (the transformer takes 96): the golden T5's layout, narrower.
        string t5 = dir.File("t5xxl_small.safetensors");
        var tensors = new Dictionary<string, Tensor>();
        using (var source = SafetensorsFile.Open(Path.Combine(Folder, "text_encoder_3", "model.safetensors")))
            foreach (var (name, entry) in source.Tensors)
                tensors[name] = zeros(entry.Shape.Select(d => d == 96 ? 64L : d).ToArray());
        SafetensorsWriter.Save(t5, tensors);
        File.Copy(Path.Combine(Folder, "tokenizer_3", "spiece.model"), dir.File("spiece.model"));
        Directory.Delete(Path.Combine(config, "text_encoder_3"), recursive: true); // inferred from the shapes
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = config, TextEncoders = [t5] }));
        OneLine(e, t5, "d_model is 64", "joint_attention_dim is 96");
    }

    [Fact]
    public void A_T5_without_its_tokenizer_says_where_to_put_spiece_model()
    {
        var (dir, file, config) = SingleFileAndConfig();
        using var _ = dir;
        var e = Assert.Throws<FileNotFoundException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = config }));
        OneLine(e, "spiece.model", "--text-encoder spiece.model", file);
    }

    [Fact]
    public void A_single_file_without_CLIP_G_asks_for_the_file()
    {
        using var dir = new TempDir();
        string file = dir.File("sd35_no_te.safetensors"), clipL = dir.File("clip_l.safetensors");
        Sd3FileWriter.Write(Model, file, clips: false, t5: false);
        Sd3FileWriter.WriteTextEncoder(Model, "text_encoder", clipL);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = Folder, TextEncoders = [clipL] }));
        OneLine(e, file, "CLIP-G", "--text-encoder clip_g.safetensors");
    }

    [Fact]
    public void Tiny_CLIPs_without_a_config_say_the_heads_cannot_be_told()
    {
        using var dir = new TempDir();
        string file = dir.File("sd35.safetensors");
        Sd3FileWriter.Write(Model, file, t5: false);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact));
        OneLine(e, file, "not a multiple of 64", "text_encoder/config.json");
    }

    [Fact]
    public void A_sharded_T5_with_a_missing_or_truncated_shard_names_the_shard()
    {
        var (dir, file, config) = SingleFileAndConfig(t5: false);
        using var _ = dir;
        // text_encoder_3 as transformers shards it: two shards and model.safetensors.index.json.
        string t5Dir = Directory.CreateDirectory(dir.File("text_encoder_3")).FullName;
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using (var source = SafetensorsFile.Open(Path.Combine(Folder, "text_encoder_3", "model.safetensors")))
        {
            var names = source.Tensors.Keys.ToList();
            for (int k = 0; k < 2; k++)
            {
                string shard = $"model-{k + 1:00000}-of-00002.safetensors";
                var part = names.Where((_, i) => i % 2 == k).ToDictionary(n => n, source.Load);
                SafetensorsWriter.Save(Path.Combine(t5Dir, shard), part);
                foreach (var (name, t) in part) { weightMap[name] = shard; t.Dispose(); }
            }
        }
        string index = Path.Combine(t5Dir, "model.safetensors.index.json");
        File.WriteAllText(index, JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
        File.Copy(Path.Combine(Folder, "tokenizer_3", "spiece.model"), dir.File("spiece.model"));
        var options = new SingleFileOptions { DiffusersConfig = config, TextEncoders = [index] };
        using (var loaded = StableDiffusionPipeline.FromSingleFile(file, Exact, options))
            Assert.NotNull(((SharpDiffusion.Conditioning.Sd3TextConditioner)loaded.Conditioner).T5);

        string second = Path.Combine(t5Dir, "model-00002-of-00002.safetensors");
        var bytes = File.ReadAllBytes(second);
        File.WriteAllBytes(second, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, options));
        OneLine(e, second, index, "truncated");

        File.Delete(second);
        var missing = Assert.Throws<FileNotFoundException>(() => StableDiffusionPipeline.FromSingleFile(file, Exact, options));
        OneLine(missing, second, index, "missing");
    }

    [Fact]
    public void A_size_not_a_whole_latent_patch_is_refused_before_any_work()
    {
        using var dir = new TempDir();
        string file = dir.File("sd35.safetensors");
        Sd3FileWriter.Write(Model, file);
        using var pipeline = StableDiffusionPipeline.FromSingleFile(file, Exact, new SingleFileOptions { DiffusersConfig = Folder });
        // The multiple is a whole latent patch: the VAE's factor × the patch size (16 for SD3; 8 for the tiny 3-level VAE).
        var vae = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "vae", "config.json")))!;
        var transformer = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "transformer", "config.json")))!;
        int multiple = (1 << (vae["block_out_channels"]!.AsArray().Count - 1)) * transformer["patch_size"]!.GetValue<int>();
        Assert.Equal(multiple, pipeline.SizeMultiple);
        int width = multiple * 9 + multiple / 2;
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerationOptions { Prompts = ["a"], Width = width, Height = multiple * 8 }));
        // GenerationOptions refuses what is not a multiple of 8 (any model), the pipeline what is not one of its own multiple.
        OneLine(e, width.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Matches($@"multiples? of {multiple}\b", e.Message);
    }

    [Fact]
    public void Text_encoder_files_on_an_SD_1_checkpoint_are_refused()
    {
        string sd15 = Golden.Path("single_file", "small-sd15.safetensors");
        string clipL = Path.Combine(Folder, "text_encoder", "model.safetensors");
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(sd15, Exact, new SingleFileOptions { TextEncoders = [clipL] }));
        OneLine(e, sd15, "--text-encoder files apply to SD3/SD3.5 single files only");
    }
}
