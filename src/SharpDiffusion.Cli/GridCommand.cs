using System.Diagnostics;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Cli;

/// <summary>
/// `grid`: AUTOMATIC1111's X/Y/Z plot. Every generate option is taken; --x, --y and --z each vary one of them
/// (<see cref="GridAxis"/>), every cell built by generate's own parsing (<see cref="GenerateCommand.BuildOptions"/>) with
/// that cell's values, the seed held across cells. Writes each cell's picture and one grid PNG with the values drawn as
/// labels and A1111's grid infotext. More than 100 cells need --yes; refusals write nothing.
/// </summary>
public static class GridCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("x", OptionKind.Text, "the columns: a generate option and its values, e.g. \"steps=10,20,30\", \"cfg=4-8 [3]\", \"sampler=euler,lcm\", \"prompt-sr=red,blue\"; ranges as AUTOMATIC1111: 1-5, 1-10 (+2), 10-20 [3]", "NAME=VALUES"),
        new("y", OptionKind.Text, "the rows, as --x (default: one row)", "NAME=VALUES"),
        new("z", OptionKind.Text, "one grid per value, side by side, as --x (default: one grid)", "NAME=VALUES"),
        new("yes", OptionKind.Flag, $"draw a grid of more than {XyzPlot.MaxCellsUnconfirmed} cells"),
        new("margin", OptionKind.Integer, "pixels between cells, as AUTOMATIC1111's grid margins (default: 0)", "N"),
        new("output", OptionKind.Text, "the grid PNG; each cell is written beside it as FILE-0.png, FILE-1.png, ... (x fastest, then y, then z) (default: xyz_grid.png)", "FILE.png"),
        // generate's live preview is parsed only to be refused (one preview file rewritten by every cell shows nothing useful).
        .. GenerateCommand.Options.Where(o => o.Name != "output").Select(o => PreviewArguments.Options.Contains(o) ? o with { Hidden = true } : o),
    ];

    /// <summary>One cell: its options and its place on the axes.</summary>
    sealed record Cell(GenerationOptions Options, CommandLine Line, int X, int Y, int Z);

    public static int Run(CommandLine cl)
    {
        if (PreviewArguments.Options.FirstOrDefault(o => cl.Given(o.Name)) is { } preview)
            throw new UsageException($"grid draws no live preview: --{preview.Name} is generate's option; drop it (each cell is written as a PNG of its own).");
        var x = GridAxis.Parse(cl, "x") ?? throw new UsageException("--x NAME=VALUES is required, e.g. --x \"steps=10,20,30\".");
        var y = GridAxis.Parse(cl, "y");
        var z = GridAxis.Parse(cl, "z");
        foreach (var (a, b) in new[] { (x, y), (x, z), (y, z) })
            if (a is not null && b is not null && a.Option == b.Option)
                throw new UsageException($"--{a.Option} is on two axes; give each axis its own option.");
        int nx = x.Values.Count, ny = y?.Values.Count ?? 1, nz = z?.Values.Count ?? 1;
        long count = (long)nx * ny * nz;
        if (count > XyzPlot.MaxCellsUnconfirmed && !cl.Flag("yes"))
            throw new UsageException($"The grid has {count} cells ({nx}x{ny}x{nz}), more than {XyzPlot.MaxCellsUnconfirmed}; add --yes to draw it. Nothing was written.");
        int margin = cl.Int("margin") ?? 0;
        if (margin is < 0 or > 500) throw new UsageException($"--margin must be 0 to 500 pixels; got {margin}.");

        string model = cl.String("model") ?? DefaultModel.Locate()
            ?? throw new UsageException("--model DIR is required: a diffusers model folder (the shipped models/sharp-shapes was not found).");
        var modelDefaults = GenerationDefaults.Load(model) ?? FluxArguments.Defaults(model, cl);
        // The seeds are held across cells, as A1111's fix_seed: a random seed (and variation seed) is drawn once.
        long seed = cl.Long("seed") is long s && s >= 0 ? s : Random.Shared.NextInt64(0, uint.MaxValue);
        long variationSeed = cl.Long("variation-seed") is long v && v >= 0 ? v : Random.Shared.NextInt64(0, uint.MaxValue);
        var cells = new List<Cell>();
        for (int iz = 0; iz < nz; iz++)
        for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++)
        {
            var overrides = new Dictionary<string, string> { ["seed"] = Invariant(seed), ["variation-seed"] = Invariant(variationSeed) };
            x.AddTo(overrides, ix);
            y?.AddTo(overrides, iy);
            z?.AddTo(overrides, iz);
            var line = cl.With(overrides);
            var options = GenerateCommand.BuildOptions(line, modelDefaults);
            options = x.Apply(options, ix);
            if (y is not null) options = y.Apply(options, iy);
            if (z is not null) options = z.Apply(options, iz);
            options.Validate(); // every cell is checked before the model is opened
            cells.Add(new Cell(options, line, ix, iy, iz));
        }
        string output = cl.String("output") ?? "xyz_grid.png";
        ImageOutput.CheckPath(output);
        var cellPaths = ImageOutput.Paths(output, Math.Max(2, cells.Count)).Take(cells.Count).ToList();
        foreach (var path in cellPaths) AtomicFiles.CheckWritable(path);
        string? embeddingDir = GenerateCommand.EmbeddingDir(cl);
        var load = GenerateCommand.Load(cl);
        TorchRuntime.Initialize(Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount));
        var loraFiles = cl.All("lora").Select(LoraArguments.Parse).ToList();
        using var loraDisposal = new LoraArguments.Disposal(loraFiles.Select(l => l.File));

        var clock = Stopwatch.StartNew();
        using var pipeline = GenerateCommand.Open(cl, model, load, embeddingDir);
        using var refiner = RefinerArguments.Load(cl, pipeline, load);
        foreach (var cell in cells) pipeline.Validate(cell.Options with { Loras = loraFiles });
        foreach (var scheduler in cells.Select(c => (c.Options.Scheduler, c.Options.SchedulerOptions)).Distinct())
            pipeline.CreateScheduler(scheduler.Scheduler, scheduler.SchedulerOptions); // a bad sampler fails before any cell runs
        Progress.Line($"Opened {pipeline.ModelName} in {clock.Elapsed.TotalSeconds:F1}s; drawing {count} cells ({nx}x{ny}x{nz})");

        using var interruption = new Interruption();
        var vae = pipeline.VaeCodec is { VaeName: { } vaeName, VaeHash: { } vaeHash } ? (vaeName, vaeHash) : ((string, string)?)null;
        var pictures = new List<RgbImage>();
        var files = new List<(string Path, byte[] Bytes)>();
        string? firstInfo = null;
        for (int i = 0; i < cells.Count; i++)
        {
            var options = RefinerArguments.Apply(cells[i].Options, cells[i].Line, refiner) with { Loras = loraFiles };
            Progress.Line($"Cell {i + 1}/{cells.Count}: {string.Join(", ", CellLabels(x, y, z, cells[i]))}");
            using var result = Progress.Run(options.DenoisingSteps, report => pipeline.Generate(options, report, cancellation: interruption.Token));
            foreach (var warning in result.Warnings) Progress.Line($"warning: {warning}");
            var image = result.Images[0];   // A1111 keeps a cell's first picture
            string info = ImageOutput.InfoTextFor(options, result, image, pipeline.ModelName, pipeline.ModelHash, vae);
            firstInfo ??= info;
            pictures.Add(new RgbImage(image.Width, image.Height, image.Rgb));
            files.Add((cellPaths[i], PngFile.Encode(image.Width, image.Height, image.Rgb, new Dictionary<string, string> { ["parameters"] = info })));
        }
        var grid = ImageGrid.Xyz(pictures, x.Labels, y?.Labels ?? [""], z?.Labels ?? [""], margin);
        string gridInfo = XyzPlot.GridInfoText(firstInfo!, Axis("X", x), Axis("Y", y), Axis("Z", z));
        files.Insert(0, (output, PngFile.Encode(grid.Width, grid.Height, grid.Rgb, new Dictionary<string, string> { ["parameters"] = gridInfo })));
        AtomicFiles.WriteAll(files);
        Progress.Line($"Wrote {AtomicFiles.Printable(output)} ({grid.Size}) and {cells.Count} cells ({AtomicFiles.Printable(cellPaths[0])} ...); seed {seed}; total {clock.Elapsed.TotalSeconds:F1}s");
        return 0;
    }

    static string Invariant(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    static (string, string, string)? Axis(string letter, GridAxis? axis) => axis is null ? null : (letter, axis.Label, axis.Text);

    static IEnumerable<string> CellLabels(GridAxis x, GridAxis? y, GridAxis? z, Cell cell)
    {
        yield return x.Labels[cell.X];
        if (y is not null) yield return y.Labels[cell.Y];
        if (z is not null) yield return z.Labels[cell.Z];
    }
}
