using System.Diagnostics;
using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Tests.Cli;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// A real AUTOMATIC1111 client, the npm package node-sd-webui (tests/node-client/run.mjs), runs txt2img, img2img and
/// png-info against `serve` in its own process, and gets the same PNG bytes, infotext included, as the CLI's `generate`
/// for the same settings. In the process-wide collection: `generate` runs in this process (console, thread count).
/// </summary>
[Collection(ProcessWide.Settings)]
public class NodeClientTests(ITestOutputHelper output)
{
    static readonly string ClientDir = Path.Combine(Repo.Root, "tests", "node-client");
    static readonly string InitImage = Golden.Path("img2img", "init_64x64.png");

    const string Prompt = "a red circle, (blue:1.2) square", Negative = "blurry";
    const long Seed = 1234;
    const int Steps = 6;
    const double Cfg = 6.5;

    [Fact]
    public async Task Node_sd_webui_gets_the_png_bytes_generate_writes()
    {
        EnsureInstalled();
        using var dir = new TempDir();
        using var server = await ServerProcess.StartAsync("--model", Repo.ShippedModel);
        string parameters = dir.File("params.json");
        File.WriteAllText(parameters, new JsonObject
        {
            ["prompt"] = Prompt, ["negativePrompt"] = Negative, ["seed"] = Seed, ["steps"] = Steps, ["width"] = 64, ["height"] = 64,
            ["cfgScale"] = Cfg, ["samplingMethod"] = "Euler", ["initImage"] = InitImage,
        }.ToJsonString());
        var (code, log) = Run("node", ClientDir, Path.Combine(ClientDir, "run.mjs"), server.Url, dir.Path, parameters);
        Assert.True(code == 0, $"node exited {code}:\n{log}\nserver:\n{server.Output}");

        string[] common = ["generate", "--model", Repo.ShippedModel, "--prompt", Prompt, "--negative-prompt", Negative, "--prompt-syntax", "a1111",
            "--scheduler", "Euler", "--seed", Seed.ToString(), "--steps", Steps.ToString(), "--guidance", "6.5", "--threads", "1"];
        var txt = GenerateCommandTests.Run([.. common, "--output", dir.File("cli-txt2img.png")]);
        Assert.True(txt.Code == 0, txt.Err);
        var img = GenerateCommandTests.Run([.. common, "--image", InitImage, "--strength", "0.75", "--output", dir.File("cli-img2img.png")]);
        Assert.True(img.Code == 0, img.Err);

        foreach (var task in new[] { "txt2img", "img2img" })
        {
            byte[] cli = File.ReadAllBytes(dir.File($"cli-{task}.png")), served = File.ReadAllBytes(dir.File($"{task}.png"));
            string infotext = Api.Parameters(cli);
            output.WriteLine($"{task}: {served.Length} bytes; {infotext.ReplaceLineEndings(" | ")}");
            Assert.Equal(infotext, Api.Parameters(served));
            Assert.Equal(cli, served);
            var response = JsonNode.Parse(File.ReadAllText(dir.File($"{task}.json")))!;
            Assert.Equal(1, (int)response["image_count"]!);
            var info = JsonNode.Parse((string)response["info"]!)!;
            Assert.Equal(infotext, (string?)info["infotexts"]![0]);
        }

        // what the client's pngInfo() makes of the server's answer for the txt2img image
        var expected = InfoText.Parse(Api.Parameters(File.ReadAllBytes(dir.File("cli-txt2img.png"))));
        var read = JsonNode.Parse(File.ReadAllText(dir.File("pnginfo.json")))!;
        Assert.Equal(expected["Prompt"], (string?)read["prompt"]);
        Assert.Equal(expected["Negative prompt"], (string?)read["negativePrompt"]);
        Assert.Equal(expected["Steps"], ((int)read["steps"]!).ToString());
        Assert.Equal(expected["Seed"], ((long)read["seed"]!).ToString());
        Assert.Equal(expected["Sampler"], (string?)read["samplingMethod"]);
        Assert.Equal(expected["Size-1"], ((int)read["width"]!).ToString());
        Assert.Equal(expected["Size-2"], ((int)read["height"]!).ToString());
    }

    static readonly object InstallGate = new();

    /// <summary>node_modules as `.ci/run` makes it (npm ci from the lock file), when it is missing: `dotnet test` alone works too.</summary>
    static void EnsureInstalled()
    {
        lock (InstallGate)
        {
            if (Directory.Exists(Path.Combine(ClientDir, "node_modules", "node-sd-webui"))) return;
            if (!File.Exists("/usr/bin/npm") && !File.Exists("/usr/local/bin/npm"))
                DebianPackages.EnsureInstalled("/usr/bin/npm", "nodejs npm", "The npm client test runs the package node-sd-webui with npm");
            var (code, log) = Run("npm", ClientDir, "ci", "--no-audit", "--no-fund", "--loglevel=error");
            Assert.True(code == 0, $"npm ci in {ClientDir} exited {code}:\n{log}");
        }
    }

    static (int Code, string Log) Run(string program, string workingDirectory, params string[] args)
    {
        var info = new ProcessStartInfo(program) { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            return (-1, $"{program} timed out\n{stdout.Result}{stderr.Result}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
