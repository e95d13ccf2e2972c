using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Tests.Inference.Tokenization;

/// <summary>Which tokenizers are read, told from file names and from what a tokenizer.json declares, before anything is loaded.</summary>
public sealed class TokenizerFilesTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tokenizer-files-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Theory]
    [InlineData(new[] { "spm.model", "config.json" }, null)]
    [InlineData(new[] { "tokenizer.model", "config.json" }, "SentencePiece (tokenizer.model)")]
    [InlineData(new[] { "sentencepiece.bpe.model" }, null)]
    [InlineData(new[] { "sentencepiece.model" }, "SentencePiece (sentencepiece.model)")]
    [InlineData(new[] { "sentencepiece.bpe.model", "tokenizer.json" }, null)]
    [InlineData(new[] { "spm.model", "vocab.json", "merges.txt" }, null)]
    [InlineData(new[] { "vocab.txt" }, null)]
    [InlineData(new[] { "config.json" }, null)]
    public void File_names_alone_tell_a_sentencepiece_only_tokenizer(string[] files, string? problem)
    {
        var reason = TokenizerFiles.UnsupportedByName(files);
        if (problem is null)
        {
            Assert.Null(reason);
        }
        else
        {
            Assert.Contains(problem, reason);
            Assert.Contains("vocab.json + merges.txt", reason);
        }

        Assert.Equal(files.Intersect(["tokenizer.json", "vocab.txt", "spm.model", "sentencepiece.bpe.model", "sentencepiece.model", "tokenizer.model", "vocab.json"]).Any(), TokenizerFiles.HasAny(files));
    }

    private const string UnigramHead = """{"added_tokens": [{"id": 0, "content": "<s>"}, {"id": 2, "content": "</s>"}], "model": {"type": "Unigram", "unk_id": 1, "vocab": [["<s>", 0.0], ["<unk>", 0.0], ["</s>", 0.0]]}, """;

    [Theory]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {"[PAD]": 0}}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {}, "merges": []}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel"}]}, "model": {"type": "BPE"}}""", null)]
    [InlineData("""{"pre_tokenizer": null, "model": {"type": "BPE", "vocab": {"a": 0}}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}, "model": {"type": "BPE", "vocab": {}}}""", "without byte-level pre-tokenisation (Metaspace")]
    [InlineData("""{"added_tokens": [{"id": 0, "content": "<s>"}], "model": {"vocab": [["<s>", 0.0]], "type": "Unigram"}}""", "Unigram (SentencePiece) tokenizer that this service cannot apply: its tokenizer.json has no post_processor")]
    [InlineData(UnigramHead + """ "normalizer": {"type": "Nmt"}, "pre_tokenizer": {"type": "Metaspace"}, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}}""", "the normalizer 'Nmt'")]
    [InlineData(UnigramHead + """ "normalizer": null, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}}""", "the pre-tokenizer 'ByteLevel'")]
    [InlineData(UnigramHead + """ "normalizer": {"type": "Precompiled", "precompiled_charsmap": "AQ=="}, "pre_tokenizer": null, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}}""", "cannot be read")]
    [InlineData(UnigramHead + """ "normalizer": null, "pre_tokenizer": null, "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}]}}""", "not one start token, the text, one end token")]
    [InlineData(UnigramHead + """ "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}, "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}}""", null)]
    [InlineData("""{"model": {"type": "WordLevel"}}""", "type 'WordLevel'")]
    [InlineData("""{"model": """, "not valid JSON")]
    public void A_tokenizer_json_is_read_when_its_model_is_wordpiece_byte_level_bpe_or_a_unigram_with_steps_we_apply(string json, string? problem)
    {
        var path = Path.Combine(_dir.FullName, "tokenizer.json");
        File.WriteAllText(path, json);
        var reason = TokenizerFiles.TokenizerJsonProblem(path);
        if (problem is null)
        {
            Assert.Null(reason);
        }
        else
        {
            Assert.Contains(problem, reason);
        }

        Assert.Equal(reason, TokenizerFiles.Unsupported(_dir.FullName));
    }
}
