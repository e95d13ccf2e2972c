using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets}}</c> (plus <c>__metadata__</c>), then the raw little-endian data. Only the
/// tensors read are paged in, so a multi-gigabyte file costs no more memory than what is asked of it.
/// </summary>
public sealed class SafetensorsCheckpoint : ICheckpoint
{
    // The format's own bound on the header, which keeps a hostile length from allocating gigabytes.
    private const long MaxHeaderBytes = 100_000_000;

    private readonly MappedFile _file;
    private readonly Dictionary<string, Entry> _entries;

    private SafetensorsCheckpoint(MappedFile file, Dictionary<string, Entry> entries)
    {
        _file = file;
        _entries = entries;
    }

    public IReadOnlyCollection<string> Names => _entries.Keys;

    /// <summary>The <c>__metadata__</c> strings of the header (for instance <c>format: pt</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; private init; } = new Dictionary<string, string>();

    public static SafetensorsCheckpoint Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            var length = file.Length;
            var headerLength = length < 8 ? -1 : file.ReadInt64(0);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > length)
            {
                throw new CheckpointException($"{file.Name} is not a safetensors file: header length {headerLength} in a {length}-byte file.");
            }

            var dataStart = 8 + headerLength;
            var (entries, metadata) = ParseHeader(file.Name, file.Span(8, headerLength), dataStart, length);
            return new SafetensorsCheckpoint(file, entries) { Metadata = metadata };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public TensorInfo Info(string name) => Get(name).Info;

    public float[] ReadFloat32(string name)
    {
        var entry = Get(name);
        if (!entry.Info.IsFloatingPoint)
        {
            throw new CheckpointException($"{entry.Info} in {_file.Name} is not a floating-point tensor.");
        }

        var result = new float[entry.Info.ElementCount];
        TensorConversion.ToFloat32(entry.Info.DType, _file.Span(entry.Offset, entry.Length), result);
        return result;
    }

    public byte[] ReadBytes(string name)
    {
        var entry = Get(name);
        return _file.Span(entry.Offset, entry.Length).ToArray();
    }

    public bool TryGetFloat32Memory(string name, out ReadOnlyMemory<float> data)
    {
        var entry = Get(name);
        if (entry.Info.DType == TensorDType.F32 && _file.Float32Memory(entry.Offset, (int)entry.Info.ElementCount) is { } memory)
        {
            data = memory;
            return true;
        }

        data = default;
        return false;
    }

    public void Dispose() => _file.Dispose();

    private Entry Get(string name) =>
        _entries.TryGetValue(name, out var entry)
            ? entry
            : throw new CheckpointException($"{_file.Name} has no tensor named {name}.");

    private static (Dictionary<string, Entry>, Dictionary<string, string>) ParseHeader(string file, ReadOnlySpan<byte> header, long dataStart, long fileLength)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header))
        {
            throw new CheckpointException($"{file} has a malformed safetensors header: it is not valid UTF-8.");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header.TrimEnd((byte)' ').ToArray());
        }
        catch (JsonException ex)
        {
            throw new CheckpointException($"{file} has a malformed safetensors header: {ex.Message}", ex);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{file} has a safetensors header that is not a JSON object.");
            }

            var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind == JsonValueKind.Object)
                    {
                        foreach (var m in property.Value.EnumerateObject().Where(m => m.Value.ValueKind == JsonValueKind.String))
                        {
                            metadata[m.Name] = m.Value.GetString()!;
                        }
                    }

                    continue;
                }

                entries[property.Name] = ParseEntry(file, property, dataStart, fileLength);
            }

            return (entries, metadata);
        }
    }

    private static Entry ParseEntry(string file, JsonProperty property, long dataStart, long fileLength)
    {
        var value = property.Value;
        try
        {
            var dtype = ParseDType(file, property.Name, value.GetProperty("dtype").GetString());
            var shape = value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var offsets = value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var info = new TensorInfo(property.Name, dtype, shape);

            // The size the shape implies, computed without overflow (a hostile shape must not wrap to a small size).
            var bytes = shape.Contains(0) ? 0L : TensorConversion.SizeOf(dtype);
            foreach (var d in shape)
            {
                bytes = d < 0 ? -1 : bytes == 0 ? 0 : bytes > long.MaxValue / d ? -1 : bytes * d;
                if (bytes < 0)
                {
                    break;
                }
            }

            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > fileLength - dataStart
                || bytes < 0 || offsets[1] - offsets[0] != bytes || bytes > int.MaxValue)
            {
                throw new CheckpointException($"{file}: tensor {info} has data offsets [{string.Join(", ", offsets)}] that do not fit its shape or the file.");
            }

            return new Entry(info, dataStart + offsets[0], bytes);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{file}: the safetensors entry for {property.Name} is malformed ({ex.Message}).", ex);
        }
    }

    private static TensorDType ParseDType(string file, string name, string? dtype) => dtype switch
    {
        "F64" => TensorDType.F64,
        "F32" => TensorDType.F32,
        "F16" => TensorDType.F16,
        "BF16" => TensorDType.BF16,
        "I64" => TensorDType.I64,
        "I32" => TensorDType.I32,
        "I16" => TensorDType.I16,
        "I8" => TensorDType.I8,
        "U8" => TensorDType.U8,
        "BOOL" => TensorDType.Bool,
        _ => throw new CheckpointException($"{file}: tensor {name} has dtype {dtype}, which is not supported (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL are)."),
    };

    private sealed record Entry(TensorInfo Info, long Offset, long Length);
}

/// <summary>Converts raw little-endian tensor bytes to float32.</summary>
public static class TensorConversion
{
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.F64 or TensorDType.I64 => 8,
        TensorDType.F32 or TensorDType.I32 => 4,
        TensorDType.F16 or TensorDType.BF16 or TensorDType.I16 => 2,
        _ => 1,
    };

    /// <summary>Writes <paramref name="source"/> (elements of <paramref name="dtype"/>) to <paramref name="destination"/> as float32.</summary>
    public static void ToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("Checkpoints are little-endian; this machine is not.");
        }

        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case TensorDType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source), destination);
                break;
            case TensorDType.BF16:
                // bfloat16 is the top half of a float32: widening is exact.
                var bits = MemoryMarshal.Cast<byte, ushort>(source);
                var wide = MemoryMarshal.Cast<float, uint>(destination);
                for (var i = 0; i < bits.Length; i++)
                {
                    wide[i] = (uint)bits[i] << 16;
                }

                break;
            case TensorDType.F64:
                var doubles = MemoryMarshal.Cast<byte, double>(source);
                for (var i = 0; i < doubles.Length; i++)
                {
                    destination[i] = (float)doubles[i];
                }

                break;
            default:
                throw new CheckpointException($"A {dtype} tensor cannot be read as float32.");
        }
    }
}
