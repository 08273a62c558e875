using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace SharpDiffusion.Server.Hosting;

/// <summary>The web page (wwwroot/, embedded in the assembly): plain HTML, CSS and JS, nothing fetched from elsewhere.</summary>
public static class PageEndpoints
{
    static readonly Dictionary<string, string> Types = new()
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".png"] = "image/png",
    };

    public static void Map(WebApplication app)
    {
        var assembly = typeof(PageEndpoints).Assembly;
        var files = assembly.GetManifestResourceNames().Where(n => n.StartsWith("page/", StringComparison.Ordinal))
            .ToDictionary(n => n["page/".Length..], n =>
            {
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var memory = new MemoryStream();
                stream.CopyTo(memory);
                return memory.ToArray();
            });
        foreach (var (name, bytes) in files)
        {
            string type = Types.GetValueOrDefault(Path.GetExtension(name), "application/octet-stream");
            app.MapGet("/" + name, (HttpContext c) => Serve(c, bytes, type));
            if (name == "index.html")
                app.MapGet("/", (HttpContext c) => Serve(c, bytes, type));
        }
    }

    static IResult Serve(HttpContext context, byte[] bytes, string type)
    {
        // Only this server's own files and API: no CDN, no inline script from elsewhere.
        context.Response.Headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'";
        context.Response.Headers.CacheControl = "no-cache";
        return Results.Bytes(bytes, type);
    }
}
