using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>One trained low-rank branch beside a frozen Linear: y = W·x + b + (alpha / rank) · up(down(x)),
/// with down [r, in] and up [out, r]. <see cref="KohyaName"/> is kohya's key stem (<c>lora_unet_down_blocks_0_…_to_q</c>),
/// <see cref="ModulePath"/> the module's dotted path in its model (<c>down_blocks.0.….to_q</c>).</summary>
public sealed record LoraLinear(LoraTarget Target, string ModulePath, string KohyaName, Parameter Down, Parameter Up, double Scale);

/// <summary>
/// The LoRA being trained (kohya's <c>networks.lora</c>): a low-rank branch on every attention projection of the UNet
/// (to_q, to_k, to_v, to_out.0) and optionally of the CLIP text encoder (q_proj, k_proj, v_proj, out_proj), added to
/// each Linear's output by a forward hook so the base weights stay untouched and frozen. Initialised as kohya does:
/// down ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5), up = 0, so training starts from the base model exactly.
/// </summary>
public sealed class LoraNetwork : IDisposable
{
    public static readonly string[] UNetProjections = ["to_q", "to_k", "to_v", "to_out.0"];
    public static readonly string[] TextEncoderProjections = ["q_proj", "k_proj", "v_proj", "out_proj"];

    readonly List<Action> _unhook = [];

    public int Rank { get; }
    public double Alpha { get; }
    public IReadOnlyList<LoraLinear> Layers { get; }

    LoraNetwork(int rank, double alpha, IReadOnlyList<LoraLinear> layers) => (Rank, Alpha, Layers) = (rank, alpha, layers);

    /// <summary>The parameters the optimizer trains, in a fixed order (down, up per layer).</summary>
    public IReadOnlyList<Parameter> Parameters => Layers.SelectMany(l => new[] { l.Down, l.Up }).ToList();

    /// <summary>Every key of the trained tensors (kohya spelling), in the order of <see cref="Parameters"/>.</summary>
    public IReadOnlyList<string> ParameterKeys => Layers.SelectMany(l => new[] { l.KohyaName + ".lora_down.weight", l.KohyaName + ".lora_up.weight" }).ToList();

    /// <summary>Builds the branches and hooks them into <paramref name="unet"/> (and <paramref name="textEncoder"/> if given);
    /// a rank larger than a layer's smaller side is refused, naming the layer.</summary>
    public static LoraNetwork Attach(nn.Module unet, nn.Module? textEncoder, int rank, double alpha, long seed)
    {
        if (rank < 1) throw new ArgumentException($"--rank must be at least 1; got {rank}.");
        if (!(alpha > 0)) throw new ArgumentException($"--alpha must be positive; got {alpha}.");
        var targets = Find(unet, UNetProjections, LoraTarget.Unet, "lora_unet_");
        if (targets.Count == 0)
            throw new NotSupportedException("The UNet has no attention projections (to_q, to_k, to_v, to_out.0) to train a LoRA on.");
        if (textEncoder is not null)
            targets.AddRange(Find(textEncoder, TextEncoderProjections, LoraTarget.TextEncoder, "lora_te_"));
        foreach (var (_, path, _, linear) in targets)
        {
            long inF = linear.weight!.shape[1], outF = linear.weight.shape[0];
            if (rank > Math.Min(inF, outF))
                throw new ArgumentException($"--rank {rank} is larger than the layer {path} [{outF}, {inF}] allows (at most {Math.Min(inF, outF)}); choose a smaller --rank.");
        }

        using var generator = new Generator((ulong)ShapeDataset.Mix(seed, 7_000_000));
        var layers = new List<LoraLinear>();
        foreach (var (target, path, kohya, linear) in targets)
        {
            long inF = linear.weight!.shape[1], outF = linear.weight.shape[0];
            double bound = 1.0 / Math.Sqrt(inF);
            using var u = rand([rank, inF], generator: generator);
            var down = new Parameter((u * (2 * bound) - bound).contiguous());       // [r, in]
            var up = new Parameter(zeros(outF, rank));                                // [out, r]
            layers.Add(new LoraLinear(target, path, kohya, down, up, alpha / rank));
        }
        var network = new LoraNetwork(rank, alpha, layers);
        for (int i = 0; i < layers.Count; i++)
        {
            var layer = layers[i];
            var remover = targets[i].Linear.register_forward_hook((_, input, output) =>
                // The branch computes in float32 (its parameters' dtype) whatever the frozen base's dtype.
                output + (input.to(layer.Down.dtype).matmul(layer.Down.t()).matmul(layer.Up.t()) * layer.Scale).to(output.dtype)); // [.., out]
            network._unhook.Add(remover.remove);
        }
        return network;
    }

