using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>The Hugging Face cache stores every file of a snapshot as a symbolic link into blobs/; such a folder loads
/// and generates exactly as the plain folder does.</summary>
public class SymbolicLinkTests
{
    [Fact]
    public void A_hugging_face_cache_snapshot_of_links_loads_and_generates_the_same_image()
    {
        using var dir = new TempDir();
        string source = Golden.Path("models", "tiny-sd");
        string repo = Path.Combine(dir.Path, "models--example--tiny-sd");
        string blobs = Path.Combine(repo, "blobs"), snapshot = Path.Combine(repo, "snapshots", "0123abcd");
        Directory.CreateDirectory(blobs);
        int n = 0;
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            string blob = Path.Combine(blobs, $"blob{n++}");
            File.Copy(file, blob);
            string link = Path.Combine(snapshot, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob)); // relative, as the cache's
        }
        Assert.NotNull(new FileInfo(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")).LinkTarget);

        var options = new GenerationOptions { Prompts = ["a red cat"], NumInferenceSteps = 2, Seed = 5 };
        using var linked = StableDiffusionPipeline.FromPretrained(snapshot);
        Assert.Equal("example/tiny-sd", linked.ModelName);
        using var fromLinks = linked.Generate(options);
        using var fromFiles = PipelineParityTests.Pipeline("models/tiny-sd").Generate(options);
        Assert.Equal(fromFiles.Images[0].Rgb, fromLinks.Images[0].Rgb);
    }
}
