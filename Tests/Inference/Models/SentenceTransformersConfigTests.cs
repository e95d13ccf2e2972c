using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Models;

[Collection(MiniLmCollection.Name)]
public sealed class SentenceTransformersConfigTests(MiniLmFixture minilm) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("st-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Theory]
    [InlineData("mean", PoolingModes.Mean)]
    [InlineData("cls", PoolingModes.Cls)]
    [InlineData("max", PoolingModes.Max)]
    [InlineData("lasttoken", PoolingModes.LastToken)]
    [InlineData("weightedmean", PoolingModes.WeightedMean)]
    [InlineData("mean_sqrt_len_tokens", PoolingModes.MeanSqrtLen)]
    public void The_pooling_module_config_names_the_mode(string mode, PoolingModes expected)
    {
        Write(TestRepos.Modules(normalize: true), TestRepos.PoolingConfig(mode));
        var config = SentenceTransformersConfig.Read(_dir);
        Assert.Equal(expected, config.Pooling);
        Assert.True(config.Normalize);
        Assert.Empty(config.UnsupportedModules);
    }

    [Fact]
    public void A_pooling_mode_string_overrides_the_flags_and_several_flags_concatenate()
    {
        Write(TestRepos.Modules(normalize: false), """{"pooling_mode": "CLS", "pooling_mode_mean_tokens": true}""");
        Assert.Equal(PoolingModes.Cls, SentenceTransformersConfig.Read(_dir).Pooling);

        Write(TestRepos.Modules(normalize: false), """{"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true}""");
        var config = SentenceTransformersConfig.Read(_dir);
        Assert.Equal(PoolingModes.Cls | PoolingModes.Max | PoolingModes.Mean, config.Pooling); // mean is on unless turned off
        Assert.False(config.Normalize);
        Assert.Equal("cls+max+mean", config.Pooling.Describe());
    }

    [Fact]
    public void Without_modules_json_a_model_is_pooled_as_sentence_transformers_wraps_a_plain_model()
    {
        var config = SentenceTransformersConfig.Read(_dir);
        Assert.False(config.HasModules);
        Assert.Equal(PoolingModes.Mean, config.Pooling);
        Assert.False(config.Normalize);
    }

    [Fact]
    public void Modules_that_are_not_applied_are_named_and_the_model_is_refused_for_embeddings()
    {
        File.WriteAllText(Path.Combine(_dir, "modules.json"), """
            [
              {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
              {"idx": 2, "name": "2", "path": "2_LayerNorm", "type": "sentence_transformers.models.LayerNorm"}
            ]
            """);
        Assert.Equal(["sentence_transformers.models.LayerNorm"], SentenceTransformersConfig.Read(_dir).UnsupportedModules);

        var folder = CopyMiniLm() with { SentenceTransformers = SentenceTransformersConfig.Read(_dir) };
        var error = Assert.Throws<ModelNotSupportedException>(() => EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions));
        Assert.Contains("sentence_transformers.models.LayerNorm", error.Message);
    }

    [Fact]
    public void A_cls_pooled_normalised_model_embeds_the_normalised_first_token_and_normalize_false_keeps_it_raw()
    {
        // A bge-style repo: CLS pooling and a Normalize module (the real MiniLM weights, its modules changed).
        var folder = CopyMiniLm();
        Write(TestRepos.Modules(normalize: true), TestRepos.PoolingConfig("cls"), folder.Directory);
        folder = new ModelStore(_dir).Open("acme/bge-like", folder.Directory);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.True(model.PoolsInGraph);
        Assert.Equal(PoolingModes.Cls, model.Pooling);
        Assert.True(model.Normalizes);

        int[][] texts = [[101, 7592, 2088, 102], [101, 2023, 2003, 1037, 3231, 6251, 102]];
        using var plain = OnnxEncoder.Open(minilm.Folder.Weights.OnnxPath!, MiniLmFixture.EncoderOptions);
        using var states = plain.Run(texts, 0);

        var normalized = model.Embed(texts, new EmbedOptions());
        var raw = model.Embed(texts, new EmbedOptions { Normalize = false });
        for (var k = 0; k < texts.Length; k++)
        {
            var cls = states.Token(k, 0).ToArray();
            var norm = MathF.Sqrt(cls.Sum(v => v * v));
            for (var d = 0; d < 384; d++)
            {
                Assert.Equal(cls[d], raw[(k * 384) + d], 1e-6);
                Assert.Equal(cls[d] / norm, normalized[(k * 384) + d], 1e-6);
            }
        }
    }

    private ModelFolder CopyMiniLm()
    {
        var target = Path.Combine(_dir, "model");
        Directory.CreateDirectory(target);
        File.CreateSymbolicLink(Path.Combine(target, "model.onnx"), minilm.Folder.Weights.OnnxPath!);
        foreach (var file in new[] { "vocab.txt", "config.json", "tokenizer_config.json", "sentence_bert_config.json" })
        {
            File.Copy(Path.Combine(minilm.Folder.Directory, file), Path.Combine(target, file));
        }

        return new ModelStore(_dir).Open("acme/copy", target);
    }

    private void Write(string modules, string pooling, string? directory = null)
    {
        directory ??= _dir;
        Directory.CreateDirectory(Path.Combine(directory, "1_Pooling"));
        File.WriteAllText(Path.Combine(directory, "modules.json"), modules);
        File.WriteAllText(Path.Combine(directory, "1_Pooling", "config.json"), pooling);
    }
}
