using System.Collections.Concurrent;
using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>A Unigram (SentencePiece) vocabulary entry: the piece and its log-probability score.</summary>
public readonly record struct UnigramPiece(string Piece, double Score);

/// <summary>How a Unigram tokenizer treats text before and after its model (read from a tokenizer.json or an spm.model).</summary>
public sealed record UnigramOptions
{
    /// <summary>Id of the unknown piece in the vocabulary, or null when there is none.</summary>
    public int? UnknownId { get; init; }

    /// <summary>Whether text no piece covers becomes its UTF-8 bytes as <c>&lt;0xNN&gt;</c> pieces rather than the unknown piece.</summary>
    public bool ByteFallback { get; init; }

    /// <summary>The normalizer, or null.</summary>
    internal SentencePiecePipeline.Normalizer? Normalizer { get; init; }

    /// <summary>The pre-tokenizer, or null (the whole stretch is one word).</summary>
    internal SentencePiecePipeline.PreTokenizer? PreTokenizer { get; init; }

    /// <summary>Tokens matched literally in the raw text before normalisation (added tokens): text, id, lstrip, rstrip.</summary>
    public IReadOnlyList<(string Text, int Id, bool StripLeft, bool StripRight)> AddedTokens { get; init; } = [];
}

/// <summary>
/// SentencePiece's Unigram model as Hugging Face tokenizers runs it (XLM-RoBERTa, multilingual-e5, bge-m3, CamemBERT,
/// DeBERTa v2/v3): added tokens split off first; each stretch between them normalised and pre-tokenised (Metaspace);
/// each word cut into the pieces whose scores sum highest (Viterbi). A character no piece covers is the unknown piece,
/// runs of them fused into one, or its UTF-8 bytes as <c>&lt;0xNN&gt;</c> pieces with byte fallback.
/// </summary>
public sealed class UnigramTokenizer : TextTokenizer
{
    private const int CacheLimit = 200_000;

    // SentencePiece scores an unknown character this far below the lowest piece, so any path of known pieces wins.
    private const double UnknownPenalty = 10.0;

    private readonly UnigramPiece[] _pieces;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<long, int> _children = [];
    private readonly List<int> _pieceAtNode = [-1];
    private readonly double _unknownScore;
    private readonly UnigramOptions _options;
    private readonly SpecialTokenMatcher _added;
    private readonly int[] _byteIds = new int[256];
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public UnigramTokenizer(IReadOnlyList<UnigramPiece> pieces, SpecialTokenIds special, UnigramOptions options)
        : base(special)
    {
        if (pieces.Count == 0)
        {
            throw new InvalidDataException("The Unigram vocabulary is empty.");
        }

        if (options.UnknownId is { } unk && (unk < 0 || unk >= pieces.Count))
        {
            throw new InvalidDataException($"The Unigram unk_id {unk} is outside the vocabulary of {pieces.Count} pieces.");
        }

        _pieces = [.. pieces];
        _options = options;
        _ids = new Dictionary<string, int>(_pieces.Length, StringComparer.Ordinal);
        var minScore = double.PositiveInfinity;
        for (var id = 0; id < _pieces.Length; id++)
        {
            // A piece listed twice resolves to its last id, as tokenizers' map from piece to id does.
            _ids[_pieces[id].Piece] = id;
            minScore = Math.Min(minScore, _pieces[id].Score);
        }

        foreach (var (piece, id) in _ids)
        {
            Insert(piece, id);
        }

        _unknownScore = minScore - UnknownPenalty;
        for (var b = 0; b < 256; b++)
        {
            _byteIds[b] = _ids.TryGetValue($"<0x{b:X2}>", out var id) ? id : -1;
        }

        _added = new SpecialTokenMatcher(options.AddedTokens);
    }

    public int VocabularySize => _pieces.Length;

    public override void EncodeContent(string text, List<int> ids)
    {
        // tokenizers sees UTF-8: a lone surrogate cannot reach it, and becomes U+FFFD as any UTF-8 encoder makes it.
        var source = WellFormed(text);
        var pieces = new List<TextPiece>();
        _added.Split(
            source,
            (start, length) =>
            {
                var dropped = false;
                var normalized = _options.Normalizer is { } normalize ? normalize(source.Substring(start, length), ref dropped) : source.Substring(start, length);
                pieces.Clear();
                pieces.Add(new TextPiece(normalized, start == 0 && !dropped));
                _options.PreTokenizer?.Invoke(pieces);
                foreach (var piece in pieces)
                {
                    EncodeWord(piece.Text, ids);
                }
            },
            ids.Add);
    }

