using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>Settings of a BERT WordPiece tokenizer, named as in Hugging Face's <c>tokenizer.json</c>.</summary>
public sealed record WordPieceOptions
{
    public bool Lowercase { get; init; } = true;

    /// <summary>Strip accents (NFD, drop non-spacing marks). Null follows <see cref="Lowercase"/>, as in Hugging Face.</summary>
    public bool? StripAccents { get; init; }

    public bool CleanText { get; init; } = true;

    public bool HandleChineseChars { get; init; } = true;

    public string UnknownToken { get; init; } = "[UNK]";

    public string ContinuingSubwordPrefix { get; init; } = "##";

    /// <summary>Words longer than this (in code points, after normalisation) become the unknown token.</summary>
    public int MaxInputCharsPerWord { get; init; } = 100;

    public string StartToken { get; init; } = "[CLS]";

    public string EndToken { get; init; } = "[SEP]";

    public string PadToken { get; init; } = "[PAD]";

    /// <summary>Special tokens recognised when they appear literally in the input.</summary>
    public IReadOnlyList<string> LiteralSpecialTokens { get; init; } = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
}

/// <summary>
/// BERT WordPiece, identical to Hugging Face <c>BertTokenizerFast</c>: BertNormalizer (clean text, CJK spacing,
/// accent stripping, lower case), BertPreTokenizer (whitespace and punctuation), greedy longest-match WordPiece.
/// </summary>
public sealed class WordPieceTokenizer : TextTokenizer
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _words;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _continuations;
    private readonly SpecialTokenMatcher _literals;
    private readonly WordPieceOptions _options;
    private readonly bool _stripAccents;

    public WordPieceTokenizer(IReadOnlyDictionary<string, int> vocabulary, WordPieceOptions? options = null)
        : base(ResolveSpecials(vocabulary, options ?? new WordPieceOptions()))
    {
        _options = options ?? new WordPieceOptions();
        _stripAccents = _options.StripAccents ?? _options.Lowercase;
        if (_stripAccents)
        {
            UnicodeRules.EnsureDecompositionWorks();
        }

        var words = new Dictionary<string, int>(StringComparer.Ordinal);
        var continuations = new Dictionary<string, int>(StringComparer.Ordinal);
        var prefix = _options.ContinuingSubwordPrefix;
        foreach (var (token, id) in vocabulary)
        {
            words[token] = id;
            if (prefix.Length > 0 && token.StartsWith(prefix, StringComparison.Ordinal))
            {
                continuations[token[prefix.Length..]] = id;
            }
        }

        _words = words.GetAlternateLookup<ReadOnlySpan<char>>();
        _continuations = continuations.GetAlternateLookup<ReadOnlySpan<char>>();
        _literals = new SpecialTokenMatcher(_options.LiteralSpecialTokens
            .Where(vocabulary.ContainsKey)
            .Select(t => (t, vocabulary[t], false)));
        VocabularySize = vocabulary.Count;
    }

    public int VocabularySize { get; }

    /// <summary>Reads a <c>vocab.txt</c> (one token per line; the line number is the id).</summary>
    public static WordPieceTokenizer FromVocabFile(string path, WordPieceOptions? options = null)
    {
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var id = 0;
        foreach (var line in File.ReadLines(path))
        {
            vocabulary.TryAdd(line.TrimEnd('\r'), id);
            id++;
        }

        return new WordPieceTokenizer(vocabulary, options);
    }

    public override void EncodeContent(string text, List<int> ids) =>
        _literals.Split(text, (start, length) => EncodeText(text.AsSpan(start, length), ids), ids.Add);

    private void EncodeText(ReadOnlySpan<char> text, List<int> ids)
    {
        var normalized = Normalize(text);
        var span = normalized.AsSpan();
        var wordStart = -1;
        var i = 0;
        while (i < span.Length)
        {
            Rune.DecodeFromUtf16(span[i..], out var rune, out var width);
            if (Rune.IsWhiteSpace(rune))
            {
                FlushWord(span, ref wordStart, i, ids);
            }
            else if (UnicodeRules.IsBertPunctuation(rune))
            {
                FlushWord(span, ref wordStart, i, ids);
                EncodeWord(span.Slice(i, width), ids);
            }
            else if (wordStart < 0)
            {
                wordStart = i;
            }

            i += width;
        }

        FlushWord(span, ref wordStart, span.Length, ids);
    }

    private void FlushWord(ReadOnlySpan<char> text, ref int wordStart, int end, List<int> ids)
    {
        if (wordStart >= 0)
        {
            EncodeWord(text[wordStart..end], ids);
            wordStart = -1;
        }
    }

    private string Normalize(ReadOnlySpan<char> text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            if (_options.CleanText)
            {
                if (UnicodeRules.IsBertRemoved(rune))
                {
                    continue;
                }

                if (UnicodeRules.IsBertWhitespace(rune))
                {
                    sb.Append(' ');
                    continue;
                }
            }

            if (_options.HandleChineseChars && UnicodeRules.IsCjk(rune.Value))
            {
                sb.Append(' ').Append(rune.ToString()).Append(' ');
                continue;
            }

            sb.Append(rune.ToString());
        }

        var result = sb.ToString();
        if (_stripAccents)
        {
            sb.Clear();
            UnicodeRules.AppendWithoutAccents(sb, result);
            result = sb.ToString();
        }

        if (_options.Lowercase)
        {
            var source = result;
            sb.Clear();
            foreach (var rune in source.EnumerateRunes())
            {
                UnicodeRules.AppendLower(sb, rune);
            }

            result = sb.ToString();
        }

        return result;
    }

    private void EncodeWord(ReadOnlySpan<char> word, List<int> ids)
    {
        var codePoints = 0;
        foreach (var _ in word.EnumerateRunes())
        {
            codePoints++;
        }

        if (codePoints > _options.MaxInputCharsPerWord)
        {
            ids.Add(Special.Unknown);
            return;
        }

        var mark = ids.Count;
        var start = 0;
        while (start < word.Length)
        {
            var end = word.Length;
            var found = -1;
            while (end > start)
            {
                var piece = word[start..end];
                var hit = start == 0 ? _words.TryGetValue(piece, out var id) : _continuations.TryGetValue(piece, out id);
                if (hit)
                {
                    found = id;
                    break;
                }

                end--;
                if (end > start && char.IsLowSurrogate(word[end]))
                {
                    end--; // never cut a surrogate pair
                }
            }

            if (found < 0)
            {
                ids.RemoveRange(mark, ids.Count - mark);
                ids.Add(Special.Unknown);
                return;
            }

            ids.Add(found);
            start = end;
        }
    }

    private static SpecialTokenIds ResolveSpecials(IReadOnlyDictionary<string, int> vocabulary, WordPieceOptions options)
    {
        int Require(string token) => vocabulary.TryGetValue(token, out var id)
            ? id
            : throw new InvalidDataException($"The WordPiece vocabulary has no '{token}' token.");

        return new SpecialTokenIds(
            Require(options.StartToken),
            Require(options.EndToken),
            vocabulary.TryGetValue(options.PadToken, out var pad) ? pad : 0,
            Require(options.UnknownToken));
    }
}
