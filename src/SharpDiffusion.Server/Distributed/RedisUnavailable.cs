using StackExchange.Redis;

namespace SharpDiffusion.Server.Distributed;

/// <summary>
/// Failures that mean "Redis cannot serve this right now; the same call will work later": no connection, a timeout,
/// or an error reply from a Redis that is loading its data (LOADING), a replica after a failover (READONLY), a busy
/// script (BUSY), a master without replicas or out of memory (MASTERDOWN, NOREPLICAS, OOM), a cluster in transition
/// (TRYAGAIN, CLUSTERDOWN). A gateway answers them with 503 and Retry-After; a worker waits and tries again.
/// </summary>
public static class RedisUnavailable
{
    static readonly string[] TransientReplies = ["LOADING", "READONLY", "BUSY", "MASTERDOWN", "NOREPLICAS", "OOM", "TRYAGAIN", "CLUSTERDOWN"];

    /// <summary>What Redis said (its reply: "READONLY You can't write…"), or what failed (RedisConnectionException).</summary>
    public static string Reason(Exception e) => e is RedisServerException ? e.Message : e.GetType().Name;

    public static bool Is(Exception e) => e switch
    {
        RedisConnectionException or RedisTimeoutException or TimeoutException => true,
        RedisServerException s => TransientReplies.Any(r => s.Message.StartsWith(r + " ", StringComparison.Ordinal) || s.Message == r),
        _ => false,
    };
}
