using SharpDiffusion.Cli;
using System.CommandLine;
using Spectre.Console;

return Cli.Run(args);

namespace SharpDiffusion.Cli
{
    public static class Cli
    {
        public const string Description = "SharpDiffusion: Stable Diffusion in C# (text-to-image, img2img, inpainting).";

        /// <summary>The command tree; help, typed option errors and shell completion ([suggest]) come from System.CommandLine.</summary>
        public static RootCommand Commands() => new(Description)
        {
            CommandLine.Define("generate", "Generate images from a prompt (and an image, and a mask) with a diffusers model folder (default: the shipped sharp-shapes model).",
                GenerateCommand.Options, GenerateCommand.Run),
            CommandLine.Define("grid", "AUTOMATIC1111's X/Y/Z plot: generate one picture per combination of --x, --y and --z values (any generate option) and one labelled grid.",
                GridCommand.Options, GridCommand.Run),
            CommandLine.Define("serve", "Serve AUTOMATIC1111's HTTP API, OpenAI's images API and a web page (default model: the shipped sharp-shapes).",
                ServeCommand.Options, ServeCommand.Run),
            CommandLine.Define("worker", "Generate the jobs of a Redis queue that `serve --queue` gateways accept (one model per worker; any number of workers, on any machines).",
                WorkerCommand.Options, WorkerCommand.Run),
            CommandLine.Define("preprocess", "Make a ControlNet control map of a picture without a model (canny, threshold, invert, none) and write it as a PNG.", PreprocessCommand.Options, PreprocessCommand.Run),
            CommandLine.Define("upscale", "Upscale a picture with an ESRGAN-family model file (RealESRGAN_x4plus, 4x-UltraSharp, realesr-general-x4v3; .pth or .safetensors).", UpscaleCommand.Options, UpscaleCommand.Run),
            CommandLine.Define("convert", "Convert a single-file checkpoint (LDM layout, as AUTOMATIC1111 and ComfyUI use) into a diffusers folder.", ConvertCommand.Options, ConvertCommand.Run),
            CommandLine.Define("bench", "Time a full-size SD 1.5 (random weights or --model DIR) part by part.", Bench.BenchCommand.Options, Bench.BenchCommand.Run),
            CommandLine.Define("train", "Train the small shapes text-to-image model and save it as a diffusers folder.", TrainCommand.Options, TrainCommand.Run),
            CommandLine.Define("train-lora", "Train a LoRA (kohya format) on an SD 1.x/2.x model from captioned pictures.", TrainLoraCommand.Options, TrainLoraCommand.Run),
            CommandLine.Define("train-lora-demo", "Teach the shipped shapes model a new shape (an L: ell) with a LoRA and judge it with and without.", TrainLoraDemoCommand.Options, TrainLoraDemoCommand.Run),
            CommandLine.Define("convert-lora", "Convert a kohya-format LoRA to the diffusers/PEFT layout.", ConvertLoraCommand.Options, ConvertLoraCommand.Run),
            CommandLine.Define("evaluate", "Judge a shapes model's pictures for held-out prompts (colour, position, size, shape).", EvaluateCommand.Options, EvaluateCommand.Run),
        };

        public static int Run(string[] args)
        {
            var root = Commands();
            if (args.Length == 0 || args[0] == "help")
            {
                root.Parse(["--help"]).Invoke();
                return args.Length == 0 ? 2 : 0;
            }
            try
            {
                var parsed = root.Parse(args);
                if (parsed.Errors.Count > 0)
                    throw new UsageException($"{parsed.Errors[0].Message} See {string.Join(' ', args.Take(1))} --help.");
                return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("Interrupted: nothing was written.");
                return 130;
            }
            catch (UsageException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException
                                         or InvalidDataException or NotSupportedException or UnauthorizedAccessException or IOException
                                         or InsufficientMemoryException)
            {
                Console.Error.WriteLine($"error: {OneLine(e.Message)}");
                return 2;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"error: {OneLine(e.Message)} ({e.GetType().Name})");
                return 1;
            }
        }

        static string OneLine(string s) => s.ReplaceLineEndings(" ");
    }
}
