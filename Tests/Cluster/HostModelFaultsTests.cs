using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Grains;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// What a host records and does when one of its models fails: passes failing in a row degrade it, a success clears
/// it; a damaged copy from the Hugging Face cache is set aside, and the next load downloads a fresh one (from a hub
/// stand-in on loopback) and serves it.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class HostModelFaultsTests(MiniLmFixture minilm) : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("faults-").FullName;
    private HubStandIn _hub = null!;

    public async ValueTask InitializeAsync() => _hub = await HubStandIn.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public void Passes_failing_in_a_row_degrade_the_model_until_a_success_and_a_success_between_starts_the_count_again()
    {
        var faults = new HostModelFaults(new GpuHostOptions { DegradeAfterFailures = 3, DegradedCooldown = TimeSpan.FromMinutes(1) }, NullLogger<HostModelFaults>.Instance);
        IReadOnlyList<string> Aliases(string model) => model == "org/m" ? ["m"] : [];

        faults.PassFailed("org/m", "boom 1");
        faults.PassFailed("org/m", "boom 2");
        faults.PassSucceeded("org/m");
        faults.PassFailed("org/m", "boom 3");
        faults.PassFailed("org/m", "boom 4");
        Assert.Empty(faults.Describe(Aliases)); // two in a row since the success: not yet

        faults.PassFailed("org/m", "boom 5");
        var fault = Assert.Single(faults.Describe(Aliases));
        Assert.Equal(("org/m", HostModelFaults.Degraded, "boom 5", 3), (fault.Model, fault.Kind, fault.Reason, fault.Failures));
        Assert.InRange(fault.Until - DateTimeOffset.UtcNow, TimeSpan.FromSeconds(50), TimeSpan.FromMinutes(1));
        Assert.True(fault.Answers("m"));

        // The load report tells the fronts: a request naming the model by its alias avoids the host until then.
        var load = new HostLoad("h", 0, 0, 0, 0, 1, "cpu", Faults: faults.Describe(Aliases));
        Assert.NotNull(load.FaultFor("m", DateTimeOffset.UtcNow));
        Assert.Null(load.FaultFor("m", fault.Until));
        Assert.Null(load.FaultFor("other/model", DateTimeOffset.UtcNow));

        faults.PassSucceeded("org/m");
        Assert.Empty(faults.Describe(Aliases));
    }

    [Fact]
    public void A_failed_load_is_reported_with_its_reason_until_the_model_loads_and_pass_results_do_not_clear_it()
    {
        var faults = new HostModelFaults(new GpuHostOptions { LoadRetryBackoff = TimeSpan.FromSeconds(30) }, NullLogger<HostModelFaults>.Instance);

        faults.LoadFailed("org/m", "its files cannot be opened");
        faults.PassSucceeded("org/m");
        faults.PassFailed("org/m", "boom");
        var fault = Assert.Single(faults.Describe(_ => []));
        Assert.Equal((HostModelFaults.Failed, "its files cannot be opened"), (fault.Kind, fault.Reason));

        faults.Loaded("org/m");
        Assert.Empty(faults.Describe(_ => []));
    }

    [Fact]
    public async Task A_damaged_copy_in_the_huggingface_cache_is_set_aside_and_the_next_load_downloads_a_fresh_one()
    {
        var ct = TestContext.Current.CancellationToken;
        _hub.Add("acme/minilm-damaged", TestRepos.MiniLmSentenceTransformers());
        var graphs = new ModelGraphs(Path.Combine(_root, "graphs"));
        using var sources = new ModelSources(
            new ModelStore(Path.Combine(_root, "models"), hostName: "gpu-test"),
            new ModelSourceOptions { HubEndpoint = _hub.Endpoint, CacheDirectory = Path.Combine(_root, "hf-cache"), Allow = ["*"] });
        var folder = await sources.ResolveAsync("acme/minilm-damaged", ct);

        // The blob behind the snapshot's model.onnx is cut short, as by a disk error after the download.
        var onnx = new FileInfo(Path.Combine(folder.Directory, "onnx", "model.onnx"));
        var blob = onnx.ResolveLinkTarget(returnFinalTarget: true)!.FullName;
        var bytes = await File.ReadAllBytesAsync(blob, ct);
        await File.WriteAllBytesAsync(blob, bytes[..(bytes.Length / 2)], ct);
        var error = Record.Exception(() => { using var _ = EmbeddingModel.Load(folder, graphs, MiniLmFixture.EncoderOptions); });
        Assert.NotNull(error);
        Assert.True(ModelLoadFaults.IsOfThisCopy(error), $"{error.GetType()}: {error.Message}");
        Assert.DoesNotContain(folder.Directory, ModelLoadFaults.Reason(error, folder));

        ModelLoadFaults.PutAside(folder, sources, graphs, NullLogger.Instance);

        Assert.True(File.Exists(blob + ".corrupt"));
        Assert.False(File.Exists(onnx.FullName));
        var downloads = _hub.CdnGets(TestRepos.MiniLmOnnx).Count;
        var fresh = await sources.ResolveAsync("acme/minilm-damaged", ct);
        Assert.Equal(downloads + 1, _hub.CdnGets(TestRepos.MiniLmOnnx).Count);
        using var model = EmbeddingModel.Load(fresh, graphs, MiniLmFixture.EncoderOptions);
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!"];
        Assert.Equal(minilm.Embedding.Embed(texts), model.Embed(texts));
    }

    [Fact]
    public async Task A_damaged_dense_module_weight_file_in_the_huggingface_cache_is_set_aside_and_downloaded_again()
    {
        var ct = TestContext.Current.CancellationToken;
        DenseSpec[] head = [new("2_Dense", 384, 256, Bias: true, DenseSpec.Tanh, Seed: 31)];
        var files = DenseSpec.MiniLmWithDense(head, "safetensors");
        var weights = files["2_Dense/model.safetensors"];
        _hub.Add("acme/dense-damaged", files);
        var graphs = new ModelGraphs(Path.Combine(_root, "graphs"));
        using var sources = new ModelSources(
            new ModelStore(Path.Combine(_root, "models"), hostName: "gpu-test"),
            new ModelSourceOptions { HubEndpoint = _hub.Endpoint, CacheDirectory = Path.Combine(_root, "hf-cache"), Allow = ["*"] });
        var folder = await sources.ResolveAsync("acme/dense-damaged", ct);

        // The Dense module's blob is cut short after the download.
        var blob = new FileInfo(Path.Combine(folder.Directory, "2_Dense", "model.safetensors")).ResolveLinkTarget(returnFinalTarget: true)!.FullName;
        await File.WriteAllBytesAsync(blob, weights[..(weights.Length / 2)], ct);
        var error = Record.Exception(() => { using var _ = EmbeddingModel.Load(folder, graphs, MiniLmFixture.EncoderOptions); });
        Assert.IsType<ModelUnreadableException>(error);
        Assert.Contains("Dense module 2_Dense", error.Message);
        Assert.DoesNotContain(folder.Directory, ModelLoadFaults.Reason(error, folder));

        ModelLoadFaults.PutAside(folder, sources, graphs, NullLogger.Instance);

        Assert.True(File.Exists(blob + ".corrupt"));
        var fresh = await sources.ResolveAsync("acme/dense-damaged", ct);
        using var model = EmbeddingModel.Load(fresh, graphs, MiniLmFixture.EncoderOptions);
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!"];
        var pooled = minilm.Embedding.Embed(texts, new EmbedOptions { Normalize = false });
        var embeddings = model.Embed(texts);
        for (var t = 0; t < texts.Length; t++)
        {
            var expected = DenseSpec.Expected(pooled.AsSpan(t * 384, 384), head, normalize: true);
            Assert.True(expected.Select((e, d) => Math.Abs(e - embeddings[(t * 256) + d])).Max() <= 1e-5);
        }
    }

    [Fact]
    public void A_damaged_built_graph_is_deleted_and_the_next_load_builds_it_again()
    {
        var models = Path.Combine(_root, "models");
        NativeMiniLm.WriteFolder(Path.Combine(models, "acme", "native"));
        var folder = new ModelStore(models).Resolve("acme/native");
        var graphs = new ModelGraphs(Path.Combine(_root, "graphs"));
        using var sources = new ModelSources(new ModelStore(models, hostName: "gpu-test"), new ModelSourceOptions { CacheDirectory = Path.Combine(_root, "hf-cache"), Offline = true });
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!"];
        var graph = graphs.Get(folder).OnnxPath;

        // The cached graph is damaged in place, its length kept (the cache's own check of lengths rebuilds a graph cut
        // short, but cannot see this): a disk error.
        var bytes = File.ReadAllBytes(graph);
        Array.Fill(bytes, (byte)0xFF, 0, bytes.Length / 2);
        File.WriteAllBytes(graph, bytes);
        var error = Record.Exception(() => { using var _ = EmbeddingModel.Load(folder, graphs, MiniLmFixture.EncoderOptions); });
        Assert.NotNull(error);
        Assert.True(ModelLoadFaults.IsOfThisCopy(error), $"{error.GetType()}: {error.Message}");

        ModelLoadFaults.PutAside(folder, sources, graphs, NullLogger.Instance);

        Assert.False(Directory.Exists(Path.GetDirectoryName(graph)));
        Assert.True(File.Exists(Path.Combine(folder.Directory, "model.safetensors"))); // the operator's weights stay
        using var model = EmbeddingModel.Load(folder, graphs, MiniLmFixture.EncoderOptions);
        var embeddings = model.Embed(texts);
        var expected = minilm.Embedding.Embed(texts);
        Assert.True(embeddings.Zip(expected, (a, b) => Math.Abs(a - b)).Max() <= 1e-5);
    }

    [Fact]
    public void A_damaged_copy_in_the_models_folder_stays_for_the_operator_to_replace()
    {
        var models = Path.Combine(_root, "models");
        var source = minilm.Folder.Directory;
        var target = Path.Combine(models, "acme", "mine");
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var copy = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }

        using var sources = new ModelSources(new ModelStore(models, hostName: "gpu-test"), new ModelSourceOptions { CacheDirectory = Path.Combine(_root, "hf-cache"), Offline = true });
        var folder = new ModelStore(models).Resolve("acme/mine");

        ModelLoadFaults.PutAside(folder, sources, new ModelGraphs(Path.Combine(_root, "graphs")), NullLogger.Instance);

        Assert.Equal(Directory.GetFiles(source, "*", SearchOption.AllDirectories).Length, Directory.GetFiles(target, "*", SearchOption.AllDirectories).Length);
    }
}
