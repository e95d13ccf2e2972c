using System.IO.Compression;
using System.Text;
using System.Text.Json;
using OrleansGpu.Inference.Tokenization;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Tokenization;

/// <summary>
/// Our tokenizers against what Hugging Face's own produced (tools/tokenizer-truth/hf_truth.py, run with transformers
/// 5.17 and tokenizers 0.23.2 where they are installed): hostile texts from every Unicode block, and every code point
/// rule by rule.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class HuggingFaceParityTests(MiniLmFixture minilm)
{
    private static readonly Lazy<JsonDocument> Corpus = new(() => ReadGzipJson("hf-tokenizer-corpus.json.gz"));

    private static readonly Lazy<JsonDocument> CodePoints = new(() => ReadGzipJson("hf-bert-unicode.json.gz"));

    [Fact]
    public void Every_fuzz_text_gets_the_ids_of_BertTokenizerFast()
    {
        var root = Corpus.Value.RootElement;
        var texts = Strings(root.GetProperty("texts"));
        var expected = IdLists(root.GetProperty("wordpiece").GetProperty("input_ids"));
        var tokenizer = minilm.Embedding.Tokenizer;

        var mismatches = Enumerable.Range(0, texts.Length)
            .Where(i => !tokenizer.Encode(texts[i], 256).SequenceEqual(expected[i]))
            .Select(i => $"#{i} {JsonSerializer.Serialize(texts[i][..Math.Min(60, texts[i].Length)])}")
            .ToList();

        Assert.Equal(1200, texts.Length);
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Every_fuzz_text_gets_the_ids_bert_score_gets_from_DebertaTokenizer()
    {
        var root = Corpus.Value.RootElement;
        var texts = Strings(root.GetProperty("texts"));
        var expected = IdLists(root.GetProperty("deberta").GetProperty("input_ids"));
        var vocabulary = new Dictionary<string, int>(Gpt2Data.Vocabulary);
        foreach (var special in new[] { "[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]" })
        {
            vocabulary.TryAdd(special, vocabulary.Count);
        }

        var tokenizer = ByteLevelBpeTokenizer.Create(vocabulary, Gpt2Data.Merges);

        // bert_score's sent_encode: strip, [CLS] [SEP] for an empty text, else encode within the model maximum.
        int[] Encode(string text)
        {
            var stripped = UnicodeRules.PythonStrip(text);
            return stripped.Length == 0 ? [tokenizer.Special.Start, tokenizer.Special.End] : tokenizer.Encode(stripped, 512);
        }

        var mismatches = Enumerable.Range(0, texts.Length)
            .Where(i => !Encode(texts[i]).SequenceEqual(expected[i]))
            .Select(i => $"#{i} {JsonSerializer.Serialize(texts[i][..Math.Min(60, texts[i].Length)])}")
            .ToList();

        Assert.Empty(mismatches);
    }

    [Fact]
    public void Every_code_point_is_cleaned_spaced_split_stripped_and_lower_cased_as_tokenizers_does()
    {
        var root = CodePoints.Value.RootElement;
        var clean = root.GetProperty("clean").GetString()!;
        var chinese = root.GetProperty("chinese").GetString()!;
        var split = root.GetProperty("split").GetString()!;
        var stripped = Map(root.GetProperty("strip_accents"));
        var lowered = Map(root.GetProperty("lowercase"));
        var wrong = new List<string>();
        var sb = new StringBuilder();

        for (var cp = 0; cp < 0x110000; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF)
            {
                continue;
            }

            var rune = new Rune(cp);
            var text = rune.ToString();
            var removed = UnicodeRules.IsBertRemoved(rune);
            var cleaned = removed ? 'R' : UnicodeRules.IsBertWhitespace(rune) && cp != ' ' ? 'W' : '.';
            Check("clean", clean[cp], cleaned);
            Check("chinese", chinese[cp], UnicodeRules.IsCjk(cp) ? 'C' : '.');
            Check("split", split[cp], Rune.IsWhiteSpace(rune) ? 'W' : UnicodeRules.IsBertPunctuation(rune) ? 'P' : '.');

            sb.Clear();
            UnicodeRules.AppendWithoutAccents(sb, text);
            Check("strip_accents", stripped.GetValueOrDefault(cp, text), sb.ToString());

            sb.Clear();
            UnicodeRules.AppendLower(sb, rune);
            Check("lowercase", lowered.GetValueOrDefault(cp, text), sb.ToString());

            void Check<T>(string rule, T theirs, T ours)
            {
                if (!EqualityComparer<T>.Default.Equals(theirs, ours) && wrong.Count < 20)
                {
                    wrong.Add($"U+{cp:X4} {rule}: tokenizers {theirs}, ours {ours}");
                }
            }
        }

        Assert.Empty(wrong);
    }

    [Fact]
    public void Unassigned_code_points_stay_in_their_word_as_tokenizers_keeps_them()
    {
        var tokenizer = minilm.Embedding.Tokenizer;
        Assert.Equal([101, 100, 102], tokenizer.Encode("x\u0378y", 256));
        Assert.NotEqual(tokenizer.Encode("xy", 256), tokenizer.Encode("x\u0378y", 256));
    }

    [Fact]
    public void Characters_newer_than_tokenizers_tables_are_ordinary_letters()
    {
        var tokenizer = minilm.Embedding.Tokenizer;

        // U+2E55 (a bracket from Unicode 14) and U+2B820 (CJK Extension E, before tokenizers' U+2B920) split nothing.
        Assert.Equal(3, tokenizer.Encode("a\u2E55b", 256).Length);
        Assert.Equal(3, tokenizer.Encode("a\U0002B820b", 256).Length);
        Assert.Equal(5, tokenizer.Encode("a(b", 256).Length);
    }

    private static JsonDocument ReadGzipJson(string name)
    {
        using var file = File.OpenRead(Path.Combine(AppContext.BaseDirectory, "Inference", "Tokenization", "Data", name));
        using var gunzip = new GZipStream(file, CompressionMode.Decompress);
        return JsonDocument.Parse(gunzip);
    }

    private static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static int[][] IdLists(JsonElement array) =>
        array.EnumerateArray().Select(e => e.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();

    private static Dictionary<int, string> Map(JsonElement rows) =>
        rows.EnumerateArray().ToDictionary(r => r[0].GetInt32(), r => r[1].GetString()!);
}
