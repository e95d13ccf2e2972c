using System.Text.Json;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Which tokenizer a model has, told from its file names (a hub listing or a folder) and, for <c>tokenizer.json</c>,
/// from the tokenizer model it declares, so that a model whose tokenizer we cannot read is refused before its weights
/// are downloaded or read. Read here: WordPiece (<c>vocab.txt</c>, or a <c>tokenizer.json</c> of type WordPiece) and
/// byte-level BPE (<c>vocab.json</c> + <c>merges.txt</c>, or a <c>tokenizer.json</c> of type BPE whose pre-tokenizer
/// is ByteLevel, or absent), and SentencePiece Unigram as a <c>tokenizer.json</c> (DeBERTa v2/v3, XLM-RoBERTa,
/// multilingual-e5, bge-m3, CamemBERT), and DeBERTa v2/v3's <c>spm.model</c> or XLM-RoBERTa's
/// (or CamemBERT's) <c>sentencepiece.bpe.model</c> alone (SentencePiece Unigram models). Not: other SentencePiece model files alone
/// (<c>tokenizer.model</c>, ...), nor
/// SentencePiece's BPE (Llama's <c>tokenizer.model</c>).
/// </summary>
public static class TokenizerFiles
{
    /// <summary>The files a SentencePiece tokenizer is kept in (DeBERTa v2/v3, XLM-RoBERTa, CamemBERT, T5, ...).</summary>
    public static IReadOnlyList<string> SentencePieceFiles { get; } = ["spm.model", "sentencepiece.bpe.model", "sentencepiece.model", "tokenizer.model"];

    /// <summary>What the client is told we read, in messages.</summary>
    public const string SupportedKinds =
        "WordPiece (vocab.txt, or a WordPiece tokenizer.json), byte-level BPE (vocab.json + merges.txt, or a byte-level BPE tokenizer.json) "
        + "and SentencePiece Unigram as a tokenizer.json, DeBERTa's spm.model or XLM-RoBERTa's sentencepiece.bpe.model";

    /// <summary>Whether <paramref name="files"/> (paths relative to the model's folder) hold tokenizer files of a kind we read.</summary>
    public static bool HasReadable(IReadOnlyCollection<string> files) =>
        files.Contains("tokenizer.json") || files.Contains(SentencePieceModelFile.FileName)
        || files.Contains(SentencePieceModelFile.XlmRobertaFileName) || files.Contains("vocab.txt")
        || (files.Contains("vocab.json") && files.Contains("merges.txt"));

    /// <summary>Whether <paramref name="files"/> hold any tokenizer files, of a kind we read or not.</summary>
    public static bool HasAny(IReadOnlyCollection<string> files) =>
        HasReadable(files) || SentencePieceFiles.Any(files.Contains);

    /// <summary>The tokenizer files present in <paramref name="directory"/>, by the names used above.</summary>
    public static IReadOnlyCollection<string> In(string directory) =>
        [.. new[] { "tokenizer.json", "vocab.txt", "vocab.json", "merges.txt" }.Concat(SentencePieceFiles).Where(f => File.Exists(Path.Combine(directory, f)))];

    /// <summary>
    /// Why the tokenizer that <paramref name="files"/> name is one we do not read, or null when there is a readable one
    /// or none at all. Only SentencePiece files, without any file we read: that is a SentencePiece tokenizer.
    /// </summary>
    public static string? UnsupportedByName(IReadOnlyCollection<string> files)
    {
        if (HasReadable(files))
        {
            return null;
        }

        var sentencePiece = SentencePieceFiles.Where(files.Contains).ToList();
        return sentencePiece.Count == 0
            ? null
            : $"its tokenizer is SentencePiece ({string.Join(", ", sentencePiece)}) without a tokenizer.json, and this service reads SentencePiece "
                + $"only in the tokenizer.json form that Hugging Face converts it to, or as DeBERTa's spm.model or XLM-RoBERTa's sentencepiece.bpe.model; "
                + $"it reads {SupportedKinds}.";
    }

