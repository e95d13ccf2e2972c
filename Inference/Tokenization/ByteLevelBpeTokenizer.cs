using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Byte-level BPE as GPT-2, RoBERTa and DeBERTa (v1) use it (<c>vocab.json</c> + <c>merges.txt</c>): literal special
/// tokens first, then GPT-2 pre-tokenisation, UTF-8 bytes mapped to printable characters, merges by rank.
/// </summary>
public sealed class ByteLevelBpeTokenizer : TextTokenizer
{
    private const int CacheLimit = 200_000;

    private static readonly string[] ByteToSymbol = BuildByteAlphabet();

    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<(string Left, string Right), int> _mergeRanks;
    private readonly SpecialTokenMatcher _literals;
    private readonly ConcurrentDictionary<string, int[]> _cache;

    private ByteLevelBpeTokenizer(
        Dictionary<string, int> vocabulary,
        Dictionary<(string, string), int> mergeRanks,
        SpecialTokenIds special,
        SpecialTokenMatcher literals,
        ConcurrentDictionary<string, int[]> cache,
        bool addPrefixSpace)
        : base(special)
    {
        _vocabulary = vocabulary;
        _mergeRanks = mergeRanks;
        _literals = literals;
        _cache = cache;
        AddPrefixSpace = addPrefixSpace;
    }

    /// <summary>
    /// Whether a space is put before the text, so that its first word is encoded like a word inside a sentence
    /// (<c>add_prefix_space=True</c>). bert_score does this for RoBERTa and GPT-2 tokenizers.
    /// </summary>
    public bool AddPrefixSpace { get; }

    public int VocabularySize => _vocabulary.Count;

    /// <summary>The same vocabulary and merges, with the prefix-space rule set as given.</summary>
    public ByteLevelBpeTokenizer WithPrefixSpace(bool addPrefixSpace) =>
        addPrefixSpace == AddPrefixSpace
            ? this
            : new ByteLevelBpeTokenizer(_vocabulary, _mergeRanks, Special, _literals, _cache, addPrefixSpace);

