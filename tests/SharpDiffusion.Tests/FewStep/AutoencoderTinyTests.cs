using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// golden/v3/taesd (issue 25 item 3): diffusers' AutoencoderTiny on models/tiny-taesd (encode → latents, decode → sample),
/// the same weights in madebyollin's original two-file layout, and the txt2img case with TAESD as the pipeline's VAE.
/// </summary>
public class AutoencoderTinyTests(ITestOutputHelper output)
{
    static string TinyTaesd => Golden.Path("v3", "models", "tiny-taesd");

    static AutoencoderTiny LoadFolder() =>
        AutoencoderTinyFiles.LoadFolder(TinyTaesd, System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TinyTaesd, "config.json")))!.AsObject());

    [Fact]
    public void Taesd_encode_and_decode_match_diffusers()
    {
        var g = Golden.Load("v3", "taesd", "small-sd15", "taesd.safetensors");
        using var model = LoadFolder();
        using var _ = inference_mode();
        using var encoded = model.Encode(g["image"]);
        using var decoded = model.Decode(g["latent"]);
        double enc = Golden.AssertClose(encoded, g["encoded"], rel: 1e-4, abs: 1e-5, what: "encoded");
        double dec = Golden.AssertClose(decoded, g["decoded"], rel: 1e-4, abs: 1e-5, what: "decoded");
        output.WriteLine($"taesd encode max |diff| {enc:E2}, decode max |diff| {dec:E2}");
        Assert.Equal(8, model.SpatialFactor);
    }

    /// <summary>taesd_encoder/taesd_decoder files as madebyollin ships them: the same tensors under "N." keys, the decoder's
    /// shifted by its leading Clamp. Written here from the diffusers weights; loading either half finds the other.</summary>
    [Fact]
    public void The_original_two_file_layout_loads_to_the_same_model()
    {
        var g = Golden.Load("v3", "taesd", "small-sd15", "taesd.safetensors");
        using var reference = LoadFolder();
        using var dir = new TempDir();
        var encoder = new Dictionary<string, Tensor>();
        var decoder = new Dictionary<string, Tensor>();
        foreach (var (name, p) in reference.named_parameters())
        {
            var parts = name.Split('.', 4);   // encoder|decoder, layers, N, rest
            int n = int.Parse(parts[2]);
            if (parts[0] == "encoder") encoder[$"{n}.{parts[3]}"] = p.detach();
            else decoder[$"{n + 1}.{parts[3]}"] = p.detach();
        }
        SafetensorsWriter.Save(dir.File("taesd_encoder.safetensors"), encoder);
        SafetensorsWriter.Save(dir.File("taesd_decoder.safetensors"), decoder);

        Assert.True(AutoencoderTinyFiles.IsOriginalLayout(dir.File("taesd_decoder.safetensors")));
        using var original = AutoencoderTinyFiles.LoadOriginal(dir.File("taesd_decoder.safetensors"));
        Assert.Equal(reference.Config.NumDecoderBlocks, original.Config.NumDecoderBlocks);
        Assert.Equal(reference.Config.NumEncoderBlocks, original.Config.NumEncoderBlocks);
        using var _ = inference_mode();
        using var decoded = original.Decode(g["latent"]);
        using var encoded = original.Encode(g["image"]);
        output.WriteLine($"original layout: decode max |diff| {Golden.AssertClose(decoded, g["decoded"], rel: 1e-4, abs: 1e-5, what: "decoded"):E2}, " +
                         $"encode {Golden.AssertClose(encoded, g["encoded"], rel: 1e-4, abs: 1e-5, what: "encoded"):E2}");

        // The decoder alone decodes; encoding then says which file is missing.
        File.Delete(dir.File("taesd_encoder.safetensors"));
        using var decoderOnly = AutoencoderTinyFiles.LoadOriginal(dir.File("taesd_decoder.safetensors"));
        var e = Assert.Throws<InvalidOperationException>(() => decoderOnly.Encode(g["image"]));
        Assert.Contains("taesd_encoder", e.Message);
    }

    [Fact]
    public void Txt2img_with_taesd_as_the_vae_matches_diffusers()
    {
        const string file = "taesd/small-sd15/txt2img_taesd_euler_64x64_seed10_8steps_g7.safetensors";
        var info = V3Golden.Info(file);
        var g = V3Golden.Load(file);
        using var pipeline = StableDiffusionPipeline.Load(Golden.Path("models", "small-sd15"));
        pipeline.VaeCodec.UseVae(TinyTaesd, new LoadOptions());
        Assert.Equal(1.0, pipeline.LatentFormat.ScalingFactor);   // TAESD's, not SD's 0.18215
        Assert.Equal("tiny-taesd", pipeline.VaeCodec.VaeName);
        Assert.Matches("^[0-9a-f]{10}$", pipeline.VaeCodec.VaeHash);

        using var _ = inference_mode();
        // The decode of diffusers' final latents is its picture.
        var steps = g["latents_steps"];
        using var image = pipeline.DecodeLatents(steps[steps.shape[0] - 1]);
        double decodeDiff = Golden.AssertClose(image, g["image_float"], rel: 1e-4, abs: 1e-4, what: "decoded image");

        var options = new GenerationOptions
        {
            Prompts = [info["kwargs"]!["prompt"]!.GetValue<string>()],
            Width = 64,
            Height = 64,
            NumInferenceSteps = (int)V3Golden.Kwarg(info, "num_inference_steps"),
            GuidanceScale = V3Golden.Kwarg(info, "guidance_scale"),
            Seed = 10,
            Scheduler = "EulerDiscreteScheduler",
        };
        using var result = pipeline.Generate(options);
        var expected = g["image_uint8"].flatten().data<byte>().ToArray();
        var actual = result.Images[0].Rgb;
        int worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        output.WriteLine($"txt2img with TAESD: decode of diffusers' latents max |diff| {decodeDiff:E2}; our picture within {worst} levels of diffusers'");
        Assert.True(worst <= 2, $"{worst} levels apart");
    }

    [Fact]
    public void A_vae_with_other_latent_channels_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TinyTaesd, "config.json")))!.AsObject();
        config["latent_channels"] = 16;
        using (var sixteen = new AutoencoderTiny(AutoencoderTinyConfig.From(config, "test")))
            SafetensorsWriter.SaveModule(dir.File("diffusion_pytorch_model.safetensors"), sixteen);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        using var pipeline = StableDiffusionPipeline.Load(Golden.Path("models", "small-sd15"));
        var e = Assert.Throws<ArgumentException>(() => pipeline.VaeCodec.UseVae(dir.Path, new LoadOptions()));
        Assert.Contains("16-channel", e.Message);
        Assert.Contains("4 channels", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Null(pipeline.VaeCodec.VaeName);   // the model's VAE stays
    }
}
