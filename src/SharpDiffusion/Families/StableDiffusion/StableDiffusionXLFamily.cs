using SharpDiffusion.Loading;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// SDXL base models: SD's UNet (with the text_time embedding) and VAE, conditioned by CLIP-L and OpenCLIP bigG
/// (<see cref="Conditioning.SdxlTextConditioner"/>). A refiner folder (text_encoder_2 only, aesthetic-score time ids) is
/// refused by name.
/// </summary>
public sealed class StableDiffusionXLFamily : StableDiffusionFamily
{
    public static new StableDiffusionXLFamily Instance { get; } = new();

    public override string Name => "SDXL";

    public override IReadOnlyList<string> PipelineClasses { get; } =
        ["StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"];

    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options)
    {
        if (folder.ComponentClass("text_encoder") is null)
            throw new NotSupportedException($"{folder.Root} is an SDXL refiner (text_encoder_2 only, aesthetic-score time ids), which is not supported; use an SDXL base model.");
        return LoadFolder(folder, options, textEncoder2: "text_encoder_2");
    }
}
