using SharpDiffusion.Diagnostics;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Diagnostics;

/// <summary>The bench's "peak at": the description in force when the resident size was highest.</summary>
public class PeakLocatorTests
{
    [Fact]
    public void The_peak_is_placed_where_the_large_allocation_was_held()
    {
        string place = "before";
        var locator = new PeakLocator(() => place, TimeSpan.FromMilliseconds(5));
        Thread.Sleep(50);
        place = "holding";
        using (var big = ones(64L << 20, dtype: ScalarType.Byte)) // 64 MB, touched
            Thread.Sleep(200);
        place = "after";
        Thread.Sleep(50);
        locator.Dispose();

        Assert.Equal("holding", locator.Where);
        var byPlace = locator.PeaksByPlace.ToDictionary(p => p.Where, p => p.Bytes);
        Assert.Equal(["before", "holding", "after"], locator.PeaksByPlace.Select(p => p.Where));
        Assert.True(byPlace["holding"] - byPlace["before"] >= 60L << 20, $"holding {byPlace["holding"]} vs before {byPlace["before"]}");
    }
}
