using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Cli;

/// <summary>generate's SDXL refiner options (--refiner, --refiner-switch-at) and the aesthetic scores a refiner conditions on.</summary>
internal static class RefinerArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("refiner", OptionKind.Text, "SDXL refiner after the base model: a refiner folder or sd_xl_refiner_1.0.safetensors; the base runs the steps down to the switch, the refiner the rest on its latents (default: none)", "DIR|FILE"),
        new("refiner-switch-at", OptionKind.Number, "the fraction of the steps the base runs before the refiner takes over, 0..1 (diffusers' denoising_end/denoising_start, A1111's refiner_switch_at) (default: 0.8)", "X"),
        new("aesthetic-score", OptionKind.Number, "SDXL refiner: the aesthetic score the prompt's conditioning carries (default: 6)", "X"),
        new("negative-aesthetic-score", OptionKind.Number, "SDXL refiner: the aesthetic score of the negative conditioning (default: 2.5)", "X"),
    ];

    /// <summary>Refuses what needs no model: a switch without a refiner or out of range, a refiner path that does not exist.</summary>
    public static void Check(CommandLine cl)
    {
        if (cl.String("refiner") is not { } path)
        {
            if (cl.Given("refiner-switch-at"))
                throw new UsageException("--refiner-switch-at belongs to the refiner; give --refiner DIR|FILE too.");
            return;
        }
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new UsageException($"--refiner: {path} is neither a refiner folder nor a checkpoint file.");
        RefinerOptions.CheckSwitch(cl.Double("refiner-switch-at") ?? RefinerOptions.DefaultSwitchAt);
    }

    /// <summary>The refiner <paramref name="pipeline"/> is to be refined with (refused in one line for a model that is not
    /// SDXL, before the refiner is read); null without --refiner. Loaded as the base was (LowMemory: read when it runs).</summary>
    public static StableDiffusionPipeline? Load(CommandLine cl, StableDiffusionPipeline pipeline, LoadOptions load)
    {
        if (cl.String("refiner") is not { } path)
            return null;
        RefinerPass.RefuseBase(pipeline);
        var refiner = Progress.Status("Opening refiner", () => StableDiffusionPipeline.Load(path, load));
        try
        {
            if (cl.String("vae") is { } vaePath)
                refiner.VaeCodec.UseVae(vaePath, load); // the refiner decodes the picture: with the VAE asked for
            return refiner;
        }
        catch
        {
            refiner.Dispose();
            throw;
        }
    }

    public static GenerationOptions Apply(GenerationOptions options, CommandLine cl, StableDiffusionPipeline? refiner) => options with
    {
        Refiner = refiner is null ? null : new RefinerOptions { Refiner = refiner, SwitchAt = cl.Double("refiner-switch-at") ?? RefinerOptions.DefaultSwitchAt },
        AestheticScore = cl.Double("aesthetic-score") ?? options.AestheticScore,
        NegativeAestheticScore = cl.Double("negative-aesthetic-score") ?? options.NegativeAestheticScore,
    };
}