    /// <summary>Reads a Hugging Face <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    public static ByteLevelBpeTokenizer FromFiles(string vocabJsonPath, string mergesPath, bool addPrefixSpace = false)
    {
        var vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabJsonPath))
            ?? throw new InvalidDataException($"{vocabJsonPath} is not a JSON object of token → id.");
        var merges = File.ReadLines(mergesPath)
            .Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal))
            .Select(ParseMerge);
        return Create(vocabulary, merges, addPrefixSpace);
    }

    /// <summary>Builds a tokenizer from a vocabulary and merges given in rank order.</summary>
    public static ByteLevelBpeTokenizer Create(
        IReadOnlyDictionary<string, int> vocabulary,
        IEnumerable<(string Left, string Right)> merges,
        bool addPrefixSpace = false,
        IEnumerable<string>? extraSpecialTokens = null)
    {
        var vocab = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        var ranks = new Dictionary<(string, string), int>();
        var rank = 0;
        foreach (var merge in merges)
        {
            ranks.TryAdd(merge, rank++);
        }

        var (special, literals) = ResolveSpecials(vocab, extraSpecialTokens);
        return new ByteLevelBpeTokenizer(vocab, ranks, special, literals, new ConcurrentDictionary<string, int[]>(), addPrefixSpace);
    }

    internal static (string, string) ParseMerge(string line)
    {
        var space = line.IndexOf(' ');
        if (space <= 0 || space != line.LastIndexOf(' '))
        {
            throw new InvalidDataException($"Merge line '{line}' must hold exactly two symbols separated by one space.");
        }

        return (line[..space], line[(space + 1)..]);
    }

    public override void EncodeContent(string text, List<int> ids)
    {
        // The space goes before the whole text, as transformers' prepare_for_tokenization puts it, so a text that
        // opens with a literal special token gets a lone "Ġ" before that token (unless the token strips it).
        var source = AddPrefixSpace && text.Length > 0 && !UnicodeRules.IsPythonSpace(text[0]) ? " " + text : text;
        _literals.Split(source, (start, length) => EncodeText(source.AsSpan(start, length), ids), ids.Add);
    }

    private void EncodeText(ReadOnlySpan<char> text, List<int> ids)
    {
        var pieces = new List<(int Start, int Length)>();
        ByteLevelPreTokenizer.Split(text, pieces);
        foreach (var (start, length) in pieces)
        {
            var mapped = MapBytes(text.Slice(start, length));
            if (!_cache.TryGetValue(mapped, out var pieceIds))
            {
                pieceIds = Bpe(mapped);
                if (_cache.Count > CacheLimit)
                {
                    _cache.Clear();
                }

                _cache[mapped] = pieceIds;
            }

            ids.AddRange(pieceIds);
        }
    }

    private static string MapBytes(ReadOnlySpan<char> piece)
    {
        var bytes = Encoding.UTF8.GetBytes(piece.ToArray());
        var sb = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            sb.Append(ByteToSymbol[b]);
        }

        return sb.ToString();
    }

    private int[] Bpe(string word)
    {
        var symbols = new List<string>(word.Length);
        foreach (var rune in word.EnumerateRunes())
        {
            symbols.Add(rune.ToString());
        }

        while (symbols.Count > 1)
        {
            var best = int.MaxValue;
            (string, string) bestPair = default;
            for (var k = 0; k < symbols.Count - 1; k++)
            {
                if (_mergeRanks.TryGetValue((symbols[k], symbols[k + 1]), out var rank) && rank < best)
                {
                    best = rank;
                    bestPair = (symbols[k], symbols[k + 1]);
                }
            }

            if (best == int.MaxValue)
            {
                break;
            }

            // Merge every occurrence of the best pair, left to right, as GPT-2's reference code does.
            var merged = new List<string>(symbols.Count);
            for (var k = 0; k < symbols.Count; k++)
            {
                if (k < symbols.Count - 1 && symbols[k] == bestPair.Item1 && symbols[k + 1] == bestPair.Item2)
                {
                    merged.Add(bestPair.Item1 + bestPair.Item2);
                    k++;
                }
                else
                {
                    merged.Add(symbols[k]);
                }
            }

            symbols = merged;
        }

        var result = new List<int>(symbols.Count);
        foreach (var symbol in symbols)
        {
            if (_vocabulary.TryGetValue(symbol, out var id))
            {
                result.Add(id);
            }
            else if (Special.Unknown >= 0)
            {
                result.Add(Special.Unknown);
            }
        }

        return [.. result];
    }

    private static (SpecialTokenIds, SpecialTokenMatcher) ResolveSpecials(
        Dictionary<string, int> vocab, IEnumerable<string>? extraSpecialTokens)
    {
        int Id(string token) => vocab.TryGetValue(token, out var id) ? id : -1;

        string[] literalTokens;
        SpecialTokenIds special;
        if (Id("<s>") >= 0 && Id("</s>") >= 0)
        {
            // RoBERTa: <s> … </s>, <pad>, <unk>, <mask> (which swallows the whitespace before it).
            special = new SpecialTokenIds(Id("<s>"), Id("</s>"), Math.Max(Id("<pad>"), 0), Id("<unk>"));
            literalTokens = ["<s>", "</s>", "<pad>", "<unk>", "<mask>"];
        }
        else if (Id("[CLS]") >= 0 && Id("[SEP]") >= 0)
        {
            // DeBERTa v1: [CLS] … [SEP], [PAD], [UNK], [MASK].
            special = new SpecialTokenIds(Id("[CLS]"), Id("[SEP]"), Math.Max(Id("[PAD]"), 0), Id("[UNK]"));
            literalTokens = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"];
        }
        else if (Id("<|endoftext|>") >= 0)
        {
            // GPT-2: one token does every job.
            var eot = Id("<|endoftext|>");
            special = new SpecialTokenIds(eot, eot, eot, eot);
            literalTokens = ["<|endoftext|>"];
        }
        else
        {
            throw new InvalidDataException(
                "The BPE vocabulary has no sequence tokens: expected <s> and </s>, [CLS] and [SEP], or <|endoftext|>.");
        }

        var literals = literalTokens.Concat(extraSpecialTokens ?? [])
            .Distinct()
            .Where(t => Id(t) >= 0)
            .Select(t => (t, Id(t), t == "<mask>"));
        return (special, new SpecialTokenMatcher(literals));
    }

    /// <summary>GPT-2's reversible map from the 256 byte values to printable Unicode characters.</summary>
    private static string[] BuildByteAlphabet()
    {
        var map = new string[256];
        var printable = new List<int>();
        for (var b = '!'; b <= '~'; b++)
        {
            printable.Add(b);
        }

        for (var b = 0xA1; b <= 0xAC; b++)
        {
            printable.Add(b);
        }

        for (var b = 0xAE; b <= 0xFF; b++)
        {
            printable.Add(b);
        }

        foreach (var b in printable)
        {
            map[b] = ((char)b).ToString();
        }

        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            if (map[b] is null)
            {
                map[b] = ((char)(256 + next)).ToString();
                next++;
            }
        }

        return map;
    }

    /// <summary>The printable character that stands for <paramref name="b"/> in byte-level vocabularies.</summary>
    public static string SymbolForByte(byte b) => ByteToSymbol[b];
}
