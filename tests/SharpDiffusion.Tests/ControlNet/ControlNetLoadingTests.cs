using System.Text.RegularExpressions;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Loading;
using SharpDiffusion.Tests.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>ControlNets as users download them: original-layout single files (lllyasviel / AUTOMATIC1111, .pth and
/// .safetensors, under control_model. or bare), made here from the golden folders' weights by the LDM names written out
/// below, give the folder's outputs; diff-ControlNets and ControlNets of another family are refused in one line.</summary>
public class ControlNetLoadingTests
{
    const int LayersPerBlock = 2; // both golden ControlNets

    static readonly (string Diffusers, string Ldm)[] Resnet =
    [
        ("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
        ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection."),
    ];

    /// <summary>The LDM name of a diffusers ControlNet parameter (ControlNet's cldm.py: input_blocks.0 = conv_in, then per
    /// level L resnets (+ attention at .1) and a downsampler at .0.op; input_hint_block convs at even indices; zero_convs.N.0;
    /// middle_block 0/1/2 and middle_block_out.0; time_embed 0/2; SDXL label_emb.0.0/0.2).</summary>
    static string ToLdm(string name, int hintBlocks)
    {
        static string ResnetPart(string rest) =>
            Resnet.Where(r => rest.StartsWith(r.Diffusers, StringComparison.Ordinal)).Select(r => r.Ldm + rest[r.Diffusers.Length..]).FirstOrDefault() ?? rest;
        Match m;
        if ((m = Regex.Match(name, @"^down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$")).Success)
            return $"input_blocks.{1 + int.Parse(m.Groups[1].Value) * (LayersPerBlock + 1) + int.Parse(m.Groups[2].Value)}.0.{ResnetPart(m.Groups[3].Value)}";
        if ((m = Regex.Match(name, @"^down_blocks\.(\d+)\.attentions\.(\d+)\.(.*)$")).Success)
            return $"input_blocks.{1 + int.Parse(m.Groups[1].Value) * (LayersPerBlock + 1) + int.Parse(m.Groups[2].Value)}.1.{m.Groups[3].Value}";
        if ((m = Regex.Match(name, @"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$")).Success)
            return $"input_blocks.{(int.Parse(m.Groups[1].Value) + 1) * (LayersPerBlock + 1)}.0.op.{m.Groups[2].Value}";
        if ((m = Regex.Match(name, @"^mid_block\.resnets\.(\d)\.(.*)$")).Success)
            return $"middle_block.{2 * int.Parse(m.Groups[1].Value)}.{ResnetPart(m.Groups[2].Value)}";
        if ((m = Regex.Match(name, @"^controlnet_cond_embedding\.blocks\.(\d+)\.(.*)$")).Success)
            return $"input_hint_block.{2 + 2 * int.Parse(m.Groups[1].Value)}.{m.Groups[2].Value}";
        if ((m = Regex.Match(name, @"^controlnet_down_blocks\.(\d+)\.(.*)$")).Success)
            return $"zero_convs.{m.Groups[1].Value}.0.{m.Groups[2].Value}";
        (string, string)[] plain =
        [
            ("mid_block.attentions.0.", "middle_block.1."), ("controlnet_mid_block.", "middle_block_out.0."),
            ("conv_in.", "input_blocks.0.0."), ("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
            ("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2."),
            ("controlnet_cond_embedding.conv_in.", "input_hint_block.0."), ("controlnet_cond_embedding.conv_out.", $"input_hint_block.{2 + 2 * hintBlocks}."),
        ];
        foreach (var (from, to) in plain)
            if (name.StartsWith(from, StringComparison.Ordinal))
                return to + name[from.Length..];
        throw new InvalidOperationException($"no LDM name for {name}");
    }

    /// <summary>The golden folder's tensors under their LDM names.</summary>
    static List<(string Name, Tensor Tensor)> LdmTensors(string folder, string prefix)
    {
        using var file = SafetensorsFile.Open(Golden.Path([.. folder.Split('/'), "diffusion_pytorch_model.safetensors"]));
        int hintBlocks = file.Tensors.Keys.Count(k => k.StartsWith("controlnet_cond_embedding.blocks.", StringComparison.Ordinal) && k.EndsWith(".weight", StringComparison.Ordinal));
        return file.Tensors.Keys.Select(k => (prefix + ToLdm(k, hintBlocks), file.Load(k))).ToList();
    }

    static void Write(string path, List<(string Name, Tensor Tensor)> tensors)
    {
        if (path.EndsWith(".pth", StringComparison.Ordinal))
            TorchCheckpointWriter.Write(path, tensors, inStateDict: true);
        else
            SafetensorsWriter.Save(path, tensors.ToDictionary(t => t.Name, t => t.Tensor));
    }

    [Theory]
    [InlineData("control_model.", "control_v11p_sd15_canny.pth")]
    [InlineData("control_model.", "control_sd15_canny.safetensors")]
    [InlineData("", "control_bare_keys.safetensors")]
    public void Sd15SingleFileGivesTheFoldersResiduals(string prefix, string name)
    {
        using var dir = new TempDir();
        string path = dir.File(name);
        Write(path, LdmTensors(ControlNetParityTests.Sd15ControlNet, prefix));
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        var folder = ControlNetParityTests.Model(ControlNetParityTests.Sd15ControlNet);
        using var single = ControlNetLoader.Load(path);
        Assert.Equal(folder.Config.Unet.BlockOutChannels, single.Config.Unet.BlockOutChannels);
        Assert.Equal(folder.Config.Unet.LayersPerBlock, single.Config.Unet.LayersPerBlock);
        Assert.Equal(folder.Config.Unet.NumAttentionHeads, single.Config.Unet.NumAttentionHeads);
        Assert.Equal(folder.Config.Unet.DownBlockTypes, single.Config.Unet.DownBlockTypes);
        Assert.Equal(folder.Config.ConditioningEmbeddingOutChannels, single.Config.ConditioningEmbeddingOutChannels);

        using var _ = inference_mode();
        var conditioning = new TextConditioning(golden["encoder_hidden_states"]);
        using var t = tensor(999f);
        using var expected = folder.Forward(golden["sample"], t, conditioning, golden["controlnet_cond"]);
        using var actual = single.Forward(golden["sample"], t, conditioning, golden["controlnet_cond"]);
        for (int i = 0; i < expected.Down.Count; i++)
            Assert.Equal(0, Golden.MaxAbsDiff(actual.Down[i], expected.Down[i]));
        Assert.Equal(0, Golden.MaxAbsDiff(actual.Mid, expected.Mid));
    }

    [Fact]
    public void SdxlSingleFileWithLabelEmbGivesTheFoldersResiduals()
    {
        using var dir = new TempDir();
        string path = dir.File("controlnet_sdxl.safetensors");
        Write(path, LdmTensors("v3/models/tiny-controlnet-sdxl", "control_model."));
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sdxl");
        var folder = ControlNetParityTests.Model("v3/models/tiny-controlnet-sdxl");
        using var single = ControlNetLoader.Load(path, unet: pipeline.Unet.Config);
        Assert.Equal("text_time", single.Config.Unet.AdditionEmbedType);

        using var _ = inference_mode();
        var generator = new Generator(5);
        using var sample = randn([2, 4, 8, 8], generator: generator);
        using var states = randn([2, 77, 64], generator: generator);
        using var image = rand([2, 3, 16, 16], generator: generator);
        var conditioning = new TextConditioning(states)
        {
            Pooled = randn([2, pipeline.Unet.Config.PooledTextDim], generator: generator),
            TimeIds = tensor(new float[] { 64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64 }, new long[] { 2, 6 }),
        };
        using var t = tensor(500f);
        using var expected = folder.Forward(sample, t, conditioning, image, 0.7);
        using var actual = single.Forward(sample, t, conditioning, image, 0.7);
        for (int i = 0; i < expected.Down.Count; i++)
            Assert.Equal(0, Golden.MaxAbsDiff(actual.Down[i], expected.Down[i]));
        Assert.Equal(0, Golden.MaxAbsDiff(actual.Mid, expected.Mid));
    }

    [Fact]
    public void DiffControlNetIsRefusedInOneLine()
    {
        using var dir = new TempDir();
        string path = dir.File("diff_control_sd15_canny.safetensors");
        var tensors = LdmTensors(ControlNetParityTests.Sd15ControlNet, "control_model.");
        tensors.Add(("difference", tensor(new float[] { 0 })));
        Write(path, tensors);
        var e = Assert.Throws<InvalidDataException>(() => ControlNetLoader.Load(path));
        Assert.Contains("diff-ControlNet", e.Message);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void SdxlControlNetOnSd15IsRefusedInOneLine()
    {
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var options = new GenerationOptions
        {
            Prompts = ["a house"],
            NumInferenceSteps = 2,
            Width = 64,
            Height = 64,
            ControlNets = [new ControlNetUnit { ModelPath = Golden.Path("v3", "models", "tiny-controlnet-sdxl"), Image = ImageFile.Load(Golden.Path("controlnet", "control_edges_64x64.png")) }],
        };
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(options));
        Assert.Contains("ControlNet for SDXL", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void BadUnitsAndDeepCacheAreRefused()
    {
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var unit = new ControlNetUnit { ModelPath = Golden.Path("models", "tiny-controlnet-small-sd15"), Image = ImageFile.Load(Golden.Path("controlnet", "control_edges_64x64.png")) };
        var options = new GenerationOptions { Prompts = ["a house"], NumInferenceSteps = 2, Width = 64, Height = 64 };
        Assert.Throws<ArgumentException>(() => pipeline.Validate(options with { ControlNets = [unit with { Start = 0.8, End = 0.2 }] }));
        Assert.Throws<NotSupportedException>(() => pipeline.Validate(options with { ControlNets = [unit], DeepCacheInterval = 3 }));
        pipeline.Validate(options with { ControlNets = [unit] });
    }
}
