using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// Pub/sub channels a gateway or worker listens to from its start, whether or not Redis is up then. The client library
/// registers the handler before it sends SUBSCRIBE and restores every registered channel when it (re)connects, so a
/// subscription refused because Redis is away is made once Redis is up — and must not be asked for again (each call
/// adds the handler once more: measured, three refused calls → three calls per message).
/// </summary>
public static class Subscriptions
{
    public static void Keep(ISubscriber bus, RedisChannel channel, Action<RedisChannel, RedisValue> handler)
    {
        try { bus.Subscribe(channel, handler); }
        catch (Exception e) when (RedisUnavailable.Is(e)) { } // registered: subscribed on connection
    }
}
