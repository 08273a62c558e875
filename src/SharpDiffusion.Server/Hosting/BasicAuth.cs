using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace SharpDiffusion.Server.Hosting;

/// <summary>HTTP Basic authentication on every route (A1111's --api-auth): 401 with WWW-Authenticate when the
/// credentials are missing or wrong. Credentials are compared in constant time.</summary>
public sealed class BasicAuth(IReadOnlyList<(string User, string Password)> users)
{
    public bool Enabled => users.Count > 0;

    public bool Allows(HttpRequest request)
    {
        string? header = request.Headers.Authorization;
        if (header is null || !header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return false;
        string decoded;
        try { decoded = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..].Trim())); }
        catch (FormatException) { return false; }
        int colon = decoded.IndexOf(':');
        if (colon < 0) return false;
        byte[] user = Encoding.UTF8.GetBytes(decoded[..colon]), password = Encoding.UTF8.GetBytes(decoded[(colon + 1)..]);
        bool ok = false;
        foreach (var (u, p) in users) // every entry is checked: the time does not tell which one matched
            ok |= CryptographicOperations.FixedTimeEquals(user, Encoding.UTF8.GetBytes(u))
                  & CryptographicOperations.FixedTimeEquals(password, Encoding.UTF8.GetBytes(p));
        return ok;
    }

    /// <summary>"user:pass[,user2:pass2]" → credentials; a malformed entry is an error naming it.</summary>
    public static IReadOnlyList<(string User, string Password)> Parse(string spec) =>
        spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(entry =>
        {
            int colon = entry.IndexOf(':');
            if (colon <= 0 || colon == entry.Length - 1)
                throw new ArgumentException($"--api-auth: '{entry}' is not user:password.");
            return (entry[..colon], entry[(colon + 1)..]);
        }).ToList();
}
