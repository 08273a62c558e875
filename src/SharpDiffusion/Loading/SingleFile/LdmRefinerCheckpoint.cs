namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// The SDXL refiner in the LDM layout (sd_xl_refiner_1.0.safetensors): its only text encoder, OpenCLIP bigG, is
/// conditioner.embedders.0 (the base's is .1, after CLIP-L), and its UNet's label_emb takes bigG's projection plus five
/// time ids × d (original size, crop, aesthetic score: 1280 + 5 × 256 = 2560) instead of the base's six.
/// </summary>
public sealed partial class LdmCheckpoint
{
    /// <summary>An SDXL refiner: bigG as conditioner.embedders.0.model, no CLIP-L.</summary>
    public bool IsRefiner { get; }

    bool IsRefinerLayout => !Has(LdmKeyMap.XLClipPrefix) && Has(LdmKeyMap.XLRefinerOpenClipPrefix);

    /// <summary>Where OpenCLIP bigG's keys are: the base's second embedder, the refiner's first.</summary>
    public string BigGPrefix => IsRefiner ? LdmKeyMap.XLRefinerOpenClipPrefix : LdmKeyMap.XLOpenClipPrefix;

    /// <summary>The numbers of the text_time embedding: 6 (sizes and crop), a refiner's 5 (the aesthetic score for the target size).</summary>
    int TimeIdCount => IsRefiner ? 5 : 6;
}
