using System.Text.Json.Nodes;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>
/// <see cref="ModelGraphs"/> in fp16 for a model served from an ONNX export (the bundled all-MiniLM-L6-v2): the fp16
/// graph is built from the export's own weights into its own cache entry, while fp32 keeps serving the export; an
/// export the builder cannot take is <see cref="PrecisionUnavailableException"/>, which hosts answer in fp32. Run on the
/// CPU as a STAND-IN for CUDA (the CPU provider computes the fp16 graph's products in float32).
/// </summary>
public sealed class ModelGraphsPrecisionTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("model-graphs-precision-");

    public void Dispose() => _work.Delete(recursive: true);

    private string Cache => Path.Combine(_work.FullName, "graphs");

    [Fact]
    public void Fp16_of_an_export_is_a_graph_built_from_its_weights_in_its_own_cache_entry_within_the_goals_of_the_oracle_cpu_stand_in()
    {
        var folder = new ModelStore(Paths.TestModels).Resolve("all-MiniLM-L6-v2");
        var fp32 = new ModelGraphs(Cache);
        var fp16 = fp32.WithPrecision(GraphPrecision.Fp16);
        Assert.Equal(GraphPrecision.Fp16, fp16.Precision);
        Assert.Equal(folder.Weights.OnnxPath, fp32.Get(folder).OnnxPath);

        var graph = fp16.Get(folder);
        Assert.StartsWith(Path.GetFullPath(Cache), graph.OnnxPath, StringComparison.Ordinal);
        Assert.Contains("\"fp16\"", File.ReadAllText(Path.Combine(graph.WeightsFolder, NativeEncoderGraphs.ManifestFileName)));
        Assert.Equal(graph.OnnxPath, fp16.Get(folder).OnnxPath);
        var layer4 = fp16.Get(folder, 4);
        Assert.NotEqual(graph.OnnxPath, layer4.OnnxPath);
        Assert.Equal(4, layer4.Layer);
        Assert.False(layer4.Cut);

        var oracle = Oracles.Embed;
        var texts = oracle.Texts[..64];
        using var model = EmbeddingModel.Load(folder, fp16, MiniLmFixture.EncoderOptions);
        var vectors = model.Embed(texts, new EmbedOptions());
        var dims = model.Dimensions;
        double minCosine = 1, maxDelta = 0;
        for (var i = 0; i < texts.Length; i++)
        {
            var actual = vectors.AsSpan(i * dims, dims);
            var expected = oracle.Embeddings[i];
            double dot = 0, na = 0, nb = 0;
            for (var d = 0; d < dims; d++)
            {
                dot += actual[d] * (double)expected[d];
                na += actual[d] * (double)actual[d];
                nb += expected[d] * (double)expected[d];
                maxDelta = Math.Max(maxDelta, Math.Abs(actual[d] - expected[d]));
            }

            minCosine = Math.Min(minCosine, dot / Math.Sqrt(na * nb));
        }

        Assert.True(minCosine >= 0.9999, $"min cosine {minCosine:F7}");
        Assert.True(maxDelta is <= 2e-3 and > 1e-5, $"max |Δ| {maxDelta:E2}: within 2e-3 of fp32's oracle, and not fp32 itself");
    }

    [Fact]
    public void An_export_whose_architecture_the_builder_does_not_build_is_unavailable_in_fp16_and_still_served_in_fp32()
    {
        var source = new ModelStore(Paths.TestModels).Resolve("all-MiniLM-L6-v2");
        var models = Path.Combine(_work.FullName, "models");
        var target = Path.Combine(models, "acme", "odd-export");
        foreach (var file in Directory.GetFiles(source.Directory, "*", SearchOption.AllDirectories))
        {
            var copy = Path.Combine(target, Path.GetRelativePath(source.Directory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            if (Path.GetFileName(file) == "model.onnx")
            {
                File.CreateSymbolicLink(copy, file);
            }
            else
            {
                File.Copy(file, copy);
            }
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(target, "config.json")))!;
        config["model_type"] = "gpt2";
        File.WriteAllText(Path.Combine(target, "config.json"), config.ToJsonString());
        var folder = new ModelStore(models).Resolve("acme/odd-export");

        var graphs = new ModelGraphs(Cache);
        var error = Assert.Throws<PrecisionUnavailableException>(() => graphs.WithPrecision(GraphPrecision.Fp16).Get(folder));
        Assert.Equal(GraphPrecision.Fp16, error.Precision);
        Assert.Contains("gpt2", error.Message);
        Assert.Equal(folder.Weights.OnnxPath, graphs.Get(folder).OnnxPath);
    }
}
