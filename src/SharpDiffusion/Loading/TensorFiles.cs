namespace SharpDiffusion.Loading;

/// <summary>Opens a file of named tensors by what it is: safetensors (a ComfyUI scaled float8 one seen with its scales
/// applied: <see cref="ScaledFloat8File"/>), GGUF, a torch pickle (.ckpt, .pt, .bin, .pth), or the index of sharded weights
/// (<c>*.safetensors.index.json</c>, <c>*.safetensors.index.fp16.json</c>, ...).</summary>
public static class TensorFiles
{
    static readonly string[] PickleExtensions = [".ckpt", ".pt", ".pth", ".bin"];

    /// <summary>transformers' and diffusers' shard index names: {stem}.safetensors.index.json, with a variant
    /// {stem}.safetensors.index.{variant}.json (their _add_variant puts it before the last dot).</summary>
    public static bool IsShardIndex(string path) =>
        System.Text.RegularExpressions.Regex.IsMatch(Path.GetFileName(path), @"\.(safetensors|bin)\.index(\.[^.]+)?\.json$", System.Text.RegularExpressions.RegexOptions.IgnoreCase);

    /// <summary>
    /// The extension decides first; an unknown one is told by the first bytes: a torch.save zip starts with "PK",
    /// a legacy pickle with 0x80 (PROTO), GGUF with "GGUF"; anything else is tried as safetensors (whose own checks
    /// name the problem).
    /// </summary>
    /// <param name="ggufArithmetic">how a GGUF's quantized blocks are dequantized (<see cref="GgufFile.Open"/>).</param>
    public static ITensorFile Open(string path, GgufArithmetic ggufArithmetic = GgufArithmetic.Float32)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(Directory.Exists(path)
                ? $"{path} is a folder, not a checkpoint file"
                : $"Checkpoint file not found: {path}", path);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".safetensors")
            return ScaledFloat8File.Wrap(SafetensorsFile.Open(path));
        if (ext == ".gguf")
            return GgufFile.Open(path, ggufArithmetic);
        if (IsShardIndex(path))
            return ShardedTensorFile.Open(path);
        if (PickleExtensions.Contains(ext))
            return OpenPickle(path);
        var head = Head(path);
        if (head.Length == 4 && head.SequenceEqual("GGUF"u8.ToArray()))
            return GgufFile.Open(path, ggufArithmetic);
        if (head.Length >= 2 && ((head[0] == (byte)'P' && head[1] == (byte)'K') || head[0] == 0x80))
            return OpenPickle(path);
        return ScaledFloat8File.Wrap(SafetensorsFile.Open(path));
    }

    static byte[] Head(string path)
    {
        var head = new byte[4];
        using var stream = File.OpenRead(path);
        int n = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        return head[..n];
    }

    /// <summary>Torch pickles, read without running anything (<see cref="TorchPickleFile"/>).</summary>
    static ITensorFile OpenPickle(string path) => TorchPickleFile.Open(path);
}
