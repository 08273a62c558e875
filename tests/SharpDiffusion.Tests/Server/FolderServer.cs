using SharpDiffusion.Server;

namespace SharpDiffusion.Tests.Server;

/// <summary>
/// A class fixture: a <see cref="TestServer"/> started once over a folder of its own (a models folder, ControlNets,
/// upscalers) that the fixture fills first; the server and the folder go together at the end.
/// </summary>
public abstract class FolderServer : IAsyncLifetime
{
    /// <summary>The folder the server is given.</summary>
    public TempDir Folder { get; } = new();
    public TestServer Server { get; private set; } = null!;
    public HttpClient Client => Server.Client;

    /// <summary>Puts the files in <see cref="Folder"/>, before the server starts.</summary>
    protected abstract void Fill();

    /// <summary>The server's options with <see cref="Folder"/> in its place (e.g. <c>o with { ModelsDir = Folder.Path }</c>).</summary>
    protected abstract ServerOptions Configure(ServerOptions options);

    public async Task InitializeAsync()
    {
        Fill();
        Server = await TestServer.StartAsync(Configure);
    }

    public virtual async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Folder.Dispose();
    }
}
