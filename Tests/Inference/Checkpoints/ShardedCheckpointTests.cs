using System.Text.Json;
using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>Fixtures split into two shards plus an index, as transformers saves large models.</summary>
public sealed class ShardedCheckpointTests
{
    [Fact]
    public void Sharded_safetensors_read_as_one_checkpoint_equal_the_single_file()
    {
        using var folder = new TempFolder();
        using var whole = SafetensorsCheckpoint.Open(ArchitectureFixtures.File("bert", "model.safetensors"));
        var names = whole.Names.Order(StringComparer.Ordinal).ToList();
        var shards = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
        var weightMap = new Dictionary<string, string>();
        for (var s = 0; s < 2; s++)
        {
            var part = names.Where((_, i) => i % 2 == s).ToList();
            SafetensorsFiles.Write(folder.File(shards[s]), part.Select(n =>
                new SafetensorsFiles.Tensor(n, whole.Info(n).DType.ToString(), whole.Info(n).Shape, whole.ReadBytes(n))));
            part.ForEach(n => weightMap[n] = shards[s]);
        }

        WriteIndex(folder.File("model.safetensors.index.json"), weightMap);

        using var view = ModelWeights.Open(folder.Path);
        var sharded = Assert.IsType<ShardedCheckpoint>(view.Stored);
        Assert.Equal(shards, sharded.ShardFiles.Order());
        FixtureCheckpointTests.AssertSameTensors(whole, view, []);
    }

    [Fact]
    public void Sharded_pytorch_bin_read_as_one_checkpoint_equals_the_base_model()
    {
        // The roberta fixture's stored entries (prefix, heads) re-packaged as two torch.save zips.
        using var folder = new TempFolder();
        var weightMap = new Dictionary<string, string>();
        using (var stored = PyTorchCheckpoint.Open(ArchitectureFixtures.File("roberta", "pytorch_model.bin")))
        {
            var names = stored.Names.Order(StringComparer.Ordinal).ToList();
            for (var s = 0; s < 2; s++)
            {
                var file = $"pytorch_model-0000{s + 1}-of-00002.bin";
                var part = names.Where((_, i) => i % 2 == s).ToList();
                var tensors = part.Select((n, i) => TorchTensor.Contiguous(n, StorageType(stored.Info(n).DType), i.ToString(), stored.Info(n).Shape)).ToList();
                var storages = part.Select((n, i) => (i.ToString(), stored.ReadBytes(n))).ToDictionary();
                TorchFiles.WriteZip(folder.File(file), TorchFiles.StateDictPickle(tensors), storages, stem: $"pytorch_model-0000{s + 1}-of-00002");
                part.ForEach(n => weightMap[n] = file);
            }
        }

        WriteIndex(folder.File("pytorch_model.bin.index.json"), weightMap);

        using var view = ModelWeights.Open(folder.Path);
        using var expected = SafetensorsCheckpoint.Open(ArchitectureFixtures.File("roberta", "model.safetensors"));
        Assert.IsType<ShardedCheckpoint>(view.Stored);
        Assert.Equal("roberta.", view.Prefix);
        FixtureCheckpointTests.AssertSameTensors(expected, view, []);
    }

    [Fact]
    public void An_index_naming_a_missing_shard_is_a_checkpoint_error()
    {
        using var folder = new TempFolder();
        WriteIndex(folder.File("model.safetensors.index.json"), new() { ["embeddings.word_embeddings.weight"] = "model-00001-of-00002.safetensors" });

        var error = Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
        Assert.Contains("model-00001-of-00002.safetensors", error.Message);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd")]
    public void An_index_naming_a_file_outside_the_folder_is_refused(string shard)
    {
        using var folder = new TempFolder();
        WriteIndex(folder.File("model.safetensors.index.json"), new() { ["embeddings.word_embeddings.weight"] = shard });

        var error = Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
        Assert.Contains("not a file in the model's folder", error.Message);
    }

    [Fact]
    public void An_index_placing_a_tensor_in_a_shard_without_it_is_a_checkpoint_error()
    {
        using var folder = new TempFolder();
        File.Copy(ArchitectureFixtures.File("mpnet", "model.safetensors"), folder.File("model-00001-of-00001.safetensors"));
        WriteIndex(folder.File("model.safetensors.index.json"), new() { ["encoder.layer.7.output.dense.weight"] = "model-00001-of-00001.safetensors" });

        var error = Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
        Assert.Contains("encoder.layer.7.output.dense.weight", error.Message);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("{\"metadata\": {}}")]
    [InlineData("{\"weight_map\": {\"a\": 3}}")]
    [InlineData("[]")]
    public void A_malformed_index_is_a_checkpoint_error(string json)
    {
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("pytorch_model.bin.index.json"), json);

        Assert.Throws<CheckpointException>(() => ModelWeights.Open(folder.Path));
    }

    [Fact]
    public void Disposing_the_view_disposes_every_shard()
    {
        using var folder = new TempFolder();
        File.Copy(ArchitectureFixtures.File("mpnet", "model.safetensors"), folder.File("a.safetensors"));
        WriteIndex(folder.File("model.safetensors.index.json"), new() { ["embeddings.word_embeddings.weight"] = "a.safetensors" });

        var view = ModelWeights.Open(folder.Path);
        Assert.NotEmpty(view.ReadFloat32("embeddings.word_embeddings.weight"));
        view.Dispose();
        Assert.Throws<ObjectDisposedException>(() => view.ReadFloat32("embeddings.word_embeddings.weight"));
    }

    private static string StorageType(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => "FloatStorage",
        TensorDType.I64 => "LongStorage",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    private static void WriteIndex(string path, Dictionary<string, string> weightMap) =>
        File.WriteAllText(path, JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));
}
