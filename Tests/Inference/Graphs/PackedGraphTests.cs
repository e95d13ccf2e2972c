using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// What packing buys, read from ONNX Runtime's own profile of a run: in a packed graph every product with a weight
/// matrix (projections, feed-forward) runs on the batch's real tokens, where the padded graph runs it on every
/// position. The oracle batch has lengths 3, 9, 17 and 126 padded to 126: 155 real tokens of 504 positions.
/// (That the packed results equal transformers' is <see cref="ArchitectureOracleTests"/>.)
/// </summary>
public sealed class PackedGraphTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("packed-graph-");

    public void Dispose() => _work.Delete(recursive: true);

    public static TheoryData<string, GraphVariant> Cases()
    {
        var data = new TheoryData<string, GraphVariant>();
        foreach (var architecture in ArchitectureOracles.Architectures)
        {
            data.Add(architecture, GraphVariant.Plain);
            data.Add(architecture, GraphVariant.Fused);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Packed_graphs_run_every_weight_product_on_the_real_tokens_only(string architecture, GraphVariant variant)
    {
        var oracle = ArchitectureOracles.Load(architecture);
        var real = oracle.Lengths.Sum();
        var positions = oracle.Inputs.Length * oracle.Inputs[0].InputIds.Length;
        Assert.True(real < positions / 3, "the oracle batch should be mostly padding");

        var packed = WeightProductRows(architecture, variant, packed: true);
        var padded = WeightProductRows(architecture, variant, packed: false);

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{architecture} {variant}: rows per weight product, packed [{string.Join(", ", packed.Distinct())}], padded [{string.Join(", ", padded.Distinct())}]");

        // The padded graph runs its projections on all 504 positions, the packed one on the 155 real tokens, and at
        // least as many of them (fused BERT's QKV projection leaves the Attention kernel to run packed). DeBERTa's
        // relative-position projections run on 2L rows in both: they are per distance, not per token.
        Assert.Contains(positions, padded);
        Assert.DoesNotContain(positions, packed);
        Assert.True(packed.Count(r => r == real) >= padded.Count(r => r == positions));
    }

    /// <summary>Runs the oracle batch once with profiling on; returns, per product of an activation with a weight matrix, the activation's rows.</summary>
    private List<long> WeightProductRows(string architecture, GraphVariant variant, bool packed)
    {
        var folder = ArchitectureOracles.Folder(architecture);
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        var output = Path.Combine(_work.FullName, $"{architecture}-{variant}-{packed}");
        string onnx;
        using (var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors")))
        {
            onnx = NativeEncoderGraphs.Build(checkpoint, config, null, output, new NativeGraphOptions { Variant = variant, Packed = packed });
        }

        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = 1,
            EnableProfiling = true,
            ProfileOutputPathPrefix = Path.Combine(output, "profile"),
        };
        string profile;
        using (var session = new InferenceSession(onnx, options))
        {
            var oracle = ArchitectureOracles.Load(architecture);
            GraphSessions.Run(session, [.. oracle.Inputs.Select(i => i.InputIds)], [.. oracle.Inputs.Select(i => i.AttentionMask)], [NativeEncoderGraphs.OutputName]);
            profile = session.EndProfiling();
        }

        using var events = JsonDocument.Parse(File.ReadAllBytes(profile));
        var rows = new List<long>();
        foreach (var e in events.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() != "Node" || !e.TryGetProperty("args", out var args)
                || !args.TryGetProperty("op_name", out var op) || op.GetString() is not ("MatMul" or "Gemm" or "FusedMatMul")
                || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal))
            {
                continue;
            }

            // The profile lists activations, not the weights ONNX Runtime packed in advance: a weight product's activation is
            // [rows, in] or [B, L, in]; the attention products are [B, heads, L, d].
            var activation = Shape(args.GetProperty("input_type_shape")[0]);
            if (activation.Length is 2 or 3)
            {
                rows.Add(activation[..^1].Aggregate(1L, (n, d) => n * d));
            }
        }

        Assert.NotEmpty(rows);
        return rows;
    }

    private static long[] Shape(JsonElement typed) => [.. typed.EnumerateObject().Single().Value.EnumerateArray().Select(d => d.GetInt64())];
}
