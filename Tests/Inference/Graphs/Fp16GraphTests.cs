using System.Runtime.InteropServices;
using Onnx;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// The fp16 graphs, checked on the CPU as a stand-in for CUDA, where they are meant to run (no GPU here): their
/// structure (weights stored in float16 with the checkpoint's values rounded, every product in float16, every
/// LayerNorm and softmax fed and computed in float32, finite mask fills, float32 outputs), and that ONNX Runtime
/// loads and runs them. The CPU provider runs them by casting what it has no float16 kernel for up to float32, so
/// its results measure the rounding of the weights and of the values between nodes, not CUDA's float16 arithmetic:
/// the error on a GPU is measured by <c>Bench --scenario precision</c> (docs/PERFORMANCE.md).
/// </summary>
public sealed class Fp16GraphTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("fp16-graph-");

    public void Dispose() => _work.Delete(recursive: true);

    public static TheoryData<string, GraphVariant, bool> Cases()
    {
        var data = new TheoryData<string, GraphVariant, bool>();
        foreach (var architecture in ArchitectureOracles.Architectures)
        {
            data.Add(architecture, GraphVariant.Plain, true);
            data.Add(architecture, GraphVariant.Fused, true);
            data.Add(architecture, GraphVariant.Fused, false);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fp16_graphs_take_products_in_float16_and_LayerNorm_and_softmax_in_float32_CPU_stand_in_for_CUDA(string architecture, GraphVariant variant, bool packed)
    {
        var folder = ArchitectureOracles.Folder(architecture);
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        using var checkpoint = new BaseModelCheckpoint(SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors")));
        var onnx = NativeEncoderGraphs.Build(
            checkpoint, config, null, Path.Combine(_work.FullName, "built"), new NativeGraphOptions { Variant = variant, Packed = packed, Precision = GraphPrecision.Fp16 });
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        var types = GraphTypes.Infer(model);
        const int float32 = (int)TensorProto.Types.DataType.Float, float16 = (int)TensorProto.Types.DataType.Float16;

        string Describe(NodeProto n) => $"{n.OpType} {n.Name} ({string.Join(", ", n.Input.Where(i => i.Length > 0).Select(i => $"{i}: {types[i]}"))})";

        var normalising = model.Graph.Node.Where(n => n.OpType is "LayerNormalization" or "SkipLayerNormalization" or "Softmax").ToList();
        Assert.NotEmpty(normalising);
        Assert.All(normalising, n =>
        {
            Assert.True(n.Input.Where(i => i.Length > 0).All(i => types[i] == float32), $"{Describe(n)} should take float32 only");
            Assert.Equal(float32, types[n.Output[0]]);
        });

        var products = model.Graph.Node.Where(n => n.OpType is "MatMul" or "Attention" or "MultiHeadAttention" or "BiasGelu").ToList();
        Assert.NotEmpty(products);
        Assert.All(products, n => Assert.True(
            n.Input.Where(i => i.Length > 0 && types[i] is float32 or float16).All(i => types[i] == float16),
            $"{Describe(n)} should take float16"));

        Assert.All(
            model.Graph.Node.Where(n => n.Attribute.Any(a => a.Name == "mask_filter_value")),
            n => Assert.Equal(-65504f, n.Attribute.Single(a => a.Name == "mask_filter_value").F));
        Assert.All(model.Graph.Output, o => Assert.Equal(float32, o.Type.TensorType.ElemType));

        // Weights: the checkpoint's values rounded to float16 (products, embeddings); float32 as they are (LayerNorm).
        var weights = File.ReadAllBytes(Path.Combine(Path.GetDirectoryName(onnx)!, NativeEncoderGraphs.WeightsFileName));
        var words = Initializer(model, "embeddings.word_embeddings.weight");
        Assert.Equal(float16, words.DataType);
        var expected = checkpoint.ReadFloat32("embeddings.word_embeddings.weight");
        Assert.Equal(expected.Select(v => (Half)v), External<Half>(words, weights));

        var normWeight = Initializer(model, "embeddings.LayerNorm.weight");
        Assert.Equal(float32, normWeight.DataType);
        Assert.Equal(checkpoint.ReadFloat32("embeddings.LayerNorm.weight"), External<float>(normWeight, weights));

        // Every matrix is float16, but one that only a LayerNorm reads (DeBERTa v2's relative table, normalised first).
        var matrices = model.Graph.Initializer.Where(i => i.Dims.Count == 2 && i.DataType is float32 or float16).ToList();
        Assert.All(matrices, m => Assert.True(
            m.DataType == float16 || model.Graph.Node.Where(n => n.Input.Contains(m.Name)).All(n => n.OpType == "LayerNormalization"),
            $"{m.Name} should be stored in float16"));

        // ONNX Runtime accepts the graph: its checks and type inference pass when a session opens it.
        using var session = GraphSessions.OpenFp16OnCpu(onnx);
        Assert.Equal(NativeEncoderGraphs.OutputName, session.OutputMetadata.Keys.First());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fp16_graphs_run_and_stay_close_to_transformers_CPU_stand_in_for_CUDA(string architecture, GraphVariant variant, bool packed)
    {
        var oracle = ArchitectureOracles.Load(architecture);
        var folder = ArchitectureOracles.Folder(architecture);
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        string onnx;
        using (var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors")))
        {
            onnx = NativeEncoderGraphs.Build(
                checkpoint, config, null, Path.Combine(_work.FullName, "built"), new NativeGraphOptions { Variant = variant, Packed = packed, Precision = GraphPrecision.Fp16 });
        }

        using var session = GraphSessions.OpenFp16OnCpu(onnx);
        var tokens = oracle.Inputs[0].InputIds.Length;
        var batch = GraphSessions.Run(session, [.. oracle.Inputs.Select(i => i.InputIds)], [.. oracle.Inputs.Select(i => i.AttentionMask)], [NativeEncoderGraphs.OutputName])[0];
        var hidden = config.HiddenSize;
        var worstCosine = 1.0;
        var worstDelta = 0.0;
        for (var s = 0; s < oracle.Inputs.Length; s++)
        {
            var expected = oracle.HiddenStates[s][^1];
            for (var t = 0; t < expected.Length; t++)
            {
                var actual = batch.AsSpan(((s * tokens) + t) * hidden, hidden);
                worstCosine = Math.Min(worstCosine, Cosine(actual, expected[t]));
                for (var c = 0; c < hidden; c++)
                {
                    worstDelta = Math.Max(worstDelta, Math.Abs(actual[c] - expected[t][c]));
                }
            }
        }

        // Per token, the last hidden state (unnormalised, LayerNorm-scaled values of order 1).
        TestContext.Current.TestOutputHelper?.WriteLine($"{architecture} {variant} packed={packed}: min cosine {worstCosine:F7}, max |Δ| {worstDelta:E2}");
        Assert.True(worstCosine >= 0.9999, $"min cosine {worstCosine:F7}");
        Assert.True(worstDelta <= 1e-2, $"max |Δ| {worstDelta:E2}");
    }

    private static TensorProto Initializer(ModelProto model, string name) => model.Graph.Initializer.Single(i => i.Name == name);

    private static T[] External<T>(TensorProto tensor, byte[] file)
        where T : unmanaged
    {
        var offset = int.Parse(tensor.ExternalData.Single(e => e.Key == "offset").Value);
        var length = int.Parse(tensor.ExternalData.Single(e => e.Key == "length").Value);
        return MemoryMarshal.Cast<byte, T>(file.AsSpan(offset, length)).ToArray();
    }

    private static double Cosine(ReadOnlySpan<float> a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (var i = 0; i < b.Length; i++)
        {
            dot += a[i] * (double)b[i];
            na += a[i] * (double)a[i];
            nb += b[i] * (double)b[i];
        }

        return dot / Math.Sqrt(na * nb);
    }
}

/// <summary>The element type of every tensor of a built graph, propagated from its inputs and initializers through the operators the builder writes.</summary>
internal static class GraphTypes
{
    public static Dictionary<string, int> Infer(ModelProto model)
    {
        var types = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var input in model.Graph.Input)
        {
            types[input.Name] = input.Type.TensorType.ElemType;
        }

        foreach (var initializer in model.Graph.Initializer)
        {
            types[initializer.Name] = initializer.DataType;
        }

        // The builder writes nodes in order: each input is known before its consumers.
        foreach (var node in model.Graph.Node)
        {
            var type = node.OpType switch
            {
                "Cast" => (int)node.Attribute.Single(a => a.Name == "to").I,
                "Shape" or "NonZero" => (int)TensorProto.Types.DataType.Int64,
                "Equal" or "Not" or "And" or "Less" or "Greater" => (int)TensorProto.Types.DataType.Bool,
                "Where" => types[node.Input[1]],
                _ => types[node.Input[0]],
            };
            foreach (var output in node.Output)
            {
                types[output] = type;
            }
        }

        return types;
    }
}
