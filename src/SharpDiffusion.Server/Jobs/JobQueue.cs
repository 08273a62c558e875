using System.Collections.Concurrent;
using System.Diagnostics;

namespace SharpDiffusion.Server.Jobs;

/// <summary>Why a job could not be queued: the queue is full (503 + Retry-After) or the id is taken (409).</summary>
public sealed class QueueRefusedException(string message, int status, int retryAfterSeconds, string? error = null) : Exception(message)
{
    public int Status => status;
    public int RetryAfterSeconds => retryAfterSeconds;
    /// <summary>The A1111 error name: QueueFull / Conflict by default, or e.g. QueueUnavailable, NoWorker.</summary>
    public string Error => error ?? (status == 503 ? "QueueFull" : "Conflict");

    /// <summary>force_task_id names a job that exists (409).</summary>
    public static QueueRefusedException IdTaken(string id) =>
        new($"A job with the id '{id}' already exists; use another force_task_id.", 409, 0);
}

/// <summary>
/// A bounded FIFO of jobs and the one worker thread that runs them, one at a time (one loaded model, one generation).
/// Every accepted job ends completed, failed or cancelled; finished jobs stay readable by id for a while.
/// </summary>
public sealed class JobQueue : IJobQueue
{
    readonly object _gate = new();
    readonly LinkedList<Job> _pending = new();
    readonly ConcurrentDictionary<string, Job> _jobs = new();
    readonly SemaphoreSlim _signal = new(0);
    readonly CancellationTokenSource _stop = new();
    readonly Thread _worker;
    readonly int _capacity;
    readonly TimeSpan _retention;
    double _averageSeconds = 5;

    public JobQueue(int capacity, TimeSpan retention)
    {
        if (capacity < 0) throw new ArgumentException($"The queue size must be 0 or more; got {capacity}.");
        (_capacity, _retention) = (capacity, retention);
        _worker = new Thread(WorkLoop) { Name = "sharpdiffusion-worker", IsBackground = true };
        _worker.Start();
    }

    /// <summary>The job running now, if any (one that has ended is not, though the worker may not have let go of it yet).</summary>
    public Job? Running => _running is { IsFinished: false } job ? job : null;
    Job? _running;

    public int Capacity => _capacity;

    public IReadOnlyList<Job> RunningJobs => Running is { } job ? [job] : [];

    public void Interrupt() => Running?.Cancel("interrupted");

    public void Skip() => Running?.Skip();

    /// <summary>Jobs waiting (not counting the running one).</summary>
    public int Waiting { get { lock (_gate) return _pending.Count; } }

    /// <summary>Accepts <paramref name="job"/> or throws <see cref="QueueRefusedException"/>.</summary>
    public Job Enqueue(Job job)
    {
        Purge();
        lock (_gate)
        {
            // capacity waiting plus the one running: counted together, so a job the worker has not picked up yet
            // (it is still in _pending while the worker is idle) does not take a waiting place away.
            if (_pending.Count + (_running is null ? 0 : 1) > _capacity)
            {
                int retry = (int)Math.Clamp(Math.Ceiling(_averageSeconds), 1, 3600); // the head of the queue frees a place after about one job
                throw new QueueRefusedException($"The queue is full ({_capacity} waiting); retry in about {retry} s.", 503, retry);
            }
            if (!_jobs.TryAdd(job.Id, job))
                throw QueueRefusedException.IdTaken(job.Id);
            _pending.AddLast(job);
        }
        _signal.Release();
        return job;
    }

    public Job? Find(string id) => _jobs.TryGetValue(id, out var job) ? job : null;

    /// <summary>1-based place in the queue; 0 = running; null = not waiting.</summary>
    public int? PositionOf(Job job)
    {
        lock (_gate)
        {
            if (ReferenceEquals(Running, job)) return 0;
            int i = 1;
            foreach (var j in _pending)
            {
                if (ReferenceEquals(j, job)) return i;
                i++;
            }
            return null;
        }
    }

    /// <summary>Cancels a job wherever it is: a waiting one leaves the queue at once.</summary>
    public bool Cancel(Job job, string reason = "cancelled")
    {
        lock (_gate) _pending.Remove(job);
        return job.Cancel(reason);
    }

    void WorkLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            try { _signal.Wait(_stop.Token); }
            catch (OperationCanceledException) { break; }
            Job? job;
            lock (_gate)
            {
                job = _pending.First?.Value;
                if (job is null) continue;
                _pending.RemoveFirst();
                if (!job.TryStart()) continue; // cancelled while waiting
                _running = job;
            }
            var clock = Stopwatch.StartNew();
            try { job.Run(); }
            finally
            {
                lock (_gate) _running = null;
                _averageSeconds = 0.8 * _averageSeconds + 0.2 * clock.Elapsed.TotalSeconds;
            }
        }
    }

    /// <summary>Forgets finished jobs older than the retention time.</summary>
    void Purge()
    {
        var cutoff = DateTimeOffset.UtcNow - _retention;
        foreach (var (id, job) in _jobs)
            if (job.IsFinished && job.Ended < cutoff)
                _jobs.TryRemove(id, out _);
    }

    // The interface's awaitable calls: nothing here waits.
    Task<Job?> IJobQueue.FindAsync(string id) => Task.FromResult(Find(id));
    Task<int?> IJobQueue.PositionOfAsync(Job job) => Task.FromResult(PositionOf(job));
    Task<bool> IJobQueue.CancelAsync(Job job, string reason) => Task.FromResult(Cancel(job, reason));
    Task<IReadOnlyList<Job>> IJobQueue.RunningJobsAsync() => Task.FromResult(RunningJobs);
    Task<int> IJobQueue.WaitingAsync() => Task.FromResult(Waiting);
    Task IJobQueue.InterruptAsync() { Interrupt(); return Task.CompletedTask; }
    Task IJobQueue.SkipAsync() { Skip(); return Task.CompletedTask; }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var job in _pending) job.Cancel("the server is stopping");
            _pending.Clear();
        }
        Running?.Cancel("the server is stopping");
        _stop.Cancel();
        _worker.Join(TimeSpan.FromSeconds(30));
    }
}
