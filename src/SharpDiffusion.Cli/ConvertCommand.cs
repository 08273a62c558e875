using SharpDiffusion.Imaging;
using SharpDiffusion.Loading.SingleFile;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli;

/// <summary>`convert`: a single-file checkpoint (LDM layout, or Stability's SD3/SD3.5 with --text-encoder files) → a diffusers folder,
/// through the library's DiffusersFolderWriter.</summary>
public static class ConvertCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "the single-file checkpoint (.safetensors or .ckpt; SD 1.x/2.x, SDXL, SD3/SD3.5)", "FILE"),
        new("output", OptionKind.Text, "the diffusers folder to write (new or empty)", "DIR"),
        new("dtype", OptionKind.Text, "float32 or float16 weights (default: float32, the stored values bit for bit)", "NAME"),
        new("config", OptionKind.Text, "the model's original LDM .yaml (v1-inference.yaml, v2-inference-v.yaml, ...): attention heads, scale_factor, v-prediction (default: inferred from the tensors, SD defaults)", "FILE"),
        GenerateCommand.TextEncoderOption,
        new("text-encoder-config", OptionKind.Text, "a transformers config.json for a text encoder of a non-standard size (default: 768 = CLIP ViT-L/14, 1024 = OpenCLIP ViT-H)", "FILE"),
    ];

    public static int Run(CommandLine cl)
    {
        string model = cl.String("model") ?? throw new UsageException("--model FILE is required: the single-file checkpoint to convert.");
        string output = cl.String("output") ?? throw new UsageException("--output DIR is required: the diffusers folder to write.");
        var dtype = cl.String("dtype")?.ToLowerInvariant() switch
        {
            null or "float32" or "fp32" => ScalarType.Float32,
            "float16" or "fp16" => ScalarType.Float16,
            var other => throw new UsageException($"--dtype must be float32 or float16; got '{other}'."),
        };
        TorchRuntime.Initialize(Environment.ProcessorCount);
        var options = GenerateCommand.SingleFileOptions(cl);
        Progress.Status("Converting", () => { DiffusersFolderWriter.Convert(model, output, dtype, options); return 0; });
        Progress.Line($"Wrote {AtomicFiles.Printable(output)} ({(dtype == ScalarType.Float32 ? "float32" : "float16")})");
        return 0;
    }
}
