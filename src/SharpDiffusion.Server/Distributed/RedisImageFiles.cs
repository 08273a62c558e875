using StackExchange.Redis;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Server.Distributed;

/// <summary>A gateway's generated files in Redis (<c>sd:file:NAME</c>, expiring after <see cref="IImageFiles.Lifetime"/>):
/// a URL one gateway answered is served by every other, and survives a gateway restart.</summary>
public sealed class RedisImageFiles(RedisGateway gateway, IDatabase db) : IImageFiles
{
    static RedisKey Key(string name) => $"sd:file:{name}";

    public string Add(byte[] png)
    {
        string name = IImageFiles.NewName();
        gateway.Redis(() => db.StringSet(Key(name), png, IImageFiles.Lifetime));
        return name;
    }

    public byte[]? Get(string name) => gateway.Redis(() => (byte[]?)db.StringGet(Key(name)));
}
