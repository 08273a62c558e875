namespace SharpDiffusion.Cli;

/// <summary>
/// Ctrl-C: the first press asks the running generation to stop after its current step (the progress display then
/// closes normally and the cursor comes back); a second press exits at once, showing the cursor first.
/// </summary>
public sealed class Interruption : IDisposable
{
    readonly CancellationTokenSource _source = new();

    public CancellationToken Token => _source.Token;

    public Interruption() => Console.CancelKeyPress += OnCancel;

    void OnCancel(object? sender, ConsoleCancelEventArgs e)
    {
        if (_source.IsCancellationRequested)
        {
            Console.Write("\u001b[?25h"); // the progress bar hides the cursor
            Console.Out.Flush();
            return; // not cancelled: the process ends
        }
        e.Cancel = true;
        _source.Cancel();
        Console.Error.WriteLine("Stopping after the current step (Ctrl-C again to quit at once)...");
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= OnCancel;
        _source.Dispose();
    }
}
