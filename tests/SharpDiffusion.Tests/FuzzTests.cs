using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Text;
using SkiaSharp;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests;

/// <summary>
/// Issue 10, item 9: seeded mutations of the golden tiny model's files (safetensors headers, config.json,
/// tokenizer files) and of small PNG/JPEG images. Every case must end in a valid result or a typed error
/// (InvalidDataException, NotSupportedException, ArgumentException, FileNotFoundException) that names the
/// file in one line; never NullReference, IndexOutOfRange, DivideByZero, Overflow, OutOfMemory or a native
/// error, and never more managed allocation than <see cref="AllocationBound"/>.
/// </summary>
public class FuzzTests(ITestOutputHelper output)
{
    const int Seed = 20240610;
    const long AllocationBound = 512L << 20;

    static readonly string TinySd = Golden.Path("models", "tiny-sd");

    static readonly string[] Interesting =
    [
        "-1", "0", "1", "2", "3", "7", "100000", "1000000", "2147483648", "-2147483649", "1e30", "1e308", "0.5", "2.5",
        "-0.0", "9007199254740993", "null", "true", "\"\"", "\"x\"", "[]", "[null]", "[1, 2, 3]", "{}", "[0.5, 64]", "[-32, 64]",
    ];

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

    /// <summary>One random change to a JSON document: a value replaced by an interesting one, a key removed,
    /// or (as text) a truncation, a flipped byte or a repeated key.</summary>
    static string MutateJson(string json, Random rng, out string what)
    {
        int choice = rng.Next(10);
        if (choice == 0)
        {
            int at = rng.Next(json.Length);
            what = $"truncated at {at}";
            return json[..at];
        }
        if (choice == 1)
        {
            var bytes = Encoding.UTF8.GetBytes(json);
            int at = rng.Next(bytes.Length);
            bytes[at] ^= (byte)(1 << rng.Next(8));
            what = $"bit flipped at {at}";
            return Encoding.UTF8.GetString(bytes);
        }
        var root = JsonNode.Parse(json)!;
        var slots = new List<(JsonNode Parent, object Key)>();
        Collect(root, slots, depth: 0);
        var (parent, key) = slots[rng.Next(slots.Count)];
        if (choice == 2 && parent is JsonObject o1)
        {
            o1.Remove((string)key);
            what = $"removed '{key}'";
            return root.ToJsonString();
        }
        if (choice == 3 && parent is JsonObject o2 && o2[(string)key] is { } duplicated)
        {
            // A repeated key (legal JSON text, ambiguous meaning): append it once more at the end of the object.
            string text = o2.ToJsonString();
            string repeated = text[..^1] + (o2.Count > 0 ? "," : "") + JsonSerializer.Serialize((string)key) + ":" + Interesting[rng.Next(Interesting.Length)] + "}";
            what = $"repeated '{key}'";
            return root == o2 ? repeated : root.ToJsonString().Replace(text, repeated);
        }
        string value = Interesting[rng.Next(Interesting.Length)];
        var node = JsonNode.Parse(value);
        if (parent is JsonObject o3) o3[(string)key] = node;
        else ((JsonArray)parent)[(int)key] = node;
        what = $"'{key}' = {value}";
        return root.ToJsonString();
    }

    static void Collect(JsonNode node, List<(JsonNode, object)> slots, int depth)
    {
        if (node is JsonObject o)
            foreach (var (k, v) in o.ToList())
            {
                slots.Add((o, k));
                if (v is not null && depth < 3) Collect(v, slots, depth + 1);
            }
        else if (node is JsonArray a)
            for (int i = 0; i < a.Count; i++)
            {
                slots.Add((a, i));
                if (a[i] is { } v && depth < 3) Collect(v, slots, depth + 1);
            }
    }

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