    /// <summary>Freezes every base weight: no gradient is computed or kept for them.</summary>
    public static void Freeze(params nn.Module?[] modules)
    {
        foreach (var m in modules)
            if (m is not null)
                foreach (var p in m.parameters()) p.requires_grad = false;
    }

    /// <summary>The linear layers (<see cref="Models.Linear"/>, whichever kernel they compute with) whose path ends in one of
    /// <paramref name="suffixes"/>, named as the model's parameters are (a module can be reachable under more than one path;
    /// its weight's state-dict name is the one every file uses).</summary>
    static List<(LoraTarget Target, string Path, string Kohya, Models.Linear Linear)> Find(nn.Module model, string[] suffixes, LoraTarget target, string prefix)
    {
        var linears = model.modules().OfType<Models.Linear>().GroupBy(l => l.weight!.Handle).ToDictionary(g => g.Key, g => g.First());
        return model.named_parameters()
            .Where(p => p.name.EndsWith(".weight", StringComparison.Ordinal) && linears.ContainsKey(p.parameter.Handle))
            .Select(p => (Path: p.name[..^".weight".Length], Linear: linears[p.parameter.Handle]))
            .Where(m => suffixes.Any(s => m.Path.EndsWith("." + s, StringComparison.Ordinal)))
            .Select(m => (target, m.Path, prefix + m.Path.Replace('.', '_'), m.Linear))
            .OrderBy(m => m.Item2, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The trained tensors in kohya's layout: <c>{stem}.lora_down.weight</c>, <c>{stem}.lora_up.weight</c> and
    /// <c>{stem}.alpha</c> (a float32 scalar), as AUTOMATIC1111, ComfyUI and diffusers' load_lora_weights read them.</summary>
    public Dictionary<string, Tensor> KohyaTensors()
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var l in Layers)
        {
            tensors[l.KohyaName + ".lora_down.weight"] = l.Down.detach();
            tensors[l.KohyaName + ".lora_up.weight"] = l.Up.detach();
            tensors[l.KohyaName + ".alpha"] = tensor((float)Alpha);
        }
        return tensors;
    }

    /// <summary>Writes the LoRA (atomically) with its ss_* metadata.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string> metadata)
    {
        using var scope = NewDisposeScope();
        SafetensorsWriter.Save(path, KohyaTensors(), metadata);
    }

    /// <summary>Copies stored tensors (a checkpoint's) into the branches; every key must be present with the same shape.</summary>
    public void Load(SafetensorsFile file)
    {
        using var _ = no_grad();
        foreach (var (key, p) in ParameterKeys.Zip(Parameters))
        {
            if (!file.Tensors.TryGetValue(key, out var entry))
                throw new InvalidDataException($"{file.Path}: lacks '{key}': the checkpoint is of another LoRA (rank, model or --train-text-encoder differ).");
            if (!entry.Shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{file.Path}: '{key}' is [{string.Join(", ", entry.Shape)}], expected [{string.Join(", ", p.shape)}]: another rank or model.");
            using var stored = file.Load(key);
            p.copy_(stored);
        }
    }

    public void Dispose()
    {
        foreach (var unhook in _unhook) unhook();
        _unhook.Clear();
        foreach (var p in Parameters) p.Dispose();
    }
}
