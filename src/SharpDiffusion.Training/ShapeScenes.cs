namespace SharpDiffusion.Training;

/// <summary>The kinds of shape a scene can hold. <see cref="Cross"/> and <see cref="Ell"/> (an L) are shapes the shipped model
/// never saw (the LoRA proof teaches it one: <see cref="ShapeLoraDemo"/>), so the dataset and the held-out judge use
/// <see cref="ShapeVocabulary.TrainedShapes"/>, not every value.</summary>
public enum ShapeKind { Circle, Square, Triangle, Star, Cross, Ell }

public enum ShapeSize { Small, Large }

public enum ShapePosition { Left, Right, Top, Bottom, Center }

/// <summary>A named colour of the synthetic scenes (sRGB bytes).</summary>
public sealed record NamedColor(string Name, byte R, byte G, byte B);

/// <summary>One shape in a scene: what it is and exactly where it was drawn (pixels, centre and half-size).</summary>
public sealed record SceneObject(ShapeKind Shape, NamedColor Color, ShapeSize Size, ShapePosition Position, float CenterX, float CenterY, float Radius);

/// <summary>A scene and its caption. The caption may leave size, position or background unsaid; the scene never does.</summary>
public sealed record Scene(IReadOnlyList<SceneObject> Objects, NamedColor Background, string Caption);

/// <summary>The vocabulary of the synthetic dataset and the small English grammar its captions follow:
/// <code>
/// caption  := object [" and " object] [[","] " on a " colour " background"]
/// object   := "a " [size " "] colour " " shape [" " position]
/// size     := small | large
/// colour   := red | orange | yellow | green | blue | purple | white | black
/// shape    := circle | square | triangle | star
/// position := on the left | on the right | at the top | at the bottom | in the center
/// </code>
/// Two-shape captions state both positions or neither.</summary>
public static class ShapeVocabulary
{
    public const int ImageSize = 64;

    /// <summary>The shapes of models/sharp-shapes' dataset, in the order it draws them (adding a kind must not change it).</summary>
    public static IReadOnlyList<ShapeKind> TrainedShapes { get; } = [ShapeKind.Circle, ShapeKind.Square, ShapeKind.Triangle, ShapeKind.Star];

    public static IReadOnlyList<NamedColor> Colors { get; } =
    [
        new("red", 220, 30, 30), new("orange", 250, 150, 20), new("yellow", 250, 230, 40), new("green", 30, 170, 50),
        new("blue", 30, 70, 230), new("purple", 140, 40, 190), new("white", 245, 245, 245), new("black", 15, 15, 15),
    ];

    public static NamedColor Color(string name) => Colors.First(c => c.Name == name);

    public static string Word(ShapeKind s) => s.ToString().ToLowerInvariant();

    public static string Word(ShapeSize s) => s.ToString().ToLowerInvariant();

    public static string Phrase(ShapePosition p) => p switch
    {
        ShapePosition.Left => "on the left",
        ShapePosition.Right => "on the right",
        ShapePosition.Top => "at the top",
        ShapePosition.Bottom => "at the bottom",
        _ => "in the center",
    };

    /// <summary>Where a shape at <paramref name="p"/> is centred (before jitter), in pixels of a 64×64 image.</summary>
    public static (float X, float Y) Anchor(ShapePosition p) => p switch
    {
        ShapePosition.Left => (16, 32),
        ShapePosition.Right => (48, 32),
        ShapePosition.Top => (32, 16),
        ShapePosition.Bottom => (32, 48),
        _ => (32, 32),
    };

    /// <summary>Half-size range in pixels: small 7–9, large 13–15.</summary>
    public static (float Min, float Max) RadiusRange(ShapeSize s) => s == ShapeSize.Small ? (7f, 9f) : (13f, 15f);

    /// <summary>"a small red circle on the left": the object phrase, with the optional parts chosen by the flags.</summary>
    public static string ObjectPhrase(ShapeKind shape, NamedColor color, ShapeSize? size, ShapePosition? position) =>
        "a " + (size is { } s ? Word(s) + " " : "") + color.Name + " " + Word(shape) + (position is { } p ? " " + Phrase(p) : "");

    public static string BackgroundPhrase(NamedColor background, bool comma = true) => $"{(comma ? "," : "")} on a {background.Name} background";
}

/// <summary>A (colour, shape, position) combination: the unit the held-out set is made of.</summary>
public sealed record HeldOutCombination(string Color, ShapeKind Shape, ShapePosition Position);

/// <summary>An evaluation prompt built from a held-out combination, with the scene it asks for.</summary>
public sealed record HeldOutPrompt(string Prompt, HeldOutCombination Combination, ShapeSize Size, NamedColor Background)
{
    /// <summary>The picture the prompt asks for: its shape at the position's anchor, with the middle half-size of its size class.</summary>
    public Scene ExpectedScene()
    {
        var (x, y) = ShapeVocabulary.Anchor(Combination.Position);
        var (rMin, rMax) = ShapeVocabulary.RadiusRange(Size);
        var shape = new SceneObject(Combination.Shape, ShapeVocabulary.Color(Combination.Color), Size, Combination.Position, x, y, (rMin + rMax) / 2);
        return new Scene([shape], Background, Prompt);
    }
}
