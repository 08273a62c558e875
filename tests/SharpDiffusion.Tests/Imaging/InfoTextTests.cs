using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Imaging;

/// <summary>InfoText.Parse reads what InfoText.Format writes and what AUTOMATIC1111 writes (parse_generation_parameters).</summary>
public class InfoTextTests
{
    [Fact]
    public void ParseReadsBackEveryFieldFormatWrites()
    {
        string text = InfoText.Format("a cat, (fluffy:1.2)\nsecond line", "blurry, ugly", 20, "DPM++ 2M Karras", 7.5, 1234, 512, 768, "v1-5",
            denoisingStrength: 0.6, clipSkip: 2, maskBlur: 4, modelHash: "6ce0161689", loraHashes: [("my:lora,x", "abcdef123456")]);
        var p = InfoText.Parse(text);
        Assert.Equal("a cat, (fluffy:1.2)\nsecond line", p["Prompt"]);
        Assert.Equal("blurry, ugly", p["Negative prompt"]);
        Assert.Equal("20", p["Steps"]);
        Assert.Equal("DPM++ 2M Karras", p["Sampler"]);
        Assert.Equal("7.5", p["CFG scale"]);
        Assert.Equal("1234", p["Seed"]);
        Assert.Equal(("512x768", "512", "768"), (p["Size"], p["Size-1"], p["Size-2"]));
        Assert.Equal("6ce0161689", p["Model hash"]);
        Assert.Equal("v1-5", p["Model"]);
        Assert.Equal("0.6", p["Denoising strength"]);
        Assert.Equal("2", p["Clip skip"]);
        Assert.Equal("4", p["Mask blur"]);
        Assert.Equal("mylorax: abcdef123456", p["Lora hashes"]); // the quoted value, unquoted
    }

    [Fact]
    public void ALastLineWithFewerThanThreePairsIsPartOfThePrompt()
    {
        var p = InfoText.Parse("a photo\nstyle: noir, mood: dark");
        Assert.Equal("a photo\nstyle: noir, mood: dark", p["Prompt"]);
        Assert.Equal("", p["Negative prompt"]);
        Assert.False(p.ContainsKey("style"));
    }
}
