using FsCheck;
using FsCheck.Fluent;
using OrleansGpu.Inference.Tokenization;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Tokenization;

/// <summary>Arbitrary Unicode, lone surrogates included: the tokenizers never throw and never exceed the maximum.</summary>
[Collection(MiniLmCollection.Name)]
public sealed class TokenizerPropertyTests(MiniLmFixture minilm)
{
    private static readonly TextTokenizer SmallBpe = ByteLevelBpeTokenizer.Create(
        new Dictionary<string, int> { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3, ["a"] = 4, ["Ġ"] = 5 },
        [("Ġ", "a")],
        addPrefixSpace: true);

    /// <summary>Any UTF-16 code unit (surrogates alone or in pairs), biased towards interesting ranges.</summary>
    private static Arbitrary<string> AnyUtf16() =>
        Gen.Frequency(
                (3, Gen.Choose(0, 0x7F)),
                (2, Gen.Choose(0x80, 0x2FFF)),
                (2, Gen.Choose(0x3000, 0xD7FF)),
                (2, Gen.Choose(0xD800, 0xDFFF)),
                (1, Gen.Choose(0xE000, 0xFFFF)))
            .Select(c => (char)c)
            .ArrayOf()
            .Select(chars => new string(chars))
            .ToArbitrary();

    [Fact]
    public void WordPiece_never_throws_and_respects_the_maximum() =>
        Prop.ForAll(AnyUtf16(), Gen.Choose(2, 40).ToArbitrary(), (text, max) =>
        {
            var ids = minilm.Embedding.Tokenizer.Encode(text, max);
            return ids.Length <= max && ids.Length >= 2 && ids[0] == 101 && ids[^1] == 102;
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Byte_level_BPE_never_throws_and_respects_the_maximum() =>
        Prop.ForAll(AnyUtf16(), Gen.Choose(2, 40).ToArbitrary(), (text, max) =>
        {
            var ids = SmallBpe.Encode(text, max);
            return ids.Length <= max && ids.Length >= 2 && ids[0] == 0 && ids[^1] == 2;
        }).QuickCheckThrowOnFailure();

    [Fact]
    public void Byte_level_BPE_spells_every_byte_of_long_random_text()
    {
        // With no unknown token the vocabulary must cover each byte; pieces outside it are dropped, never thrown on.
        Prop.ForAll(AnyUtf16(), text =>
        {
            var ids = new List<int>();
            SmallBpe.EncodeContent(text, ids);
            return ids.All(id => id is >= 0 and <= 5);
        }).QuickCheckThrowOnFailure();
    }
}
