using System.Text;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// Hub repos the tests serve from the stand-in: the real all-MiniLM-L6-v2 (from the NuGet package) laid out as its
/// sentence-transformers repo is on the hub, with the files a download must leave alone, and small fake repos.
/// </summary>
public static class TestRepos
{
    private static readonly Lazy<(byte[] Onnx, byte[] Vocab)> MiniLm = new(() =>
    {
        var folder = new ModelStore(Paths.TestModels).Resolve("all-MiniLM-L6-v2");
        return (File.ReadAllBytes(folder.Weights.OnnxPath!), File.ReadAllBytes(Path.Combine(folder.Directory, "vocab.txt")));
    });

    /// <summary>The real model.onnx of all-MiniLM-L6-v2 (90 MB).</summary>
    public static byte[] MiniLmOnnx => MiniLm.Value.Onnx;

    /// <summary>The files a download must never take: other weight formats and ONNX variants.</summary>
    public static readonly string[] Decoys =
        ["model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "onnx/model_qint8_avx512.onnx", "onnx/model_O4.onnx", "openvino/openvino_model.bin", "README.md"];

    /// <summary>
    /// all-MiniLM-L6-v2 as a sentence-transformers repo: <c>onnx/model.onnx</c>, tokenizer, config, modules with
    /// <paramref name="pooling"/> and (when <paramref name="normalize"/>) Normalize; plus <see cref="Decoys"/>.
    /// </summary>
    public static Dictionary<string, byte[]> MiniLmSentenceTransformers(string pooling = "mean", bool normalize = true, int maxSeqLength = 256)
    {
        var files = new Dictionary<string, byte[]>
        {
            ["onnx/model.onnx"] = MiniLmOnnx,
            ["vocab.txt"] = MiniLm.Value.Vocab,
            ["config.json"] = Text("""{"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6, "max_position_embeddings": 512, "vocab_size": 30522}"""),
            ["tokenizer_config.json"] = Text("""{"do_lower_case": true, "model_max_length": 512}"""),
            ["special_tokens_map.json"] = Text("""{"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]"}"""),
            ["sentence_bert_config.json"] = Text($$"""{"max_seq_length": {{maxSeqLength}}, "do_lower_case": false}"""),
            ["config_sentence_transformers.json"] = Text("""{"__version__": {"sentence_transformers": "2.0.0"}}"""),
            ["1_Pooling/config.json"] = Text(PoolingConfig(pooling)),
            ["modules.json"] = Text(Modules(normalize)),
        };
        for (var i = 0; i < Decoys.Length; i++)
        {
            files[Decoys[i]] = Encoding.UTF8.GetBytes($"decoy {i}: a download must not take {Decoys[i]}");
        }

        return files;
    }

    /// <summary>A small repo with a config, a vocabulary and one weights file of random bytes, as <paramref name="weightsPath"/>.</summary>
    public static Dictionary<string, byte[]> Tiny(string weightsPath = "model.safetensors", int weightsBytes = 4096, int seed = 1)
    {
        var weights = new byte[weightsBytes];
        new Random(seed).NextBytes(weights);
        return new Dictionary<string, byte[]>
        {
            ["config.json"] = Text("""{"model_type": "bert", "num_hidden_layers": 2, "max_position_embeddings": 64}"""),
            ["vocab.txt"] = Text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n"),
            [weightsPath] = weights,
        };
    }

    public static string PoolingConfig(string mode) => $$"""
        {
          "word_embedding_dimension": 384,
          "pooling_mode_cls_token": {{Flag(mode == "cls")}},
          "pooling_mode_mean_tokens": {{Flag(mode == "mean")}},
          "pooling_mode_max_tokens": {{Flag(mode == "max")}},
          "pooling_mode_mean_sqrt_len_tokens": {{Flag(mode == "mean_sqrt_len_tokens")}},
          "pooling_mode_weightedmean_tokens": {{Flag(mode == "weightedmean")}},
          "pooling_mode_lasttoken": {{Flag(mode == "lasttoken")}},
          "include_prompt": true
        }
        """;

    public static string Modules(bool normalize) => normalize
        ? """
          [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
          ]
          """
        : """
          [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
          ]
          """;

    public static byte[] Text(string text) => Encoding.UTF8.GetBytes(text);

    private static string Flag(bool on) => on ? "true" : "false";
}
