using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Models;

/// <summary>
/// torch.nn.Linear (y = x Wᵀ + b, parameters <c>weight</c> [out, in] and <c>bias</c> [out]): the one linear layer of every
/// model (the UNet's, CLIP's and the VAE's, ControlNet's, the SD3 and Flux transformers', T5's), ours rather than
/// TorchSharp's sealed nn.Linear so that each takes the product's kernel (<see cref="Kernel"/>: F.linear or oneDNN, the
/// load options' choice, <see cref="LinearKernels"/>). With the default kernel and a float weight the forward is
/// F.linear(x, W, b), exactly what nn.Linear computes.
/// A layer built as compact-capable (<see cref="Layers.CompactLinear"/>: the Flux and SD3 transformers and T5, whose large
/// 2-D weights come in float8/GGUF/half-precision files) may hold its weight compact in memory (<see cref="CompactWeight"/>:
/// float8 codes, scaled too, GGUF blocks; float16/bfloat16 values under a float32 compute dtype) and turn it into the compute
/// dtype only for the matmul: each call dequantizes W, multiplies, and frees it, so one layer's float weight is in memory at
/// a time (ComfyUI-GGUF's and stable-diffusion.cpp's way). While compact, <c>weight</c> is a shape-only meta placeholder
/// whose dtype is the compute dtype (so <c>.to(dtype)</c> still chooses it). LoRAs on a compact layer are side branches,
/// not merges (a merge would need the float weight): y = W x + b + Σ sᵢ · upᵢ(downᵢ x).
/// </summary>
public sealed class Linear : nn.Module<Tensor, Tensor>, IParameterOwner
{
    static readonly Device Meta = new("meta");

    readonly bool _hasBias;
    CompactWeight? _compact;
    DequantizeScratch? _scratch;  // shared by the model's compact layers (<see cref="ShareScratch"/>)
    readonly List<SideBranch> _branches = [];

    /// <summary>A LoRA's low-rank pair at its scale (alpha/rank included): adds scale · up(down(x)).</summary>
    sealed record SideBranch(Tensor Down, Tensor Up, double Scale);

    /// <param name="compactCapable">whether loading may keep the weight compact (<see cref="CompactCapable"/>).</param>
    public Linear(long inFeatures, long outFeatures, bool hasBias, bool compactCapable, Device? device, ScalarType? dtype) : base(nameof(Linear))
    {
        (InFeatures, OutFeatures, CompactCapable) = (inFeatures, outFeatures, compactCapable);
        // torch.nn.Linear's initialisation (kaiming uniform, a = √5; bias U(±1/√in)); on meta it costs nothing.
        _hasBias = hasBias;
        var w = new Parameter(empty([outFeatures, inFeatures], dtype: dtype, device: device));
        var b = hasBias ? new Parameter(empty(outFeatures, dtype: dtype, device: device)) : null;
        if (w.device_type != DeviceType.META)
        {
            using var noGrad = no_grad();
            nn.init.kaiming_uniform_(w, Math.Sqrt(5));
            double bound = inFeatures > 0 ? 1 / Math.Sqrt(inFeatures) : 0;
            if (b is not null) nn.init.uniform_(b, -bound, bound);
        }
        register_parameter("weight", w);
        if (b is not null) register_parameter("bias", b);
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }

    /// <summary>Whether loading may keep this layer's weight compact (the layers of <see cref="Layers.CompactLinear"/>);
    /// the others (the UNet's, CLIP's, the VAE's) always hold a float weight in the compute dtype.</summary>
    public bool CompactCapable { get; }

    /// <summary>The kernel of the product (the load options' choice, <see cref="LinearKernels"/>); the weight is the same.</summary>
    public LinearKernel Kernel { get; set; }

    /// <summary>The weight ([out, in]); a meta placeholder while <see cref="IsCompact"/>.</summary>
    // Looked up by name, not kept in fields: Module.to(dtype) replaces the registered parameters and then sets these
    // properties (by reflection) to the new ones, which are already registered then.
    public Parameter weight
    {
        get => get_parameter("weight")!;
        set => Register("weight", value);
    }

    public Parameter? bias
    {
        get => _hasBias ? get_parameter("bias") : null;
        set { if (_hasBias && value is not null) Register("bias", value); }
    }

    // As nn.Linear's setters: the replaced parameter is disposed (Module.to's old copy, not the caller's new one).
    void Register(string name, Parameter value)
    {
        if (!ReferenceEquals(get_parameter(name), value)) Replace(name, value);
    }

    /// <summary>Whether the weight is held compact and dequantized per call.</summary>
    public bool IsCompact => _compact is not null;

    /// <summary>The compact weight, while there is one.</summary>
    public CompactWeight? Compact => _compact;

    /// <summary>Bytes this layer holds: the compact weight's (or the float weight's) plus the bias.</summary>
    public long ResidentBytes =>
        (_compact?.ByteCount ?? Placed(weight)) + (bias is { } b ? Placed(b) : 0);

    static long Placed(Tensor t) => t.device_type == DeviceType.META ? 0 : t.numel() * t.ElementSize;

