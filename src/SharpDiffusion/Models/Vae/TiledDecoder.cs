using static TorchSharp.torch;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// diffusers' tiled VAE decode (enable_vae_tiling): latents are cut into overlapping tiles of
/// <c>sample_size / f</c> latent pixels (64 for SD 1.5) with 25% overlap, each tile is decoded on its own, and
/// neighbouring tiles are blended linearly over the overlap so no seam shows. Memory stays that of one tile,
/// whatever the image size.
/// </summary>
public static class TiledDecoder
{
    public static Tensor Decode(AutoencoderKL vae, Tensor z, int? tileSampleSize = null, double overlapFactor = 0.25) =>
        Decode(vae.Decode, vae.Config.ScaleFactor, z, tileSampleSize ?? vae.Config.SampleSize, overlapFactor);

    /// <param name="decode">latent tile [B, C, h, w] → image tile [B, 3, h·f, w·f].</param>
    public static Tensor Decode(Func<Tensor, Tensor> decode, int f, Tensor z, int tileSample, double overlapFactor = 0.25)
    {
        int tileLatent = tileSample / f;                                  // 64
        int stride = (int)(tileLatent * (1 - overlapFactor));             // 48
        int blend = (int)(tileSample * overlapFactor);                    // 128
        int keep = tileSample - blend;                                    // 384
        long h = z.shape[2], w = z.shape[3];
        if (h <= tileLatent && w <= tileLatent)
            return decode(z);

        var rows = new List<List<Tensor>>();
        for (long i = 0; i < h; i += stride)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < w; j += stride)
            {
                using var tile = z[.., .., (int)i..(int)Math.Min(i + tileLatent, h), (int)j..(int)Math.Min(j + tileLatent, w)];
                row.Add(decode(tile));
            }
            rows.Add(row);
        }

        using var scope = NewDisposeScope();
        var outputRows = new List<Tensor>();
        for (int r = 0; r < rows.Count; r++)
        {
            var pieces = new List<Tensor>();
            for (int c = 0; c < rows[r].Count; c++)
            {
                var tile = rows[r][c];
                if (r > 0) tile = BlendVertical(rows[r - 1][c], tile, blend);
                if (c > 0) tile = BlendHorizontal(rows[r][c - 1], tile, blend);
                rows[r][c] = tile;
                pieces.Add(tile[.., .., ..(int)Math.Min(keep, tile.shape[2]), ..(int)Math.Min(keep, tile.shape[3])]);
            }
            outputRows.Add(cat(pieces, 3));
        }
        var image = cat(outputRows, 2)[.., .., ..(int)(h * f), ..(int)(w * f)];
        return image.contiguous().MoveToOuterDisposeScope();
    }

    // b's first rows fade in from a's last rows: b[y] = a[−extent+y]·(1 − y/extent) + b[y]·(y/extent).
    static Tensor BlendVertical(Tensor a, Tensor b, int extent)
    {
        extent = (int)Math.Min(Math.Min(a.shape[2], b.shape[2]), extent);
        if (extent == 0) return b;
        var weight = Ramp(extent, b).view(1, 1, extent, 1);
        var top = a[.., .., (int)(a.shape[2] - extent).., ..] * (1 - weight) + b[.., .., ..extent, ..] * weight;
        return cat([top, b[.., .., extent.., ..]], 2);
    }

    static Tensor BlendHorizontal(Tensor a, Tensor b, int extent)
    {
        extent = (int)Math.Min(Math.Min(a.shape[3], b.shape[3]), extent);
        if (extent == 0) return b;
        var weight = Ramp(extent, b).view(1, 1, 1, extent);
        var left = a[.., .., .., (int)(a.shape[3] - extent)..] * (1 - weight) + b[.., .., .., ..extent] * weight;
        return cat([left, b[.., .., .., extent..]], 3);
    }

    static Tensor Ramp(int extent, Tensor like) => arange(extent, dtype: ScalarType.Float32, device: like.device).div(extent).to(like.dtype);
}
