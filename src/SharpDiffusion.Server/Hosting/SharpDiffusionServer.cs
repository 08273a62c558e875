using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Jobs;
using SharpDiffusion.Server.OpenAI;

namespace SharpDiffusion.Server.Hosting;

/// <summary>
/// The server: Kestrel on <see cref="ServerOptions.Host"/>:<see cref="ServerOptions.Port"/> with AUTOMATIC1111's API,
/// OpenAI's images API, the job routes and the page. Start with <see cref="StartAsync"/>; several can run in one
/// process (tests do), each with its own model, queue and settings.
/// </summary>
public sealed class SharpDiffusionServer : IAsyncDisposable
{
    readonly WebApplication _app;
    readonly ServerContext _context;

    SharpDiffusionServer(WebApplication app, ServerContext context) => (_app, _context) = (app, context);

    /// <summary>The address it listens on (with the actual port when 0 was asked).</summary>
    public string Url { get; private set; } = "";

    public ServerContext Context => _context;

    /// <summary>Loads the model (so the first request does not wait for it and a bad model fails here), then listens.</summary>
    public static async Task<SharpDiffusionServer> StartAsync(ServerOptions options, bool loadModel = true)
    {
        if (options.Threads is int threads) TorchRuntime.Initialize(threads);
        else TorchRuntime.TurnOffNnpack();
        var context = new ServerContext(options);
        try
        {
            if (loadModel && context.Host is { } host) _ = host.Pipeline; // fails with the library's one-line message
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "SharpDiffusion.Server" });
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
                k.AddServerHeader = false;
            });
            builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
            if (options.CorsOrigins.Count > 0)
                builder.Services.AddCors(c => c.AddDefaultPolicy(p => p.WithOrigins(options.CorsOrigins.ToArray()).AllowAnyHeader().AllowAnyMethod()));
            var app = builder.Build();
            Configure(app, context);
            await app.StartAsync();
            var server = new SharpDiffusionServer(app, context) { Url = app.Urls.First() };
            return server;
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    static void Configure(WebApplication app, ServerContext context)
    {
        var auth = new BasicAuth(context.Options.ApiAuth);
        if (context.Options.CorsOrigins.Count > 0)
            app.UseCors();
        app.Use(async (http, next) =>
        {
            if (auth.Enabled && !auth.Allows(http.Request) && !HttpMethods.IsOptions(http.Request.Method))
            {
                http.Response.Headers.WWWAuthenticate = "Basic";
                await ApiErrors.A1111(401, "Unauthorized", "Incorrect username or password").ExecuteAsync(http);
                return;
            }
            await next(http);
        });
        A1111Endpoints.Map(app, context);
        ControlNetEndpoints.Map(app, context);
        ExtrasEndpoints.Map(app, context);
        new OpenAIEndpoints(context).Map(app);
        JobEndpoints.Map(app, context);
        LoraTrainingEndpoints.Map(app, context);
        PageEndpoints.Map(app);
        // "{*path}", not MapFallback's default "{*path:nonfile}": a path that looks like a file (/x.png) must get the JSON 404 too.
        app.MapFallback("{*path}", (HttpContext c) => ApiErrors.A1111(404, "Not Found", $"No route {c.Request.Method} {c.Request.Path}."));
    }

    /// <summary>Waits until <paramref name="stop"/> (e.g. Ctrl-C) or the host stops.</summary>
    public Task WaitAsync(CancellationToken stop) => _app.WaitForShutdownAsync(stop);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _context.Dispose();
    }
}
