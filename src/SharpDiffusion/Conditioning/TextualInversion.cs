using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// diffusers' load_textual_inversion for CLIP encoders: the embedding's tokens (<c>tok</c>, <c>tok_1</c>, … for several
/// vectors) added to each tokenizer and their rows appended to each text encoder, for every later call. SD 1.x/2.x files
/// hold one set of vectors; SDXL's two (clip_l, clip_g), one per encoder in order.
/// </summary>
public static class TextualInversion
{
    /// <summary>Loads <paramref name="path"/> into <paramref name="encoders"/> (one or two); returns the tokens. Not thread-safe.</summary>
    public static IReadOnlyList<string> Load(string path, string? token, IReadOnlyList<(ClipTokenizer Tokenizer, ComponentWeights Encoder)> encoders)
    {
        using var embedding = TextualInversionFile.Load(path, token);
        bool xl = encoders.Count == 2;
        if (xl != embedding.Vectors2 is not null)
            throw new InvalidDataException(xl
                ? $"{path}: an SD 1.x/2.x embedding (one set of vectors); SDXL needs one per text encoder (clip_l and clip_g)."
                : $"{path}: an SDXL embedding (clip_l and clip_g); this is an SD 1.x/2.x model.");
        var vectors = xl ? [embedding.Vectors, embedding.Vectors2!] : new[] { embedding.Vectors };
        for (int i = 0; i < encoders.Count; i++)
            CheckWidth(path, vectors[i], (ClipTextModel)encoders[i].Encoder.Module);
        var tokens = embedding.Tokens;
        if (tokens.FirstOrDefault(t => encoders.Any(e => e.Tokenizer.TryGetTokenId(t, out _))) is { } taken)
            throw new ArgumentException($"{path}: the token '{taken}' is already in the tokenizer; give another trigger word.");
        using var noGrad = no_grad();
        foreach (var (_, encoder) in encoders)
            encoder.Pin(); // changed in memory from here on: its files no longer describe it
        for (int i = 0; i < encoders.Count; i++)
        {
            var (tokenizer, encoder) = encoders[i];
            var ids = tokenizer.AddTokens(tokens);
            ((ClipTextModel)encoder.Module).SetTokenEmbeddings(tokenizer.VocabSize, ids, vectors[i]);
        }
        return tokens;
    }

    /// <summary>Every embedding file of <paramref name="directory"/> (.safetensors, .pt, .bin, in name order), each triggered
    /// by its file name (AUTOMATIC1111's rule). A file that is not an embedding (unknown layout, wrong width, unreadable
    /// pickle) is skipped and reported, as AUTOMATIC1111 skips it.</summary>
    public static (IReadOnlyList<string> Tokens, IReadOnlyList<string> Skipped) LoadDirectory(ITextConditioner conditioner, string directory)
    {
        var (tokens, skipped) = (new List<string>(), new List<string>());
        foreach (var file in Directory.GetFiles(directory).Order(StringComparer.Ordinal)
                     .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".safetensors" or ".pt" or ".bin"))
        {
            try { tokens.AddRange(conditioner.LoadTextualInversion(file, Path.GetFileNameWithoutExtension(file))); }
            catch (Exception e) when (e is NotSupportedException or InvalidDataException or ArgumentException) { skipped.Add(e.Message); }
        }
        return (tokens, skipped);
    }

    static void CheckWidth(string path, Tensor vectors, ClipTextModel encoder)
    {
        long width = encoder.Config.HiddenSize;
        if (vectors.shape[1] != width)
            throw new InvalidDataException($"{path}: the embedding has {vectors.shape[1]} channels but this text encoder takes {width}: it was trained for another model.");
    }
}
