using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>A contiguous CPU tensor's memory as spans, so decoders (float8, GGUF blocks) write their values in place.</summary>
internal static class TensorMemory
{
    /// <summary>Elements [start, start + length) of <paramref name="tensor"/>, which must be a contiguous CPU tensor whose
    /// element type is <typeparamref name="T"/> (checked by size).</summary>
    public static unsafe Span<T> Span<T>(Tensor tensor, long start, int length) where T : unmanaged
    {
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous() || tensor.ElementSize != sizeof(T))
            throw new ArgumentException($"TensorMemory.Span needs a contiguous CPU tensor of {sizeof(T)}-byte elements; this one is {tensor.dtype} on {tensor.device}.");
        if (start < 0 || length < 0 || start + length > tensor.numel())
            throw new ArgumentOutOfRangeException(nameof(start), $"Elements [{start}, {start + length}) are outside a tensor of {tensor.numel()}.");
        return new Span<T>((T*)Data(tensor.Handle) + start, length);
    }

    /// <summary>Bytes [start, start + length) of a contiguous CPU tensor's memory, whatever its element type.</summary>
    public static unsafe Span<byte> Bytes(Tensor tensor, long start, int length)
    {
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous())
            throw new ArgumentException($"TensorMemory.Bytes needs a contiguous CPU tensor; this one is on {tensor.device}.");
        if (start < 0 || length < 0 || start + length > tensor.numel() * tensor.ElementSize)
            throw new ArgumentOutOfRangeException(nameof(start), $"Bytes [{start}, {start + length}) are outside a tensor of {tensor.numel() * tensor.ElementSize}.");
        return new Span<byte>((byte*)Data(tensor.Handle) + start, length);
    }

    /// <summary>The first element of a tensor's storage (libtorch's data_ptr, offset included).</summary>
    [DllImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    static extern IntPtr Data(IntPtr tensor);
}
