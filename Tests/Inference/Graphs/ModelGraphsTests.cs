using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// Serving a model that has no ONNX export: <see cref="ModelGraphs"/> builds its graph from the checkpoint with the
/// layers asked for, keeps it, and the embedding and BERTScore models load through it with the oracles' numbers.
/// </summary>
public sealed class ModelGraphsTests : IDisposable
{
    private const double Tolerance = 1e-5;

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("model-graphs-");

    public void Dispose() => _work.Delete(recursive: true);

    private string Models => Path.Combine(_work.FullName, "models");

    private string Cache => Path.Combine(_work.FullName, "graphs");

    [Fact]
    public void BERTScore_of_a_deberta_checkpoint_at_layer_L_is_bert_scores_over_the_oracle_hidden_states_from_a_graph_of_L_layers()
    {
        var folder = WriteTinyDeberta("acme/tiny-deberta");
        var graphs = new ModelGraphs(Cache);
        using var model = new BertScoreModel(folder, graphs, MiniLmFixture.EncoderOptions);
        Assert.Equal(3, model.TotalLayers);
        Assert.Equal(3, model.DefaultLayer); // not in bert_score's table: its last layer

        // The texts tokenize to the oracle's inputs, so the oracle's hidden states are the expected ones.
        for (var i = 0; i < TinyDeberta.Oracle.Inputs.Length; i++)
        {
            Assert.Equal(TinyDeberta.Oracle.Inputs[i].InputIds[..TinyDeberta.Oracle.Lengths[i]], model.Encode(TinyDeberta.Text(i)).Select(id => (long)id));
        }

        int[] candidates = [0, 1, 2, 3];
        int[] references = [1, 2, 3, 0];
        foreach (var (layer, idf) in new[] { (2, false), (3, true), (1, true) })
        {
            var result = model.Score(new BertScoreRequest
            {
                Candidates = [.. candidates.Select(TinyDeberta.Text)],
                References = [.. references.Select(r => (IReadOnlyList<string>)[TinyDeberta.Text(r)])],
                NumLayers = layer,
                Idf = idf,
            });
            var expected = TinyDeberta.ExpectedScores(candidates, references, layer, idf);
            AssertClose(expected.P, result.Precision, $"P, layer {layer}");
            AssertClose(expected.R, result.Recall, $"R, layer {layer}");
            AssertClose(expected.F, result.F1, $"F, layer {layer}");
        }

        // One graph per layer asked for, each built with exactly that many layers: nothing to cut.
        Assert.Equal(3, Directory.GetDirectories(Cache).Length);
        Assert.All([1, 2, 3], layer => Assert.False(graphs.Get(folder, layer).Cut));
    }

    [Fact]
    public void Embeddings_of_a_safetensors_minilm_equal_sentence_transformers_through_the_built_graph()
    {
        var directory = Path.Combine(Models, "acme", "minilm-native");
        NativeMiniLm.WriteFolder(directory);
        var folder = new ModelStore(Models).Resolve("acme/minilm-native");
        Assert.Equal(WeightsFormat.Safetensors, folder.Weights.Format);

        using var model = EmbeddingModel.Load(folder, new ModelGraphs(Cache), MiniLmFixture.EncoderOptions);
        Assert.True(model.PoolsInGraph);
        Assert.True(model.Normalizes);
        var oracle = Oracles.Embed;
        var texts = oracle.Texts.Take(64).ToArray();
        var embeddings = model.Embed(texts);
        var worst = 0.0;
        for (var i = 0; i < texts.Length; i++)
        {
            for (var d = 0; d < model.Dimensions; d++)
            {
                worst = Math.Max(worst, Math.Abs(embeddings[(i * model.Dimensions) + d] - oracle.Embeddings[i][d]));
            }
        }

        Assert.True(worst <= Tolerance, $"max |Δ| = {worst:E2}");
    }

    [Fact]
    public void Concurrent_builds_of_one_graph_in_a_process_build_it_once()
    {
        var folder = ArchitectureOracles.Folder("deberta");
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        var built = Enumerable.Range(0, 6).AsParallel().WithDegreeOfParallelism(6).Select(_ =>
        {
            using var checkpoint = ModelWeights.Open(folder);
            return NativeEncoderGraphs.GetOrBuildGraph(folder, checkpoint, config, 2, Cache);
        }).ToList();

        Assert.Single(built, g => g.Built);
        Assert.Single(built.Select(g => g.OnnxPath).Distinct());
        Assert.Single(Directory.GetDirectories(Cache));
    }

    [Fact]
    public void A_graph_cache_copied_with_the_huggingface_cache_to_other_folders_is_used_there_without_building()
    {
        var files = TinyDeberta.Repo();
        var commit = new string('a', 40);
        var cache = Path.Combine(_work.FullName, "hf");
        HubDownloadTests.BuildPythonCache(cache, "acme/tiny-deberta", commit, files);
        var snapshot = Path.Combine(cache, "models--acme--tiny-deberta", "snapshots", commit);
        var first = Build(snapshot, Cache);
        Assert.True(first.Built);

        // Another machine: both caches copied elsewhere, the files' times not kept.
        var copiedCache = Path.Combine(_work.FullName, "elsewhere", "hf");
        HubDownloadTests.BuildPythonCache(copiedCache, "acme/tiny-deberta", commit, files);
        var copiedGraphs = Path.Combine(_work.FullName, "elsewhere", "graphs");
        CopyFolder(Cache, copiedGraphs);
        var copied = Build(Path.Combine(copiedCache, "models--acme--tiny-deberta", "snapshots", commit), copiedGraphs);

        Assert.False(copied.Built);
        Assert.Equal(Path.GetFileName(first.Folder), Path.GetFileName(copied.Folder));

        // Other weights behind the same names are another graph.
        var changed = new Dictionary<string, byte[]>(files) { ["pytorch_model.bin"] = File.ReadAllBytes(Path.Combine(ArchitectureOracles.Folder("deberta"), "pytorch_model.legacy.bin")) };
        var other = Path.Combine(_work.FullName, "other", "hf");
        HubDownloadTests.BuildPythonCache(other, "acme/tiny-deberta", commit, changed);
        Assert.True(Build(Path.Combine(other, "models--acme--tiny-deberta", "snapshots", commit), copiedGraphs).Built);
    }

    private static NativeGraph Build(string modelDirectory, string cache)
    {
        using var checkpoint = ModelWeights.Open(modelDirectory);
        return NativeEncoderGraphs.GetOrBuildGraph(modelDirectory, checkpoint, ModelArchitectureConfig.Read(Path.Combine(modelDirectory, "config.json")), 2, cache);
    }

    private ModelFolder WriteTinyDeberta(string name)
    {
        var directory = Path.Combine(Models, name);
        foreach (var (file, content) in TinyDeberta.Repo())
        {
            Directory.CreateDirectory(directory);
            File.WriteAllBytes(Path.Combine(directory, file), content);
        }

        var folder = new ModelStore(Models).Resolve(name);
        Assert.Equal(WeightsFormat.PyTorch, folder.Weights.Format);
        return folder;
    }

    private static void CopyFolder(string source, string target)
    {
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var copy = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        TestContext.Current.TestOutputHelper?.WriteLine($"{what}: max |Δ| = {worst:E2}");
        Assert.True(worst <= Tolerance, $"{what}: max |Δ| = {worst:E2} (expected {string.Join(", ", expected)}; got {string.Join(", ", actual)})");
    }
}
