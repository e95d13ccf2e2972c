using System.Text.Json;
using Microsoft.ML.Tokenizers;
using OrleansGpu.Inference.Tokenization;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Tokenization;

public sealed class ByteLevelBpeTokenizerTests
{
    private static readonly Lazy<ByteLevelBpeTokenizer> Gpt2 = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("gpt2-").FullName;
        Gpt2Data.WriteFiles(dir);
        var tokenizer = ByteLevelBpeTokenizer.FromFiles(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"));
        Directory.Delete(dir, true);
        return tokenizer;
    });

    private static readonly Lazy<Tokenizer> Tiktoken = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public static TheoryData<string> Texts =>
    [
        "Hello world",
        " Hello world",
        "The victim's brother said he cannot imagine anyone who'd want to harm him, \"Finally, it went uphill.\"",
        "I'm sure they'll say we've done what we're told, isn't it?",
        "multiple    spaces   here\tand\ttabs\nand\n\nnewlines  ",
        "The £1.35bn project is due by May 2017.",
        "café naïve résumé Ünïcödé ÀÉÎÕÜ",
        "東京は日本の首都です。这是一个测试",
        "مرحبا بالعالم Привет, мир!",
        "🙂🚀 emoji test 👍🏽",
        "https://example.com/path?q=1&x=2 user@example.org",
        "numbers 12345 3.14159 -42 1,000,000",
        "symbols $ + < = > ^ ` | ~ € © ½ and ___underscores___",
        "   leading and trailing   ",
        "'s 't 're 've 'm 'll 'd 'S",
        "a\u00a0b\u2003c",
    ];

    [Theory]
    [MemberData(nameof(Texts))]
    public void Segmentation_equals_gpt2_from_the_tiktoken_data(string text)
    {
        var ours = new List<int>();
        Gpt2.Value.EncodeContent(text, ours);
        var reference = Tiktoken.Value.EncodeToIds(text);
        Assert.Equal(reference, ours);
    }

    [Fact]
    public void The_recovered_merges_are_gpt2s_50000()
    {
        Assert.Equal(50_000, Gpt2Data.Merges.Count);
        Assert.Equal(("Ġ", "t"), Gpt2Data.Merges[0]);
        Assert.Equal(50_257, Gpt2.Value.VocabularySize);
    }

    [Fact]
    public void Prefix_space_encodes_the_first_word_as_inside_a_sentence()
    {
        var plain = new List<int>();
        var prefixed = new List<int>();
        Gpt2.Value.EncodeContent("Hello world", plain);
        Gpt2.Value.WithPrefixSpace(true).EncodeContent("Hello world", prefixed);
        Assert.Equal(Tiktoken.Value.EncodeToIds("Hello world"), plain);
        Assert.Equal(Tiktoken.Value.EncodeToIds(" Hello world"), prefixed);
        Assert.NotEqual(plain[0], prefixed[0]);
    }

    private static ByteLevelBpeTokenizer SmallRoberta(bool prefix = false)
    {
        // A RoBERTa-style vocabulary in its own ids: specials first, then a few byte-level pieces.
        var dir = Directory.CreateTempSubdirectory("roberta-").FullName;
        try
        {
            var vocab = new Dictionary<string, int>
            {
                ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3,
                ["h"] = 4, ["i"] = 5, ["Ġ"] = 6, ["hi"] = 7, ["Ġhi"] = 8, ["!"] = 9, ["<mask>"] = 10,
            };
            File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(vocab));
            File.WriteAllLines(Path.Combine(dir, "merges.txt"), ["#version: 0.2", "h i", "Ġ hi"]);
            return ByteLevelBpeTokenizer.FromFiles(Path.Combine(dir, "vocab.json"), Path.Combine(dir, "merges.txt"), prefix);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Ids_come_from_vocab_json_and_sequences_use_s_and_end_s()
    {
        var tokenizer = SmallRoberta();
        Assert.Equal([0, 7, 8, 9, 2], tokenizer.Encode("hi hi!", 512));
        Assert.Equal(new SpecialTokenIds(0, 2, 1, 3), tokenizer.Special);
    }

    [Fact]
    public void Prefix_space_rule_changes_the_first_token()
    {
        Assert.Equal([0, 7, 2], SmallRoberta(prefix: false).Encode("hi", 512));
        Assert.Equal([0, 8, 2], SmallRoberta(prefix: true).Encode("hi", 512));
    }

    [Fact]
    public void Prefix_space_goes_before_a_leading_special_token_unless_it_strips_spaces()
    {
        Assert.Equal([0, 6, 2, 7, 2], SmallRoberta(prefix: true).Encode("</s>hi", 512));
        Assert.Equal([0, 10, 8, 2], SmallRoberta(prefix: true).Encode("<mask> hi", 512));
    }

    [Fact]
    public void Literal_special_tokens_are_recognised_and_mask_swallows_the_space_before_it() =>
        Assert.Equal([0, 7, 10, 2, 2], SmallRoberta().Encode("hi <mask></s>", 512));

    [Fact]
    public void Truncation_keeps_the_end_token_and_the_maximum()
    {
        var ids = SmallRoberta().Encode(string.Concat(Enumerable.Repeat("hi ", 100)), 10);
        Assert.Equal(10, ids.Length);
        Assert.Equal(0, ids[0]);
        Assert.Equal(2, ids[^1]);
    }

    [Fact]
    public void Tokenizer_json_with_merges_as_pairs_loads_like_the_files()
    {
        var dir = Directory.CreateTempSubdirectory("bpe-json-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """
                {"added_tokens":[{"id":0,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],
                 "model":{"type":"BPE","vocab":{"<s>":0,"<pad>":1,"</s>":2,"<unk>":3,"h":4,"i":5,"Ġ":6,"hi":7,"Ġhi":8,"!":9},
                 "merges":[["h","i"],["Ġ","hi"]]}}
                """);
            var tokenizer = TokenizerLoader.Load(dir);
            Assert.Equal([0, 7, 8, 9, 2], tokenizer.Encode("hi hi!", 512));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
