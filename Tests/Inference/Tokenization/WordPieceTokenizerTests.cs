using System.Text.Json.Nodes;
using OrleansGpu.Inference.Tokenization;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Tokenization;

[Collection(MiniLmCollection.Name)]
public sealed class WordPieceTokenizerTests(MiniLmFixture minilm)
{
    private TextTokenizer Tokenizer => minilm.Embedding.Tokenizer;

    private int[] Ids(string text, int max = 256) => Tokenizer.Encode(text, max);

    [Fact]
    public void Every_oracle_text_gets_exactly_the_input_ids_of_BertTokenizerFast()
    {
        var oracle = Oracles.Embed;
        var mismatches = new List<string>();
        for (var i = 0; i < oracle.Texts.Length; i++)
        {
            var ids = Ids(oracle.Texts[i]);
            if (!ids.SequenceEqual(oracle.InputIds[i]))
            {
                mismatches.Add($"#{i} {oracle.Texts[i][..Math.Min(40, oracle.Texts[i].Length)]}: [{string.Join(",", ids.Take(12))}] vs [{string.Join(",", oracle.InputIds[i].Take(12))}]");
            }
        }

        Assert.Equal(327, oracle.Texts.Length);
        Assert.Empty(mismatches);
    }

    [Fact]
    public void Accents_are_stripped_and_text_lower_cased() =>
        Assert.Equal([101, 7668, 15743, 13746, 102], Ids("café naïve résumé"));

    [Fact]
    public void Upper_case_and_accented_capitals_equal_their_plain_lower_case() =>
        Assert.Equal(Ids("ecole cafe"), Ids("ÉCOLE Café"));

    [Fact]
    public void Cjk_characters_become_one_token_each()
    {
        var ids = Ids("这是一个测试");
        Assert.Equal(8, ids.Length); // [CLS] + six characters + [SEP]
        Assert.Equal(Ids("这 是 一 个 测 试"), ids);
    }

    [Fact]
    public void Zero_width_and_control_characters_are_removed()
    {
        Assert.Equal(Ids("zerowidth"), Ids("zero\u200bwidth"));
        Assert.Equal(Ids("bellchar"), Ids("bell\u0007char"));
        Assert.Equal(Ids("softhyphen"), Ids("soft\u00adhyphen"));
    }

    [Fact]
    public void Tabs_newlines_and_runs_of_spaces_separate_words_like_one_space()
    {
        var expected = Ids("multiple spaces here");
        Assert.Equal(expected, Ids("multiple    spaces   here"));
        Assert.Equal(expected, Ids("multiple\tspaces\nhere"));
        Assert.Equal(expected, Ids("multiple\r\nspaces\u3000here"));
    }

    [Fact]
    public void Punctuation_and_ascii_symbols_are_split_into_their_own_tokens()
    {
        var ids = Ids("a$b");
        Assert.Equal(5, ids.Length);
        Assert.Equal(Ids("a $ b"), ids);
        Assert.Equal(Ids("hello , world !"), Ids("hello,world!"));
    }

    [Fact]
    public void A_word_over_100_characters_is_one_unknown_token()
    {
        Assert.Equal([101, 100, 102], Ids(new string('x', 101)));
        Assert.NotEqual([101, 100, 102], Ids(new string('x', 100)));
    }

    [Fact]
    public void Literal_special_token_text_is_recognised() =>
        Assert.Equal([101, 101, 102, 103, 18204, 102], Ids("[CLS] [SEP] [MASK] literal"));

    [Fact]
    public void Special_token_text_in_other_case_is_ordinary_text() =>
        Assert.NotEqual(101, Ids("[cls]")[1]);

    [Fact]
    public void Truncation_counts_the_start_and_end_tokens()
    {
        var text = string.Join(' ', Enumerable.Repeat("word", 600));
        var ids = Ids(text, 256);
        Assert.Equal(256, ids.Length);
        Assert.Equal(101, ids[0]);
        Assert.Equal(102, ids[^1]);
        Assert.Equal(10, Ids(text, 10).Length);
    }

    [Fact]
    public void Empty_and_blank_text_is_just_start_and_end()
    {
        Assert.Equal([101, 102], Ids(""));
        Assert.Equal([101, 102], Ids("   \t\n"));
    }

    [Fact]
    public void Unknown_pieces_make_the_whole_word_unknown()
    {
        // An emoji run is one word (no spaces, not punctuation) that the vocabulary cannot spell.
        Assert.Equal([101, 100, 102], Ids("🙂🚀"));
    }

    [Fact]
    public void Capital_I_with_dot_lower_cases_like_Rust_does()
    {
        var vocab = new Dictionary<string, int> { ["[PAD]"] = 0, ["[UNK]"] = 1, ["[CLS]"] = 2, ["[SEP]"] = 3, ["i"] = 4, ["i\u0307"] = 5 };

        // Accents stripped: NFD splits İ into I + U+0307 and the mark goes, leaving "i".
        Assert.Equal([2, 4, 3], new WordPieceTokenizer(vocab).Encode("İ", 8));

        // Accents kept: Rust's to_lowercase maps U+0130 to "i" + U+0307 (.NET's simple mapping would give "i").
        Assert.Equal([2, 5, 3], new WordPieceTokenizer(vocab, new WordPieceOptions { StripAccents = false }).Encode("İ", 8));
    }

    [Fact]
    public void Tokenizer_json_and_vocab_txt_give_the_same_ids()
    {
        var dir = Directory.CreateTempSubdirectory("wp-json-").FullName;
        try
        {
            var vocab = File.ReadAllLines(Path.Combine(minilm.Folder.Directory, "vocab.txt"));
            var vocabObject = new JsonObject();
            for (var i = 0; i < vocab.Length; i++)
            {
                vocabObject[vocab[i]] = i;
            }

            var json = JsonNode.Parse("""
                {"added_tokens":[{"id":0,"content":"[PAD]","special":true},{"id":100,"content":"[UNK]","special":true},
                 {"id":101,"content":"[CLS]","special":true},{"id":102,"content":"[SEP]","special":true},{"id":103,"content":"[MASK]","special":true}],
                 "normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},
                 "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100}}
                """)!;
            json["model"]!["vocab"] = vocabObject;
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
            var fromJson = TokenizerLoader.Load(dir);
            foreach (var text in Oracles.Embed.Texts.Take(40))
            {
                Assert.Equal(Ids(text), fromJson.Encode(text, 256));
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void A_cased_vocabulary_keeps_case_and_accents()
    {
        var vocab = new Dictionary<string, int> { ["[PAD]"] = 0, ["[UNK]"] = 1, ["[CLS]"] = 2, ["[SEP]"] = 3, ["Café"] = 4, ["café"] = 5 };
        var cased = new WordPieceTokenizer(vocab, new WordPieceOptions { Lowercase = false });
        Assert.Equal([2, 4, 3], cased.Encode("Café", 16));
        var uncased = new WordPieceTokenizer(vocab, new WordPieceOptions { Lowercase = true, StripAccents = false });
        Assert.Equal([2, 5, 3], uncased.Encode("Café", 16));
    }
}
