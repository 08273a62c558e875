namespace SharpDiffusion.Tests.Server;

/// <summary>Debian packages the tests drive (chromium, redis-server), installed as `.ci/run` installs them when they are
/// missing, so the README's `dotnet test` alone works on a fresh machine (as root; otherwise the failure says what to
/// install). Nothing is downloaded but the distribution's packages.</summary>
public static class DebianPackages
{
    static readonly object Gate = new();

    /// <param name="program">the file the package provides, e.g. /usr/bin/chromium.</param>
    /// <param name="packages">what to install, e.g. "chromium fonts-dejavu-core".</param>
    /// <param name="what">which tests need it, for the failure message.</param>
    public static void EnsureInstalled(string program, string packages, string what)
    {
        lock (Gate)
        {
            if (File.Exists(program)) return;
            bool root = Environment.UserName == "root";
            Assert.True(root && File.Exists("/usr/bin/apt-get"),
                $"{what} at {program}; install it: sudo apt-get install --no-install-recommends {packages}");
            foreach (var args in new[] { "update -qq", $"install -y -qq --no-install-recommends {packages}" })
            {
                var info = new System.Diagnostics.ProcessStartInfo("apt-get", args) { RedirectStandardOutput = true, RedirectStandardError = true };
                info.Environment["DEBIAN_FRONTEND"] = "noninteractive";
                using var apt = System.Diagnostics.Process.Start(info)!;
                string log = apt.StandardOutput.ReadToEnd() + apt.StandardError.ReadToEnd();
                apt.WaitForExit();
                Assert.True(apt.ExitCode == 0, $"apt-get {args} exited {apt.ExitCode}: {log}");
            }
        }
    }
}
