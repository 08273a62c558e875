using System.Globalization;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// What a single file's key names tell by their numbers: the blocks they hold (input_blocks.N, resblocks.N,
/// joint_blocks.N), from which the checkpoint readers count levels, layers and depths without reading any data.
/// </summary>
static class CheckpointKeys
{
    /// <summary>The distinct integers at <paramref name="pattern"/>'s group 1 (matched from the key's start) among
    /// <paramref name="keys"/>, in ascending order.</summary>
    public static SortedSet<int> Indices(IEnumerable<string> keys, string pattern)
    {
        var regex = new Regex("^" + pattern, RegexOptions.CultureInvariant);
        var found = new SortedSet<int>();
        foreach (string k in keys)
            if (regex.Match(k) is { Success: true } m && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                found.Add(v);
        return found;
    }
}
