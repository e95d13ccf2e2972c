using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// SentencePiece (Unigram) tokenizer.json files built here, shaped as Hugging Face's converters write them for
/// XLM-RoBERTa and DeBERTa v3 (and variants of their settings), with a vocabulary of a few hundred pieces whose scores
/// are drawn from a seed, and a <c>precompiled_charsmap</c> compiled here (<see cref="CharsMap"/>): no real one is
/// available offline. The truth they are checked against is Hugging Face's own Rust library (Tokenizers.DotNet).
/// </summary>
public static class SentencePieceFixtures
{
    /// <summary>Normalisation rules in the style of SentencePiece's nmt_nfkc: width, ligatures, spaces, removals, compositions.</summary>
    public static IReadOnlyDictionary<string, string> Rules { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Ａ"] = "A",
        ["Ｂ"] = "B",
        ["ａ"] = "a",
        ["ｂ"] = "b",
        ["１"] = "1",
        ["ﬁ"] = "fi",
        ["ﬂ"] = "fl",
        ["™"] = "TM",
        ["①"] = "1",
        ["\u00A0"] = " ",
        ["\u3000"] = " ",
        ["\u2000"] = " ",
        ["\u205F"] = " ",
        ["\t"] = " ",
        ["\n"] = " ",
        ["\r"] = " ",
        ["\u200B"] = "",
        ["\u00AD"] = "",
        ["\u0003"] = "",
        ["e\u0301"] = "é",
        ["a\u0308"] = "ä",
        ["\u212B"] = "Å",
        ["\uFF76\uFF9E"] = "ガ",
        ["\uFF76"] = "カ",
        ["…"] = "...",
        ["＂"] = "\"",
        ["𝐀"] = "A",
    };

    /// <summary>
    /// A precompiled_charsmap holding <paramref name="rules"/>: u32 LE trie size, a darts-clone double array, then the
    /// NUL-terminated replacements. Each trie node gets its own 256-unit block, its children at block + byte and its
    /// value at block + 0, which is a valid (if roomy) double array for darts-clone's traversal.
    /// </summary>
    public static byte[] CharsMap(IReadOnlyDictionary<string, string> rules)
    {
        var pool = new MemoryStream();
        var root = new Node();
        foreach (var (key, value) in rules.OrderBy(r => r.Key, StringComparer.Ordinal))
        {
            var node = root;
            foreach (var b in Encoding.UTF8.GetBytes(key))
            {
                node = node.Children.TryGetValue(b, out var child) ? child : node.Children[b] = new Node();
            }

            node.Value = (int)pool.Length;
            var bytes = Encoding.UTF8.GetBytes(value);
            pool.Write(bytes);
            pool.WriteByte(0);
        }

        var nodes = new List<Node>();
        void Number(Node n)
        {
            n.Block = 256 * (nodes.Count + 1);
            nodes.Add(n);
            foreach (var child in n.Children.Values)
            {
                Number(child);
            }
        }

        Number(root);
        var units = new uint[256 * (nodes.Count + 1)];
        units[0] = (uint)root.Block << 10;
        foreach (var node in nodes)
        {
            if (node.Value is { } value)
            {
                units[node.Block] = 0x80000000u | (uint)value;
            }

            foreach (var (label, child) in node.Children)
            {
                var position = node.Block + label;
                var offset = position ^ child.Block;
                if (offset >= 1 << 21)
                {
                    throw new InvalidOperationException("Too many rules for this simple double array.");
                }

                units[position] = ((uint)offset << 10) | (child.Value is null ? 0u : 1u << 8) | label;
            }
        }

        var blob = new byte[4 + (units.Length * 4) + pool.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(blob, (uint)(units.Length * 4));
        for (var i = 0; i < units.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4 + (4 * i)), units[i]);
        }

