using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Graphs;

public sealed class ModelArchitectureConfigTests
{
    [Fact]
    public void Keys_a_config_leaves_out_take_the_defaults_transformers_gives_them()
    {
        // The bundled all-MiniLM-L6-v2's config.json names only its sizes.
        var minilm = ModelArchitectureConfig.Parse(
            """{"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536, "max_position_embeddings": 512, "vocab_size": 30522}""");
        Assert.Equal((1e-12, "gelu", 2, 0, 32), (minilm.LayerNormEps, minilm.HiddenAct, minilm.TypeVocabSize, minilm.PadTokenId, minilm.HeadSize));

        var roberta = ModelArchitectureConfig.Parse("""{"model_type": "roberta"}""");
        Assert.Equal((1, 50265, 512), (roberta.PadTokenId, roberta.VocabSize, roberta.MaxPositionEmbeddings));

        var deberta = ModelArchitectureConfig.Parse("""{"model_type": "deberta"}""");
        Assert.Equal((1e-7, true, false, 0), (deberta.LayerNormEps, deberta.PositionBiasedInput, deberta.RelativeAttention, deberta.TypeVocabSize));
    }

    [Fact]
    public void DistilBert_reads_its_own_key_names_and_always_has_eps_1e12()
    {
        var config = ModelArchitectureConfig.Read(Path.Combine(ArchitectureOracles.Folder("distilbert"), "config.json"));
        Assert.Equal((64, 4, 3, 128, "gelu", 1e-12), (config.HiddenSize, config.NumAttentionHeads, config.NumHiddenLayers, config.IntermediateSize, config.HiddenAct, config.LayerNormEps));
    }

    [Theory]
    [InlineData("\"c2p|p2c\"")]
    [InlineData("\"P2C | C2P\"")]
    [InlineData("[\"p2c\", \"c2p\"]")]
    public void Deberta_pos_att_type_is_read_from_a_string_or_a_list(string value)
    {
        var config = ModelArchitectureConfig.Parse($$"""{"model_type": "deberta_v2", "pos_att_type": {{value}}}""");
        Assert.Equal("deberta-v2", config.ModelType);
        Assert.Equal(["c2p", "p2c"], config.PosAttType.Order());
    }

    [Theory]
    [InlineData("""{"model_type": "bert", "hidden_act": "gelu_new"}""", "gelu_new")]
    [InlineData("""{"model_type": "bert", "position_embedding_type": "relative_key"}""", "relative_key")]
    [InlineData("""{"model_type": "bert", "hidden_size": 100, "num_attention_heads": 12}""", "does not split")]
    [InlineData("""{"model_type": "deberta-v2", "conv_kernel_size": 3}""", "convolution")]
    [InlineData("""[1, 2]""", "not a JSON object")]
    public void Settings_the_builder_does_not_build_are_refused_by_name(string json, string named)
    {
        var error = Assert.Throws<GraphBuildException>(() => ModelArchitectureConfig.Parse(json));
        Assert.Contains(named, error.Message);
    }

    [Theory]
    [InlineData("xlm-roberta")]
    [InlineData("camembert")]
    public void Xlm_roberta_and_camembert_build_robertas_graph(string modelType)
    {
        var folder = ArchitectureOracles.Folder("roberta");
        var json = File.ReadAllText(Path.Combine(folder, "config.json")).Replace("\"model_type\": \"roberta\"", $"\"model_type\": \"{modelType}\"");
        var config = ModelArchitectureConfig.Parse(json);
        Assert.Equal(modelType, config.ModelType);

        var output = Directory.CreateTempSubdirectory("native-graph-");
        try
        {
            using var checkpoint = SafetensorsCheckpoint.Open(Path.Combine(folder, "model.safetensors"));
            var onnx = NativeEncoderGraphs.Build(checkpoint, config, null, output.FullName);
            var oracle = ArchitectureOracles.Load("roberta");
            var length = oracle.Lengths[2];
            using var session = GraphSessions.Open(onnx);
            var values = GraphSessions.Run(session, [oracle.Inputs[2].InputIds[..length]], [oracle.Inputs[2].AttentionMask[..length]], [NativeEncoderGraphs.OutputName])[0];
            var expected = oracle.HiddenStates[2][3];
            for (var t = 0; t < length; t++)
            {
                for (var c = 0; c < config.HiddenSize; c++)
                {
                    Assert.Equal(expected[t][c], values[(t * config.HiddenSize) + c], 1e-5f);
                }
            }
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }
}
