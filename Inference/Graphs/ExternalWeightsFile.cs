using System.Runtime.InteropServices;
using Onnx;

namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// The one file beside a built <c>.onnx</c> that holds its weights, written as they are produced (never all in memory,
/// never in the protobuf, whose 2 GB limit a 3 GB DeBERTa would pass). Each tensor starts at an offset aligned to
/// <see cref="Alignment"/> bytes, so ONNX Runtime can map it in place; initializers point at it through ONNX's
/// external-data fields (<c>location</c>, <c>offset</c>, <c>length</c>), relative to the <c>.onnx</c> file's folder.
/// </summary>
internal sealed class ExternalWeightsFile : IDisposable
{
    public const int Alignment = 64;

    private readonly FileStream _stream;

    public ExternalWeightsFile(string directory, string fileName)
    {
        FileName = fileName;
        _stream = new FileStream(Path.Combine(directory, fileName), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
    }

    public string FileName { get; }

    public long Length => _stream.Length;

    /// <summary>Appends <paramref name="data"/> and returns the float32 initializer that refers to it.</summary>
    public TensorProto Write(string name, ReadOnlySpan<float> data, IReadOnlyList<long> dims) =>
        Write(name, MemoryMarshal.AsBytes(data), data.Length, TensorProto.Types.DataType.Float, dims);

    /// <summary>Appends <paramref name="data"/> and returns the float16 initializer that refers to it.</summary>
    public TensorProto Write(string name, ReadOnlySpan<Half> data, IReadOnlyList<long> dims) =>
        Write(name, MemoryMarshal.AsBytes(data), data.Length, TensorProto.Types.DataType.Float16, dims);

    private TensorProto Write(string name, ReadOnlySpan<byte> bytes, int count, TensorProto.Types.DataType type, IReadOnlyList<long> dims)
    {
        var expected = dims.Aggregate(1L, (n, d) => n * d);
        if (expected != count)
        {
            throw new ArgumentException($"{name}: {count} values for shape [{string.Join(", ", dims)}].", nameof(dims));
        }

        var padding = (int)((Alignment - (_stream.Position % Alignment)) % Alignment);
        if (padding > 0)
        {
            Span<byte> zeros = stackalloc byte[Alignment];
            zeros.Clear();
            _stream.Write(zeros[..padding]);
        }

        var offset = _stream.Position;
        _stream.Write(bytes);
        var tensor = new TensorProto
        {
            Name = name,
            DataType = (int)type,
            DataLocation = TensorProto.Types.DataLocation.External,
        };
        tensor.Dims.Add(dims);
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = FileName });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return tensor;
    }

    /// <summary>Writes everything through to the disk, so that a folder renamed into place afterwards is complete.</summary>
    public void Flush() => _stream.Flush(flushToDisk: true);

    public void Dispose() => _stream.Dispose();
}