        pool.ToArray().CopyTo(blob, 4 + (units.Length * 4));
        return blob;
    }

    /// <summary>The fuzz texts of Tests/Inference/Tokenization/Data/hf-tokenizer-corpus.json.gz.</summary>
    public static string[] CorpusTexts()
    {
        using var file = File.OpenRead(Path.Combine(AppContext.BaseDirectory, "Inference", "Tokenization", "Data", "hf-tokenizer-corpus.json.gz"));
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var document = JsonDocument.Parse(gzip);
        return [.. document.RootElement.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!)];
    }

    /// <summary>
    /// Pieces for a vocabulary: single characters (ASCII, some Latin, CJK and kana, not all: the rest are unknown),
    /// "▁" alone and before words, and substrings of the corpus with spaces as "▁"; scores drawn from
    /// <paramref name="seed"/> on a coarse grid, so that ties between segmentations occur.
    /// </summary>
    public static List<(string Piece, double Score)> Pieces(int seed, int count = 400, bool bytePieces = false)
    {
        var random = new Random(seed);
        var pieces = new List<(string, double)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string piece)
        {
            if (seen.Add(piece))
            {
                pieces.Add((piece, -Math.Round(1 + (random.NextDouble() * 11), 1)));
            }
        }

        Add("▁");
        foreach (var c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()[]<>/$%&*+=_#@éäüöçñÅカガ中文日本語의한")
        {
            Add(c.ToString());
        }

        var corpus = CorpusTexts();
        var words = corpus.SelectMany(t => t.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(w => w.All(char.IsLetterOrDigit)).ToArray();
        while (pieces.Count < count)
        {
            var word = words[random.Next(words.Length)];
            var start = random.Next(word.Length);
            var length = Math.Min(word.Length - start, 1 + random.Next(6));
            var piece = word.Substring(start, length);
            if (char.IsLowSurrogate(piece[0]) || char.IsHighSurrogate(piece[^1]))
            {
                continue;
            }

            Add(random.Next(3) == 0 || start == 0 ? "▁" + piece : piece);
        }

        if (bytePieces)
        {
            for (var b = 0; b < 256; b++)
            {
                Add($"<0x{b:X2}>");
            }
        }

        return pieces;
    }

    /// <summary>What varies between the tokenizer.json files built by <see cref="TokenizerJson"/>.</summary>
    public sealed record Settings
    {
        public required string Name { get; init; }

        /// <summary>xlmr: &lt;s&gt;=0 &lt;pad&gt;=1 &lt;/s&gt;=2 &lt;unk&gt;=3 … &lt;mask&gt; last; deberta: [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3, [MASK] added after.</summary>
        public string Specials { get; init; } = "xlmr";

        public int Seed { get; init; } = 1;

        public int Count { get; init; } = 400;

        public bool ByteFallback { get; init; }

        public bool HasUnknown { get; init; } = true;

        public JsonNode? Normalizer { get; init; }

        public JsonNode? PreTokenizer { get; init; }

        /// <summary>
        /// Whether it applies Unicode normalisation forms (NFC ... NFKD) or StripAccents, whose tables in tokenizers are of
        /// an older Unicode than .NET's: characters added since may differ, one by one.
        /// </summary>
        public bool UnicodeVersionMayDiffer { get; init; }

        /// <summary>Whether &lt;mask&gt; is matched in the normalised text (<c>normalized: true</c>), as some hub files have it.</summary>
        public bool MaskNormalized { get; init; }

        /// <summary>Scores rounded to float32, as an spm.model stores them and a converted tokenizer.json widens them.</summary>
        public bool FloatScores { get; init; }

        /// <summary>"template" or "roberta".</summary>
        public string PostProcessor { get; init; } = "template";

        public override string ToString() => Name;
    }

    public static JsonObject Precompiled(IReadOnlyDictionary<string, string>? rules = null) =>
        new() { ["type"] = "Precompiled", ["precompiled_charsmap"] = Convert.ToBase64String(CharsMap(rules ?? Rules)) };

    public static JsonObject ReplaceRegex(string pattern, string content) =>
        new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["content"] = content };

    public static JsonObject ReplaceString(string pattern, string content) =>
        new() { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = pattern }, ["content"] = content };

    public static JsonObject Sequence(string key, params JsonNode[] steps) =>
        new() { ["type"] = "Sequence", [key] = new JsonArray(steps) };

    public static JsonObject Type(string type) => new() { ["type"] = type };

    public static JsonObject Strip(bool left = true, bool right = true) => new() { ["type"] = "Strip", ["strip_left"] = left, ["strip_right"] = right };

    /// <summary>Metaspace as tokenizers 0.19+ writes it.</summary>
    public static JsonObject Metaspace(string scheme = "always", bool split = true) =>
        new() { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = scheme, ["split"] = split };

    /// <summary>Metaspace as older files (xlm-roberta-base's, deberta-v3's) write it.</summary>
    public static JsonObject LegacyMetaspace(bool addPrefixSpace = true) =>
        new() { ["type"] = "Metaspace", ["replacement"] = "▁", ["add_prefix_space"] = addPrefixSpace };

    /// <summary>The tokenizer.json for <paramref name="settings"/>, and the id of each special token in it.</summary>
    public static string TokenizerJson(Settings settings)
    {
        var pieces = Pieces(settings.Seed, settings.Count, settings.ByteFallback);
        // CamemBERT's layout (CamembertConverter): fairseq's four, spm's <unk> kept out of use at -100, spm's <s> </s>.
        string[] specials = settings.Specials switch
        {
            "xlmr" => ["<s>", "<pad>", "</s>", "<unk>"],
            "camembert" => ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>"],
            _ => ["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
        };
        var vocab = new JsonArray();
        foreach (var s in specials)
        {
            vocab.Add(new JsonArray(s, s == "<unk>NOTUSED" ? -100.0 : 0.0));
        }

        foreach (var (piece, score) in pieces)
        {
            vocab.Add(new JsonArray(piece, settings.FloatScores ? (double)(float)score : score));
        }

        var added = new JsonArray();
        for (var i = 0; i < specials.Length; i++)
        {
            added.Add(AddedToken(i, specials[i], lstrip: false));
        }

        string start, end;
        int maskId;
        if (settings.Specials != "deberta")
        {
            maskId = vocab.Count;
            vocab.Add(new JsonArray("<mask>", 0.0));
            added.Add(AddedToken(maskId, "<mask>", lstrip: true, normalized: settings.MaskNormalized));
            (start, end) = ("<s>", "</s>");
        }
        else
        {
            maskId = vocab.Count;
            added.Add(AddedToken(maskId, "[MASK]", lstrip: false));
            (start, end) = ("[CLS]", "[SEP]");
        }

        var startId = Array.IndexOf(specials, start);
        var endId = Array.IndexOf(specials, end);
        JsonNode post = settings.PostProcessor == "roberta"
            ? new JsonObject
            {
                ["type"] = "RobertaProcessing",
                ["sep"] = new JsonArray(end, endId),
                ["cls"] = new JsonArray(start, startId),
                ["trim_offsets"] = true,
                ["add_prefix_space"] = true,
            }
            : new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(SpecialItem(start), SequenceItem("A"), SpecialItem(end)),
                ["pair"] = new JsonArray(SpecialItem(start), SequenceItem("A"), SpecialItem(end), SequenceItem("B"), SpecialItem(end)),
                ["special_tokens"] = new JsonObject
                {
                    [start] = new JsonObject { ["id"] = start, ["ids"] = new JsonArray(startId), ["tokens"] = new JsonArray(start) },
                    [end] = new JsonObject { ["id"] = end, ["ids"] = new JsonArray(endId), ["tokens"] = new JsonArray(end) },
                },
            };

        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = settings.Normalizer?.DeepClone(),
            ["pre_tokenizer"] = settings.PreTokenizer?.DeepClone(),
            ["post_processor"] = post,
            ["decoder"] = null,
            ["model"] = new JsonObject
            {
                ["type"] = "Unigram",
                ["unk_id"] = settings.HasUnknown ? 3 : null,
                ["vocab"] = vocab,
                ["byte_fallback"] = settings.ByteFallback,
            },
        };
        return root.ToJsonString();
    }

    /// <summary>
    /// DeBERTa v3's files for <paramref name="settings"/> (deberta specials): an <c>spm.model</c> (SentencePiece
    /// ModelProto: [PAD] [CLS] [SEP] as control pieces, [UNK] as the unknown piece, then the pieces; trainer_spec with
    /// <paramref name="modelType"/> and unk_id 3; normalizer_spec with the charsmap of <see cref="Rules"/>) and an
    /// <c>added_tokens.json</c> with [MASK] after the pieces, as microsoft/deberta-v3-* ship them.
    /// </summary>
    public static Dictionary<string, byte[]> DebertaSpmFiles(Settings settings, int modelType = 1)
    {
        var pieces = Pieces(settings.Seed, settings.Count, settings.ByteFallback);
        return new Dictionary<string, byte[]>
        {
            ["spm.model"] = DebertaSpmModel(pieces, settings.ByteFallback, modelType),
            ["added_tokens.json"] = Encoding.UTF8.GetBytes($$"""{"[MASK]": {{pieces.Count + 4}}}"""),
        };
    }

    /// <summary>An spm.model of [PAD] [CLS] [SEP] (control), [UNK] (unknown), then <paramref name="pieces"/>.</summary>
    public static byte[] DebertaSpmModel(IReadOnlyList<(string Piece, double Score)> pieces, bool byteFallback = false, int modelType = 1) =>
        SpmModel([("[PAD]", 3), ("[CLS]", 3), ("[SEP]", 3), ("[UNK]", 2)], unknownId: 3, pieces, byteFallback, modelType);

    /// <summary>
    /// XLM-RoBERTa's <c>sentencepiece.bpe.model</c> for <paramref name="settings"/>: &lt;unk&gt; (unknown), &lt;s&gt;
    /// &lt;/s&gt; (control), then the pieces, so that each lands at the id the xlmr tokenizer.json gives it, less one
    /// (CamemBERT's file is laid out the same; its converter puts each piece 4 up).
    /// </summary>
    public static byte[] XlmRobertaSpmModel(Settings settings, int modelType = 1) =>
        SpmModel([("<unk>", 2), ("<s>", 3), ("</s>", 3)], unknownId: 0, Pieces(settings.Seed, settings.Count, settings.ByteFallback), settings.ByteFallback, modelType);

    /// <summary>
    /// A SentencePiece ModelProto: the <paramref name="head"/> pieces (score 0, of their type), then
    /// <paramref name="pieces"/> (normal, or byte pieces); trainer_spec with <paramref name="modelType"/> and
    /// <paramref name="unknownId"/>; normalizer_spec with the charsmap of <see cref="Rules"/>.
    /// </summary>
    private static byte[] SpmModel(
        (string Piece, int Type)[] head, int unknownId, IReadOnlyList<(string Piece, double Score)> pieces, bool byteFallback, int modelType)
    {
        var model = new MemoryStream();
        void Piece(string text, float score, int type)
        {
            var body = new MemoryStream();
            ProtoBytes(body, 1, Encoding.UTF8.GetBytes(text));
            ProtoKey(body, 2, 5);
            body.Write(BitConverter.GetBytes(score));
            ProtoKey(body, 3, 0);
            ProtoVarint(body, (ulong)type);
            ProtoBytes(model, 1, body.ToArray());
        }

        foreach (var (piece, type) in head)
        {
            Piece(piece, 0, type);
        }

        foreach (var (piece, score) in pieces)
        {
            Piece(piece, (float)score, piece.StartsWith("<0x", StringComparison.Ordinal) ? 6 : 1);
        }

        var trainer = new MemoryStream();
        ProtoKey(trainer, 3, 0);
        ProtoVarint(trainer, (ulong)modelType);
        ProtoKey(trainer, 4, 0);
        ProtoVarint(trainer, (ulong)(pieces.Count + head.Length));
        ProtoKey(trainer, 35, 0);
        ProtoVarint(trainer, byteFallback ? 1UL : 0UL);
        ProtoKey(trainer, 40, 0);
        ProtoVarint(trainer, (ulong)unknownId);
        ProtoBytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        ProtoBytes(normalizer, 1, Encoding.UTF8.GetBytes("nmt_nfkc"));
        ProtoBytes(normalizer, 2, CharsMap(Rules));
        ProtoBytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    private static void ProtoKey(Stream s, int field, int wire) => ProtoVarint(s, ((ulong)field << 3) | (uint)wire);

    private static void ProtoVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }

        s.WriteByte((byte)value);
    }

    private static void ProtoBytes(Stream s, int field, byte[] bytes)
    {
        ProtoKey(s, field, 2);
        ProtoVarint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static JsonObject AddedToken(int id, string content, bool lstrip, bool normalized = false) => new()
    {
        ["id"] = id,
        ["content"] = content,
        ["single_word"] = false,
        ["lstrip"] = lstrip,
        ["rstrip"] = false,
        ["normalized"] = normalized,
        ["special"] = true,
    };

    private static JsonObject SpecialItem(string id) => new() { ["SpecialToken"] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };

    private static JsonObject SequenceItem(string id) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = 0 } };

    private sealed class Node
    {
        public SortedDictionary<byte, Node> Children { get; } = [];

        public int? Value { get; set; }

        public int Block { get; set; }
    }
}
