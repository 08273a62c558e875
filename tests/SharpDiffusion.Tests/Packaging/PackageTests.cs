using System.Diagnostics;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Packaging;

/// <summary>
/// The library and the CLI as someone outside this repository gets them: packed into a local folder feed, then a
/// new console project restores SharpDiffusion by PackageReference (another by ProjectReference) and generates,
/// and <c>dotnet tool install</c> gives a <c>sharpdiffusion</c> command that draws with the shipped model. On Debian 12
/// / Ubuntu 22.04 every generation here needs the libLibTorchSharp.so fix to have travelled with the library.
/// </summary>
public class PackageTests(PackedFeed feed) : IClassFixture<PackedFeed>
{
    const string Prompt = "a photograph of an astronaut riding a horse";

    static string ConsumerProgram => """
        using SharpDiffusion;
        using SharpDiffusion.Pipelines;

        TorchRuntime.Initialize();
        using var pipe = StableDiffusionPipeline.FromPretrained(args[0]);
        var options = new GenerationOptions
        {
            Prompts = ["a photograph of an astronaut riding a horse"],
            NumInferenceSteps = 20,
            GuidanceScale = 8,
            Seed = 42,
            Scheduler = "lms",
        };
        using var result = pipe.Generate(options);
        foreach (string file in ImageOutput.Save(args[1], options, result, pipe.ModelName))
            Console.WriteLine(file);
        """;

    [Fact]
    public void Package_reference_consumer_outside_the_repository_generates_the_golden_image()
    {
        string project = feed.NewDirectory("package-consumer");
        File.WriteAllText(Path.Combine(project, "nuget.config"), feed.NuGetConfig());
        WriteConsumer(project, $"""<PackageReference Include="SharpDiffusion" Version="{feed.Version}" />""");

        Dotnet.Run(project, "build", "-c", "Release", "-nodeReuse:false");
        AssertGeneratesGoldenImage(project);
    }

    [Fact]
    public void Project_reference_consumer_outside_the_repository_generates_the_golden_image()
    {
        string project = feed.NewDirectory("project-consumer");
        string library = Path.Combine(feed.RepositoryRoot, "src", "SharpDiffusion", "SharpDiffusion.csproj");
        WriteConsumer(project, $"""<ProjectReference Include="{library}" />""");

        // The same version and artifacts folder as the pack: the library is already built there, and the
        // repository's own bin/ and obj/ are left alone.
        Dotnet.Run(project, "build", "-c", "Release", "-nodeReuse:false", $"-p:Version={feed.Version}", "--artifacts-path", feed.Artifacts);
        AssertGeneratesGoldenImage(Path.Combine(feed.Artifacts, "bin", "Consumer", "release"), fromArtifacts: true);
    }

    [Fact]
    public void Tool_installs_as_sharpdiffusion_and_draws_with_the_shipped_model()
    {
        string tools = feed.NewDirectory("tools");
        Dotnet.Run(feed.Root, "tool", "install", "SharpDiffusion.Cli", "--version", feed.Version,
            "--tool-path", tools, "--add-source", feed.Feed);

        string output = Path.Combine(feed.NewDirectory("tool-output"), "out.png");
        var run = Dotnet.Exec(feed.Root, Path.Combine(tools, "sharpdiffusion"),
            "generate", "--prompt", "a red circle on a blue background", "--steps", "2", "--seed", "1", "--output", output);
        Assert.True(run.ExitCode == 0, run.Output);

        var (width, height, _) = PngFile.Decode(output);
        Assert.Equal((64, 64), (width, height));
        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        Assert.Contains("Model: sharp-shapes", parameters);
    }