    static void SafetensorsHeaders(Random rng, Tally tally, TempDir temp, int cases)
    {
        byte[] seed = File.ReadAllBytes(Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors"));
        long headerLength = BitConverter.ToInt64(seed, 0);
        string header = Encoding.UTF8.GetString(seed, 8, (int)headerLength);
        var data = seed.AsMemory(8 + (int)headerLength);
        for (int i = 0; i < cases; i++)
        {
            string file = temp.File($"case{i}.safetensors");
            string mutated = MutateJson(header, rng, out string what);
            byte[] headerBytes = Encoding.UTF8.GetBytes(mutated);
            ulong claimed = (ulong)headerBytes.Length;
            if (rng.Next(8) == 0)
            {
                claimed = (ulong)(rng.Next(3) switch { 0 => 0L, 1 => long.MaxValue, _ => headerBytes.Length + rng.Next(-16, 16) });
                what += $", header length {claimed}";
            }
            using (var stream = File.Create(file))
            {
                stream.Write(BitConverter.GetBytes(claimed));
                stream.Write(headerBytes);
                stream.Write(data.Span[..(rng.Next(6) == 0 ? rng.Next(data.Length) : data.Length)]);
            }
            tally.Run("safetensors header", what, file, () =>
            {
                using var st = SafetensorsFile.Open(file);
                foreach (var name in st.Tensors.Keys)
                    st.Load(name).Dispose();
            });
        }
    }

    /// <summary>A small torch.save checkpoint (12 VAE tensors in a state_dict) mutated as a whole file (bits, truncation,
    /// overwritten runs), inside its data.pkl (the zip rebuilt around it), or in the legacy non-zip format.</summary>
    static void TorchCheckpoints(Random rng, Tally tally, TempDir temp, int cases)
    {
        string seedPath = temp.File("seed.ckpt"), legacyPath = temp.File("seed-legacy.pt");
        using (var st = SafetensorsFile.Open(Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors")))
        {
            var tensors = st.Headers.Take(12).Select(h => (h.Name, st.Load(h.Name))).ToList();
            Loading.TorchCheckpointWriter.Write(seedPath, tensors, inStateDict: true);
            Loading.TorchCheckpointWriter.WriteLegacy(legacyPath, tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        byte[] seed = File.ReadAllBytes(seedPath), legacySeed = File.ReadAllBytes(legacyPath);
        byte[] pickle;
        using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(seed)))
        using (var s = zip.GetEntry("archive/data.pkl")!.Open())
        using (var copy = new MemoryStream())
        {
            s.CopyTo(copy);
            pickle = copy.ToArray();
        }
        for (int i = 0; i < cases; i++)
        {
            string file = temp.File($"case{i}.ckpt");
            string what;
            int form = rng.Next(3);   // 0: inside data.pkl, 1: the zip file, 2: the legacy (non-zip) file
            bool inPickle = form == 0;
            byte[] bytes = (byte[])(form switch { 0 => pickle, 1 => seed, _ => legacySeed }).Clone();
            switch (rng.Next(3))
            {
                case 0:
                    int flips = rng.Next(1, 9);
                    for (int k = 0; k < flips; k++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                    what = $"{flips} bits flipped";
                    break;
                case 1:
                    bytes = bytes[..rng.Next(bytes.Length)];
                    what = $"truncated to {bytes.Length}";
                    break;
                default:
                    int start = rng.Next(bytes.Length), length = rng.Next(1, 16);
                    Array.Fill(bytes, (byte)rng.Next(256), start, Math.Min(length, bytes.Length - start));
                    what = $"{length} bytes overwritten at {start}";
                    break;
            }
            if (inPickle)
            {
                what = "data.pkl: " + what;
                var storages = new List<(string, byte[])>();
                using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(seed)))
                    foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith("archive/data/")))
                    {
                        using var s = entry.Open();
                        using var copy = new MemoryStream();
                        s.CopyTo(copy);
                        storages.Add((entry.FullName["archive/data/".Length..], copy.ToArray()));
                    }
                Loading.TorchCheckpointWriter.WriteArchive(file, bytes, storages);
            }
            else
            {
                if (form == 2) what = "legacy: " + what;
                File.WriteAllBytes(file, bytes);
            }
            tally.Run("torch checkpoint", what, file, () =>
            {
                using var ckpt = TorchPickleFile.Open(file);
                foreach (var header in ckpt.Headers)
                    ckpt.Load(header.Name).Dispose();
            });
        }
    }

