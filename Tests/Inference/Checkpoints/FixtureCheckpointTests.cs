using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>
/// The three weight files of each architecture fixture (model.safetensors keyed as the base model,
/// pytorch_model.bin keyed as the real hub checkpoint, and the same dict in the legacy format) give the same base
/// model, bit for bit.
/// </summary>
public sealed class FixtureCheckpointTests
{
    private static readonly Dictionary<string, string> Prefixes = new()
    {
        ["bert"] = "bert.", ["roberta"] = "roberta.", ["distilbert"] = "distilbert.", ["deberta"] = "deberta.",
        ["deberta-v2"] = "deberta.", ["mpnet"] = "",
    };

    // A tensor of each task model's head, present in the stored file and absent from the base-model view.
    private static readonly Dictionary<string, string[]> StoredHeads = new()
    {
        ["bert"] = ["cls.predictions.decoder.weight", "cls.predictions.transform.LayerNorm.gamma", "cls.seq_relationship.bias"],
        ["roberta"] = ["lm_head.decoder.weight", "lm_head.layer_norm.weight"],
        ["distilbert"] = ["vocab_projector.weight", "vocab_transform.bias", "vocab_layer_norm.weight"],
        ["deberta"] = ["pooler.dense.weight", "classifier.weight"],
        ["deberta-v2"] = ["lm_predictions.lm_head.dense.weight", "mask_predictions.classifier.weight"],
        ["mpnet"] = [],
    };

    // deberta-v3-base stores position_embeddings although DebertaV2Model (position_biased_input false) has none;
    // the view shows it (it is not a head) and the graph builder decides from config.json.
    private static readonly Dictionary<string, string[]> ExtraInView = new()
    {
        ["deberta-v2"] = ["embeddings.position_embeddings.weight"],
    };

    private static readonly string[] HeadModules =
        ["cls", "lm_head", "classifier", "vocab_transform", "vocab_layer_norm", "vocab_projector", "lm_predictions", "mask_predictions"];

    public static TheoryData<string, string> PyTorchFiles()
    {
        var data = new TheoryData<string, string>();
        foreach (var architecture in ArchitectureFixtures.Names)
        {
            data.Add(architecture, "pytorch_model.bin");
            data.Add(architecture, "pytorch_model.legacy.bin");
        }

        return data;
    }

    public static TheoryData<string> Architectures() => [.. ArchitectureFixtures.Names];

