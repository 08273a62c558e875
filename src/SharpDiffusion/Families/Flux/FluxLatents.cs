using static TorchSharp.torch;

namespace SharpDiffusion.Families.Flux;

/// <summary>
/// The Flux pipeline's token layout of the 16-channel latents (diffusers' _pack_latents, _unpack_latents,
/// _prepare_latent_image_ids): each 2×2 patch of [B, C, h, w] becomes one token of C·4 values ordered (c, dy, dx),
/// row-major over the (h/2)×(w/2) patches; the ids of token (i, j) are (0, i, j). The loop keeps the latents unpacked;
/// the denoiser packs them around each transformer call.
/// </summary>
public static class FluxLatents
{
    /// <summary>[B, C, h, w] → [B, (h/2)·(w/2), 4C].</summary>
    public static Tensor Pack(Tensor latents)
    {
        long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
        if (h % 2 != 0 || w % 2 != 0)
            throw new ArgumentException($"Flux packs 2×2 latent patches: latents {w}x{h} must be even a side (images a multiple of 16 pixels for Flux.1's VAE).");
        using var patches = latents.reshape(b, c, h / 2, 2, w / 2, 2).permute(0, 2, 4, 1, 3, 5); // [B, h/2, w/2, C, 2, 2]
        return patches.reshape(b, h / 2 * (w / 2), c * 4);
    }

    /// <summary>[B, (h/2)·(w/2), 4C] → [B, C, h, w].</summary>
    public static Tensor Unpack(Tensor tokens, long height, long width)
    {
        long b = tokens.shape[0], c = tokens.shape[2] / 4;
        using var patches = tokens.reshape(b, height / 2, width / 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5); // [B, C, h/2, 2, w/2, 2]
        return patches.reshape(b, c, height, width);
    }

    /// <summary>The image tokens' ids [(h/2)·(w/2), 3] float32: (0, row, column) of each 2×2 patch.</summary>
    public static Tensor ImageIds(long height, long width, Device? device = null)
    {
        long rows = height / 2, columns = width / 2;
        var ids = new float[rows * columns * 3];
        for (long i = 0; i < rows; i++)
        for (long j = 0; j < columns; j++)
            (ids[(i * columns + j) * 3 + 1], ids[(i * columns + j) * 3 + 2]) = (i, j);
        return tensor(ids, [rows * columns, 3]).to(device ?? CPU);
    }

    /// <summary>The text tokens' ids [M, 3]: zeros (diffusers' text_ids).</summary>
    public static Tensor TextIds(long tokens, Device? device = null) => zeros([tokens, 3], dtype: ScalarType.Float32, device: device ?? CPU);
}
