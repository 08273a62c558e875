using System.Text.Json.Nodes;

namespace SharpDiffusion.Server.Jobs;

public enum JobState { Queued, Running, Completed, Failed, Cancelled }

/// <summary>What a job's work reports as it runs (read by /progress, GET /jobs/{id} and the page's event stream).</summary>
public sealed record JobProgress(int ImageIndex, int ImageCount, int Step, int Steps, string Stage)
{
    /// <summary>0..1 over all images of the job.</summary>
    public double Fraction => ImageCount == 0 || Steps == 0 ? 0
        : Math.Clamp((ImageIndex + (double)Step / Steps) / ImageCount, 0, 1);
}

/// <summary>
/// One accepted request. It ends exactly once: completed (with its result), failed (with the reason) or cancelled;
/// <see cref="Finished"/> completes then, whoever waits on it.
/// </summary>
public sealed class Job
{
    readonly object _gate = new();
    readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly CancellationTokenSource _cancel = new();
    CancellationTokenSource _skip = new();
    string _cancelReason = "cancelled";

    public Job(string id, string kind, Func<Job, JsonObject> work)
    {
        Id = id;
        Kind = kind;
        Work = work;
    }

    public string Id { get; }
    /// <summary>"txt2img", "img2img", "openai", "options".</summary>
    public string Kind { get; }
    /// <summary>Runs on the worker; returns the result body. Throws OperationCanceledException when cancelled.</summary>
    internal Func<Job, JsonObject> Work { get; }

    /// <summary>Raised (outside the job's lock) after progress or a preview was reported: a worker of a Redis queue
    /// forwards them to the gateways.</summary>
    public event Action<Job>? Changed;

    public DateTimeOffset Created { get; init; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? Started { get; private set; }
    public DateTimeOffset? Ended { get; private set; }
    public JobState State { get; private set; } = JobState.Queued;
    public JobProgress Progress { get; private set; } = new(0, 1, 0, 0, "queued");
    /// <summary>The latest live preview (PNG), if any.</summary>
    public byte[]? Preview { get; private set; }
    public int PreviewVersion { get; private set; }
    public JsonObject? Result { get; private set; }
    public string? Error { get; private set; }
    /// <summary>How the failure maps to HTTP: 422 for a request the model cannot take, 500 otherwise.</summary>
    public int ErrorStatus { get; private set; }
    /// <summary>Bumped on every change, so an event stream knows when to send.</summary>
    public int Version { get; private set; }

    public Task Finished => _finished.Task;
    public CancellationToken Cancellation => _cancel.Token;
    /// <summary>Cancels the current image only (A1111's skip); renewed per image by <see cref="NextImage"/>.</summary>
    public CancellationToken SkipToken { get { lock (_gate) return _skip.Token; } }
    public bool IsFinished => State is JobState.Completed or JobState.Failed or JobState.Cancelled;

    internal bool TryStart()
    {
        lock (_gate)
        {
            if (State != JobState.Queued) return false;
            State = JobState.Running;
            Started = DateTimeOffset.UtcNow;
            Version++;
            return true;
        }
    }

    public void Report(JobProgress progress)
    {
        lock (_gate) { Progress = progress; Version++; }
        Changed?.Invoke(this);
    }

    public void ReportPreview(byte[] png)
    {
        lock (_gate) { Preview = png; PreviewVersion++; Version++; }
        Changed?.Invoke(this);
    }

    /// <summary>A fresh skip token for the next image; true if the previous image was skipped.</summary>
    public void NextImage()
    {
        lock (_gate)
            if (_skip.IsCancellationRequested) { _skip.Dispose(); _skip = new CancellationTokenSource(); }
    }

    public void Skip()
    {
        lock (_gate) if (State == JobState.Running) _skip.Cancel();
    }

    /// <summary>Cancels a queued job at once, a running one at its next step; false if it had already ended.</summary>
    public bool Cancel(string reason = "cancelled")
    {
        lock (_gate)
        {
            if (IsFinished) return false;
            if (!_cancel.IsCancellationRequested) _cancelReason = reason; // the first reason is the one reported
            _cancel.Cancel();
            if (State == JobState.Queued)
                EndLocked(JobState.Cancelled, null, reason, 0);
            return true;
        }
    }

    /// <summary>Drops the result once a synchronous call has answered with it. The images were delivered; keeping every
    /// answer for the retention time would hold all of them in memory. The job stays readable (state, times) without it.</summary>
    public void ReleaseResult() { lock (_gate) Result = null; }

    /// <summary>Runs <see cref="Work"/> on the calling thread and ends the job with its outcome: the result; a request the
    /// model cannot take (422) or any other failure (500), with a one-line reason; or cancelled.</summary>
    internal void Run()
    {
        try
        {
            Cancellation.ThrowIfCancellationRequested();
            Complete(Work(this));
        }
        catch (OperationCanceledException) { EndCancelled(); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or InvalidDataException or FileNotFoundException
                                      or DirectoryNotFoundException or InsufficientMemoryException)
        {
            Fail(OneLine(e.Message), 422);
        }
        catch (Exception e) { Fail($"{OneLine(e.Message)} ({e.GetType().Name})", 500); }
    }

    static string OneLine(string s) => s.ReplaceLineEndings(" ");

    internal void Complete(JsonObject result) { lock (_gate) EndLocked(JobState.Completed, result, null, 0); }
    internal void Fail(string error, int status) { lock (_gate) EndLocked(JobState.Failed, null, error, status); }
    /// <summary>A running job stopped by <see cref="Cancel"/>: it ends with the reason given there ("interrupted", "the client disconnected", …).</summary>
    internal void EndCancelled() { lock (_gate) EndLocked(JobState.Cancelled, null, _cancelReason, 0); }
    /// <summary>Ended elsewhere (a job of a Redis queue, mirrored by a gateway).</summary>
    internal void EndCancelled(string reason) { lock (_gate) EndLocked(JobState.Cancelled, null, reason, 0); }

    void EndLocked(JobState state, JsonObject? result, string? error, int status)
    {
        if (IsFinished) return;
        (State, Result, Error, ErrorStatus, Ended) = (state, result, error, status, DateTimeOffset.UtcNow);
        Version++;
        _finished.TrySetResult();
    }

    /// <summary>The job as GET /jobs/{id} shows it (without the images unless <paramref name="withResult"/>).</summary>
    public JsonObject Describe(int? queuePosition, bool withResult)
    {
        lock (_gate)
        {
            var now = DateTimeOffset.UtcNow;
            double elapsed = Started is { } s ? ((Ended ?? now) - s).TotalSeconds : 0;
            double fraction = State == JobState.Completed ? 1 : Progress.Fraction;
            var o = new JsonObject
            {
                ["id"] = Id,
                ["kind"] = Kind,
                ["state"] = State.ToString().ToLowerInvariant(),
                ["queue_position"] = queuePosition,
                ["progress"] = fraction,
                ["eta_relative"] = State == JobState.Running && fraction > 0 ? elapsed / fraction - elapsed : 0,
                ["elapsed"] = elapsed,
                ["image_index"] = Progress.ImageIndex,
                ["image_count"] = Progress.ImageCount,
                ["step"] = Progress.Step,
                ["steps"] = Progress.Steps,
                ["stage"] = Progress.Stage,
                ["preview_version"] = PreviewVersion,
                ["error"] = Error,
            };
            if (withResult && Result is not null)
                o["result"] = Result.DeepClone();
            return o;
        }
    }
}