    private void EncodeWord(string word, List<int> ids)
    {
        if (word.Length == 0)
        {
            return;
        }

        if (!_cache.TryGetValue(word, out var wordIds))
        {
            wordIds = Viterbi(word);
            if (_cache.Count > CacheLimit)
            {
                _cache.Clear();
            }

            _cache[word] = wordIds;
        }

        ids.AddRange(wordIds);
    }

    /// <summary>The best segmentation of <paramref name="word"/>, as tokenizers' optimised Unigram encoder finds it.</summary>
    private int[] Viterbi(string word)
    {
        var n = word.Length;
        var bestScore = new double[n + 1];
        var startsAt = new int[n + 1];
        var nodeId = new int[n + 1];
        Array.Fill(startsAt, -1);
        var position = 0;
        while (position < n)
        {
            var charLength = char.IsHighSurrogate(word[position]) && position + 1 < n && char.IsLowSurrogate(word[position + 1]) ? 2 : 1;
            var scoreHere = bestScore[position];
            var hasSingle = false;
            var node = 0;

            // Pieces starting here, shortest first; a later candidate replaces the best only when strictly better.
            for (var k = position; k < n; k++)
            {
                if (!_children.TryGetValue(((long)node << 16) | word[k], out node))
                {
                    break;
                }

                var id = _pieceAtNode[node];
                if (id < 0)
                {
                    continue;
                }

                var end = k + 1;
                var candidate = scoreHere + _pieces[id].Score;
                if (startsAt[end] < 0 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    startsAt[end] = position;
                    nodeId[end] = id;
                }

                hasSingle |= end - position == charLength;
            }

            if (!hasSingle)
            {
                var unknown = _options.UnknownId
                    ?? throw new InvalidDataException("The text holds a character no Unigram piece covers and the vocabulary has no unknown piece.");
                var end = position + charLength;
                var candidate = scoreHere + _unknownScore;
                if (startsAt[end] < 0 || candidate > bestScore[end])
                {
                    bestScore[end] = candidate;
                    startsAt[end] = position;
                    nodeId[end] = unknown;
                }
            }

            position += charLength;
        }

        // Back from the end; consecutive unknown pieces fuse into one string, looked up as a whole.
        var spans = new List<(int Start, int End, bool Unknown)>();
        var cursor = n;
        while (cursor > 0)
        {
            var start = startsAt[cursor];
            var unknown = nodeId[cursor] == _options.UnknownId;
            if (unknown && spans.Count > 0 && spans[^1].Unknown)
            {
                spans[^1] = (start, spans[^1].End, true);
            }
            else
            {
                spans.Add((start, cursor, unknown));
            }

            cursor = start;
        }

        var result = new List<int>(spans.Count);
        for (var s = spans.Count - 1; s >= 0; s--)
        {
            var (start, end, unknown) = spans[s];
            if (!unknown)
            {
                result.Add(nodeId[end]);
                continue;
            }

            var text = word[start..end];
            if (_ids.TryGetValue(text, out var id))
            {
                result.Add(id);
            }
            else if (!_options.ByteFallback || !AppendBytes(text, result))
            {
                result.Add(_options.UnknownId!.Value);
            }
        }

        return [.. result];
    }

    /// <summary>Appends the <c>&lt;0xNN&gt;</c> pieces of the text's UTF-8 bytes when the vocabulary has all of them.</summary>
    private bool AppendBytes(string text, List<int> result)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Any(b => _byteIds[b] < 0))
        {
            return false;
        }

        result.AddRange(bytes.Select(b => _byteIds[b]));
        return true;
    }

    private void Insert(string piece, int id)
    {
        var node = 0;
        foreach (var c in piece)
        {
            var key = ((long)node << 16) | c;
            if (!_children.TryGetValue(key, out var child))
            {
                child = _pieceAtNode.Count;
                _pieceAtNode.Add(-1);
                _children[key] = child;
            }

            node = child;
        }

        if (node != 0)
        {
            _pieceAtNode[node] = id;
        }
    }

    private static string WellFormed(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsSurrogate(text[i]))
            {
                return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
            }
        }

        return text;
    }
}
