using System.Runtime.InteropServices;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>The element types a checkpoint may store (safetensors' names; PyTorch storages map onto them).</summary>
public enum TensorDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

/// <summary>A tensor's name, element type and shape (row-major, as PyTorch and safetensors store it).</summary>
public sealed record TensorInfo(string Name, TensorDType DType, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);

    public bool IsFloatingPoint => DType is TensorDType.F64 or TensorDType.F32 or TensorDType.F16 or TensorDType.BF16;

    public override string ToString() => $"{Name} {DType}[{string.Join(", ", Shape)}]";
}

/// <summary>
/// Named tensors read from a model's weights (one file or several shards). Readers never execute anything from the
/// file and refuse what they cannot interpret. Names are as stored; <see cref="CheckpointException"/> reports a
/// missing name or a file that is not what it claims to be.
/// </summary>
public interface ICheckpoint : IDisposable
{
    IReadOnlyCollection<string> Names { get; }

    bool Contains(string name);

    /// <summary>The tensor's type and shape; throws <see cref="CheckpointException"/> when there is no such tensor.</summary>
    TensorInfo Info(string name);

    /// <summary>
    /// Reads a floating-point tensor as float32, row-major (fp16, bf16 and fp64 converted; fp16/bf16 upcast exactly).
    /// </summary>
    float[] ReadFloat32(string name);

    /// <summary>
    /// Reads a tensor's elements as stored, whatever their type (the int64 <c>position_ids</c> buffer included):
    /// little-endian, row-major, contiguous.
    /// </summary>
    byte[] ReadBytes(string name) =>
        Info(name) is { DType: TensorDType.F32 }
            ? MemoryMarshal.AsBytes(ReadFloat32(name).AsSpan()).ToArray()
            : throw new CheckpointException($"{GetType().Name} cannot read {Info(name)} as bytes.");

    /// <summary>
    /// A float32 tensor's data where it lies in the mapped file, for handing weights to ONNX Runtime without a copy
    /// (<c>OrtValue.CreateTensorValueFromMemory</c> + <c>SessionOptions.AddInitializer</c>). The memory is valid only
    /// until this checkpoint is disposed. False when the data must be converted (fp16, bf16), gathered (a strided
    /// view), inflated or is not 4-byte aligned: use <see cref="ReadFloat32"/> then.
    /// </summary>
    bool TryGetFloat32Memory(string name, out ReadOnlyMemory<float> data)
    {
        data = default;
        return false;
    }
}

/// <summary>A checkpoint that cannot be read: a missing tensor, a malformed or unsupported file.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);
