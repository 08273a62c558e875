using System.Text.RegularExpressions;
using SharpDiffusion.Imaging;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>One training picture: its file, caption, the repeat count of its folder and the folder's concept name.</summary>
public sealed record TrainingPicture(string Path, string Caption, int Repeats, string Folder);

/// <summary>
/// kohya's dataset layout (sd-scripts' DreamBooth-style folders): <c>IMAGES/N_name/picture.png</c> with its caption in
/// <c>picture.txt</c>; the folder's pictures count N times per epoch, and a picture without a caption is captioned
/// "name". A folder holding pictures directly (no <c>N_name</c> subfolders) is one concept with 1 repeat.
/// </summary>
public sealed class KohyaImageFolder
{
    static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp"];
    static readonly Regex RepeatFolder = new(@"^(\d+)_(.+)$");

    public IReadOnlyList<TrainingPicture> Pictures { get; }
    /// <summary>What was assumed (missing captions); shown to the user, nothing is refused for them.</summary>
    public IReadOnlyList<string> Warnings { get; }

    KohyaImageFolder(IReadOnlyList<TrainingPicture> pictures, IReadOnlyList<string> warnings) => (Pictures, Warnings) = (pictures, warnings);

    /// <summary>Lists the pictures (no decoding yet); a folder without pictures is refused in one line.</summary>
    public static KohyaImageFolder Open(string dir)
    {
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"--images {dir} is not a folder; give the folder of training pictures (kohya layout: N_name/picture.png + picture.txt).");
        var pictures = new List<TrainingPicture>();
        var warnings = new List<string>();
        var concepts = Directory.GetDirectories(dir).Select(d => (Dir: d, Match: RepeatFolder.Match(Path.GetFileName(d))))
            .Where(c => c.Match.Success).OrderBy(c => c.Dir, StringComparer.Ordinal).ToList();
        if (concepts.Count == 0)
            Add(dir, 1, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))), pictures, warnings);
        foreach (var (conceptDir, match) in concepts)
        {
            if (!int.TryParse(match.Groups[1].Value, out int repeats) || repeats < 1)
                throw new ArgumentException($"{conceptDir}: the repeat count '{match.Groups[1].Value}' must be a whole number of at least 1 (kohya's N_name).");
            Add(conceptDir, repeats, match.Groups[2].Value, pictures, warnings);
        }
        if (pictures.Count == 0)
            throw new ArgumentException($"--images {dir} holds no pictures ({string.Join(", ", Extensions)}), directly or in N_name repeat folders.");
        return new KohyaImageFolder(pictures, warnings);
    }

    static void Add(string dir, int repeats, string name, List<TrainingPicture> pictures, List<string> warnings)
    {
        var files = Directory.GetFiles(dir).Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .OrderBy(f => f, StringComparer.Ordinal);
        int uncaptioned = 0;
        foreach (var file in files)
        {
            string captionFile = Path.ChangeExtension(file, ".txt");
            string? caption = File.Exists(captionFile) ? File.ReadAllText(captionFile).Trim() : null;
            if (string.IsNullOrEmpty(caption))
            {
                caption = name;
                uncaptioned++;
            }
            pictures.Add(new TrainingPicture(file, caption, repeats, name));
        }
        if (uncaptioned > 0)
            warnings.Add($"{uncaptioned} picture(s) in {dir} have no caption (.txt); captioned \"{name}\" from the folder name, as kohya does.");
    }

    /// <summary>How often each comma-separated tag occurs per folder, as kohya's ss_tag_frequency: {folder: {tag: count}}.</summary>
    public SortedDictionary<string, SortedDictionary<string, int>> TagFrequency()
    {
        var result = new SortedDictionary<string, SortedDictionary<string, int>>(StringComparer.Ordinal);
        foreach (var p in Pictures)
        {
            string key = p.Repeats + "_" + p.Folder;
            if (!result.TryGetValue(key, out var tags)) result[key] = tags = new(StringComparer.Ordinal);
            foreach (var tag in p.Caption.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                tags[tag] = tags.GetValueOrDefault(tag) + 1;
        }
        return result;
    }

    /// <summary>The pictures' sizes (decoded), in <see cref="Pictures"/> order.</summary>
    public IReadOnlyList<(int Width, int Height)> Sizes()
    {
        var sizes = new List<(int, int)>();
        foreach (var p in Pictures)
        {
            var image = ImageFile.Load(p.Path);
            sizes.Add((image.Width, image.Height));
        }
        return sizes;
    }

    /// <summary>The pictures <paramref name="indices"/> resized to cover <paramref name="width"/> × <paramref name="height"/>
    /// and centre-cropped to it (<see cref="AspectRatioBuckets.ResizeAndCrop"/>), as [n, 3, H, W] in [−1, 1]. Smaller
    /// pictures are upscaled, with a warning through <paramref name="warn"/>.</summary>
    public Tensor LoadPixels(IReadOnlyList<int> indices, int width, int height, Action<string>? warn)
    {
        var bytes = new byte[indices.Count * width * height * 3];
        int upscaled = 0;
        for (int i = 0; i < indices.Count; i++)
        {
            var image = ImageFile.Load(Pictures[indices[i]].Path);
            if (image.Width < width || image.Height < height) upscaled++;
            AspectRatioBuckets.ResizeAndCrop(image, width, height).Rgb.CopyTo(bytes, i * width * height * 3);
        }
        if (upscaled > 0)
            warn?.Invoke($"{upscaled} picture(s) are smaller than their training size {width}x{height} and were upscaled; they will look soft.");
        using var raw = tensor(bytes, [indices.Count, height, width, 3]);
        using var f = raw.to(ScalarType.Float32);
        return (f / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous(); // [n, 3, H, W]
    }
}
