namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// The benches' result tables, as GitHub markdown: a header row, the alignment row (text columns left, numbers right)
/// and one row per result, each cell formatted with the invariant culture so a table reads the same on every machine.
/// </summary>
public sealed class MarkdownTable
{
    /// <summary>One column: its header and whether it holds numbers (right-aligned, <c>---:</c>).</summary>
    public readonly record struct Column(string Header, bool Number);

    /// <summary>A text column (left-aligned).</summary>
    public static Column Label(string header) => new(header, false);
    /// <summary>A number column (right-aligned).</summary>
    public static Column Number(string header) => new(header, true);

    readonly Column[] _columns;
    readonly List<string[]> _rows = [];

    public MarkdownTable(params Column[] columns) => _columns = [.. columns];

    /// <summary>Adds a row: one cell per column, each an interpolated string formatted with the invariant culture.</summary>
    public void Add(params FormattableString[] cells)
    {
        string[] row = [.. cells.Select(FormattableString.Invariant)];
        if (row.Length != _columns.Length)
            throw new ArgumentException($"A row of {row.Length} cells for a table of {_columns.Length} columns ({string.Join(", ", _columns.Select(c => c.Header))}).", nameof(cells));
        _rows.Add(row);
    }

    /// <summary>The table's lines: header, alignment, rows.</summary>
    public IEnumerable<string> Lines()
    {
        yield return Line(_columns.Select(c => c.Header));
        yield return "|" + string.Concat(_columns.Select(c => c.Number ? "---:|" : "---|"));
        foreach (var row in _rows)
            yield return Line(row);
    }

    public void Print()
    {
        foreach (var line in Lines()) Console.WriteLine(line);
    }

    static string Line(IEnumerable<string> cells) => "| " + string.Join(" | ", cells) + " |";
}
