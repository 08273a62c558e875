using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Adapters;

/// <summary>
/// A textual-inversion embedding: one or more vectors [n, D] and the trigger word that brings them in. Reads diffusers'
/// <c>learned_embeds.safetensors</c> (<c>{token: [D]}</c> or <c>[n, D]</c>) and AUTOMATIC1111's <c>.safetensors</c>
/// (<c>emb_params</c> [n, D]) and <c>.pt</c> (<c>string_to_param: {"*": [n, D]}</c>, <c>name</c>).
/// The trigger word is the one given, else the one the file stores (the diffusers key; the .pt's <c>name</c>),
/// else the file name without extension (AUTOMATIC1111's rule).
/// </summary>
public sealed class TextualInversionFile : IDisposable
{
    public string Path { get; }
    public string Token { get; }
    /// <summary>[n, D] float32 on the CPU (SDXL: the first text encoder's, <c>clip_l</c>).</summary>
    public Tensor Vectors { get; }
    /// <summary>SDXL embeddings: the second text encoder's vectors (<c>clip_g</c>) [n, D₂]; null for SD 1.x/2.x ones.</summary>
    public Tensor? Vectors2 { get; private init; }

    TextualInversionFile(string path, string token, Tensor vectors) => (Path, Token, Vectors) = (path, token, vectors);

    public static TextualInversionFile Load(string path, string? token = null)
    {
        if (path.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            return LoadPickle(path, token);
        using var file = SafetensorsFile.Open(path);
        string key;
        string? stored;
        if (file.Contains("clip_l") && file.Contains("clip_g"))                   // SDXL: one set per text encoder
        {
            var l = FromTensor(path, file.Load("clip_l"), token ?? System.IO.Path.GetFileNameWithoutExtension(path));
            using var g = FromTensor(path, file.Load("clip_g"), l.Token);
            if (g.Vectors.shape[0] != l.Vectors.shape[0])
                throw new InvalidDataException($"{path}: clip_l has {l.Vectors.shape[0]} vectors but clip_g {g.Vectors.shape[0]}; the file is damaged.");
            return new TextualInversionFile(path, l.Token, l.Vectors) { Vectors2 = g.Vectors.clone() };
        }
        if (file.Contains("emb_params"))                                          // AUTOMATIC1111 .safetensors
            (key, stored) = ("emb_params", null);
        else if (file.Headers.Count == 1)                                         // diffusers: {token: vectors}
            (key, stored) = (file.Headers[0].Name, file.Headers[0].Name);
        else
            throw new InvalidDataException($"{path}: not a textual-inversion embedding (expected one tensor named by its token, or 'emb_params'); " +
                $"found {file.Headers.Count} tensors: {string.Join(", ", file.Headers.Take(3).Select(h => h.Name))}.");
        return FromTensor(path, file.Load(key), token ?? stored ?? System.IO.Path.GetFileNameWithoutExtension(path));
    }

    /// <summary>Torch pickles: AUTOMATIC1111's .pt (<c>string_to_param["*"]</c>, trigger <c>name</c>, as diffusers reads it)
    /// or a diffusers learned_embeds.bin (<c>{token: vectors}</c>).</summary>
    static TextualInversionFile LoadPickle(string path, string? token)
    {
        using var file = TorchPickleFile.Open(path);
        const string a1111 = "string_to_param.*";
        if (file.Contains(a1111))
            return FromTensor(path, file.Load(a1111), token ?? (file.Values.GetValueOrDefault("name") as string) ?? System.IO.Path.GetFileNameWithoutExtension(path));
        if (file.Headers.Count == 1)
            return FromTensor(path, file.Load(file.Headers[0].Name), token ?? file.Headers[0].Name);
        throw new InvalidDataException($"{path}: not a textual-inversion embedding (expected AUTOMATIC1111's string_to_param or one tensor named by its token); " +
            $"found {file.Headers.Count} tensors: {string.Join(", ", file.Headers.Take(3).Select(h => h.Name))}.");
    }

    static TextualInversionFile FromTensor(string path, Tensor vectors, string token)
    {
        if (vectors.dim() == 1)
            vectors = vectors.unsqueeze(0);                                        // [D] → [1, D]
        if (vectors.dim() != 2 || vectors.shape[0] < 1)
            throw new InvalidDataException($"{path}: the embedding is [{string.Join(", ", vectors.shape)}]; expected [D] or [vectors, D].");
        return new TextualInversionFile(path, token, vectors.to(ScalarType.Float32));
    }

    /// <summary>The tokens the vectors are added as: <c>tok</c>, <c>tok_1</c>, … (diffusers' multi-vector naming).</summary>
    public IReadOnlyList<string> Tokens =>
        Enumerable.Range(0, (int)Vectors.shape[0]).Select(i => i == 0 ? Token : $"{Token}_{i}").ToList();

    public void Dispose()
    {
        Vectors.Dispose();
        Vectors2?.Dispose();
    }
}
