using System.Runtime.InteropServices;

namespace SharpDiffusion.Diagnostics;

/// <summary>
/// glibc keeps freed native memory in its heaps for reuse; between phases with different allocation patterns
/// (the UNet loop, then the VAE decode) that memory still counts as resident. Trimming returns it to the OS.
/// </summary>
public static class NativeHeap
{
    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

    /// <summary>Returns free heap memory to the OS (Linux/glibc; a no-op elsewhere).</summary>
    public static void Trim()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { } // musl and others
    }
}
