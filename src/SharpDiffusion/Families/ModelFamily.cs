using SharpDiffusion.Families.Flux;
using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;

namespace SharpDiffusion.Families;

/// <summary>
/// A model family (SD 1.x/2.x, SDXL, SD3/SD3.5; later Flux): how its models are recognised and how their components are
/// assembled into a text conditioner, a denoiser and a latent format. Adding a family is a new subclass in its own
/// folder and one line in <see cref="All"/>; the pipeline and its loop do not change.
/// </summary>
public abstract class ModelFamily
{
    /// <summary>What users call it ("SD 1.x/2.x", "SDXL").</summary>
    public abstract string Name { get; }

    /// <summary>The diffusers pipeline classes (model_index.json's _class_name) of this family's folders.</summary>
    public abstract IReadOnlyList<string> PipelineClasses { get; }

    /// <summary>Loads a diffusers folder of this family.</summary>
    public abstract ModelComponents Load(DiffusersFolder folder, LoadOptions options);

    /// <summary>Loads one component of a folder by its folder name ("unet") with its loader.</summary>
    protected delegate ComponentWeights ComponentLoad(Func<string, LoadOptions, ComponentWeights> loader, string name);

    /// <summary>Runs <paramref name="assemble"/>, which loads <paramref name="folder"/>'s components through the
    /// <see cref="ComponentLoad"/> it is given; if anything fails, the components already loaded are freed, so nothing
    /// half-loaded stays in memory.</summary>
    protected static ModelComponents LoadComponents(DiffusersFolder folder, LoadOptions options, Func<ComponentLoad, ModelComponents> assemble)
    {
        var loaded = new List<ComponentWeights>();
        try
        {
            return assemble((loader, name) =>
            {
                var weights = loader(folder.Component(name), options);
                loaded.Add(weights);
                return weights;
            });
        }
        catch
        {
            foreach (var weights in loaded) weights.Module.Dispose();
            throw;
        }
    }

    /// <summary>Every family SharpDiffusion runs.</summary>
    public static IReadOnlyList<ModelFamily> All { get; } = [StableDiffusionFamily.Instance, StableDiffusionXLFamily.Instance, StableDiffusion3Family.Instance, FluxFamily.Instance];

    /// <summary>The family of a diffusers folder, from model_index.json's _class_name. A folder without one (written by
    /// hand, or by old tools) is SDXL when it lists a text_encoder_2, else SD 1.x/2.x.</summary>
    public static ModelFamily Detect(DiffusersFolder folder)
    {
        if (folder.ClassName.Length == 0)
            return folder.ComponentClass("text_encoder_2") is null ? StableDiffusionFamily.Instance : StableDiffusionXLFamily.Instance;
        return All.FirstOrDefault(f => f.PipelineClasses.Contains(folder.ClassName))
            ?? throw new NotSupportedException($"{Path.Combine(folder.Root, "model_index.json")}: _class_name {folder.ClassName} is not a model family " +
                $"SharpDiffusion runs; it runs {string.Join(", ", All.SelectMany(f => f.PipelineClasses))}.");
    }

    /// <summary>The family of a single-file checkpoint, from its keys (<see cref="LdmCheckpoint.IsXL"/>).</summary>
    public static ModelFamily Detect(LdmCheckpoint checkpoint) =>
        checkpoint.IsRefiner ? StableDiffusionXLRefinerFamily.Instance : checkpoint.IsXL ? StableDiffusionXLFamily.Instance : StableDiffusionFamily.Instance;

    /// <summary>The family of a single file from its keys: SD3/SD3.5 when it holds an MMDiT in Stability's layout
    /// (<c>model.diffusion_model.joint_blocks.</c>), else SD 1.x/2.x or SDXL (<see cref="LdmCheckpoint"/>).</summary>
    public static ModelFamily Detect(ITensorFile file) =>
        Sd3Checkpoint.IsSd3(file) ? StableDiffusion3Family.Instance : Detect(LdmCheckpoint.Inspect(file));

    public override string ToString() => Name;
}
