using System.Text.Json;
using System.Text.Json.Serialization;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.T5;

/// <summary>One entry of v3's t5_tokenizer_cases.json (transformers' slow T5Tokenizer, legacy).</summary>
public sealed record T5TokenizerCase(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("pieces")] string[]? Pieces,
    [property: JsonPropertyName("input_ids_no_pad")] int[] InputIdsNoPad,
    [property: JsonPropertyName("input_ids")] int[] InputIds);

public sealed record T5TokenizerCasesFile(
    [property: JsonPropertyName("max_length")] int MaxLength,
    [property: JsonPropertyName("vocab_size")] int VocabSize,
    [property: JsonPropertyName("cases")] T5TokenizerCase[] Cases);

/// <summary>The v3 T5 golden data: per pipeline folder, its case file and the model's tokenizer and text encoder folders.</summary>
public static class T5GoldenFiles
{
    /// <summary>(case folder under v3, model folder, T5 tokenizer, T5 text encoder).</summary>
    public static readonly (string Cases, string Model, string Tokenizer, string Encoder)[] Models =
    [
        ("sd3/tiny-sd3", "tiny-sd3", "tokenizer_3", "text_encoder_3"),
        ("sd3/tiny-sd35", "tiny-sd35", "tokenizer_3", "text_encoder_3"),
        ("flux/tiny-flux-dev", "tiny-flux-dev", "tokenizer_2", "text_encoder_2"),
        ("flux/tiny-flux-schnell", "tiny-flux-schnell", "tokenizer_2", "text_encoder_2"),
    ];

    public static (string Cases, string Model, string Tokenizer, string Encoder) Find(string cases) => Models.Single(m => m.Cases == cases);

    public static string TokenizerDir(string cases) { var m = Find(cases); return Golden.Path("v3", "models", m.Model, m.Tokenizer); }

    public static string EncoderDir(string cases) { var m = Find(cases); return Golden.Path("v3", "models", m.Model, m.Encoder); }

    static readonly Dictionary<string, T5TokenizerCasesFile> CaseFiles = Models.ToDictionary(m => m.Cases,
        m => JsonSerializer.Deserialize<T5TokenizerCasesFile>(File.ReadAllText(Golden.Path(["v3", .. m.Cases.Split('/'), "t5_tokenizer_cases.json"])))
             ?? throw new InvalidDataException($"Empty golden file v3/{m.Cases}/t5_tokenizer_cases.json"));

    static readonly Dictionary<string, Lazy<T5Tokenizer>> Tokenizers =
        Models.ToDictionary(m => m.Cases, m => new Lazy<T5Tokenizer>(() => T5Tokenizer.FromDirectory(TokenizerDir(m.Cases))));

    public static T5TokenizerCasesFile Cases(string cases) => CaseFiles[cases];

    public static T5Tokenizer Tokenizer(string cases) => Tokenizers[cases].Value;
}
