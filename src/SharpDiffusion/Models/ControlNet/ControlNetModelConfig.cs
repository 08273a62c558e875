using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.UNet;

namespace SharpDiffusion.Models.ControlNet;

/// <summary>
/// diffusers' ControlNetModel config: the UNet keys of its down path (read and validated by
/// <see cref="UNet2DConditionConfig.From"/>, so the same rules and defaults apply) plus the ControlNet's own:
/// the conditioning image's channels and the conditioning embedding's widths, the channel order and global pooling.
/// </summary>
public sealed record ControlNetModelConfig
{
    /// <summary>The down path's config as a UNet's (up_block_types mirrored from down_block_types; the ControlNet has no up path).</summary>
    public required UNet2DConditionConfig Unet { get; init; }
    /// <summary>Channels of the control image (3: RGB).</summary>
    public int ConditioningChannels { get; init; } = 3;
    /// <summary>The conditioning embedding's widths; each step after the first halves the resolution (SD 1.5: [16, 32, 96, 256] = ÷8).</summary>
    public int[] ConditioningEmbeddingOutChannels { get; init; } = [16, 32, 96, 256];
    /// <summary>"rgb" or "bgr" (the image's channels are flipped before the embedding).</summary>
    public string ChannelOrder { get; init; } = "rgb";
    /// <summary>The residuals are averaged over h, w (the shuffle ControlNet); guess mode's per-residual scales then do not apply.</summary>
    public bool GlobalPoolConditions { get; init; }

    /// <summary>How much smaller than the control image the latents are: 2^(steps − 1).</summary>
    public int ConditioningFactor => 1 << (ConditioningEmbeddingOutChannels.Length - 1);

    /// <summary>The skip tensors' channels, in the order the UNet's down path makes them (conv_in, then each resnet and downsampler).</summary>
    public IReadOnlyList<int> ResidualChannels
    {
        get
        {
            var c = Unet;
            var channels = new List<int> { c.BlockOutChannels[0] };
            for (int i = 0; i < c.BlockOutChannels.Length; i++)
            {
                channels.AddRange(Enumerable.Repeat(c.BlockOutChannels[i], c.LayersPerBlock[i]));
                if (i < c.BlockOutChannels.Length - 1) channels.Add(c.BlockOutChannels[i]);
            }
            return channels;
        }
    }

    public static ControlNetModelConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"ControlNet config not found: {path}", path);
        return From(File.ReadAllText(path), path);
    }

    /// <summary>Reads and validates a config.json; every refusal is one line naming the source, the key and the value.</summary>
    public static ControlNetModelConfig From(string json, string source)
    {
        var c = JsonConfig.Parse(json, source);
        string cls = c.GetString("_class_name", "ControlNetModel");
        if (cls != "ControlNetModel")
            throw c.Invalid("_class_name", cls, cls.Contains("Union", StringComparison.Ordinal) || cls.Contains("XS", StringComparison.Ordinal)
                ? "only ControlNetModel is supported (ControlNet-Union/XS are different architectures)"
                : "this is not a ControlNetModel config");
        var root = (JsonObject)JsonNode.Parse(json)!;
        // The UNet reader wants up_block_types; a ControlNet has none, so the mirror of its down path stands in (never built).
        var down = c.GetStringArray("down_block_types", new UNet2DConditionConfig().DownBlockTypes);
        root["up_block_types"] = new JsonArray(down.Reverse().Select(t => (JsonNode?)JsonValue.Create(t.Replace("Down", "Up", StringComparison.Ordinal))).ToArray());
        var unet = UNet2DConditionConfig.From(new JsonConfig(root, source));
        if (unet.ConvInKernel != 3)
            throw c.Invalid("conv_in_kernel", unet.ConvInKernel, "a ControlNet's conv_in is 3x3");

        int conditioning = c.GetInt("conditioning_channels", 3, 1, 64);
        var embedding = c.GetIntArray("conditioning_embedding_out_channels", [16, 32, 96, 256], 1, UNet2DConditionConfig.MaxChannels);
        if (embedding.Length is 0 or > 8)
            throw c.Invalid("conditioning_embedding_out_channels", embedding, "it must list 1 to 8 widths (each after the first halves the size)");
        string order = c.GetString("controlnet_conditioning_channel_order", "rgb");
        if (order is not ("rgb" or "bgr"))
            throw c.Invalid("controlnet_conditioning_channel_order", order, "it must be \"rgb\" or \"bgr\"");
        return new ControlNetModelConfig
        {
            Unet = unet,
            ConditioningChannels = conditioning,
            ConditioningEmbeddingOutChannels = embedding,
            ChannelOrder = order,
            GlobalPoolConditions = c.GetBool("global_pool_conditions", false),
        };
    }

    /// <summary>A lower bound on the parameter count: the down half of the UNet's bound (see <see cref="UNet2DConditionConfig.MinimumParameterCount"/>).</summary>
    public double MinimumParameterCount()
    {
        double total = 0;
        for (int i = 0; i < Unet.BlockOutChannels.Length; i++)
        {
            double ch = Unet.BlockOutChannels[i], layers = Unet.LayersPerBlock[i];
            total += layers * 9 * ch * ch;
            if (Unet.DownBlockTypes[i] == "CrossAttnDownBlock2D")
                total += layers * Unet.TransformerLayersPerBlock[i] * 4 * ch * ch;
        }
        return total;
    }
}
