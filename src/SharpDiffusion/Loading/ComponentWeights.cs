using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// A component (text encoder, UNet, VAE) and how its weights are read from its files, so that with
/// <see cref="LoadOptions.LowMemory"/> they are in memory only while the component runs: read at the first
/// <see cref="Use"/>, freed when the last use ends, read again at the next. Resident components (the default) are
/// read once, at load, and never leave. Calls may overlap: uses are counted.
/// </summary>
public sealed class ComponentWeights
{
    static readonly Device Meta = new("meta");

    readonly Action<nn.Module> _read;
    readonly object _gate = new();
    int _users;
    bool _pinned;

    ComponentWeights(nn.Module module, Action<nn.Module> read, bool releasedWhenIdle)
    {
        (Module, _read, ReleasedWhenIdle) = (module, read, releasedWhenIdle);
    }

    /// <summary>The component; its parameters live on the meta device (shapes only) while the weights are out.</summary>
    public nn.Module Module { get; }

    /// <summary>Freed when no call uses them (<see cref="LoadOptions.LowMemory"/>) and not <see cref="Pin"/>ned.</summary>
    public bool ReleasedWhenIdle { get; }

    /// <summary>Whether the weights are in memory now.</summary>
    public bool Resident { get; private set; }

    /// <summary>The weights' size in memory: while resident, what they hold (compact weights at their stored size,
    /// <see cref="Models.Linear.ResidentBytesOf"/>); while out, what they held when last read, or before the first
    /// read the placeholders' size in their dtype.</summary>
    public long Bytes => Resident ? Models.Linear.ResidentBytesOf(Module) : _bytesWhenRead ?? Module.parameters().Sum(p => p.numel() * p.ElementSize);

    long? _bytesWhenRead;

    /// <summary>A component whose weights are already in memory and stay there.</summary>
    public static ComponentWeights Loaded(nn.Module module) =>
        new(module, _ => throw new InvalidOperationException("A loaded component's weights never leave memory."), releasedWhenIdle: false) { Resident = true };

    /// <summary>A component built on the meta device and <paramref name="read"/>, which fills its parameters from the files:
    /// run now, unless <paramref name="lowMemory"/> defers it to the first use (the shapes-only parameters meanwhile
    /// carry <paramref name="dtype"/>, the one the weights will have).</summary>
    public static ComponentWeights Create(nn.Module module, Action<nn.Module> read, bool lowMemory, ScalarType dtype)
    {
        var weights = new ComponentWeights(module, read, lowMemory);
        try
        {
            if (!lowMemory) weights.Read();
            else weights.Placeholders(dtype);
        }
        catch
        {
            module.Dispose(); // what was read so far
            throw;
        }
        return weights;
    }

    /// <summary>The weights in memory until the returned use is disposed.</summary>
    public IDisposable Use()
    {
        lock (_gate)
        {
            if (!Resident) Read();
            _users++;
        }
        return new Lease(this);
    }

    /// <summary>Kept in memory from now on: the component was changed there (e.g. textual-inversion rows added to the
    /// token embedding), and its files no longer describe it.</summary>
    public void Pin()
    {
        lock (_gate)
        {
            if (!Resident) Read();
            _pinned = true;
        }
    }

    /// <summary>Whether the weights leave memory when the current uses end (what a change made for one call may skip restoring).</summary>
    public bool LeavesAfterUse
    {
        get { lock (_gate) return ReleasedWhenIdle && !_pinned; }
    }

    void Read()
    {
        _read(Module);
        Resident = true;
        _bytesWhenRead = Models.Linear.ResidentBytesOf(Module);
    }

    void Return()
    {
        lock (_gate)
        {
            if (--_users > 0 || !ReleasedWhenIdle || _pinned) return;
            Release();
        }
    }

    /// <summary>Every parameter becomes a meta tensor of its shape and dtype (no memory); the freed pages go back to the system.</summary>
    void Release()
    {
        Placeholders(null);
        Resident = false;
        Diagnostics.NativeHeap.Trim();
    }

    /// <summary>Each parameter replaced by a meta tensor of its shape, in <paramref name="dtype"/> or its own.</summary>
    void Placeholders(ScalarType? dtype)
    {
        var parameters = Module.named_parameters().ToList();
        StateDictLoader.Assign(Module, parameters.Select(p =>
            (p.name, new Parameter(empty(p.parameter.shape, dtype ?? p.parameter.dtype, device: Meta), requires_grad: false))));
        foreach (var (_, parameter) in parameters) parameter.Dispose();
    }

    sealed class Lease(ComponentWeights weights) : IDisposable
    {
        int _returned;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _returned, 1) == 0) weights.Return();
        }
    }
}
