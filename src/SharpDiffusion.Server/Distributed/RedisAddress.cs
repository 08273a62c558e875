using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// <c>redis://[:PASSWORD@]HOST:PORT[/DB]</c> → StackExchange.Redis options for a queue client: it starts without
/// Redis and reconnects by itself, and a command while Redis is away fails at once (the API answers 503) instead of
/// waiting in a backlog.
/// </summary>
public sealed record RedisAddress(string Host, int Port, int Database, string? Password)
{
    public const string Form = "redis://HOST:PORT[/DB]";

    public static RedisAddress Parse(string url)
    {
        string Bad(string why) => throw new ArgumentException($"--queue {url}: {why}; expected {Form}, e.g. redis://127.0.0.1:6379/0.");
        if (!url.StartsWith("redis://", StringComparison.OrdinalIgnoreCase)) Bad("not a redis:// URL");
        string rest = url["redis://".Length..];
        string? password = null;
        int at = rest.LastIndexOf('@');
        if (at >= 0)
        {
            string user = rest[..at];
            password = user.Contains(':') ? user[(user.IndexOf(':') + 1)..] : user;
            rest = rest[(at + 1)..];
        }
        int db = 0;
        int slash = rest.IndexOf('/');
        if (slash >= 0)
        {
            string dbText = rest[(slash + 1)..];
            if (dbText.Length > 0 && (!int.TryParse(dbText, out db) || db is < 0 or > 15)) Bad($"the database '{dbText}' is not 0 to 15");
            rest = rest[..slash];
        }
        int colon = rest.LastIndexOf(':');
        string host = colon >= 0 ? rest[..colon] : rest;
        int port = 6379;
        if (colon >= 0 && (!int.TryParse(rest[(colon + 1)..], out port) || port is < 1 or > 65535)) Bad($"the port '{rest[(colon + 1)..]}' is not 1 to 65535");
        host = host.Trim('[', ']');
        if (host.Length == 0) Bad("no host");
        return new RedisAddress(host, port, db, password);
    }

    public override string ToString() => $"redis://{(Host.Contains(':') ? $"[{Host}]" : Host)}:{Port}/{Database}";

    public ConfigurationOptions Configuration(string clientName)
    {
        var c = new ConfigurationOptions
        {
            AbortOnConnectFail = false,
            ConnectTimeout = 2000,
            SyncTimeout = 5000,
            AsyncTimeout = 5000,
            ConnectRetry = 1,
            DefaultDatabase = Database,
            Password = Password,
            ClientName = clientName,
            BacklogPolicy = BacklogPolicy.FailFast,
            ReconnectRetryPolicy = new LinearRetry(500),
        };
        c.EndPoints.Add(Host, Port);
        return c;
    }

    public ConnectionMultiplexer Connect(string clientName) => ConnectionMultiplexer.Connect(Configuration(clientName));
}
