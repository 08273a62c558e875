using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace SharpDiffusion;

/// <summary>Process-wide libtorch settings.</summary>
public static class TorchRuntime
{
    /// <summary>Uses <paramref name="threads"/> intra-op threads (default: every core); NNPACK off (<see cref="TurnOffNnpack"/>).</summary>
    public static void Initialize(int? threads = null)
    {
        set_num_threads(threads ?? Environment.ProcessorCount);
        TurnOffNnpack();
    }

    /// <summary>
    /// libtorch asks whether NNPACK runs before it looks at a convolution's batch size (NNPACK is used only from 16
    /// images, and only where oneDNN is not, so never in our pipelines); on a CPU NNPACK does not support, that question
    /// prints "Could not initialize NNPACK! Reason: Unsupported hardware." to the user's terminal, twice. Turned off,
    /// the question is never asked, and the convolutions run as before. TorchSharp does not wrap the switch: it is
    /// <c>at::globalContext().setUserEnabledNNPACK(false)</c>, called by its exported (Itanium-mangled) name; where
    /// those names are not found (another platform's libtorch) nothing changes. Returns whether NNPACK is off.
    /// </summary>
    public static bool TurnOffNnpack()
    {
        // Already loaded by TorchSharp: found beside it, or by name among the loaded libraries.
        if (!(NativeLibrary.TryLoad(LibTorchCpu, typeof(TorchSharp.torch).Assembly, null, out var library) || NativeLibrary.TryLoad(LibTorchCpu, out library))
            || !NativeLibrary.TryGetExport(library, "_ZN2at13globalContextEv", out var globalContext)
            || !NativeLibrary.TryGetExport(library, "_ZN2at7Context20setUserEnabledNNPACKEb", out var setEnabled)
            || !NativeLibrary.TryGetExport(library, "_ZNK2at7Context17userEnabledNNPACKEv", out var isEnabled))
            return false;
        var context = Marshal.GetDelegateForFunctionPointer<GlobalContext>(globalContext)();
        Marshal.GetDelegateForFunctionPointer<SetUserEnabled>(setEnabled)(context, false);
        return !Marshal.GetDelegateForFunctionPointer<UserEnabled>(isEnabled)(context);
    }

    const string LibTorchCpu = "libtorch_cpu.so";

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate IntPtr GlobalContext();

    // A C++ member function: `this` is the first argument (x86-64 and AArch64 ABIs).
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    delegate void SetUserEnabled(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    [return: MarshalAs(UnmanagedType.U1)]
    delegate bool UserEnabled(IntPtr context);
}
