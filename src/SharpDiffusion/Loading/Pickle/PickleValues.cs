using static TorchSharp.torch;

namespace SharpDiffusion.Loading.Pickle;

/// <summary>A global the reader allows, as a value (before or without being called).</summary>
public sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => $"{Module}.{Name}";
    public override string ToString() => FullName;
}

/// <summary>A torch storage class (<c>torch.FloatStorage</c> ...): the element type of the storages it names.</summary>
public sealed record TorchStorageType(string Name, ScalarType DType, int ElementSize);

/// <summary>What <c>persistent_load(('storage', type, key, location, numel))</c> names: one raw storage in the archive.</summary>
public sealed record TorchStorageRef(TorchStorageType Type, string Key, long ElementCount);

/// <summary>What <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)</c> describes: a view of a
/// storage, in elements. Nothing is read until the tensor is loaded.</summary>
public sealed record TorchTensorRef(TorchStorageRef Storage, long Offset, long[] Shape, long[] Stride);

/// <summary>An inert stand-in for an allowed non-tensor object (numpy scalars and dtypes, pytorch_lightning callbacks):
/// the class name, the arguments it was called with and the state BUILD gave it. Nothing of the class runs.</summary>
public sealed class PickleObject(string className, object?[] arguments)
{
    public string ClassName { get; } = className;
    public object?[] Arguments { get; } = arguments;
    public object? State { get; set; }
    public override string ToString() => ClassName;
}
