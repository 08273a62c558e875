using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests;

/// <summary>The fuzzed text files of a model folder: each component's config.json and the CLIP tokenizer's files, and the
/// mutations of JSON documents and line files they are made with.</summary>
public partial class FuzzTests
{
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
}
