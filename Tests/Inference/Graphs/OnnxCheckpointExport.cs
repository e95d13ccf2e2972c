using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Onnx;
using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>Writes a checkpoint's float32 tensors as a <c>model.safetensors</c> (the bundled MiniLM's export, read back by <see cref="OnnxExportCheckpoint"/>).</summary>
internal static class OnnxCheckpointExport
{
    public static Dictionary<string, (float[] Data, long[] Shape)> Tensors(ModelProto model) =>
        OnnxExportCheckpoint.FromModel(model).Tensors.ToDictionary(t => t.Name, t => (t.Data, t.Shape), StringComparer.Ordinal);

    /// <summary>Writes float32 tensors as a safetensors file: u64 header length, JSON header, data.</summary>
    public static void WriteSafetensors(string path, IReadOnlyDictionary<string, (float[] Data, long[] Shape)> tensors)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        long offset = 0;
        var ordered = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToArray();
        foreach (var (name, (data, shape)) in ordered)
        {
            var length = data.Length * 4L;
            header[name] = new { dtype = "F32", shape, data_offsets = new[] { offset, offset + length } };
            offset += length;
        }

        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var padded = json.Concat(Enumerable.Repeat((byte)' ', (8 - (json.Length % 8)) % 8)).ToArray();
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)padded.Length));
        stream.Write(padded);
        foreach (var (_, (data, _)) in ordered)
        {
            stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
        }
    }
}
