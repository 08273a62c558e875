using Xunit.Abstractions;

namespace SharpDiffusion.Tests;

/// <summary>
/// Issue 10, item 9: seeded mutations of the golden tiny model's files (safetensors headers, config.json,
/// tokenizer files) and of small PNG/JPEG images. Every case must end in a valid result or a typed error
/// (InvalidDataException, NotSupportedException, ArgumentException, FileNotFoundException) that names the
/// file in one line; never NullReference, IndexOutOfRange, DivideByZero, Overflow, OutOfMemory or a native
/// error, and never more managed allocation than <see cref="AllocationBound"/>.
/// </summary>
/// <remarks>One test, one seeded sequence over the kinds of file (in order: safetensors headers, config.json, tokenizer
/// files, images, torch checkpoints), so every run draws the same cases; the kinds live in FuzzTests.*.cs.</remarks>
public partial class FuzzTests(ITestOutputHelper output)
{
    const int Seed = 20240610;
    const long AllocationBound = 512L << 20;

    static readonly string TinySd = Golden.Path("models", "tiny-sd");

    static readonly string[] Interesting =
    [
        "-1", "0", "1", "2", "3", "7", "100000", "1000000", "2147483648", "-2147483649", "1e30", "1e308", "0.5", "2.5",
        "-0.0", "9007199254740993", "null", "true", "\"\"", "\"x\"", "[]", "[null]", "[1, 2, 3]", "{}", "[0.5, 64]", "[-32, 64]",
    ];

    [Fact]
    public void Mutated_files_end_in_a_valid_result_or_a_typed_error_naming_the_file()
    {
        var rng = new Random(Seed);
        var tally = new Tally();
        using var temp = new TempDir();

        SafetensorsHeaders(rng, tally, temp, cases: 90);
        Configs(rng, tally, temp, casesPerComponent: 40);
        TokenizerFiles(rng, tally, temp, casesPerFile: 20);
        Images(rng, tally, casesPerFormat: 50);
        TorchCheckpoints(rng, tally, temp, cases: 120);

        foreach (var (kind, (cases, valid, refused)) in tally.Kinds)
            output.WriteLine($"{kind}: {cases} cases, {valid} valid, {refused} refused cleanly");
        foreach (var f in tally.Failures)
            output.WriteLine("FAIL " + f);
        Assert.True(tally.Failures.Count == 0, string.Join("\n", tally.Failures.Take(20)));
    }

    sealed class Tally
    {
        public readonly Dictionary<string, (int Cases, int Valid, int Refused)> Kinds = new();
        public readonly List<string> Failures = [];

        public void Run(string kind, string what, string fileName, Action body)
        {
            var (cases, valid, refused) = Kinds.GetValueOrDefault(kind);
            cases++;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                body();
                valid++;
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException or ArgumentException or FileNotFoundException
                                      && e is not ArgumentNullException)
            {
                refused++;
                if (!e.Message.Contains(fileName))
                    Failures.Add($"{kind} {what}: the message does not name {fileName}: {e.Message}");
                // The one multi-line message is the loader's by-name report of weights that do not match the model.
                else if (e.Message.Contains('\n') && !e.Message.StartsWith("Weights in"))
                    Failures.Add($"{kind} {what}: the message is not one line: {e.Message}");
            }
            catch (Exception e)
            {
                Failures.Add($"{kind} {what}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated > AllocationBound)
                Failures.Add($"{kind} {what}: allocated {allocated >> 20} MB");
            Kinds[kind] = (cases, valid, refused);
        }
    }

    /// <summary>A blind change to a file's bytes, by <paramref name="choice"/>: 0 one to eight flipped bits, 1 a truncation,
    /// else a run of 1 to <paramref name="maxRun"/> − 1 bytes overwritten with one value.</summary>
    static byte[] Damage(byte[] bytes, int choice, int maxRun, Random rng, out string what)
    {
        switch (choice)
        {
            case 0:
                int flips = rng.Next(1, 9);
                for (int k = 0; k < flips; k++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                what = $"{flips} bits flipped";
                return bytes;
            case 1:
                bytes = bytes[..rng.Next(bytes.Length)];
                what = $"truncated to {bytes.Length}";
                return bytes;
            default:
                int start = rng.Next(bytes.Length), length = rng.Next(1, maxRun);
                Array.Fill(bytes, (byte)rng.Next(256), start, Math.Min(length, bytes.Length - start));
                what = $"{length} bytes overwritten at {start}";
                return bytes;
        }
    }
}
