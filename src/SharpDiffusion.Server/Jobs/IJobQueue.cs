namespace SharpDiffusion.Server.Jobs;

/// <summary>
/// Where the endpoints find and steer jobs: the in-process <see cref="JobQueue"/> (one worker thread beside the API)
/// or a <see cref="Distributed.RedisGateway"/> (workers elsewhere, pulling from Redis streams).
/// </summary>
public interface IJobQueue : IDisposable
{
    /// <summary>A job by id (finished ones while they are kept), or null.</summary>
    Job? Find(string id);

    /// <summary>1-based place in the queue; 0 = running; null = not waiting.</summary>
    int? PositionOf(Job job);

    /// <summary>Cancels a job wherever it is: a waiting one at once, a running one at its next step; false if it had ended.</summary>
    bool Cancel(Job job, string reason = "cancelled");

    /// <summary>The jobs running now (in-process: at most one).</summary>
    IReadOnlyList<Job> RunningJobs { get; }

    /// <summary>Jobs waiting to run (not counting the running ones).</summary>
    int Waiting { get; }

    /// <summary>A1111's /interrupt: every running job is cancelled.</summary>
    void Interrupt();

    /// <summary>A1111's /skip: every running job skips its current image.</summary>
    void Skip();
}
