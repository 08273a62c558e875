using System.Text.Json;
using System.Text.Json.Serialization;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.Text;

/// <summary>One entry of golden/tokenizer_cases.json.</summary>
public sealed record TokenizerCase(
    [property: JsonPropertyName("id")] int Id,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("input_ids")] int[] InputIds,
    [property: JsonPropertyName("input_ids_untruncated")] int[] InputIdsUntruncated,
    [property: JsonPropertyName("num_untruncated")] int NumUntruncated,
    [property: JsonPropertyName("truncated")] bool Truncated,
    [property: JsonPropertyName("tokens_untruncated")] string[] TokensUntruncated);

/// <summary>One entry of golden/sd2/tokenizer_sd1_vs_sd2.json.</summary>
public sealed record Sd1VsSd2Case(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("sd1_tokens")] string[] Sd1Tokens,
    [property: JsonPropertyName("sd2_tokens")] string[] Sd2Tokens,
    [property: JsonPropertyName("sd1_input_ids")] int[] Sd1InputIds,
    [property: JsonPropertyName("sd2_input_ids")] int[] Sd2InputIds);

public sealed record Sd1VsSd2File(
    [property: JsonPropertyName("sd2_pad_token")] string Sd2PadToken,
    [property: JsonPropertyName("sd2_pad_token_id")] int Sd2PadTokenId,
    [property: JsonPropertyName("sd2_all_special_tokens")] string[] Sd2AllSpecialTokens,
    [property: JsonPropertyName("cases")] Sd1VsSd2Case[] Cases);

/// <summary>The golden tokenizer files and folders, each read once per test run.</summary>
public static class TokenizerGoldenFiles
{
    static readonly Lazy<TokenizerCase[]> LazyCases = new(() =>
        Read<CasesFile>("tokenizer_cases.json").Cases);
    static readonly Lazy<Sd1VsSd2File> LazySd1VsSd2 = new(() => Read<Sd1VsSd2File>("sd2", "tokenizer_sd1_vs_sd2.json"));
    static readonly Lazy<ClipTokenizer> LazySd1 = new(() => ClipTokenizer.FromDirectory(Golden.Path("clip-tokenizer")));
    static readonly Lazy<ClipTokenizer> LazySd2 =
        new(() => ClipTokenizer.FromDirectory(Golden.Path("models", "tiny-sd2", "tokenizer")));

    sealed record CasesFile([property: JsonPropertyName("cases")] TokenizerCase[] Cases);

    public static IReadOnlyList<TokenizerCase> Cases => LazyCases.Value;
    public static Sd1VsSd2File Sd1VsSd2 => LazySd1VsSd2.Value;

    /// <summary>golden/clip-tokenizer: the SD1 tokenizer every tokenizer_cases.json entry was made with.</summary>
    public static ClipTokenizer Sd1Tokenizer => LazySd1.Value;

    /// <summary>golden/models/tiny-sd2/tokenizer: same vocabulary, pad token "!".</summary>
    public static ClipTokenizer Sd2Tokenizer => LazySd2.Value;

    static T Read<T>(params string[] parts) =>
        JsonSerializer.Deserialize<T>(File.ReadAllText(Golden.Path(parts)))
            ?? throw new InvalidDataException("Empty golden file " + Golden.Path(parts));
}
