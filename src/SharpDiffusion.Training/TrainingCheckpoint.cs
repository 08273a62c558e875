using System.Text.Json;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>Where a run stands, saved beside its checkpoints as state.json (written last, atomically).</summary>
public sealed record TrainingState
{
    public int VaeStep { get; set; }
    public bool LatentsDone { get; set; }
    public double ScalingFactor { get; set; } = 1.0;
    public int DenoiserStep { get; set; }
    /// <summary>Wall time spent so far across all sessions of the run.</summary>
    public double ElapsedSeconds { get; set; }
    public string? Spec { get; set; }

    public static TrainingState? Load(string workDir)
    {
        string path = Path.Combine(workDir, "state.json");
        return File.Exists(path) ? JsonSerializer.Deserialize<TrainingState>(File.ReadAllText(path)) : null;
    }

    public void Save(string workDir) => TrainingCheckpoint.WriteAtomically(Path.Combine(workDir, "state.json"),
        JsonSerializer.Serialize(this, new JsonSerializerOptions { WriteIndented = true }));
}

/// <summary>Saves and restores parameters, EMA shadows and optimizer moments as safetensors files.</summary>
public static class TrainingCheckpoint
{
    public static void WriteAtomically(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>Named tensors under a prefix: "prefix.name".</summary>
    public static Dictionary<string, Tensor> Prefixed(string prefix, IEnumerable<(string Name, Tensor Value)> tensors) =>
        tensors.ToDictionary(t => $"{prefix}.{t.Name}", t => t.Value);

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors) => SafetensorsWriter.Save(path, tensors);

    /// <summary>Copies every "prefix.name" tensor of the file into the matching target; all must be present.</summary>
    public static void Restore(SafetensorsFile file, string prefix, IEnumerable<(string Name, Tensor Target)> targets)
    {
        using var _ = no_grad();
        foreach (var (name, target) in targets)
        {
            string key = $"{prefix}.{name}";
            if (!file.Tensors.ContainsKey(key))
                throw new InvalidDataException($"Checkpoint {file.Path} lacks '{key}'");
            using var stored = file.Load(key);
            target.copy_(stored);
        }
    }
}
