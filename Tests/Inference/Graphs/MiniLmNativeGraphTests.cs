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

    [Theory]
    [InlineData(GraphVariant.Plain)]
    [InlineData(GraphVariant.Fused)]
    public void The_built_graph_gives_the_onnx_files_hidden_states_within_1e5_on_the_oracle_texts(GraphVariant variant)
    {
        using var native = OnnxEncoder.Open(checkpoint.Build(variant), MiniLmFixture.EncoderOptions);
        using var exported = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
        // Longest first, so each batch pads little (the padding rows are not compared).
        var sequences = Oracles.Embed.InputIds.OrderByDescending(s => s.Length).ToArray();
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

        TestContext.Current.TestOutputHelper?.WriteLine($"hidden states, {variant}: max |Δ| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2}");
    }

    [Theory]
    [InlineData(GraphVariant.Plain)]
    [InlineData(GraphVariant.Fused)]
    public void Embeddings_through_the_built_graph_equal_sentence_transformers_within_1e5(GraphVariant variant)
    {
        var folder = minilm.Folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [checkpoint.Build(variant)]) };
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

        TestContext.Current.TestOutputHelper?.WriteLine($"embeddings, {variant}: max |Δ| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2}");
    }

    [Theory]
    [InlineData("L6_noidf")]
    [InlineData("L4_idf")]
    public void BERTScore_through_the_built_graph_equals_bert_score_within_1e5(string run)
    {
        // Layer 4 is the built graph cut by LayerCut, as BERTScore cuts exports today.
        var folder = minilm.Folder with { Weights = new WeightFiles(WeightsFormat.Onnx, [checkpoint.Build(NativeEncoderGraphs.DefaultVariant)]) };
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

    public string Build(GraphVariant variant)
    {
        var config = ModelArchitectureConfig.Read(Path.Combine(ModelDirectory, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(ModelDirectory, "model.safetensors"));
        return NativeEncoderGraphs.GetOrBuild(
            ModelDirectory, checkpoint, config, null, Path.Combine(_work.FullName, "cache"), new NativeGraphOptions { Variant = variant });
    }

    public void Dispose() => _work.Delete(recursive: true);
}