    /// <summary>
    /// Why the tokenizer in <paramref name="directory"/> is one we do not read, or null: its names as
    /// <see cref="UnsupportedByName"/>, then the model <c>tokenizer.json</c> declares (the loader takes that file first).
    /// </summary>
    public static string? Unsupported(string directory)
    {
        if (UnsupportedByName(In(directory)) is { } byName)
        {
            return byName;
        }

        var json = Path.Combine(directory, "tokenizer.json");
        if (File.Exists(json))
        {
            return TokenizerJsonProblem(json);
        }

        return SentencePieceModelFile.In(directory) is { } spm && SentencePieceModelFile.Problem(spm) is { } problem
            ? $"{problem}; it reads {SupportedKinds}."
            : null;
    }

    /// <summary>Why the tokenizer a <c>tokenizer.json</c> declares is one we do not read, or null when we read it.</summary>
    public static string? TokenizerJsonProblem(string path)
    {
        string? model, preTokenizer;
        var bytes = File.ReadAllBytes(path);
        try
        {
            (model, preTokenizer) = Describe(bytes);
            if (model == "Unigram")
            {
                // Its normalizer, pre-tokenizer and post-processor decide whether it can be applied: all are read.
                using var document = JsonDocument.Parse(bytes);
                return UnigramTokenizerJson.Problem(document.RootElement) is { } problem
                    ? $"its tokenizer.json holds a Unigram (SentencePiece) tokenizer that this service cannot apply: {problem}; it reads {SupportedKinds}."
                    : null;
            }
        }
        catch (JsonException ex)
        {
            return $"its tokenizer.json is not valid JSON ({ex.Message.Split('\n')[0]}).";
        }

        return (model, preTokenizer) switch
        {
            ("WordPiece", _) => null,
            ("BPE", null or "ByteLevel") => null,
            ("BPE", var other) => $"its tokenizer.json holds a BPE tokenizer without byte-level pre-tokenisation ({other ?? "none"}, as SentencePiece's BPE), "
                + $"which this service does not read yet; it reads {SupportedKinds}.",
            (var other, _) => $"its tokenizer.json holds a tokenizer of type '{other ?? "none"}', which this service does not read; it reads {SupportedKinds}.",
        };
    }

    /// <summary>
    /// The <c>model.type</c> of a <c>tokenizer.json</c> and its pre-tokenizer (<c>ByteLevel</c> also when it is one step
    /// of a Sequence), reading only as far as needed: the vocabulary, the bulk of the file, is skipped unparsed.
    /// </summary>
    internal static (string? Model, string? PreTokenizer) Describe(ReadOnlySpan<byte> json)
    {
        string? model = null, preTokenizer = null;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("tokenizer.json is not a JSON object.");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var property = reader.GetString();
            reader.Read();
            if (property == "model" && reader.TokenType == JsonTokenType.StartObject)
            {
                model = TypeOf(ref reader);
            }
            else if (property == "pre_tokenizer" && reader.TokenType == JsonTokenType.StartObject)
            {
                using var document = JsonDocument.ParseValue(ref reader);
                preTokenizer = PreTokenizerKind(document.RootElement);
            }
            else
            {
                reader.Skip();
            }
        }

        return (model, preTokenizer);
    }

    /// <summary>The <c>type</c> of the object the reader is at, skipping the rest of it.</summary>
    private static string? TypeOf(ref Utf8JsonReader reader)
    {
        string? type = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var property = reader.GetString();
            reader.Read();
            if (property == "type" && reader.TokenType == JsonTokenType.String)
            {
                type = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }

        return type;
    }

    private static string? PreTokenizerKind(JsonElement pre)
    {
        var type = pre.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type == "Sequence" && pre.TryGetProperty("pretokenizers", out var steps) && steps.ValueKind == JsonValueKind.Array
            && steps.EnumerateArray().Any(s => s.TryGetProperty("type", out var st) && st.GetString() == "ByteLevel"))
        {
            return "ByteLevel";
        }

        return type;
    }
}
