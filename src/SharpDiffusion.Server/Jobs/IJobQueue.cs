namespace SharpDiffusion.Server.Jobs;

/// <summary>
/// Where the endpoints find and steer jobs: the in-process <see cref="JobQueue"/> (one worker thread beside the API)
/// or a <see cref="Distributed.RedisGateway"/> (workers elsewhere, pulling from Redis streams). What may ask Redis is
/// awaited: a request never holds a thread while Redis answers (a burst of requests that did starved the thread pool
/// that reads Redis's replies, issue 20).
/// </summary>
public interface IJobQueue : IDisposable
{
    /// <summary>A job by id (finished ones while they are kept), or null.</summary>
    Task<Job?> FindAsync(string id);

    /// <summary>1-based place in the queue; 0 = running; null = not waiting.</summary>
    Task<int?> PositionOfAsync(Job job);

    /// <summary>Cancels a job wherever it is: a waiting one at once, a running one at its next step; false if it had ended.</summary>
    Task<bool> CancelAsync(Job job, string reason = "cancelled");

    /// <summary>The jobs running now (in-process: at most one).</summary>
    Task<IReadOnlyList<Job>> RunningJobsAsync();

    /// <summary>Jobs waiting to run (not counting the running ones).</summary>
    Task<int> WaitingAsync();

    /// <summary>A1111's /interrupt: every running job is cancelled.</summary>
    Task InterruptAsync();

    /// <summary>A1111's /skip: every running job skips its current image.</summary>
    Task SkipAsync();
}
