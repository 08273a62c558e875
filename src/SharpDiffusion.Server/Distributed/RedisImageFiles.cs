using StackExchange.Redis;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Server.Distributed;

/// <summary>A gateway's generated files in Redis (<c>sd:file:NAME</c>, expiring after <see cref="IImageFiles.Lifetime"/>):
/// a URL one gateway answered is served by every other, and survives a gateway restart. The newest
/// <see cref="MaxFiles"/> are kept (an index <c>sd:files</c> in the order of adding), so URL answers cannot fill Redis.</summary>
public sealed class RedisImageFiles(RedisGateway gateway, IDatabase db) : IImageFiles
{
    public const int MaxFiles = 256;
    const string Prefix = "sd:file:";
    static readonly RedisKey Index = "sd:files", Counter = "sd:files:count";

    // KEYS: file, index, counter. ARGV: name, png, lifetime(s), max, file key prefix. Stores the file, numbered in the index in the order
    // of adding (files of the same millisecond included), then drops the oldest beyond max, and their files. Index and
    // counter expire with the newest file; an expired file's entry only waits to be dropped.
    const string AddScript = """
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
        redis.call('EXPIRE', KEYS[2], ARGV[3])
        redis.call('EXPIRE', KEYS[3], ARGV[3])
        local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
        if over > 0 then
          local oldest = redis.call('ZPOPMIN', KEYS[2], over)
          for i = 1, #oldest, 2 do redis.call('DEL', ARGV[5] .. oldest[i]) end
        end
        """;

    public string Add(byte[] png)
    {
        string name = IImageFiles.NewName();
        gateway.Redis(() => db.ScriptEvaluate(AddScript, [Prefix + name, Index, Counter], [name, png, (long)IImageFiles.Lifetime.TotalSeconds, MaxFiles, Prefix]));
        return name;
    }

    public byte[]? Get(string name) => gateway.Redis(() => (byte[]?)db.StringGet(Prefix + name));
}
