using SharpDiffusion.Cli;
using Spectre.Console;

return Cli.Run(args);

namespace SharpDiffusion.Cli
{
    public static class Cli
    {
        public const string Usage = """
            SharpDiffusion: Stable Diffusion text-to-image in C#.

            Usage:
              SharpDiffusion.Cli generate --model DIR --prompt TEXT [options]
              SharpDiffusion.Cli generate --scheduler list
              SharpDiffusion.Cli bench [options]
              SharpDiffusion.Cli train [options]
              SharpDiffusion.Cli evaluate [options]
              SharpDiffusion.Cli --help

            Commands:
              generate    Generate images from a prompt with a diffusers model folder (default: the shipped sharp-shapes model).
              bench       Time a full-size SD 1.5 (random weights or --model DIR) part by part.
              train       Train the small shapes text-to-image model and save it as a diffusers folder.
              evaluate    Judge a shapes model's pictures for held-out prompts (colour, position, size, shape).
            """;

        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                Console.WriteLine(Usage);
                Console.WriteLine(GenerateCommand.Help);
                Console.WriteLine(Bench.BenchCommand.Help);
                Console.WriteLine(TrainCommand.Help);
                Console.WriteLine(EvaluateCommand.Help);
                return args.Length == 0 ? 2 : 0;
            }
            try
            {
                return args[0] switch
                {
                    "generate" => GenerateCommand.Run(args[1..]),
                    "bench" => Bench.BenchCommand.Run(args[1..]),
                    "train" => TrainCommand.Run(args[1..]),
                    "evaluate" => EvaluateCommand.Run(args[1..]),
                    _ => throw new UsageException($"Unknown command '{args[0]}'. Commands: generate, bench, train, evaluate. See --help."),
                };
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
