using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Pipelines;

/// <summary>What an X/Y/Z plot axis holds: whole numbers and numbers take A1111's range forms, text is taken as it is.</summary>
public enum AxisValueType { Text, Integer, Number }

/// <summary>
/// The values of an X/Y/Z plot axis written as AUTOMATIC1111's script reads them (scripts/xyz_grid.py): comma-separated
/// with CSV quoting ("a, b", "\"x, y\""), each item trimmed; for numbers also ranges: "1-5" (every whole number, ends
/// included), "1-10 (+2)" (a step: 1, 3, 5, 7, 9), "10-20 [3]" (a count, evenly spaced: 10, 15, 20). Number ranges step
/// from the start to the end plus one step (numpy's arange), counts are numpy's linspace (whole numbers truncated).
/// </summary>
public static partial class AxisValues
{
    /// <summary>The most values one axis may expand to (a range like "1-1000000000" is refused before it is built).</summary>
    public const int MaxValues = 1000;

    [GeneratedRegex(@"^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\))?\s*$")]
    private static partial Regex IntegerRange();
    [GeneratedRegex(@"^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\[(\d+)\s*])?\s*$")]
    private static partial Regex IntegerCount();
    [GeneratedRegex(@"^\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\))?\s*$")]
    private static partial Regex NumberRange();
    [GeneratedRegex(@"^\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\[(\d+(?:\.\d*)?)\s*])?\s*$")]
    private static partial Regex NumberCount();

    /// <summary>The values of <paramref name="text"/>, canonical (numbers in invariant form, "4" and "4.0" alike as 4).</summary>
    /// <param name="axis">What the axis is called, for the one-line error.</param>
    public static IReadOnlyList<string> Parse(string text, AxisValueType type, string axis)
    {
        var items = Split(text);
        if (items.Count == 0 || items.All(i => i.Length == 0))
            throw new ArgumentException($"{axis}: no values; give them comma-separated, e.g. {Example(type)}.");
        var values = new List<string>();
        foreach (var item in items)
        {
            var expanded = type switch
            {
                AxisValueType.Integer => Integers(item, axis),
                AxisValueType.Number => Numbers(item, axis),
                _ => [item],
            };
            values.AddRange(expanded);
            if (values.Count > MaxValues)
                throw new ArgumentException($"{axis}: '{text}' gives more than {MaxValues} values; give fewer.");
        }
        return values;
    }

    static string Example(AxisValueType type) => type switch
    {
        AxisValueType.Integer => "\"10,20,30\" or \"10-30 (+10)\"",
        AxisValueType.Number => "\"4,7.5\" or \"4-8 [3]\"",
        _ => "\"euler,lcm\"",
    };

    /// <summary>A1111's csv_string_to_list_strip: one CSV record (double quotes group, "" is a quote), items trimmed.</summary>
    public static List<string> Split(string text)
    {
        var items = new List<string>();
        var current = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"') { current.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else current.Append(c);
            }
            else if (c == '"' && current.ToString().Trim().Length == 0) { current.Clear(); quoted = true; }
            else if (c == ',') { items.Add(current.ToString().Trim()); current.Clear(); }
            else current.Append(c);
        }
        items.Add(current.ToString().Trim());
        return items;
    }

    static IEnumerable<string> Integers(string item, string axis)
    {
        if (IntegerRange().Match(item) is { Success: true } m)
        {
            long start = Whole(m.Groups[1].Value), end = Whole(m.Groups[2].Value) + 1;
            long step = m.Groups[3].Success ? Whole(m.Groups[3].Value) : 1;
            if (step == 0) throw new ArgumentException($"{axis}: '{item}' has a step of 0.");
            long count = step > 0 ? (end - start + step - 1) / step : (start - end - step - 1) / -step;   // Python's len(range(...))
            Check(count, item, axis);
            return Enumerable.Range(0, (int)Math.Max(0, count)).Select(i => (start + i * step).ToString(CultureInfo.InvariantCulture));
        }
        if (IntegerCount().Match(item) is { Success: true } c)
        {
            long start = Whole(c.Groups[1].Value), end = Whole(c.Groups[2].Value);
            int count = c.Groups[3].Success ? (int)Math.Min(int.MaxValue, Whole(c.Groups[3].Value)) : 1;
            Check(count, item, axis);
            return Linspace(start, end, count).Select(x => ((long)x).ToString(CultureInfo.InvariantCulture));
        }
        if (!long.TryParse(item, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
            throw new ArgumentException($"{axis}: '{item}' is not a whole number (or a range such as 1-5, 1-10 (+2), 10-20 [3]).");
        return [value.ToString(CultureInfo.InvariantCulture)];
    }

    static IEnumerable<string> Numbers(string item, string axis)
    {
        if (NumberRange().Match(item) is { Success: true } m)
        {
            double start = Real(m.Groups[1].Value), end = Real(m.Groups[2].Value);
            double step = m.Groups[3].Success ? Real(m.Groups[3].Value) : 1;
            if (step == 0) throw new ArgumentException($"{axis}: '{item}' has a step of 0.");
            double count = Math.Ceiling((end + step - start) / step);                           // numpy's arange length
            Check(count, item, axis);
            return Enumerable.Range(0, (int)Math.Max(0, count)).Select(i => Format(start + i * step));
        }
        if (NumberCount().Match(item) is { Success: true } c)
        {
            double start = Real(c.Groups[1].Value), end = Real(c.Groups[2].Value);
            double count = c.Groups[3].Success ? Math.Floor(Real(c.Groups[3].Value)) : 1;
            Check(count, item, axis);
            return Linspace(start, end, (int)count).Select(Format);
        }
        if (!double.TryParse(item, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            throw new ArgumentException($"{axis}: '{item}' is not a number (or a range such as 4-8, 4-8 (+0.5), 4-8 [3]).");
        return [Format(value)];
    }

    static void Check(double count, string item, string axis)
    {
        if (count > MaxValues) throw new ArgumentException($"{axis}: '{item}' gives more than {MaxValues} values; give fewer.");
    }

    /// <summary>numpy's linspace: num values from start to stop, both included (one value: the start).</summary>
    static IEnumerable<double> Linspace(double start, double stop, int num)
    {
        for (int i = 0; i < num; i++)
            yield return num == 1 ? start : i == num - 1 ? stop : start + i * (stop - start) / (num - 1);
    }

    static long Whole(string text) => long.TryParse(text.Replace(" ", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v)
        && Math.Abs(v) < 1L << 52 ? v : throw new ArgumentException($"'{text}' is too large a number for an axis value.");
    static double Real(string text) => double.TryParse(text.Replace(" ", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
        && Math.Abs(v) < 1e15 ? v : throw new ArgumentException($"'{text}' is too large a number for an axis value.");

    /// <summary>A number rounded to 8 decimals (as A1111's labels), in the shortest invariant form.</summary>
    public static string Format(double value) => Math.Round(value, 8).ToString("R", CultureInfo.InvariantCulture);
}
