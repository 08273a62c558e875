using SharpDiffusion.Imaging;
using SharpDiffusion.Training;

namespace SharpDiffusion.Cli;

/// <summary>`convert-lora`: a kohya-format LoRA → the diffusers/PEFT layout (<see cref="LoraPeftConverter"/>).</summary>
public static class ConvertLoraCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("lora", OptionKind.Text, "the kohya-format LoRA (.safetensors, lora_unet_*/lora_te_* keys), e.g. what train-lora writes", "FILE"),
        new("to", OptionKind.Text, "the layout to write: diffusers (PEFT keys, as diffusers' save_lora_weights writes them)", "FORMAT"),
        new("output", OptionKind.Text, "the .safetensors file to write", "FILE"),
    ];

    public static int Run(CommandLine cl)
    {
        string lora = cl.String("lora") ?? throw new UsageException("--lora FILE is required: the kohya-format LoRA to convert.");
        string output = cl.String("output") ?? throw new UsageException("--output FILE is required: the converted LoRA to write.");
        string to = cl.String("to") ?? "diffusers";
        if (to is not ("diffusers" or "peft"))
            throw new UsageException($"--to must be diffusers (the PEFT layout); got '{to}'.");
        if (!File.Exists(lora)) throw new UsageException($"--lora {lora}: no such file.");
        AtomicFiles.CheckWritable(output);
        LoraPeftConverter.Convert(lora, output);
        Progress.Line($"Wrote {AtomicFiles.Printable(output)} (diffusers/PEFT layout)");
        return 0;
    }
}