    static void Configs(Random rng, Tally tally, TempDir temp, int casesPerComponent)
    {
        foreach (var component in new[] { "unet", "vae", "text_encoder" })
        {
            string dir = Path.Combine(temp.Path, component);
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.GetFiles(Path.Combine(TinySd, component)))
                File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            string seed = File.ReadAllText(Path.Combine(TinySd, component, "config.json"));
            string config = Path.Combine(dir, "config.json");
            for (int i = 0; i < casesPerComponent; i++)
            {
                File.WriteAllText(config, MutateJson(seed, rng, out string what));
                tally.Run($"{component} config.json", what, dir, () =>
                {
                    using TorchSharp.torch.nn.Module model = component switch
                    {
                        "unet" => ComponentLoader.LoadUNet(dir),
                        "vae" => ComponentLoader.LoadVae(dir),
                        _ => ComponentLoader.LoadTextEncoder(dir),
                    };
                });
            }
        }
    }

    static void TokenizerFiles(Random rng, Tally tally, TempDir temp, int casesPerFile)
    {
        string source = Path.Combine(TinySd, "tokenizer");
        string dir = Path.Combine(temp.Path, "tokenizer");
        Directory.CreateDirectory(dir);
        string[] names = ["vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"];
        foreach (string name in names)
        {
            string seed = File.ReadAllText(Path.Combine(source, name));
            for (int i = 0; i < casesPerFile; i++)
            {
                foreach (string other in names)
                    File.Copy(Path.Combine(source, other), Path.Combine(dir, other), overwrite: true);
                string what;
                string mutated = name switch
                {
                    "merges.txt" => MutateLines(seed, rng, out what),
                    "vocab.json" => MutateVocab(seed, rng, out what),
                    _ => MutateJson(seed, rng, out what),
                };
                File.WriteAllText(Path.Combine(dir, name), mutated);
                tally.Run(name, what, name, () =>
                {
                    var tokenizer = ClipTokenizer.FromDirectory(dir);
                    int[] ids = tokenizer.Encode("a photo of an astronaut riding a horse, 4k <|endoftext|> !!");
                    Assert.Equal(tokenizer.ModelMaxLength, ids.Length);
                });
            }
        }
    }

    static string MutateLines(string text, Random rng, out string what)
    {
        var lines = text.Split('\n').ToList();
        switch (rng.Next(6))
        {
            case 0: what = "empty"; return "";
            case 1: what = "header only"; return lines[0] + "\n";
            case 2:
                var garbage = new byte[rng.Next(1, 4000)];
                rng.NextBytes(garbage);
                what = $"{garbage.Length} random bytes";
                return Encoding.Latin1.GetString(garbage);
            case 3:
                int keep = rng.Next(1, 50);
                what = $"first {keep} lines";
                return string.Join('\n', lines.Take(keep));
            case 4:
                int at = rng.Next(1, lines.Count);
                lines[at] = lines[at].Replace(' ', rng.Next(2) == 0 ? '\t' : 'x');
                what = $"line {at + 1} mangled";
                return string.Join('\n', lines);
            default:
                int swap = rng.Next(1, lines.Count - 1);
                (lines[swap], lines[swap + 1]) = (lines[swap + 1] + " extra", lines[swap]);
                what = $"lines {swap + 1}/{swap + 2} swapped, one with 3 symbols";
                return string.Join('\n', lines);
        }
    }

    static string MutateVocab(string json, Random rng, out string what)
    {
        switch (rng.Next(5))
        {
            case 0: what = "one entry"; return "{\"a</w>\": 0}";
            case 1: what = "empty object"; return "{}";
            case 2:
                var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(json)!;
                string key = vocab.Keys.ElementAt(rng.Next(vocab.Count));
                string value = Interesting[rng.Next(Interesting.Length)];
                what = $"'{key}' = {value}";
                var node = JsonNode.Parse(json)!.AsObject();
                node[key] = JsonNode.Parse(value);
                return node.ToJsonString();
            case 3:
                int at = rng.Next(json.Length);
                what = $"truncated at {at}";
                return json[..at];
            default:
                what = "an array";
                return "[1, 2, 3]";
        }
    }

    static void Images(Random rng, Tally tally, int casesPerFormat)
    {
        foreach (var format in new[] { SKEncodedImageFormat.Png, SKEncodedImageFormat.Jpeg })
        {
            byte[] seed = EncodeSeed(format);
            for (int i = 0; i < casesPerFormat; i++)
            {
                byte[] bytes = (byte[])seed.Clone();
                string what;
                switch (rng.Next(4))
                {
                    case 0:
                        int flips = rng.Next(1, 9);
                        for (int k = 0; k < flips; k++) bytes[rng.Next(bytes.Length)] ^= (byte)(1 << rng.Next(8));
                        what = $"{flips} bits flipped";
                        break;
                    case 1:
                        bytes = bytes[..rng.Next(bytes.Length)];
                        what = $"truncated to {bytes.Length}";
                        break;
                    case 2:
                        // The declared size: PNG's IHDR width/height at 16..23, JPEG's SOF0 somewhere after the tables.
                        int offset = format == SKEncodedImageFormat.Png ? 16 + rng.Next(8) : FindSof(bytes) + 5 + rng.Next(4);
                        bytes[offset] = (byte)rng.Next(256);
                        what = $"size byte {offset} = {bytes[offset]}";
                        break;
                    default:
                        int start = rng.Next(bytes.Length), length = rng.Next(1, 64);
                        Array.Fill(bytes, (byte)rng.Next(256), start, Math.Min(length, bytes.Length - start));
                        what = $"{length} bytes overwritten at {start}";
                        break;
                }
                string name = $"fuzz-{i}.{format.ToString().ToLowerInvariant()}";
                tally.Run(format.ToString(), what, name, () =>
                {
                    var image = ImageFile.Decode(bytes, name);
                    Assert.Equal(image.Width * image.Height * 3, image.Rgb.Length);
                });
            }
        }
    }

    static byte[] EncodeSeed(SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(24, 16);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 24; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 10), (byte)(y * 15), 128, 255));
        using var data = bitmap.Encode(format, 90);
        return data.ToArray();
    }

    static int FindSof(byte[] jpeg)
    {
        for (int i = 0; i < jpeg.Length - 1; i++)
            if (jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC2)
                return i;
        return 0;
    }
}
