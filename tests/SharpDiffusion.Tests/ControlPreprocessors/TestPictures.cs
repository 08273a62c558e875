using OpenCvSharp;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>Pictures made in the tests for the edge detectors: ramps, discs, noise, colour channels that disagree,
/// odd sizes; plus the golden control map and the golden photos.</summary>
public static class TestPictures
{
    public static RgbImage Golden(params string[] parts) => ImageFile.Load(SharpDiffusion.Tests.Golden.Path(parts));

    public static RgbImage Make(int width, int height, Func<int, int, (int R, int G, int B)> pixel)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b) = pixel(x, y);
                int p = (y * width + x) * 3;
                (rgb[p], rgb[p + 1], rgb[p + 2]) = ((byte)Math.Clamp(r, 0, 255), (byte)Math.Clamp(g, 0, 255), (byte)Math.Clamp(b, 0, 255));
            }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>Every named picture; sizes that are not multiples of 64 on purpose.</summary>
    public static IEnumerable<(string Name, RgbImage Image)> All()
    {
        yield return ("golden control_edges_64x64", Golden("controlnet", "control_edges_64x64.png"));
        yield return ("golden img2img init_64x64", Golden("img2img", "init_64x64.png"));
        yield return ("golden inpaint init_64x64", Golden("inpaint", "init_64x64.png"));
        yield return ("horizontal ramp", Make(70, 40, (x, y) => (x * 4, x * 4, x * 4)));
        yield return ("diagonal ramp with steps", Make(61, 53, (x, y) => ((x + y) / 5 * 23 % 256, (2 * x + y) / 7 * 31 % 256, (x + 3 * y) % 256)));
        yield return ("radial ramp", Make(80, 64, (x, y) => { int d = (int)Math.Sqrt((x - 40) * (x - 40) + (y - 30) * (y - 30)) * 6; return (d, 255 - d, d / 2); }));
        yield return ("discs", Discs(96, 72, antialias: false));
        yield return ("anti-aliased discs", Discs(100, 75, antialias: true));
        yield return ("noise", Noise(64, 64, seed: 1, scale: 1));
        yield return ("blotchy noise", Noise(90, 50, seed: 2, scale: 6));
        yield return ("channels that disagree", Make(48, 40, (x, y) => (x < 20 ? 200 : 40, y < 15 ? 180 : 60, (x + y) % 30 < 15 ? 90 : 170)));
        yield return ("equal gradients on two channels", Make(33, 29, (x, y) => (x * 7, x * 7, y * 8)));
        yield return ("1x1", Make(1, 1, (_, _) => (200, 10, 30)));
        yield return ("1x9", Make(1, 9, (_, y) => (y * 30, 0, 0)));
        yield return ("9x1", Make(9, 1, (x, _) => (0, x * 30, 0)));
        yield return ("2x3", Make(2, 3, (x, y) => (x * 255, y * 120, 0)));
        yield return ("flat", Make(20, 20, (_, _) => (77, 77, 77)));
    }

    /// <summary>Pictures whose short side is 64 or more (the API's smallest resolution), none a multiple of 64 wide.</summary>
    public static IEnumerable<(string Name, RgbImage Image)> Large()
    {
        yield return ("large anti-aliased discs", Discs(150, 100, antialias: true));
        yield return ("large blotchy noise", Noise(130, 70, seed: 3, scale: 5));
        yield return ("large diagonal steps", Make(97, 65, (x, y) => ((x + y) / 6 * 37 % 256, (3 * x + y) / 9 * 29 % 256, (x * y) % 256)));
    }

    static RgbImage Discs(int width, int height, bool antialias)
    {
        using var mat = new Mat(height, width, MatType.CV_8UC3, new Scalar(30, 60, 90));
        var rng = new Random(7);
        for (int i = 0; i < 9; i++)
            Cv2.Circle(mat, new Point(rng.Next(width), rng.Next(height)), 4 + rng.Next(20),
                new Scalar(rng.Next(256), rng.Next(256), rng.Next(256)), -1, antialias ? LineTypes.AntiAlias : LineTypes.Link8);
        return new RgbImage(width, height, OpenCvReference.Bytes(mat));
    }

    /// <summary>Uniform noise, constant over <paramref name="scale"/>×<paramref name="scale"/> cells, plus ±8 per pixel.</summary>
    static RgbImage Noise(int width, int height, int seed, int scale)
    {
        var rng = new Random(seed);
        var cells = Enumerable.Range(0, (width / scale + 1) * (height / scale + 1) * 3).Select(_ => rng.Next(256)).ToArray();
        int At(int x, int y, int c) => cells[((y / scale) * (width / scale + 1) + x / scale) * 3 + c] + rng.Next(-8, 9);
        return Make(width, height, (x, y) => (At(x, y, 0), At(x, y, 1), At(x, y, 2)));
    }
}
