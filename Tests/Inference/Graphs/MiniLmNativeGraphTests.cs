using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// The bundled all-MiniLM-L6-v2, turned back into a Hugging Face checkpoint from its ONNX initializers and built by
/// the native builder: the same hidden states as the ONNX file, and through <see cref="EmbeddingModel"/> (pooling
/// appended to the built graph, as for an export) the sentence-transformers oracle's embeddings.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class MiniLmNativeGraphTests(MiniLmFixture minilm, MiniLmCheckpointFixture checkpoint) : IClassFixture<MiniLmCheckpointFixture>
{
    private const float Tolerance = 1e-5f;

    public static TheoryData<GraphVariant, bool> Graphs() => new()
    {
        { GraphVariant.Plain, false },
        { GraphVariant.Fused, false },
        { GraphVariant.Plain, true },
        { GraphVariant.Fused, true },
    };

    [Theory]
    [MemberData(nameof(Graphs))]
    public void The_built_graph_gives_the_onnx_files_hidden_states_within_1e5_on_the_oracle_texts(GraphVariant variant, bool packed)
    {
        using var native = OnnxEncoder.Open(checkpoint.Build(new NativeGraphOptions { Variant = variant, Packed = packed }), MiniLmFixture.EncoderOptions);
        using var exported = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
        // In the oracle's order: batches of texts of every length, much of each pass padding (not compared).
        var sequences = Oracles.Embed.InputIds;
        var worst = 0f;
        for (var start = 0; start < sequences.Length; start += 32)
        {
            var batch = sequences.Skip(start).Take(32).ToArray();
            using var expected = exported.Run(batch, 0);
            using var actual = native.Run(batch, 0);
            Assert.Equal(expected.HiddenSize, actual.HiddenSize);
            for (var s = 0; s < batch.Length; s++)
            {
                for (var t = 0; t < batch[s].Length; t++)
                {
                    var e = expected.Token(s, t);
                    var a = actual.Token(s, t);
                    for (var c = 0; c < e.Length; c++)
                    {
                        worst = Math.Max(worst, Math.Abs(a[c] - e[c]));
                    }
                }
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"hidden states, {variant}, packed {packed}: max |Δ| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2}");
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Embeddings_through_the_built_graph_equal_sentence_transformers_within_1e5(GraphVariant variant, bool packed)
    {
        var folder = minilm.Folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [checkpoint.Build(new NativeGraphOptions { Variant = variant, Packed = packed })]) };
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.True(model.PoolsInGraph);

        var oracle = Oracles.Embed;
        var embeddings = model.Embed(oracle.Texts);
        Assert.Equal(384, model.Dimensions);
        var worst = 0f;
        for (var i = 0; i < oracle.Texts.Length; i++)
        {
            for (var d = 0; d < model.Dimensions; d++)
            {
                worst = Math.Max(worst, Math.Abs(embeddings[(i * model.Dimensions) + d] - oracle.Embeddings[i][d]));
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"embeddings, {variant}, packed {packed}: max |Δ| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2}");
    }

    /// <summary>
    /// The issue's precision goals for fp16 (embeddings: cosine ≥ 0.9999 per text and max |Δ| ≤ 2e-3; BERTScore F1
    /// |Δ| ≤ 1e-3), against the fp32 oracles, with the fp16 graph run on the CPU as a stand-in for CUDA: the CPU
    /// provider computes the float16 products in float32, so this bounds the error of the float16 weights and of
    /// the float16 values between nodes, not of CUDA's float16 arithmetic (Bench's precision scenario measures that).
    /// </summary>
    [Theory]
    [InlineData(GraphVariant.Plain)]
    [InlineData(GraphVariant.Fused)]
    public void Fp16_embeddings_and_BERTScore_stay_within_the_precision_goals_CPU_stand_in_for_CUDA(GraphVariant variant)
    {
        var graph = checkpoint.Build(new NativeGraphOptions { Variant = variant, Precision = GraphPrecision.Fp16 });
        var folder = minilm.Folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [graph]) };
        var oracle = Oracles.Embed;
        double worstCosine = 1, worstDelta = 0;
        using (var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions))
        {
            var embeddings = model.Embed(oracle.Texts);
            for (var i = 0; i < oracle.Texts.Length; i++)
            {
                var actual = embeddings.AsSpan(i * model.Dimensions, model.Dimensions);
                double dot = 0, na = 0, nb = 0;
                for (var d = 0; d < model.Dimensions; d++)
                {
                    dot += actual[d] * (double)oracle.Embeddings[i][d];
                    na += actual[d] * (double)actual[d];
                    nb += oracle.Embeddings[i][d] * (double)oracle.Embeddings[i][d];
                    worstDelta = Math.Max(worstDelta, Math.Abs(actual[d] - oracle.Embeddings[i][d]));
                }

                worstCosine = Math.Min(worstCosine, dot / Math.Sqrt(na * nb));
            }
        }

        var worstF1 = 0.0;
        using (var model = new BertScoreModel(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions))
        {
            foreach (var run in new[] { "L6_noidf", "L4_idf" })
            {
                var expected = Oracles.BertScore.Runs[run];
                var result = model.Score(BertScoreOracleTests.RequestFor(run), TestContext.Current.CancellationToken);
                worstF1 = Math.Max(worstF1, expected.F.Zip(result.F1, (e, a) => Math.Abs(e - a)).Max());
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine(
            $"fp16 {variant} on the CPU: embeddings min cosine {worstCosine:F7}, max |Δ| {worstDelta:E2}; BERTScore F1 max |Δ| {worstF1:E2}");
        Assert.True(worstCosine >= 0.9999, $"min cosine {worstCosine:F7}");
        Assert.True(worstDelta <= 2e-3, $"max |Δ| {worstDelta:E2}");
        Assert.True(worstF1 <= 1e-3, $"F1 max |Δ| {worstF1:E2}");
    }

    [Theory]
    [InlineData("L6_noidf")]
    [InlineData("L4_idf")]
    public void BERTScore_through_the_built_graph_equals_bert_score_within_1e5(string run)
    {
        // Layer 4 is the built (packed) graph cut by LayerCut, as BERTScore cuts exports today: packed graphs keep
        // every layer's output padded, where the cut looks for it.
        var folder = minilm.Folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [checkpoint.Build(new NativeGraphOptions())]) };
        using var model = new BertScoreModel(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        var expected = Oracles.BertScore.Runs[run];
        var result = model.Score(BertScoreOracleTests.RequestFor(run), TestContext.Current.CancellationToken);

        BertScoreOracleTests.AssertClose(expected.P, result.Precision, "P");
        BertScoreOracleTests.AssertClose(expected.R, result.Recall, "R");
        BertScoreOracleTests.AssertClose(expected.F, result.F1, "F");
        Assert.Equal(expected.Hash, result.Hash);
    }
}

/// <summary>
/// The bundled MiniLM as a folder without its ONNX file (<see cref="NativeMiniLm"/>); graphs built from it into a cache beside it.
/// </summary>
public sealed class MiniLmCheckpointFixture : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("native-minilm-");

    public MiniLmCheckpointFixture()
    {
        ModelDirectory = Path.Combine(_work.FullName, "model");
        NativeMiniLm.WriteFolder(ModelDirectory);
    }

    public string ModelDirectory { get; }

    public string Build(NativeGraphOptions options)
    {
        var config = ModelArchitectureConfig.Read(Path.Combine(ModelDirectory, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(ModelDirectory, "model.safetensors"));
        return NativeEncoderGraphs.GetOrBuild(ModelDirectory, checkpoint, config, null, Path.Combine(_work.FullName, "cache"), options);
    }

    public void Dispose() => _work.Delete(recursive: true);
}
