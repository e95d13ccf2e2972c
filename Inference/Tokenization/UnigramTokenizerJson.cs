using System.Text.Json;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>Reads a Hugging Face <c>tokenizer.json</c> whose model is Unigram (what SentencePiece models convert to).</summary>
internal static class UnigramTokenizerJson
{
    public static UnigramTokenizer Read(JsonElement root)
    {
        var (normalizer, preTokenizer, added) = Pipeline(root);
        var model = root.GetProperty("model");
        var pieces = new List<UnigramPiece>();
        foreach (var entry in model.GetProperty("vocab").EnumerateArray())
        {
            pieces.Add(new UnigramPiece(entry[0].GetString()!, entry[1].GetDouble()));
        }

        int? unknownId = model.TryGetProperty("unk_id", out var u) && u.ValueKind == JsonValueKind.Number ? u.GetInt32() : null;
        var byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;

        int? Id(string token)
        {
            foreach (var a in added)
            {
                if (a.Text == token)
                {
                    return a.Id;
                }
            }

            var index = pieces.FindLastIndex(p => p.Piece == token);
            return index >= 0 ? index : null;
        }

        var (start, end) = Sequence(root, Id);
        var pad = root.TryGetProperty("padding", out var padding) && padding.ValueKind == JsonValueKind.Object && padding.TryGetProperty("pad_id", out var pid)
            ? pid.GetInt32()
            : Id("<pad>") ?? Id("[PAD]") ?? 0;
        var special = new SpecialTokenIds(start, end, pad, unknownId ?? -1);
        return new UnigramTokenizer(pieces, special, new UnigramOptions
        {
            UnknownId = unknownId,
            ByteFallback = byteFallback,
            Normalizer = normalizer,
            PreTokenizer = preTokenizer,
            AddedTokens = added,
        });
    }

    /// <summary>Why this service cannot apply the Unigram tokenizer.json <paramref name="root"/>, or null when it can.</summary>
    public static string? Problem(JsonElement root)
    {
        try
        {
            _ = Pipeline(root);
            var ids = root.TryGetProperty("added_tokens", out var a) && a.ValueKind == JsonValueKind.Array
                ? a.EnumerateArray().ToDictionary(t => t.GetProperty("content").GetString()!, t => t.GetProperty("id").GetInt32())
                : [];
            _ = Sequence(root, token => ids.TryGetValue(token, out var id) ? id : 0);
            return null;
        }
        catch (UnsupportedTokenizerException ex)
        {
            return ex.Message;
        }
        catch (Exception ex) when (ex is InvalidDataException or FormatException or KeyNotFoundException or InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            return $"it cannot be read: {ex.Message}";
        }
    }

    private static (SentencePiecePipeline.Normalizer?, SentencePiecePipeline.PreTokenizer?, List<(string Text, int Id, bool StripLeft, bool StripRight)>) Pipeline(JsonElement root)
    {
        var normalizer = root.TryGetProperty("normalizer", out var n) ? SentencePiecePipeline.ReadNormalizer(n) : null;
        var preTokenizer = root.TryGetProperty("pre_tokenizer", out var p) ? SentencePiecePipeline.ReadPreTokenizer(p) : null;
        var added = new List<(string, int, bool, bool)>();
        if (root.TryGetProperty("added_tokens", out var tokens) && tokens.ValueKind == JsonValueKind.Array)
        {
            foreach (var t in tokens.EnumerateArray())
            {
                added.Add((
                    t.GetProperty("content").GetString()!,
                    t.GetProperty("id").GetInt32(),
                    t.TryGetProperty("lstrip", out var l) && l.ValueKind == JsonValueKind.True,
                    t.TryGetProperty("rstrip", out var r) && r.ValueKind == JsonValueKind.True));
            }
        }

        return (normalizer, preTokenizer, added);
    }

    /// <summary>
    /// The tokens the post-processor puts around a single text: TemplateProcessing of the form <c>X $A Y</c>,
    /// RobertaProcessing or BertProcessing (cls, sep). Other forms (none, T5's <c>$A &lt;/s&gt;</c>) are refused: this
    /// service's sequences have one start and one end token.
    /// </summary>
    private static (int Start, int End) Sequence(JsonElement root, Func<string, int?> id)
    {
        if (!root.TryGetProperty("post_processor", out var post) || post.ValueKind != JsonValueKind.Object)
        {
            throw new UnsupportedTokenizerException(
                "its tokenizer.json has no post_processor, so no start and end tokens (this service encodes <s> … </s> or [CLS] … [SEP])");
        }

        var type = SentencePiecePipeline.TypeOf(post);
        if (type == "Sequence" && post.TryGetProperty("processors", out var steps))
        {
            var inner = steps.EnumerateArray().Where(s => SentencePiecePipeline.TypeOf(s) is "TemplateProcessing" or "RobertaProcessing" or "BertProcessing").ToList();
            if (inner.Count == 1)
            {
                post = inner[0];
                type = SentencePiecePipeline.TypeOf(post);
            }
        }

        switch (type)
        {
            case "RobertaProcessing" or "BertProcessing":
                return (post.GetProperty("cls")[1].GetInt32(), post.GetProperty("sep")[1].GetInt32());

            case "TemplateProcessing":
            {
                var single = post.GetProperty("single").EnumerateArray().ToList();
                if (single.Count == 3 && single[0].TryGetProperty("SpecialToken", out var first) && single[1].TryGetProperty("Sequence", out _)
                    && single[2].TryGetProperty("SpecialToken", out var last))
                {
                    return (TemplateId(post, first, id), TemplateId(post, last, id));
                }

                throw new UnsupportedTokenizerException(
                    "its tokenizer.json's post_processor template is not one start token, the text, one end token (this service encodes <s> … </s> or [CLS] … [SEP])");
            }

            default:
                throw new UnsupportedTokenizerException($"its tokenizer.json's post_processor '{type ?? "none"}' is not one this service applies (TemplateProcessing, RobertaProcessing, BertProcessing)");
        }
    }

    private static int TemplateId(JsonElement post, JsonElement token, Func<string, int?> id)
    {
        var name = token.GetProperty("id").GetString()!;
        if (post.TryGetProperty("special_tokens", out var specials) && specials.TryGetProperty(name, out var entry)
            && entry.TryGetProperty("ids", out var ids) && ids.GetArrayLength() == 1)
        {
            return ids[0].GetInt32();
        }

        return id(name) ?? throw new UnsupportedTokenizerException($"its tokenizer.json's post_processor names the token '{name}', which has no single id");
    }
}
