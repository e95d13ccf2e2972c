using System.Text.Json;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Opens the tokenizer of a Hugging Face model folder: <c>tokenizer.json</c>, DeBERTa's <c>spm.model</c>, XLM-RoBERTa's
/// <c>sentencepiece.bpe.model</c>,
/// <c>vocab.txt</c>, or <c>vocab.json</c> + <c>merges.txt</c>.
/// </summary>
public static class TokenizerLoader
{
    /// <param name="directory">The model folder.</param>
    /// <param name="lowercaseHint">do_lower_case from tokenizer_config.json, used for a bare vocab.txt.</param>
    public static TextTokenizer Load(string directory, bool? lowercaseHint = null)
    {
        var json = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(json))
        {
            return FromTokenizerJson(json);
        }

        // DeBERTa v2/v3 and XLM-RoBERTa repos often ship only the SentencePiece model; neither lower-cases by default.
        if (SentencePieceModelFile.In(directory) is not null)
        {
            return SentencePieceModelFile.Load(directory, lowercaseHint ?? false);
        }

        var vocabTxt = Path.Combine(directory, "vocab.txt");
        if (File.Exists(vocabTxt))
        {
            return WordPieceTokenizer.FromVocabFile(vocabTxt, new WordPieceOptions { Lowercase = lowercaseHint ?? true });
        }

        var vocabJson = Path.Combine(directory, "vocab.json");
        var merges = Path.Combine(directory, "merges.txt");
        if (File.Exists(vocabJson) && File.Exists(merges))
        {
            return ByteLevelBpeTokenizer.FromFiles(vocabJson, merges);
        }

        throw new FileNotFoundException($"No tokenizer.json, spm.model, sentencepiece.bpe.model, vocab.txt or vocab.json + merges.txt in {directory}.");
    }

    /// <summary>Reads a Hugging Face <c>tokenizer.json</c> with a WordPiece, byte-level BPE or Unigram (SentencePiece) model.</summary>
    public static TextTokenizer FromTokenizerJson(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        var type = model.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "Unigram")
        {
            return UnigramTokenizerJson.Read(root);
        }

        var specials = root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array
            ? added.EnumerateArray()
                .Where(a => a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True)
                .Select(a => a.GetProperty("content").GetString()!)
                .ToList()
            : [];
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in model.GetProperty("vocab").EnumerateObject())
        {
            vocabulary[entry.Name] = entry.Value.GetInt32();
        }

        if (root.TryGetProperty("added_tokens", out added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in added.EnumerateArray())
            {
                vocabulary.TryAdd(a.GetProperty("content").GetString()!, a.GetProperty("id").GetInt32());
            }
        }

        switch (type)
        {
            case "WordPiece":
            {
                var bert = FindNormalizer(root, "BertNormalizer");
                var options = new WordPieceOptions
                {
                    Lowercase = bert is { } b1 && b1.TryGetProperty("lowercase", out var lc) ? lc.GetBoolean() : true,
                    StripAccents = bert is { } b2 && b2.TryGetProperty("strip_accents", out var sa) && sa.ValueKind != JsonValueKind.Null ? sa.GetBoolean() : null,
                    CleanText = bert is not { } b3 || !b3.TryGetProperty("clean_text", out var ct) || ct.GetBoolean(),
                    HandleChineseChars = bert is not { } b4 || !b4.TryGetProperty("handle_chinese_chars", out var hc) || hc.GetBoolean(),
                    UnknownToken = model.TryGetProperty("unk_token", out var unk) ? unk.GetString()! : "[UNK]",
                    ContinuingSubwordPrefix = model.TryGetProperty("continuing_subword_prefix", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "##",
                    MaxInputCharsPerWord = model.TryGetProperty("max_input_chars_per_word", out var m) ? m.GetInt32() : 100,
                    LiteralSpecialTokens = specials.Count > 0 ? specials : new WordPieceOptions().LiteralSpecialTokens,
                };
                return new WordPieceTokenizer(vocabulary, options);
            }

            case "BPE":
            {
                var merges = model.GetProperty("merges").EnumerateArray().Select(m => m.ValueKind == JsonValueKind.Array
                    ? (m[0].GetString()!, m[1].GetString()!)
                    : ByteLevelBpeTokenizer.ParseMerge(m.GetString()!)).ToList();
                return ByteLevelBpeTokenizer.Create(vocabulary, merges, addPrefixSpace: false, specials);
            }

            default:
                throw new InvalidDataException($"{path}: tokenizer model '{type}' is not supported (WordPiece, byte-level BPE and Unigram are).");
        }
    }

    private static JsonElement? FindNormalizer(JsonElement root, string type)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        if (n.TryGetProperty("type", out var t) && t.GetString() == type)
        {
            return n;
        }

        if (n.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var inner in list.EnumerateArray())
            {
                if (inner.TryGetProperty("type", out var it) && it.GetString() == type)
                {
                    return inner;
                }
            }
        }

        return null;
    }
}
