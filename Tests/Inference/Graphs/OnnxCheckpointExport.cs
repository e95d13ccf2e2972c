using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Onnx;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// Turns an exported BERT ONNX graph back into a Hugging Face checkpoint (<c>model.safetensors</c>, base-model names),
/// reading the names from the graph's structure: named initializers keep their names; a MatMul weight stored under a
/// generated name (<c>onnx::MatMul_N</c>, a number) is the <c>[in, out]</c> transpose of the Linear layer whose bias
/// (<c>….bias</c>) the MatMul's result is added to.
/// </summary>
internal static class OnnxCheckpointExport
{
    public static Dictionary<string, (float[] Data, long[] Shape)> Tensors(ModelProto model)
    {
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var result = new Dictionary<string, (float[], long[])>(StringComparer.Ordinal);
        foreach (var init in initializers.Values.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float && IsParameterName(i.Name)))
        {
            result[init.Name] = (Floats(init), [.. init.Dims]);
        }

        foreach (var matmul in model.Graph.Node.Where(n => n.OpType == "MatMul" && initializers.ContainsKey(n.Input[1]) && !IsParameterName(n.Input[1])))
        {
            var add = model.Graph.Node.Single(n => n.OpType == "Add" && n.Input.Contains(matmul.Output[0]));
            var bias = add.Input.Single(i => i != matmul.Output[0]);
            Assert.EndsWith(".bias", bias);
            var weight = initializers[matmul.Input[1]];
            int rows = (int)weight.Dims[0], columns = (int)weight.Dims[1];
            result[bias[..^".bias".Length] + ".weight"] = (Transpose(Floats(weight), rows, columns), [columns, rows]);
        }

        return result;
    }

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

    private static bool IsParameterName(string name) => name.Contains('.') && !name.StartsWith("onnx::", StringComparison.Ordinal);

    private static float[] Floats(TensorProto tensor) =>
        tensor.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray() : [.. tensor.FloatData];

    private static float[] Transpose(float[] source, int rows, int columns)
    {
        var result = new float[source.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                result[(c * rows) + r] = source[(r * columns) + c];
            }
        }

        return result;
    }
}
