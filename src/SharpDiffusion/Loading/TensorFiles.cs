namespace SharpDiffusion.Loading;

/// <summary>Opens a file of named tensors by what it is: safetensors, or a torch pickle (.ckpt, .pt, .bin, .pth).</summary>
public static class TensorFiles
{
    static readonly string[] PickleExtensions = [".ckpt", ".pt", ".pth", ".bin"];

    /// <summary>
    /// The extension decides first; an unknown one is told by the first bytes: a torch.save zip starts with "PK",
    /// a legacy pickle with 0x80 (PROTO); anything else is tried as safetensors (whose own checks name the problem).
    /// </summary>
    public static ITensorFile Open(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(Directory.Exists(path)
                ? $"{path} is a folder, not a checkpoint file"
                : $"Checkpoint file not found: {path}", path);
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".safetensors")
            return SafetensorsFile.Open(path);
        if (PickleExtensions.Contains(ext) || LooksLikePickle(path))
            return OpenPickle(path);
        return SafetensorsFile.Open(path);
    }

    static bool LooksLikePickle(string path)
    {
        Span<byte> head = stackalloc byte[2];
        using var stream = File.OpenRead(path);
        int n = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        return n == 2 && ((head[0] == (byte)'P' && head[1] == (byte)'K') || head[0] == 0x80);
    }

    /// <summary>Torch pickles, read without running anything (<see cref="TorchPickleFile"/>).</summary>
    static ITensorFile OpenPickle(string path) => TorchPickleFile.Open(path);
}
