namespace SharpDiffusion.Tests;

/// <summary>
/// Tests that change process-wide state run alone, after the parallel ones: the console streams (CLI tests
/// redirect them) and libtorch's thread count (the CLI sets it; the training smoke test needs one fixed count
/// with nothing else computing beside it, since a resumed run must repeat an uninterrupted one to 1e-4).
/// </summary>
public static class ProcessWide
{
    public const string Settings = "process-wide settings";
}

[CollectionDefinition(ProcessWide.Settings, DisableParallelization = true)]
public sealed class ProcessWideSettingsCollection;
