using System.Runtime.InteropServices;
using Onnx;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// The weights of an exported encoder (<c>model.onnx</c>, float32 initializers inside the protobuf) under the Hugging
/// Face base-model names, read back from the graph's structure: an initializer named like a parameter keeps its name;
/// a MatMul weight stored under a generated name (<c>onnx::MatMul_N</c>) is the <c>[in, out]</c> transpose of the
/// Linear layer whose bias (<c>….bias</c>) is added to the product. For building a native graph (another precision,
/// packed tokens) of a model that ships only as an export, such as the bundled all-MiniLM-L6-v2.
/// </summary>
public sealed class OnnxExportCheckpoint : ICheckpoint
{
    private readonly Dictionary<string, (float[] Data, long[] Shape)> _tensors;

    private OnnxExportCheckpoint(Dictionary<string, (float[] Data, long[] Shape)> tensors) => _tensors = tensors;

    public static OnnxExportCheckpoint Open(string onnxPath) => FromModel(ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnxPath)));

    public static OnnxExportCheckpoint FromModel(ModelProto model)
    {
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var tensors = new Dictionary<string, (float[], long[])>(StringComparer.Ordinal);
        foreach (var init in initializers.Values.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float && IsParameterName(i.Name)))
        {
            tensors[init.Name] = (Floats(init), [.. init.Dims]);
        }

        foreach (var matmul in model.Graph.Node.Where(n => n.OpType == "MatMul" && initializers.ContainsKey(n.Input[1]) && !IsParameterName(n.Input[1])))
        {
            var add = model.Graph.Node.FirstOrDefault(n => n.OpType == "Add" && n.Input.Contains(matmul.Output[0]));
            var bias = add?.Input.FirstOrDefault(i => i != matmul.Output[0] && i.EndsWith(".bias", StringComparison.Ordinal))
                ?? throw new CheckpointException($"The export's MatMul weight {matmul.Input[1]} is not followed by a named bias, so its Linear layer cannot be named.");
            var weight = initializers[matmul.Input[1]];
            if (weight.Dims.Count != 2)
            {
                throw new CheckpointException($"The export's MatMul weight {matmul.Input[1]} has {weight.Dims.Count} dimensions; a Linear weight has 2.");
            }

            int rows = (int)weight.Dims[0], columns = (int)weight.Dims[1];
            tensors[bias[..^".bias".Length] + ".weight"] = (Transpose(Floats(weight), rows, columns), [columns, rows]);
        }

        return new OnnxExportCheckpoint(tensors);
    }

    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <summary>Every tensor with its shape, for writing them elsewhere (a safetensors file).</summary>
    public IEnumerable<(string Name, float[] Data, long[] Shape)> Tensors => _tensors.Select(t => (t.Key, t.Value.Data, t.Value.Shape));

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo Info(string name) => new(name, TensorDType.F32, Get(name).Shape);

    public float[] ReadFloat32(string name) => (float[])Get(name).Data.Clone();

    public void Dispose()
    {
    }

    private (float[] Data, long[] Shape) Get(string name) =>
        _tensors.TryGetValue(name, out var tensor) ? tensor : throw new CheckpointException($"The export has no tensor {name}.");

    private static bool IsParameterName(string name) => name.Contains('.') && !name.StartsWith("onnx::", StringComparison.Ordinal);

    private static float[] Floats(TensorProto tensor) => tensor.DataLocation == TensorProto.Types.DataLocation.External
        ? throw new CheckpointException($"{tensor.Name} is stored outside the export's protobuf, which is not read here.")
        : tensor.RawData.Length > 0 ? MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray() : [.. tensor.FloatData];

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
