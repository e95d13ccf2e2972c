using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Tests.Inference.Tokenization;

/// <summary>Which tokenizers are read, told from file names and from what a tokenizer.json declares, before anything is loaded.</summary>
public sealed class TokenizerFilesTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("tokenizer-files-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Theory]
    [InlineData(new[] { "spm.model", "config.json" }, "SentencePiece (spm.model)")]
    [InlineData(new[] { "sentencepiece.bpe.model" }, "SentencePiece (sentencepiece.bpe.model)")]
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

        Assert.Equal(files.Intersect(["tokenizer.json", "vocab.txt", "spm.model", "sentencepiece.bpe.model", "vocab.json"]).Any(), TokenizerFiles.HasAny(files));
    }

    [Theory]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {"[PAD]": 0}}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "model": {"type": "BPE", "vocab": {}, "merges": []}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split"}, {"type": "ByteLevel"}]}, "model": {"type": "BPE"}}""", null)]
    [InlineData("""{"pre_tokenizer": null, "model": {"type": "BPE", "vocab": {"a": 0}}}""", null)]
    [InlineData("""{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}, "model": {"type": "BPE", "vocab": {}}}""", "without byte-level pre-tokenisation (Metaspace")]
    [InlineData("""{"added_tokens": [{"id": 0, "content": "<s>"}], "model": {"vocab": [["<s>", 0.0]], "type": "Unigram"}}""", "Unigram (SentencePiece)")]
    [InlineData("""{"model": {"type": "WordLevel"}}""", "type 'WordLevel'")]
    [InlineData("""{"model": """, "not valid JSON")]
    public void A_tokenizer_json_is_read_only_when_its_model_is_wordpiece_or_byte_level_bpe(string json, string? problem)
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
