using System.Text.Json.Nodes;
using static OrleansGpu.Tests.Support.SentencePieceFixtures;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// The tiny DeBERTa v2 of <c>shared/oracles/architectures/deberta-v2</c> as a hub repo shaped like microsoft/deberta-v3-*:
/// <c>config.json</c>, <c>pytorch_model.bin</c>, no ONNX, and a SentencePiece Unigram <c>tokenizer.json</c> as
/// DebertaV2Converter writes it (Strip, Precompiled, Replace; Metaspace; [CLS] $A [SEP]), made here for its 256 ids:
/// [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, and from 4 up the piece "▁" + a two-letter word (<see cref="TinyDeberta.Word"/>),
/// so that a text of those words tokenizes to the oracle's inputs.
/// </summary>
public static class TinyDebertaV2
{
    public static ArchitectureOracle Oracle { get; } = ArchitectureOracles.Load("deberta-v2");

    public static Dictionary<string, byte[]> Repo()
    {
        var folder = ArchitectureOracles.Folder("deberta-v2");
        var vocab = new JsonArray(new JsonArray("[PAD]", 0.0), new JsonArray("[CLS]", 0.0), new JsonArray("[SEP]", 0.0), new JsonArray("[UNK]", 0.0));
        for (var id = 4; id < 256; id++)
        {
            vocab.Add(new JsonArray("▁" + TinyDeberta.Word(id), -1.0 - (id % 7)));
        }

        JsonObject Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        };

        JsonObject Special(string id) => new() { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(0, "[PAD]"), Added(1, "[CLS]"), Added(2, "[SEP]"), Added(3, "[UNK]")),
            ["normalizer"] = Sequence("normalizers", Strip(), Precompiled(), ReplaceRegex(" {2,}", " ")),
            ["pre_tokenizer"] = Sequence("pretokenizers", Metaspace()),
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special("[CLS]"), new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }, Special("[SEP]")),
                ["special_tokens"] = new JsonObject
                {
                    ["[CLS]"] = new JsonObject { ["id"] = "[CLS]", ["ids"] = new JsonArray(1), ["tokens"] = new JsonArray("[CLS]") },
                    ["[SEP]"] = new JsonObject { ["id"] = "[SEP]", ["ids"] = new JsonArray(2), ["tokens"] = new JsonArray("[SEP]") },
                },
            },
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = 3, ["vocab"] = vocab, ["byte_fallback"] = false },
        };

        return new Dictionary<string, byte[]>
        {
            ["config.json"] = File.ReadAllBytes(Path.Combine(folder, "config.json")),
            ["pytorch_model.bin"] = File.ReadAllBytes(Path.Combine(folder, "pytorch_model.bin")),
            ["tokenizer.json"] = TestRepos.Text(tokenizer.ToJsonString()),
            ["tokenizer_config.json"] = TestRepos.Text("""{"do_lower_case": false, "model_max_length": 128, "tokenizer_class": "DebertaV2Tokenizer"}"""),
        };
    }

    /// <summary>The same model as microsoft/deberta-v3-* ship it: the SentencePiece <c>spm.model</c> alone, no tokenizer.json.</summary>
    public static Dictionary<string, byte[]> SpmRepo()
    {
        var repo = Repo();
        repo.Remove("tokenizer.json");
        repo["spm.model"] = DebertaSpmModel([.. Enumerable.Range(4, 252).Select(id => ("▁" + TinyDeberta.Word(id), -1.0 - (id % 7)))]);
        return repo;
    }

    /// <summary>A text that tokenizes to the oracle's input <paramref name="input"/>; full-width letters and doubled spaces are normalised away.</summary>
    public static string Text(int input)
    {
        var ids = Oracle.Inputs[input].InputIds[..Oracle.Lengths[input]];
        Assert.Equal(TinyDeberta.Cls, ids[0]);
        Assert.Equal(TinyDeberta.Sep, ids[^1]);
        return string.Join("  ", ids[1..^1].Select(id => TinyDeberta.Word((int)id).Replace('a', 'ａ').Replace('b', 'ｂ')));
    }
}
