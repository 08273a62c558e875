using System.Security.Cryptography;

namespace SharpDiffusion.Loading;

/// <summary>AUTOMATIC1111's "Model hash" of a checkpoint file: the first 10 hex digits of its SHA-256 (A1111's "new"
/// short hash, lower case), as it writes into the infotext.</summary>
public static class ModelHash
{
    public static string Compute(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..10];
    }
}
