using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Refiner;

/// <summary>
/// sd_xl_refiner_1.0.safetensors's layout: OpenCLIP bigG as conditioner.embedders.0.model (no CLIP-L), the UNet under
/// model.diffusion_model with a label_emb for bigG's projection + 5 time ids, the VAE under first_stage_model. No golden
/// refiner file exists, so one is written from the golden pieces: the refiner folder's UNet renamed to LDM keys by
/// <see cref="LdmKeyMap"/>, and golden single_file/tiny-sdxl.safetensors's VAE and bigG (the refiner folder's are the
/// same files), bigG moved from embedders.1 to embedders.0.
/// </summary>
public class SdxlRefinerSingleFileTests
{
    static SingleFileOptions Options => new()
    {
        // The tiny SDXL yaml: num_head_channels 16 (heads 2, 4) and scale_factor, as the refiner's config needs.
        OriginalConfig = Golden.Path("single_file", "sd_xl_base-tiny-sdxl.yaml"),
        TextEncoder2Config = Golden.Path("v3", "models", "tiny-sdxl-refiner", "text_encoder_2", "config.json"),
        ImageSize = 64,
    };

    static void WriteRefinerFile(string path)
    {
        var folder = SdxlRefinerTests.Refiner;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var unet = folder.Unet.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        foreach (var (name, ldm) in LdmKeyMap.UNet(unet.Keys, folder.Unet.Config))
            tensors[ldm] = unet[name];
        using var baseFile = SafetensorsFile.Open(Golden.Path("single_file", "tiny-sdxl.safetensors"));
        foreach (string key in baseFile.Tensors.Keys)
        {
            if (key.StartsWith(LdmKeyMap.VaePrefix, StringComparison.Ordinal))
                tensors[key] = baseFile.Load(key);
            else if (key.StartsWith(LdmKeyMap.XLOpenClipPrefix, StringComparison.Ordinal))
                tensors[LdmKeyMap.XLRefinerOpenClipPrefix + key[LdmKeyMap.XLOpenClipPrefix.Length..]] = baseFile.Load(key);
        }
        SafetensorsWriter.Save(path, tensors);
    }

    [Fact]
    public void A_refiner_single_file_loads_every_weight_where_the_folder_has_it()
    {
        using var dir = new TempDir();
        string path = dir.File("sd_xl_refiner-tiny.safetensors");
        WriteRefinerFile(path);
        using var fromFile = StableDiffusionPipeline.FromSingleFile(path, singleFile: Options);
        var folder = SdxlRefinerTests.Refiner;
        Assert.IsType<StableDiffusionXLRefinerFamily>(fromFile.Family);
        Assert.Same(fromFile.TextEncoder, fromFile.TextEncoder2); // bigG is the refiner's only text encoder, first and second
        foreach (var (what, a, b) in new (string, nn.Module, nn.Module)[]
                 {
                     ("unet", fromFile.Unet, folder.Unet), ("vae", fromFile.Vae, folder.Vae), ("text_encoder_2", fromFile.TextEncoder, folder.TextEncoder),
                 })
        {
            var expected = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var actual = a.named_parameters().ToList();
            Assert.Equal(expected.Count, actual.Count);
            foreach (var (name, value) in actual)
                Assert.True(value.shape.SequenceEqual(expected[name].shape) && value.eq(expected[name]).all().item<bool>(), $"{what}.{name} differs from the folder's");
        }
        Assert.Equal(folder.Unet.Config.AdditionTimeEmbedDim, fromFile.Unet.Config.AdditionTimeEmbedDim);
        Assert.Equal(folder.Unet.Config.ProjectionClassEmbeddingsInputDim, fromFile.Unet.Config.ProjectionClassEmbeddingsInputDim);
        Assert.Equal(folder.Unet.Config.NumAttentionHeads, fromFile.Unet.Config.NumAttentionHeads);
        Assert.Equal(folder.Vae.Config.ScalingFactor, fromFile.Vae.Config.ScalingFactor);
        Assert.Equal(folder.SchedulerConfig.GetString("timestep_spacing", ""), fromFile.SchedulerConfig.GetString("timestep_spacing", ""));
    }

    [Fact]
    public void A_refiner_single_file_converts_to_a_refiner_folder()
    {
        using var dir = new TempDir();
        string path = dir.File("sd_xl_refiner-tiny.safetensors");
        WriteRefinerFile(path);
        string output = dir.File("converted");
        DiffusersFolderWriter.Convert(path, output, singleFile: Options);
        using var converted = StableDiffusionPipeline.FromPretrained(output);
        Assert.IsType<StableDiffusionXLRefinerFamily>(converted.Family);
        Assert.True(Assert.IsType<Conditioning.SdxlTextConditioner>(converted.Conditioner).RequiresAestheticsScore);
        var folder = SdxlRefinerTests.Refiner;
        foreach (var (what, a, b) in new (string, nn.Module, nn.Module)[] { ("unet", converted.Unet, folder.Unet), ("text_encoder_2", converted.TextEncoder2!, folder.TextEncoder2!) })
        {
            var expected = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, value) in a.named_parameters())
                Assert.True(value.eq(expected[name]).all().item<bool>(), $"{what}.{name} differs from the folder's");
        }
    }

    [Fact]
    public void A_refiner_single_file_refines_an_sdxl_base()
    {
        using var dir = new TempDir();
        string path = dir.File("sd_xl_refiner-tiny.safetensors");
        WriteRefinerFile(path);
        using var refiner = StableDiffusionPipeline.Load(path, singleFile: Options);
        var options = new GenerationOptions
        {
            Prompts = ["a mountain lake"], Width = 64, Height = 64, NumInferenceSteps = 5, Seed = 5,
            Refiner = new RefinerOptions { Refiner = refiner },
        };
        int steps = 0;
        using var result = SdxlRefinerTests.Base.Generate(options, onStepEnd: (_, _) => steps++);
        Assert.Equal(options.NumInferenceSteps, steps);
        Assert.Single(result.Images);
        string info = ImageOutput.InfoTextFor(options, result, result.Images[0], SdxlRefinerTests.Base.ModelName);
        Assert.Contains($"Refiner: sd_xl_refiner-tiny [{refiner.ModelHash}], Refiner switch at: 0.8", info);
    }
}
