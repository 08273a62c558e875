using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 11 item 7: checkpoints that cannot load are refused with one line that names the file and what was found.</summary>
public class SingleFileBadInputTests
{
    static string File15 => Golden.Path("single_file", "small-sd15.safetensors");

    static string Refusal<T>(string path) where T : Exception
    {
        var e = Assert.Throws<T>(() => StableDiffusionPipeline.FromSingleFile(path));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(path, e.Message);
        return e.Message;
    }

    [Fact]
    public void Truncated_checkpoint_is_refused()
    {
        using var dir = new TempDir();
        string path = dir.File("truncated.safetensors");
        using (var source = File.OpenRead(File15))
        using (var target = File.Create(path))
        {
            var buffer = new byte[source.Length / 2];
            source.ReadExactly(buffer);
            target.Write(buffer);
        }
        Assert.Contains("truncated", Refusal<InvalidDataException>(path));
    }

    [Fact]
    public void Corrupt_checkpoint_is_refused()
    {
        using var dir = new TempDir();
        string path = dir.File("garbage.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(16UL), .. "{not json at all"u8.ToArray()]);
        Assert.Contains("Corrupt", Refusal<InvalidDataException>(path));
    }

    [Fact]
    public void Sdxl_checkpoint_with_text_encoders_of_no_standard_size_names_the_option_to_give()
    {
        string message = Refusal<InvalidDataException>(Golden.Path("single_file", "tiny-sdxl.safetensors"));
        Assert.Contains("is not a standard size", message);
        Assert.Contains("--text-encoder-config", message);
    }

    [Fact]
    public void File_without_unet_keys_is_refused()
    {
        // A diffusers component file: tensors, but no LDM UNet.
        string message = Refusal<InvalidDataException>(Golden.Path("models", "small-sd15", "vae", "diffusion_pytorch_model.safetensors"));
        Assert.Contains("no UNet keys (model.diffusion_model.*)", message);
        Assert.Contains("found decoder.* (", message);
        Assert.Contains("one diffusers component", message);
    }

    [Fact]
    public void Checkpoint_without_vae_is_refused()
    {
        using var dir = new TempDir();
        string path = dir.File("no-vae.safetensors");
        using (var file = SafetensorsFile.Open(File15))
        {
            var kept = file.Tensors.Keys.Where(k => !k.StartsWith(LdmKeyMap.VaePrefix)).ToDictionary(k => k, file.Load);
            SafetensorsWriter.Save(path, kept);
            foreach (var t in kept.Values) t.Dispose();
        }
        Assert.Contains("no VAE keys (first_stage_model.*)", Refusal<InvalidDataException>(path));
    }

    [Fact]
    public void Missing_file_is_refused()
    {
        Refusal<FileNotFoundException>("/nonexistent/model.safetensors");
    }
}

/// <summary>Files as diffusers' own convert_diffusers_to_original_stable_diffusion.py writes them (golden README: it stores the
/// VAE mid-block attention biases as [C, 1, 1]; the golden file has them fixed to [C]): loaded all the same.</summary>
public class SingleFileVariantsTests
{
    [Fact]
    public void Raw_diffusers_script_output_with_1x1_vae_attention_biases_loads()
    {
        string file15 = Golden.Path("single_file", "small-sd15.safetensors");
        using var dir = new TempDir();
        string path = dir.File("raw-script.safetensors");
        using (var file = SafetensorsFile.Open(file15))
        {
            var tensors = file.Tensors.Keys.ToDictionary(k => k, k =>
            {
                var t = file.Load(k);
                return k.Contains("mid.attn_1.") && !k.Contains(".norm.") && k.EndsWith(".bias") ? t.reshape(t.shape[0], 1, 1) : t;
            });
            Assert.Equal(8, tensors.Count(kv => kv.Value.dim() == 3));
            SafetensorsWriter.Save(path, tensors);
            foreach (var t in tensors.Values) t.Dispose();
        }
        var options = new SingleFileOptions { TextEncoderConfig = Golden.Path("models", "small-sd15", "text_encoder", "config.json") };
        var exact = new LoadOptions { ChannelsLast = false };
        using var raw = StableDiffusionPipeline.FromSingleFile(path, exact, options);
        using var fixedFile = StableDiffusionPipeline.FromSingleFile(file15, exact, options);
        SingleFileTests.AssertSameWeights(fixedFile, raw);
    }
}
