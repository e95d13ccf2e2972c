using Onnx;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

/// <summary>The builder's contract around the graphs: the build cache, layer counts, external weights and clear errors.</summary>
public sealed class NativeEncoderGraphsTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("native-graphs-");

    public void Dispose() => _work.Delete(recursive: true);

    [Fact]
    public void A_second_GetOrBuild_reuses_the_cached_files()
    {
        var model = CopyModel("deberta");
        var cache = Path.Combine(_work.FullName, "cache");

        var first = GetOrBuild(model, layers: 2, cache);
        var written = Stamps(first);
        var second = GetOrBuild(model, layers: 2, cache);

        Assert.True(first.Built);
        Assert.False(second.Built);
        Assert.Equal(first.OnnxPath, second.OnnxPath);
        Assert.Equal(written, Stamps(second));
        Assert.Single(Directory.GetDirectories(cache));
    }

    [Fact]
    public void A_changed_checkpoint_or_layer_count_rebuilds()
    {
        var model = CopyModel("bert");
        var cache = Path.Combine(_work.FullName, "cache");
        var original = GetOrBuild(model, layers: 1, cache);

        var otherLayer = GetOrBuild(model, layers: 2, cache);
        Assert.True(otherLayer.Built);
        Assert.NotEqual(original.Folder, otherLayer.Folder);

        // New weights in the same file: embeddings' LayerNorm bias + 1 moves every embedding output by 1.
        RewriteCheckpoint(Path.Combine(model, "model.safetensors"), "embeddings.LayerNorm.bias", v => v + 1f);
        var changed = GetOrBuild(model, layers: 1, cache);
        Assert.True(changed.Built);
        Assert.NotEqual(original.Folder, changed.Folder);

        var oracle = ArchitectureOracles.Load("bert");
        var input = oracle.Inputs[0];
        var length = oracle.Lengths[0];
        float[] Embedding(NativeGraph graph)
        {
            using var session = GraphSessions.Open(graph.OnnxPath);
            return GraphSessions.Run(session, [input.InputIds[..length]], [input.AttentionMask[..length]], ["hidden_states.0"])[0];
        }

        var before = Embedding(original);
        var after = Embedding(changed);
        Assert.Equal(oracle.HiddenStates[0][0][0][0], before[0], 1e-5f);
        Assert.All(before.Zip(after), p => Assert.Equal(p.First + 1f, p.Second, 1e-5f));
    }

    [Fact]
    public void A_half_written_cache_folder_is_never_used()
    {
        var model = CopyModel("mpnet");
        var cache = Path.Combine(_work.FullName, "cache");
        var complete = GetOrBuild(model, layers: 3, cache);
        var folder = complete.Folder;

        // As if the machine stopped while the weights were written: the folder is there, the weights are short.
        var weights = Path.Combine(folder, NativeEncoderGraphs.WeightsFileName);
        using (var stream = new FileStream(weights, FileMode.Open))
        {
            stream.SetLength(stream.Length / 2);
        }

        var rebuilt = GetOrBuild(model, layers: 3, cache);
        Assert.True(rebuilt.Built);
        Assert.Equal(complete.OnnxPath, rebuilt.OnnxPath);
        AssertLayerEquals("mpnet", rebuilt, 3);

        // A folder without its manifest (never renamed into place by a finished build) is rebuilt too.
        File.Delete(Path.Combine(folder, NativeEncoderGraphs.ManifestFileName));
        Assert.True(GetOrBuild(model, layers: 3, cache).Built);

        // A build in progress elsewhere (a temporary folder) is neither used nor disturbed.
        var building = Directory.CreateDirectory(Path.Combine(cache, $".building-{Path.GetFileName(folder)}-other")).FullName;
        Assert.False(GetOrBuild(model, layers: 3, cache).Built);
        Assert.True(Directory.Exists(building));
    }

    [Theory]
    [InlineData("deberta", 0)]
    [InlineData("deberta-v2", 1)]
    [InlineData("distilbert", 2)]
    public void Only_the_layers_asked_for_are_built_and_the_last_one_is_the_output(string architecture, int layers)
    {
        var folder = ArchitectureOracles.Folder(architecture);
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors"));
        var onnx = NativeEncoderGraphs.Build(checkpoint, config, layers, Path.Combine(_work.FullName, "built"));

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        var layerNames = model.Graph.Initializer.Select(i => i.Name).Where(n => n.Contains("layer.", StringComparison.Ordinal)).ToList();
        Assert.All(layerNames, n => Assert.Contains(Enumerable.Range(0, layers), k => n.Contains($"layer.{k}.", StringComparison.Ordinal)));
        Assert.Equal(layers > 0, layerNames.Count > 0);
        Assert.Equal([NativeEncoderGraphs.OutputName], model.Graph.Output.Select(o => o.Name));
        AssertLayerEquals(architecture, new NativeGraph(onnx, true), layers, NativeEncoderGraphs.OutputName);
    }

    [Fact]
    public void Weights_are_outside_the_protobuf_in_one_aligned_file()
    {
        var folder = ArchitectureOracles.Folder("deberta");
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors"));
        var onnx = NativeEncoderGraphs.Build(checkpoint, config, null, Path.Combine(_work.FullName, "built"));

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        var floats = model.Graph.Initializer.Where(i => i.DataType == (int)TensorProto.Types.DataType.Float && i.Dims.Count > 0).ToList();
        Assert.NotEmpty(floats);
        Assert.All(floats, t =>
        {
            Assert.Equal(TensorProto.Types.DataLocation.External, t.DataLocation);
            Assert.Equal(NativeEncoderGraphs.WeightsFileName, t.ExternalData.Single(e => e.Key == "location").Value);
            Assert.Equal(0, long.Parse(t.ExternalData.Single(e => e.Key == "offset").Value) % 64);
            Assert.True(t.RawData.IsEmpty && t.FloatData.Count == 0);
        });
        var weightBytes = new FileInfo(Path.Combine(Path.GetDirectoryName(onnx)!, NativeEncoderGraphs.WeightsFileName)).Length;
        Assert.True(new FileInfo(onnx).Length * 5 < weightBytes, "the graph file should hold structure, not weights");
    }

    [Theory]
    [InlineData(4)]
    [InlineData(-1)]
    public void Layer_counts_beyond_the_model_are_a_clear_error(int layers)
    {
        var folder = ArchitectureOracles.Folder("roberta");
        var config = ModelArchitectureConfig.Read(Path.Combine(folder, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors"));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            NativeEncoderGraphs.GetOrBuild(folder, checkpoint, config, layers, Path.Combine(_work.FullName, "cache")));
        Assert.Contains("has 3 layers", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_work.FullName, "cache")) && Directory.EnumerateFileSystemEntries(Path.Combine(_work.FullName, "cache")).Any());
    }

    [Fact]
    public void An_unsupported_model_type_is_a_clear_error_naming_the_supported_ones()
    {
        var error = Assert.Throws<GraphBuildException>(() => ModelArchitectureConfig.Parse("""{"model_type": "gpt2", "n_embd": 768}"""));
        Assert.Contains("'gpt2'", error.Message);
        foreach (var supported in new[] { "bert", "roberta", "xlm-roberta", "distilbert", "deberta", "deberta-v2", "mpnet" })
        {
            Assert.Contains(supported, error.Message);
        }

        Assert.Contains("no model_type", Assert.Throws<GraphBuildException>(() => ModelArchitectureConfig.Parse("{}")).Message);
    }

    [Fact]
    public void Weights_that_do_not_fit_the_config_are_a_clear_error()
    {
        var folder = ArchitectureOracles.Folder("bert");
        var json = File.ReadAllText(Path.Combine(folder, "config.json")).Replace("\"intermediate_size\": 128", "\"intermediate_size\": 96");
        var config = ModelArchitectureConfig.Parse(json);
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors"));

        var error = Assert.Throws<GraphBuildException>(() => NativeEncoderGraphs.Build(checkpoint, config, null, Path.Combine(_work.FullName, "built")));
        Assert.Contains("encoder.layer.0.intermediate.dense.weight has shape [128, 64]", error.Message);
    }

    [Fact]
    public void Deberta_v3_base_log_buckets_in_float32_equal_the_exact_rule()
    {
        // 256 buckets over 512 positions (deberta-v3-base) and the fixture's 64 over 128: float32, as transformers
        // computes them, must give the buckets that exact arithmetic gives, or the lookup table would be off by one.
        foreach (var (buckets, positions) in new[] { (256, 512), (64, 128) })
        {
            var mid = buckets / 2;
            for (var r = -2 * positions; r <= 2 * positions; r++)
            {
                var exact = Math.Abs(r) <= mid
                    ? r
                    : Math.Sign(r) * ((long)Math.Ceiling(Math.Log(Math.Abs(r) / (double)mid) / Math.Log((positions - 1) / (double)mid) * (mid - 1)) + mid);
                Assert.Equal(exact, RelativePositions.LogBucket(r, buckets, positions));
            }
        }
    }

    private string CopyModel(string architecture)
    {
        var target = Directory.CreateDirectory(Path.Combine(_work.FullName, architecture)).FullName;
        foreach (var file in new[] { "config.json", "model.safetensors" })
        {
            File.Copy(Path.Combine(ArchitectureOracles.Folder(architecture), file), Path.Combine(target, file));
        }

        return target;
    }

    private static NativeGraph GetOrBuild(string modelDirectory, int layers, string cache)
    {
        var config = ModelArchitectureConfig.Read(Path.Combine(modelDirectory, "config.json"));
        using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(modelDirectory, "model.safetensors"));
        return NativeEncoderGraphs.GetOrBuildGraph(modelDirectory, checkpoint, config, layers, cache, new NativeGraphOptions { ExposeAllLayers = true });
    }

    private static (DateTime, DateTime) Stamps(NativeGraph graph) =>
        (File.GetLastWriteTimeUtc(graph.OnnxPath), File.GetLastWriteTimeUtc(Path.Combine(graph.Folder, NativeEncoderGraphs.WeightsFileName)));

    /// <summary>Rewrites a checkpoint's float tensors with one of them changed (its int64 buffers dropped: the builder ignores them).</summary>
    private static void RewriteCheckpoint(string path, string name, Func<float, float> change)
    {
        var tensors = new Dictionary<string, (float[] Data, long[] Shape)>(StringComparer.Ordinal);
        using (var checkpoint = SafetensorsCheckpoint.Open(path))
        {
            foreach (var n in checkpoint.Names.Where(n => checkpoint.Info(n).IsFloatingPoint))
            {
                var data = checkpoint.ReadFloat32(n);
                tensors[n] = (n == name ? [.. data.Select(change)] : data, checkpoint.Info(n).Shape);
            }
        }

        OnnxCheckpointExport.WriteSafetensors(path, tensors);
    }

    /// <summary>The graph's output <paramref name="output"/> equals the oracle's hidden state <paramref name="layer"/> for sequence 1 run alone.</summary>
    private static void AssertLayerEquals(string architecture, NativeGraph graph, int layer, string? output = null)
    {
        var oracle = ArchitectureOracles.Load(architecture);
        var length = oracle.Lengths[1];
        using var session = GraphSessions.Open(graph.OnnxPath);
        var values = GraphSessions.Run(session, [oracle.Inputs[1].InputIds[..length]], [oracle.Inputs[1].AttentionMask[..length]], [output ?? $"hidden_states.{layer}"])[0];
        var expected = oracle.HiddenStates[1][layer];
        var hidden = expected[0].Length;
        Assert.Equal(length * hidden, values.Length);
        for (var t = 0; t < length; t++)
        {
            for (var c = 0; c < hidden; c++)
            {
                Assert.Equal(expected[t][c], values[(t * hidden) + c], 1e-5f);
            }
        }
    }
}
