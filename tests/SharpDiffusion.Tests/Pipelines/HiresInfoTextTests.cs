using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Server;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>The infotext's "Hires upscaler": A1111 writes an ESRGAN model by its name (the file stem, as its ESRGAN
/// folder lists it); a model given by path (the CLI's --hires-upscaler FILE) is written the same way.</summary>
public class HiresInfoTextTests
{
    [Fact]
    public void A_model_given_by_path_is_written_by_its_name_and_other_upscalers_as_given()
    {
        foreach (var name in UpscalerServer.Models)
            Assert.Equal(name, ImageOutput.UpscalerInfoName(Golden.Path("v3", "esrgan", name + ".pth")));
        foreach (var name in HiresFixOptions.Upscalers.Concat(HiresFixOptions.LatentUpscalers.Keys).Concat(UpscalerServer.Models))
            Assert.Equal(name, ImageOutput.UpscalerInfoName(name));
    }
}
