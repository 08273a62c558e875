using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Models;

/// <summary>
/// One flat float buffer that the compact <see cref="Linear"/> layers of one model dequantize into in turn, instead of a
/// fresh tensor per call: a dequantized Flux weight is 38–189 MB, above glibc's 32 MB mmap threshold, so every fresh one
/// came from the kernel as zeroed pages (82 M page faults, ~15 % of a full-size 1024² step). The buffer grows to the
/// largest weight and is freed when the last layer sharing it is disposed. Used only where reuse is safe: the weight
/// decodes straight into float32 memory (<see cref="CompactWeight.DecodesInPlace"/>), no autograd graph will keep it
/// (see <see cref="Linear"/>), and no other thread holds it (then the caller allocates as before).
/// </summary>
public sealed class DequantizeScratch
{
    Tensor? _buffer;  // [capacity] float32
    int _busy, _users;

    /// <summary>A layer starts sharing this buffer.</summary>
    public void Join() => Interlocked.Increment(ref _users);

    /// <summary>A layer stops sharing it; the last one frees it.</summary>
    public void Leave()
    {
        if (Interlocked.Decrement(ref _users) > 0) return;
        _buffer?.Dispose();
        _buffer = null;
    }

    /// <summary><paramref name="weight"/> in <paramref name="dtype"/> as a view of the buffer, which stays taken until
    /// <see cref="Release"/>; null when it cannot be used (another call holds it, or the weight does not decode in place).</summary>
    public Tensor? TryDequantize(CompactWeight weight, ScalarType dtype)
    {
        if (!weight.DecodesInPlace(dtype) || Interlocked.Exchange(ref _busy, 1) == 1) return null;
        try
        {
            long n = weight.ElementCount;
            if (_buffer is null || _buffer.numel() < n)
            {
                _buffer?.Dispose();
                _buffer = empty(n, ScalarType.Float32).DetachFromDisposeScope();
            }
            using var flat = _buffer.narrow(0, 0, n);
            return weight.Dequantize(dtype, flat.view(weight.Shape)); // [out, in], the buffer's own memory
        }
        catch
        {
            Release();
            throw;
        }
    }

    /// <summary>The view <see cref="TryDequantize"/> gave is no longer used.</summary>
    public void Release() => Volatile.Write(ref _busy, 0);
}