    /// <summary>Holds <paramref name="compact"/> (taking it) in place of the weight; the placeholder carries
    /// <paramref name="dtype"/>, the dtype the weight becomes per call.</summary>
    public void UseCompact(CompactWeight compact, ScalarType dtype)
    {
        if (!CompactCapable)
            throw new InvalidOperationException($"Linear [{OutFeatures}, {InFeatures}]: this layer keeps a float weight; only layers built with Layers.CompactLinear hold compact ones.");
        if (!compact.Shape.SequenceEqual([OutFeatures, InFeatures]))
            throw new ArgumentException($"Linear: a compact weight of [{string.Join(", ", compact.Shape)}] for a [{OutFeatures}, {InFeatures}] layer.");
        ReplaceWeight(new Parameter(empty([OutFeatures, InFeatures], dtype, device: Meta), requires_grad: false));
        _compact = compact;
    }

    /// <summary>Dequantizes into <paramref name="scratch"/>, shared with the model's other compact layers (loading gives one
    /// per model).</summary>
    public void ShareScratch(DequantizeScratch scratch)
    {
        if (ReferenceEquals(_scratch, scratch)) return;
        _scratch?.Leave();
        scratch.Join();
        _scratch = scratch;
    }

    /// <summary>The float weight this layer computes with, new (dequantized when compact: dispose it).</summary>
    public Tensor DequantizedWeight() => _compact?.Dequantize(weight.dtype) ?? weight.detach().clone();

    /// <summary>Adds scale · up(down(x)) to every call until the result is disposed (a LoRA on a compact layer).
    /// <paramref name="down"/> is [r, in], <paramref name="up"/> [out, r]; both are copied in the compute dtype.</summary>
    public IDisposable AddSideBranch(Tensor down, Tensor up, double scale)
    {
        if (down.dim() != 2 || up.dim() != 2 || down.shape[1] != InFeatures || up.shape[0] != OutFeatures || up.shape[1] != down.shape[0])
            throw new ArgumentException($"Linear: a LoRA of down [{string.Join(", ", down.shape)}], up [{string.Join(", ", up.shape)}] does not fit a [{OutFeatures}, {InFeatures}] layer.");
        var branch = new SideBranch(down.to(weight.dtype, copy: true).DetachFromDisposeScope(), up.to(weight.dtype, copy: true).DetachFromDisposeScope(), scale);
        _branches.Add(branch);
        return new Removal(() =>
        {
            if (_branches.Remove(branch)) { branch.Down.Dispose(); branch.Up.Dispose(); }
        });
    }

    public override Tensor forward(Tensor x)
    {
        var (weight, bias) = (this.weight, this.bias);
        if (_compact is null && _branches.Count == 0)
            return LinearKernels.Linear(Kernel, x, weight, bias);
        using var scope = NewDisposeScope();
        Tensor y;
        if (_compact is null) y = LinearKernels.Linear(Kernel, x, weight, bias);
        else
        {
            // [out, in]: in the model's shared buffer unless autograd would keep it for the backward pass
            var shared = is_grad_enabled() && x.requires_grad ? null : _scratch?.TryDequantize(_compact, weight.dtype);
            try
            {
                using var w = shared ?? _compact.Dequantize(weight.dtype); // freed (or given back) after the matmul
                y = LinearKernels.Linear(Kernel, x, w, bias);
            }
            finally
            {
                if (shared is not null) _scratch!.Release();
            }
        }
        foreach (var b in _branches)
            y = y.add_(nn.functional.linear(nn.functional.linear(x, b.Down), b.Up), alpha: b.Scale); // s · up(down(x))
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Loading assigns a stored float weight or bias here; a float weight replaces a compact one.</summary>
    public void SetParameter(string name, Parameter value)
    {
        switch (name)
        {
            case "weight":
                ReplaceWeight(value);
                break;
            case "bias" when _hasBias:
                Replace("bias", value);
                break;
            default:
                throw new NotSupportedException($"Linear has no parameter '{name}'.");
        }
    }

    void ReplaceWeight(Parameter value)
    {
        Replace("weight", value);
        _compact?.Dispose();
        _compact = null;
    }

    void Replace(string name, Parameter value)
    {
        var old = get_parameter(name);
        ConditionallyRegisterParameter(name, (Parameter)value.DetachFromDisposeScope());
        if (old is not null && !ReferenceEquals(old, value)) old.Dispose();
    }

    /// <summary>The bytes a module's weights hold now: parameters in memory (not meta placeholders) plus compact weights.</summary>
    public static long ResidentBytesOf(nn.Module module)
    {
        // TorchSharp's named_modules lists a submodule under its registered name and again under its field name, and
        // leaves out the root: each layer and each parameter counts once, by reference.
        long bytes = 0;
        var layers = new HashSet<Linear>(ReferenceEqualityComparer.Instance);
        var owned = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var m in module.named_modules().Select(m => m.module).Prepend(module))
            if (m is Linear linear && layers.Add(linear))
            {
                bytes += linear.ResidentBytes;
                owned.Add(linear.weight);
                if (linear.bias is { } b) owned.Add(b);
            }
        foreach (var p in module.parameters())
            if (owned.Add(p)) bytes += Placed(p);
        return bytes;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _compact?.Dispose();
            _compact = null;
            _scratch?.Leave();
            _scratch = null;
            foreach (var b in _branches) { b.Down.Dispose(); b.Up.Dispose(); }
            _branches.Clear();
        }
        base.Dispose(disposing);
    }

    sealed class Removal(Action remove) : IDisposable
    {
        int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) remove();
        }
    }
}
