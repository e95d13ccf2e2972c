using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;
using OrleansGpu.Inference.Tokenization;
using OrleansGpu.Tests.Support;
using static OrleansGpu.Tests.Support.SentencePieceFixtures;

namespace OrleansGpu.Tests.Inference.Tokenization;

/// <summary>
/// SentencePiece Unigram tokenizers (tokenizer.json) against Hugging Face's own Rust tokenizers library, run here
/// through Tokenizers.DotNet 1.4.1 (tokenizers 0.22.2): the same file, the same text, the same ids. The files are
/// built as the converters write XLM-RoBERTa's and DeBERTa v3's, and variants of their settings (byte fallback,
/// Metaspace schemes, Lowercase / NFKC / NFD / StripAccents / Strip / Replace / Prepend, WhitespaceSplit and
/// Punctuation), over the 1,200 fuzz texts of the parity corpus and random strings.
/// </summary>
public sealed class UnigramTokenizerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("unigram-");

    public void Dispose() => _dir.Delete(recursive: true);

    public static TheoryData<string> Names() => [.. Variants.Keys];

    private static readonly Dictionary<string, Settings> Variants = new Settings[]
    {
        // XLM-RoBERTa (xlm-roberta-*, multilingual-e5, bge-m3) as its hub tokenizer.json has it.
        new Settings
        {
            Name = "xlm-roberta",
            Normalizer = Sequence("normalizers", Precompiled(), ReplaceRegex(" {2,}", " ")),
            PreTokenizer = LegacyMetaspace(),
        },

        new Settings
        {
            Name = "xlm-roberta-mask-normalized",
            Seed = 8,
            MaskNormalized = true,
            Normalizer = Sequence("normalizers", Precompiled(), ReplaceRegex(" {2,}", " ")),
            PreTokenizer = Metaspace(),
        },

        // DeBERTa v3 (DebertaV2Converter): Strip, Precompiled, Replace; Metaspace in a Sequence; [CLS] … [SEP].
        new Settings
        {
            Name = "deberta-v3",
            Specials = "deberta",
            Seed = 2,
            Normalizer = Sequence("normalizers", Strip(), Precompiled(), ReplaceRegex(" {2,}", " ")),
            PreTokenizer = Sequence("pretokenizers", Metaspace()),
        },

        // Newer converters: Precompiled, right Strip, runs of spaces to ▁.
        new Settings
        {
            Name = "xlm-roberta-newer-converter",
            Seed = 3,
            Normalizer = Sequence("normalizers", Precompiled(), Strip(left: false), ReplaceRegex(" {2,}", "▁")),
            PreTokenizer = Metaspace(),
        },
        new Settings
        {
            Name = "byte-fallback-nfkc-lowercase-first",
            Seed = 4,
            ByteFallback = true,
            UnicodeVersionMayDiffer = true,
            Normalizer = Sequence("normalizers", Type("NFKC"), Type("Lowercase")),
            PreTokenizer = Sequence("pretokenizers", Type("WhitespaceSplit"), Metaspace("first")),
            PostProcessor = "roberta",
        },
        new Settings
        {
            Name = "nfd-strip-accents-punctuation-never-unsplit",
            Specials = "deberta",
            Seed = 5,
            UnicodeVersionMayDiffer = true,
            Normalizer = Sequence("normalizers", ReplaceString("``", "\""), Type("NFD"), Type("StripAccents"), new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" }),
            PreTokenizer = Sequence("pretokenizers", new JsonObject { ["type"] = "Punctuation", ["behavior"] = "Isolated" }, Metaspace("never", split: false)),
        },
        new Settings
        {
            Name = "strip-precompiled-first",
            Seed = 6,
            Count = 250,
            Normalizer = Sequence("normalizers", Strip(), Precompiled()),
            PreTokenizer = Metaspace("first"),
        },
        new Settings
        {
            Name = "no-normalizer-byte-fallback-nfc",
            Seed = 7,
            ByteFallback = true,
            UnicodeVersionMayDiffer = true,
            Normalizer = Type("NFC"),
            PreTokenizer = Metaspace("never"),
        },
    }.ToDictionary(s => s.Name);

    [Theory]
    [MemberData(nameof(Names))]
    public void Every_fuzz_text_gets_the_ids_of_the_real_tokenizers_library(string name)
    {
        var settings = Variants[name];
        var (ours, theirs) = Load(settings);
        var texts = CorpusTexts();
        var mismatches = new List<string>();

        // With Unicode normalisation forms, a text holding a character that alone already differs (tokenizers' tables
        // are older than .NET's) is set aside; they must be few, and every other text must match exactly.
        var compared = settings.UnicodeVersionMayDiffer ? texts.Where(t => !HasNewerUnicode(ours, theirs, t)).ToArray() : texts;
        Assert.True(compared.Length >= texts.Length * 0.9, $"{texts.Length - compared.Length} texts hold characters whose normalisation differs");
        foreach (var text in compared)
        {
            var expected = Truth(theirs, text);
            var actual = ours.Encode(text, 1 << 20);
            if (!actual.SequenceEqual(expected))
            {
                mismatches.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(',', expected)}], got [{string.Join(',', actual)}]");
            }
        }

        Assert.Equal(1200, texts.Length);
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {compared.Length} differ; first: {string.Join("\n", mismatches.Take(3))}");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Random_strings_get_the_ids_of_the_real_tokenizers_library(string name)
    {
        var settings = Variants[name];
        var (ours, theirs) = Load(settings);
        var interesting = Rules.Keys.Concat(["<s>", "</s>", "<mask>", "[CLS]", "[MASK]", "<unk>", " ", "  ", "▁", "``", "''", "\u0301", "\uFF9E", "🙂", "\0"])
            .Concat(Pieces(settings.Seed, 120).Select(p => p.Piece.Replace('▁', ' ')))
            .ToArray();
        var text = Gen.Frequency(
                (4, Gen.Elements(interesting)),
                (2, Gen.Choose(0x20, 0x7E).Select(c => ((char)c).ToString())),
                (1, Gen.Choose(0x80, 0x2FFF).Select(c => ((char)c).ToString())),
                (1, Gen.Choose(0x1F300, 0x1F6FF).Select(char.ConvertFromUtf32)),
                (1, Gen.Choose(0xD800, 0xDFFF).Select(c => ((char)c).ToString())))
            .ArrayOf()
            .Select(parts => string.Concat(parts))
            .Where(s => !settings.UnicodeVersionMayDiffer || !HasNewerUnicode(ours, theirs, s));
        Prop.ForAll(text.ToArbitrary(), s =>
        {
            var expected = Truth(theirs, s);
            var actual = ours.Encode(s, 1 << 20);
            return actual.SequenceEqual(expected)
                .Label($"{JsonSerializer.Serialize(s)}: expected [{string.Join(',', expected)}], got [{string.Join(',', actual)}]");
        }).Check(Config.QuickThrowOnFailure
            .WithMaxTest(400)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(20261207UL, 11UL), FSharpOption<int>.None))));
    }

    [Fact]
    public void A_deberta_spm_model_alone_gets_the_ids_of_the_tokenizer_json_that_DebertaV2Converter_makes_of_it()
    {
        // The converter's tokenizer.json (Strip, Precompiled, Replace; Metaspace; [CLS] $A [SEP]; scores widened from
        // float32), run by the real library, against our reading of the spm.model and added_tokens.json alone.
        var settings = Variants["deberta-v3"] with { Name = "deberta-v3-spm", FloatScores = true };
        var json = Path.Combine(_dir.FullName, "converted.json");
        File.WriteAllText(json, TokenizerJson(settings));
        using var theirs = new Tokenizers.DotNet.Tokenizer(json);
        var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, "deberta-v3")).FullName;
        foreach (var (name, bytes) in DebertaSpmFiles(settings))
        {
            File.WriteAllBytes(Path.Combine(folder, name), bytes);
        }

        Assert.True(TokenizerFiles.HasReadable(TokenizerFiles.In(folder)));
        Assert.Null(TokenizerFiles.Unsupported(folder));
        var ours = TokenizerLoader.Load(folder, lowercaseHint: null);
        var mismatches = CorpusTexts().Concat(["[MASK] a [CLS]b[SEP]", "  ａｂ  ﬁ ", ""])
            .Where(t => !ours.Encode(t, 1 << 20).SequenceEqual(Truth(theirs, t)))
            .Select(t => JsonSerializer.Serialize(t))
            .ToList();
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} differ; first: {string.Join("\n", mismatches.Take(3))}");
        Assert.Equal(new SpecialTokenIds(1, 2, 0, 3), ours.Special);
    }

    [Fact]
    public void An_xlm_roberta_sentencepiece_bpe_model_alone_gets_the_ids_of_the_tokenizer_json_that_XlmRobertaConverter_makes_of_it()
    {
        // The tokenizer.json the converter writes today (fairseq ids: <s> <pad> </s> <unk>, the pieces after spm's first
        // three, <mask>; SpmConverter's Precompiled, right Strip, runs of spaces to ▁; Metaspace; <s> $A </s>; scores
        // widened from float32), run by the real library, against our reading of the sentencepiece.bpe.model alone.
        var settings = Variants["xlm-roberta-newer-converter"] with { Name = "xlm-roberta-spm", FloatScores = true };
        var json = Path.Combine(_dir.FullName, "converted.json");
        File.WriteAllText(json, TokenizerJson(settings));
        using var theirs = new Tokenizers.DotNet.Tokenizer(json);
        var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, "xlm-roberta")).FullName;
        File.WriteAllBytes(Path.Combine(folder, SentencePieceModelFile.XlmRobertaFileName), XlmRobertaSpmModel(settings));
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "xlm-roberta"}""");

        Assert.Null(TokenizerFiles.UnsupportedByName(TokenizerFiles.In(folder)));
        Assert.Null(TokenizerFiles.Unsupported(folder));
        var ours = (UnigramTokenizer)TokenizerLoader.Load(folder, lowercaseHint: null);
        var mismatches = CorpusTexts().Concat(["an apple <mask> tree", "<s>a</s> <pad>b<unk> <mask>", "  ａｂ  ﬁ ", "a  b   c ", ""])
            .Where(t => !ours.Encode(t, 1 << 20).SequenceEqual(Truth(theirs, t)))
            .Select(t => JsonSerializer.Serialize(t))
            .ToList();
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} differ; first: {string.Join("\n", mismatches.Take(3))}");
        Assert.Equal(new SpecialTokenIds(0, 2, 1, 3), ours.Special);
        Assert.Equal(settings.Count + 5, ours.VocabularySize);
        Assert.Equal(ours.VocabularySize - 1, ours.Encode("<mask>", 8)[1]);
    }

    [Fact]
    public void A_camembert_sentencepiece_bpe_model_alone_gets_the_ids_of_the_tokenizer_json_that_CamembertConverter_makes_of_it()
    {
        // Same file layout as XLM-R's; config.json's model_type tells the converter, which puts <s>NOTUSED <pad>
        // </s>NOTUSED <unk> <unk>NOTUSED (-100) first and every spm piece but <unk> four up: <s> 5, </s> 6.
        var settings = Variants["xlm-roberta-newer-converter"] with { Name = "camembert-spm", Specials = "camembert", FloatScores = true };
        var json = Path.Combine(_dir.FullName, "camembert.json");
        File.WriteAllText(json, TokenizerJson(settings));
        using var theirs = new Tokenizers.DotNet.Tokenizer(json);
        var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, "camembert")).FullName;
        File.WriteAllBytes(Path.Combine(folder, SentencePieceModelFile.XlmRobertaFileName), XlmRobertaSpmModel(settings));
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"model_type": "camembert"}""");

        Assert.Null(TokenizerFiles.Unsupported(folder));
        var ours = (UnigramTokenizer)TokenizerLoader.Load(folder, lowercaseHint: null);
        var mismatches = CorpusTexts().Concat(["un arbre <mask> vert", "<s>a</s> <pad>b<unk> <s>NOTUSED<unk>NOTUSED", "a  b   c ", ""])
            .Where(t => !ours.Encode(t, 1 << 20).SequenceEqual(Truth(theirs, t)))
            .Select(t => JsonSerializer.Serialize(t))
            .ToList();
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} differ; first: {string.Join("\n", mismatches.Take(3))}");
        Assert.Equal(new SpecialTokenIds(5, 6, 1, 3), ours.Special);
        Assert.Equal(settings.Count + 8, ours.VocabularySize);
    }

    [Fact]
    public void A_sentencepiece_bpe_model_that_is_not_xlm_robertas_is_refused_with_the_reason()
    {
        var settings = Variants["xlm-roberta"];
        string Folder(string name, byte[] model, string? config = null)
        {
            var folder = Directory.CreateDirectory(Path.Combine(_dir.FullName, name)).FullName;
            File.WriteAllBytes(Path.Combine(folder, SentencePieceModelFile.XlmRobertaFileName), model);
            if (config is not null)
            {
                File.WriteAllText(Path.Combine(folder, "config.json"), config);
            }

            return folder;
        }

        Assert.Contains("SentencePiece BPE model", TokenizerFiles.Unsupported(Folder("bpe", XlmRobertaSpmModel(settings, modelType: 2))));
        Assert.Contains(
            "does not begin with <unk>, <s>, </s>",
            TokenizerFiles.Unsupported(Folder("deberta-named-so", DebertaSpmFiles(Variants["deberta-v3"])["spm.model"])));
        Assert.Contains("its sentencepiece.bpe.model cannot be read", TokenizerFiles.Unsupported(Folder("junk", [0x0A, 0xFF, 0xFF, 0x01, 0x02])));
    }

    [Fact]
    public void An_spm_model_that_is_not_a_unigram_model_or_not_a_model_is_refused_with_the_reason()
    {
        var settings = Variants["deberta-v3"];
        var bpe = Directory.CreateDirectory(Path.Combine(_dir.FullName, "bpe")).FullName;
        File.WriteAllBytes(Path.Combine(bpe, "spm.model"), DebertaSpmFiles(settings, modelType: 2)["spm.model"]);
        Assert.Contains("SentencePiece BPE model", TokenizerFiles.Unsupported(bpe));

        var junk = Directory.CreateDirectory(Path.Combine(_dir.FullName, "junk")).FullName;
        File.WriteAllBytes(Path.Combine(junk, "spm.model"), [0x0A, 0xFF, 0xFF, 0x01, 0x02]);
        Assert.Contains("its spm.model cannot be read", TokenizerFiles.Unsupported(junk));
    }

    [Fact]
    public void Truncation_keeps_the_start_and_end_tokens_and_cuts_the_content_from_the_right()
    {
        var (ours, theirs) = Load(Variants["deberta-v3"]);
        foreach (var text in CorpusTexts().Take(200))
        {
            var full = Truth(theirs, text);
            foreach (var max in new[] { 2, 3, 8, 17 })
            {
                int[] expected = full.Length <= max ? full : [.. full[..(max - 1)], full[^1]];
                Assert.Equal(expected, ours.Encode(text, max));
            }
        }

        Assert.Equal(1, ours.Special.Start);
        Assert.Equal(2, ours.Special.End);
        Assert.Equal(0, ours.Special.Pad);
        Assert.Equal(3, ours.Special.Unknown);
    }

    [Fact]
    public void Xlm_roberta_ids_wrap_the_text_in_s_and_slash_s_and_the_mask_swallows_the_space_before_it()
    {
        var (ours, theirs) = Load(Variants["xlm-roberta"]);
        var ids = ours.Encode("an apple <mask> tree", 64);
        Assert.Equal(0, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Contains(((UnigramTokenizer)ours).VocabularySize - 1, ids);
        Assert.Equal(Truth(theirs, "an apple <mask> tree"), ids);
        Assert.Equal(ids, ours.Encode("an apple<mask> tree", 64));
    }

    [Fact]
    public void The_charsmap_replaces_a_whole_short_grapheme_by_its_shortest_known_prefix_as_tokenizers_does()
    {
        var map = PrecompiledCharsMap.Parse(CharsMap(Rules));

        // Cluster "Ａ" + combining acute (5 bytes): the prefix "Ａ" is a key, so the whole cluster becomes "A".
        Assert.Equal("xAy", map.Normalize("xＡ\u0301y"));

        // A key of two code points, one cluster: composed.
        Assert.Equal("café", map.Normalize("cafe\u0301"));

        // A cluster of 6 bytes or more is looked at code point by code point: "ｶ" maps alone, the voiced mark stays.
        Assert.Equal("カ\uFF9E\uFF9E", map.Normalize("\uFF76\uFF9E\uFF9E"));

        // Removals, spaces, expansions; text without rules is returned as it was.
        Assert.Equal("ab  c", map.Normalize("a\u200Bb\u00A0\tc\u00AD"));
        Assert.Equal("file TM", map.Normalize("ﬁle ™"));
        var plain = "plain text";
        Assert.Same(plain, map.Normalize(plain));
    }

    [Fact]
    public void A_charsmap_cut_short_is_refused()
    {
        Assert.Throws<InvalidDataException>(() => PrecompiledCharsMap.Parse(new byte[] { 1, 2 }));
        Assert.Throws<InvalidDataException>(() => PrecompiledCharsMap.Parse(new byte[] { 200, 0, 0, 0, 1, 2, 3, 4 }));
    }

    private (TextTokenizer Ours, Tokenizers.DotNet.Tokenizer Theirs) Load(Settings settings)
    {
        var path = Path.Combine(_dir.FullName, settings.Name + ".json");
        File.WriteAllText(path, TokenizerJson(settings));
        Assert.Null(TokenizerFiles.TokenizerJsonProblem(path));
        return (TokenizerLoader.FromTokenizerJson(path), new Tokenizers.DotNet.Tokenizer(path));
    }

    /// <summary>
    /// Whether one of the text's characters, alone or with its neighbour (canonical reordering of marks), is tokenized
    /// differently: a Unicode table version difference.
    /// </summary>
    private static bool HasNewerUnicode(TextTokenizer ours, Tokenizers.DotNet.Tokenizer theirs, string text)
    {
        var runes = Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text)).EnumerateRunes().Select(r => r.ToString()).ToArray();
        bool Differs(string s) => !ours.Encode(s, 64).SequenceEqual(Truth(theirs, s));
        return runes.Any(Differs) || runes.Zip(runes.Skip(1), string.Concat).Any(Differs);
    }

    /// <summary>
    /// The real library's ids. It takes UTF-8 only (Python cannot hand it a lone surrogate either), so the text goes in
    /// as a UTF-8 encoder makes it: each lone surrogate becomes U+FFFD, as our tokenizer reads it.
    /// </summary>
    private static int[] Truth(Tokenizers.DotNet.Tokenizer theirs, string text) =>
        [.. theirs.Encode(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text))).Select(id => (int)id)];
}