    static void WriteConsumer(string project, string reference)
    {
        File.WriteAllText(Path.Combine(project, "Consumer.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                {reference}
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(project, "Program.cs"), ConsumerProgram);
    }

    void AssertGeneratesGoldenImage(string projectOrOutput, bool fromArtifacts = false)
    {
        string bin = fromArtifacts ? projectOrOutput : Path.Combine(projectOrOutput, "bin", "Release", "net10.0");
        string output = Path.Combine(feed.NewDirectory("consumer-output"), "out.png");
        var run = Dotnet.Exec(feed.Root, Path.Combine(bin, "Consumer"), Golden.Path("models", "tiny-sd"), output);
        Assert.True(run.ExitCode == 0, run.Output);

        // The golden README's case: diffusers' PNG for this call, within one level per pixel.
        Golden.AssertPngWithinOneLevel(output, "pipelines", "tiny-sd", "lms_seed42_20steps_g8.safetensors");
        Assert.StartsWith(Prompt + "\n", PngFile.ReadText(File.ReadAllBytes(output))["parameters"]);
    }
}

/// <summary>
/// Packs the library and the CLI once, under a version no earlier run used (so no copy of ours in a NuGet cache
/// can be picked up), into a folder feed in a temporary folder; the build's bin/ and obj/ go there too.
/// </summary>
public sealed class PackedFeed : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("sharpdiffusion-packaging-").FullName;
    public string Version { get; } = $"0.1.0-test.{DateTime.UtcNow.Ticks}";
    public string RepositoryRoot { get; } = FindRepositoryRoot();
    public string Feed => Path.Combine(Root, "feed");
    public string Artifacts => Path.Combine(Root, "artifacts");

    static readonly string[] OurPackageIds = ["sharpdiffusion", "sharpdiffusion.cli", "sharpdiffusion.cli.linux-x64"];

    public PackedFeed()
    {
        foreach (string project in new[] { "src/SharpDiffusion", "src/SharpDiffusion.Cli" })
            Dotnet.Run(RepositoryRoot, "pack", project, "-c", "Release", "-o", Feed, $"-p:Version={Version}",
                "--artifacts-path", Artifacts, "-nodeReuse:false");
    }

    public string NewDirectory(string name) => Directory.CreateDirectory(Path.Combine(Root, name)).FullName;

    /// <summary>
    /// Our feed plus nuget.org, restoring into a packages folder of the temporary folder with the machine's NuGet cache as a
    /// fallback folder: dependencies (TorchSharp's libtorch is 600 MB) are used from the cache, offline, while our
    /// package is extracted into the temporary folder and never into the cache.
    /// </summary>
    public string NuGetConfig() => $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <config>
            <add key="globalPackagesFolder" value="{Path.Combine(Root, "packages")}" />
          </config>
          <fallbackPackageFolders>
            <clear />
            <add key="machine" value="{MachinePackagesFolder}" />
          </fallbackPackageFolders>
          <packageSources>
            <clear />
            <add key="local" value="{Feed}" />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
          </packageSources>
        </configuration>
        """;

    static string MachinePackagesFolder =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpDiffusion.slnx")))
                return dir.FullName;
        throw new DirectoryNotFoundException("Repository root (SharpDiffusion.slnx) not found above " + AppContext.BaseDirectory);
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
        // Should anything have put this run's version into the machine's cache, remove it (only ours, only this version).
        foreach (string id in OurPackageIds)
        {
            string cached = Path.Combine(MachinePackagesFolder, id, Version.ToLowerInvariant());
            try { if (Directory.Exists(cached)) Directory.Delete(cached, recursive: true); } catch (IOException) { }
        }
    }
}

/// <summary>Runs the dotnet CLI (or a built program) as a user would, without the test host's MSBuild settings.</summary>
static class Dotnet
{
    public static void Run(string workingDirectory, params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var result = Exec(workingDirectory, dotnet, args);
        Assert.True(result.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed ({result.ExitCode}):\n{result.Output}");
    }

    public static (int ExitCode, string Output) Exec(string workingDirectory, string program, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in args)
            start.ArgumentList.Add(arg);
        // The test host runs under MSBuild's VSTest task: a child build must not inherit its MSBuild paths.
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }
}
