using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// Pub/sub channels a gateway or worker listens to from its start, whether or not Redis is up then: a subscription that
/// cannot be made now is tried again every second on a thread of its own until it is made (or <c>stop</c>); once made,
/// the client library restores it after every reconnection. So a process may start before Redis does.
/// </summary>
public static class Subscriptions
{
    public static void Keep(ISubscriber bus, RedisChannel channel, Action<RedisChannel, RedisValue> handler, CancellationToken stop)
    {
        if (TrySubscribe(bus, channel, handler)) return;
        new Thread(() =>
        {
            while (!stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(1)))
                if (TrySubscribe(bus, channel, handler)) return;
        }) { IsBackground = true, Name = $"subscribe {channel}" }.Start();
    }

    static bool TrySubscribe(ISubscriber bus, RedisChannel channel, Action<RedisChannel, RedisValue> handler)
    {
        try
        {
            bus.Subscribe(channel, handler);
            return true;
        }
        catch (Exception e) when (RedisUnavailable.Is(e)) { return false; }
    }
}
