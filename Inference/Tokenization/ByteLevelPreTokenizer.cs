using System.Globalization;
using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// GPT-2's pre-tokenisation pattern, applied on code points (not UTF-16 units, so astral letters count as letters
/// as they do in Python and Rust):
/// <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>
/// </summary>
internal static class ByteLevelPreTokenizer
{
    private enum Kind { Space, Letter, Number, Other }

    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    /// <summary>Yields (start, length) of each piece of <paramref name="text"/>, in order.</summary>
    public static void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        var i = 0;
        while (i < text.Length)
        {
            var length = MatchAt(text, i);
            pieces.Add((i, length));
            i += length;
        }
    }

    private static int MatchAt(ReadOnlySpan<char> text, int i)
    {
        if (text[i] == '\'')
        {
            foreach (var c in Contractions)
            {
                if (text[i..].StartsWith(c, StringComparison.Ordinal))
                {
                    return c.Length;
                }
            }
        }

        // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional single space, then a run of one class.
        var start = i;
        if (text[i] == ' ' && i + 1 < text.Length)
        {
            var next = KindAt(text, i + 1, out _);
            if (next != Kind.Space)
            {
                start = i + 1;
            }
        }

        var kind = KindAt(text, start, out var width);
        if (kind != Kind.Space)
        {
            var end = start + width;
            while (end < text.Length && KindAt(text, end, out var w) == kind)
            {
                end += w;
            }

            return end - i;
        }

        // '\s+(?!\S)' then '\s+': a whitespace run leaves its last character to the word that follows it.
        var runEnd = i;
        while (runEnd < text.Length && KindAt(text, runEnd, out var w) == Kind.Space)
        {
            runEnd += w;
        }

        if (runEnd == text.Length)
        {
            return runEnd - i;
        }

        var lastWidth = char.IsLowSurrogate(text[runEnd - 1]) && runEnd - 2 >= i ? 2 : 1;
        var shortened = runEnd - lastWidth;
        return shortened > i ? shortened - i : runEnd - i;
    }

    private static Kind KindAt(ReadOnlySpan<char> text, int index, out int width)
    {
        Rune.DecodeFromUtf16(text[index..], out var rune, out width);
        if (Rune.IsWhiteSpace(rune))
        {
            return Kind.Space;
        }

        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Kind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Kind.Number,
            _ => Kind.Other,
        };
    }
}
