using TorchSharp.Modules;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// A module of ours that holds a parameter itself rather than inside a TorchSharp layer (an RMS norm's scale, a stored
/// position table), so that loading, which assigns parameters through their owners, can put a stored tensor in its place.
/// </summary>
public interface IParameterOwner
{
    /// <summary>Replaces the parameter registered as <paramref name="name"/> (its own name, no dots) and disposes the old one.</summary>
    void SetParameter(string name, Parameter value);
}
