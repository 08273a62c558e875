using SharpDiffusion.Loading;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// SDXL base models: SD's UNet (with the text_time embedding) and VAE, conditioned by CLIP-L and OpenCLIP bigG
/// (<see cref="Conditioning.SdxlTextConditioner"/>). A refiner folder (text_encoder_2 only, aesthetic-score time ids) is
/// the same pipeline class: it loads as <see cref="StableDiffusionXLRefinerFamily"/>.
/// </summary>
public class StableDiffusionXLFamily : StableDiffusionFamily
{
    public static new StableDiffusionXLFamily Instance { get; } = new();

    public override string Name => "SDXL";

    public override IReadOnlyList<string> PipelineClasses { get; } =
        ["StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"];

    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options)
    {
        if (folder.ComponentClass("text_encoder") is null)
            return StableDiffusionXLRefinerFamily.Instance.Load(folder, options);
        return LoadFolder(folder, options, textEncoder2: "text_encoder_2");
    }
}
