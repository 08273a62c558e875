namespace SharpDiffusion.Loading;

/// <summary>Opens a file of named tensors by its format: safetensors, or a torch.save pickle (.ckpt, .pt, .pth, .bin).</summary>
public static class TensorFileOpener
{
    static readonly string[] PickleExtensions = [".ckpt", ".pt", ".pth", ".bin"];

    public static ITensorFile Open(string path) =>
        PickleExtensions.Contains(System.IO.Path.GetExtension(path), StringComparer.OrdinalIgnoreCase)
            ? TorchPickleFile.Open(path)
            : SafetensorsFile.Open(path);
}
