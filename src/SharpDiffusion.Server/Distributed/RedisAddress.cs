using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// Where the queue is: <c>redis://[:PASSWORD@]HOST:PORT[/DB]</c>, one Redis, or
/// <c>redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/SERVICE[/DB]</c>, the Sentinels that name the primary of the
/// replicated set SERVICE (the connection follows a failover to the new primary by itself; the password is the Redis
/// servers', the Sentinels take none). → StackExchange.Redis options for a queue client: it starts without Redis and
/// reconnects by itself, and a command while Redis is away fails at once (the API answers 503) instead of waiting in a
/// backlog.
/// </summary>
/// <param name="Endpoints">"host:port" (IPv6 in brackets), comma-separated: the Redis, or the Sentinels.</param>
/// <param name="Service">The Sentinel service (master) name; null for a plain Redis.</param>
public sealed record RedisAddress(string Endpoints, int Database, string? Password, string? Service = null)
{
    public const string Form = "redis://HOST:PORT[/DB] or redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]";
    const string Plain = "redis://", Sentinel = "redis+sentinel://";

    public static RedisAddress Parse(string url)
    {
        string Bad(string why) => throw new ArgumentException($"--queue {url}: {why}; expected {Form}, e.g. redis://127.0.0.1:6379/0.");
        bool sentinel = url.StartsWith(Sentinel, StringComparison.OrdinalIgnoreCase);
        if (!sentinel && !url.StartsWith(Plain, StringComparison.OrdinalIgnoreCase)) Bad("not a redis:// URL");
        string rest = url[(sentinel ? Sentinel : Plain).Length..];
        string? password = null;
        int at = rest.LastIndexOf('@');
        if (at >= 0)
        {
            string user = rest[..at];
            password = user.Contains(':') ? user[(user.IndexOf(':') + 1)..] : user;
            rest = rest[(at + 1)..];
        }
        string[] path = rest.Split('/');
        string? service = null;
        int pathAt = 1;
        if (sentinel)
        {
            service = path.Length > 1 ? path[1] : "";
            if (service.Length == 0) Bad("no Sentinel service name (the name in `sentinel monitor NAME …`)");
            pathAt = 2;
        }
        int db = 0;
        if (path.Length > pathAt + 1) Bad($"the path '/{string.Join('/', path[1..])}' has too many parts");
        if (path.Length > pathAt && path[pathAt].Length > 0 && (!int.TryParse(path[pathAt], out db) || db is < 0 or > 15))
            Bad($"the database '{path[pathAt]}' is not 0 to 15");

        string[] hosts = path[0].Split(',');
        if (hosts.Length > 1 && !sentinel) Bad("several hosts; one Redis takes one, several Sentinels take redis+sentinel://");
        var endpoints = hosts.Select(h => Endpoint(h, sentinel ? 26379 : 6379, Bad));
        return new RedisAddress(string.Join(',', endpoints), db, password, service);
    }

    static string Endpoint(string text, int defaultPort, Func<string, string> bad)
    {
        int colon = text.LastIndexOf(':');
        bool bracketed = text.StartsWith('[');
        if (bracketed && text.LastIndexOf(']') > colon) colon = -1; // [::1] without a port
        string host = colon >= 0 ? text[..colon] : text;
        int port = defaultPort;
        if (colon >= 0 && (!int.TryParse(text[(colon + 1)..], out port) || port is < 1 or > 65535)) bad($"the port '{text[(colon + 1)..]}' is not 1 to 65535");
        host = host.Trim('[', ']');
        if (host.Length == 0) bad("no host");
        return $"{(host.Contains(':') ? $"[{host}]" : host)}:{port}";
    }

    public override string ToString() => Service is null ? $"{Plain}{Endpoints}/{Database}" : $"{Sentinel}{Endpoints}/{Service}/{Database}";

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
            ServiceName = Service,
        };
        foreach (var endpoint in Endpoints.Split(','))
        {
            int colon = endpoint.LastIndexOf(':');
            c.EndPoints.Add(endpoint[..colon].Trim('[', ']'), int.Parse(endpoint[(colon + 1)..]));
        }
        return c;
    }

    public ConnectionMultiplexer Connect(string clientName) => ConnectionMultiplexer.Connect(Configuration(clientName));
}