    [Theory]
    [MemberData(nameof(PyTorchFiles))]
    public void Base_model_view_of_a_pytorch_file_equals_model_safetensors_bit_for_bit(string architecture, string file)
    {
        using var expected = SafetensorsCheckpoint.Open(ArchitectureFixtures.File(architecture, "model.safetensors"));
        using var view = new BaseModelCheckpoint(ModelWeights.OpenFile(ArchitectureFixtures.File(architecture, file)));

        Assert.IsType<PyTorchCheckpoint>(view.Stored);
        Assert.Equal(file == "pytorch_model.bin", ((PyTorchCheckpoint)view.Stored).IsZip);
        Assert.Equal(Prefixes[architecture], view.Prefix);
        AssertSameTensors(expected, view, ExtraInView.GetValueOrDefault(architecture, []));

        foreach (var head in StoredHeads[architecture])
        {
            Assert.True(view.Stored.Contains(head), $"{file} should hold the head tensor {head}");
        }

        Assert.DoesNotContain(view.Names, n => HeadModules.Contains(n.Split('.')[0]) || n.EndsWith(".gamma", StringComparison.Ordinal) || n.EndsWith(".beta", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void The_safetensors_file_is_its_own_base_model_view(string architecture)
    {
        using var expected = SafetensorsCheckpoint.Open(ArchitectureFixtures.File(architecture, "model.safetensors"));
        using var view = ModelWeights.Open(ArchitectureFixtures.Folder(architecture));

        Assert.IsType<SafetensorsCheckpoint>(view.Stored);
        Assert.Equal("", view.Prefix);
        AssertSameTensors(expected, view, []);
        Assert.Contains("embeddings.word_embeddings.weight", view.Names);
    }

    [Fact]
    public void Bert_gamma_and_beta_are_read_as_weight_and_bias()
    {
        using var view = new BaseModelCheckpoint(ModelWeights.OpenFile(ArchitectureFixtures.File("bert", "pytorch_model.bin")));

        Assert.Equal("bert.encoder.layer.0.attention.output.LayerNorm.gamma", view.StoredName("encoder.layer.0.attention.output.LayerNorm.weight"));
        Assert.Equal("bert.embeddings.LayerNorm.beta", view.StoredName("embeddings.LayerNorm.bias"));
        Assert.Equal(TensorDType.F32, view.Info("embeddings.LayerNorm.weight").DType);
        Assert.Equal("embeddings.LayerNorm.weight", view.Info("embeddings.LayerNorm.weight").Name);
    }

    [Theory]
    [InlineData("bert", "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight")]
    [InlineData("bert", "cls.predictions.decoder.bias", "cls.predictions.bias")]
    [InlineData("roberta", "lm_head.decoder.weight", "roberta.embeddings.word_embeddings.weight")]
    [InlineData("distilbert", "vocab_projector.weight", "distilbert.embeddings.word_embeddings.weight")]
    public void Tied_weights_sharing_one_storage_read_the_same_data(string architecture, string tied, string owner)
    {
        foreach (var file in new[] { "pytorch_model.bin", "pytorch_model.legacy.bin" })
        {
            using var stored = PyTorchCheckpoint.Open(ArchitectureFixtures.File(architecture, file));
            Assert.Equal(stored.Info(owner).Shape, stored.Info(tied).Shape);
            Assert.Equal(stored.ReadBytes(owner), stored.ReadBytes(tied));
        }
    }

    [Fact]
    public void DeBERTa_mnli_config_value_is_tolerated_and_not_a_tensor()
    {
        foreach (var file in new[] { "pytorch_model.bin", "pytorch_model.legacy.bin" })
        {
            using var stored = PyTorchCheckpoint.Open(ArchitectureFixtures.File("deberta", file));
            Assert.DoesNotContain("config", stored.Names);
            Assert.False(stored.Contains("config"));
            Assert.Throws<CheckpointException>(() => stored.Info("config"));
        }
    }

    [Fact]
    public void Position_ids_are_read_as_int64_bytes()
    {
        using var view = ModelWeights.Open(ArchitectureFixtures.Folder("bert"));
        var info = view.Info("embeddings.position_ids");
        Assert.Equal(TensorDType.I64, info.DType);
        var ids = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(view.ReadBytes("embeddings.position_ids")).ToArray();
        Assert.Equal(Enumerable.Range(0, (int)info.Shape[1]).Select(i => (long)i), ids);
        Assert.Throws<CheckpointException>(() => view.ReadFloat32("embeddings.position_ids"));
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("pytorch_model.bin")]
    public void Float32_memory_is_the_mapped_data_without_a_copy_and_equals_ReadFloat32(string file)
    {
        using var checkpoint = ModelWeights.OpenFile(ArchitectureFixtures.File("deberta", file));
        foreach (var name in checkpoint.Names.Where(n => checkpoint.Info(n).DType == TensorDType.F32))
        {
            Assert.True(checkpoint.TryGetFloat32Memory(name, out var memory), name);
            Assert.Equal(checkpoint.ReadFloat32(name), memory.ToArray());
        }
    }

    [Fact]
    public void A_missing_tensor_is_a_checkpoint_error_naming_it()
    {
        using var view = ModelWeights.Open(ArchitectureFixtures.Folder("roberta"));
        var error = Assert.Throws<CheckpointException>(() => view.ReadFloat32("encoder.layer.99.output.dense.weight"));
        Assert.Contains("encoder.layer.99.output.dense.weight", error.Message);
    }

    internal static void AssertSameTensors(ICheckpoint expected, ICheckpoint actual, IEnumerable<string> extras)
    {
        Assert.Equal(expected.Names.Concat(extras).Order(StringComparer.Ordinal), actual.Names.Order(StringComparer.Ordinal));
        foreach (var name in expected.Names)
        {
            var want = expected.Info(name);
            var got = actual.Info(name);
            Assert.Equal(want.DType, got.DType);
            Assert.Equal(want.Shape, got.Shape);
            Assert.True(expected.ReadBytes(name).AsSpan().SequenceEqual(actual.ReadBytes(name)), $"{name} differs");
            if (want.IsFloatingPoint)
            {
                var a = expected.ReadFloat32(name);
                var b = actual.ReadFloat32(name);
                Assert.True(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()).SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(b.AsSpan())), $"{name}: floats differ");
            }
        }
    }
}
