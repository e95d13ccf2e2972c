using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Character classes as Hugging Face's Rust tokenizers (and Python's <c>str</c>) define them. tokenizers takes most of
/// BERT's classes from tables frozen at an old Unicode version, and .NET's are newer, so those classes come from
/// <see cref="BertUnicodeTables"/>, written from what tokenizers does to every code point. The rules live here, one place.
/// </summary>
internal static class UnicodeRules
{
    // Most text is ASCII: its classes are looked up once here rather than searched for every character.
    private static readonly bool[] AsciiRemoved = AsciiTable(BertUnicodeTables.Removed);
    private static readonly bool[] AsciiPunctuation = AsciiTable(BertUnicodeTables.Punctuation);

    private static readonly Lazy<bool> DecompositionWorks = new(() => "\u00e9".Normalize(NormalizationForm.FormD).Length == 2);

    /// <summary>
    /// Accent stripping needs canonical decomposition, which .NET takes from ICU. Without ICU (globalization-invariant
    /// mode, or a container image without libicu) it silently changes nothing and the token ids stop matching
    /// Hugging Face, so refuse to tokenize rather than return wrong numbers.
    /// </summary>
    public static void EnsureDecompositionWorks()
    {
        if (!DecompositionWorks.Value)
        {
            throw new PlatformNotSupportedException(
                "Unicode decomposition is unavailable (.NET runs in globalization-invariant mode or cannot load ICU), so accents "
                + "cannot be stripped as Hugging Face does. Install libicu and unset DOTNET_SYSTEM_GLOBALIZATION_INVARIANT.");
        }
    }

    /// <summary>Whitespace for BERT text cleaning: tab, newline, carriage return, and Unicode White_Space.</summary>
    public static bool IsBertWhitespace(Rune r) =>
        r.Value is '\t' or '\n' or '\r' || Rune.IsWhiteSpace(r);

    /// <summary>
    /// Characters that BERT text cleaning deletes: controls (but tab, newline and carriage return, which become spaces),
    /// format and private-use characters as tokenizers' frozen tables know them, NUL and U+FFFD. Unassigned code points
    /// are kept, as tokenizers keeps them.
    /// </summary>
    public static bool IsBertRemoved(Rune r) =>
        r.IsAscii ? AsciiRemoved[r.Value] : InRanges(BertUnicodeTables.Removed, r.Value);

    /// <summary>The CJK ideographs that BERT splits into single-character words (tokenizers' ranges).</summary>
    public static bool IsCjk(int cp) => InRanges(BertUnicodeTables.Ideographs, cp);

    /// <summary>BERT punctuation: every ASCII punctuation/symbol character plus the P* classes of tokenizers' tables.</summary>
    public static bool IsBertPunctuation(Rune r) =>
        r.IsAscii ? AsciiPunctuation[r.Value] : InRanges(BertUnicodeTables.Punctuation, r.Value);

    /// <summary>
    /// Canonical decomposition without non-spacing marks, as BERT accent stripping does it: tokenizers' decomposition
    /// (.NET's, less the few decompositions newer than tokenizers' table) and its class of non-spacing marks.
    /// </summary>
    public static void AppendWithoutAccents(StringBuilder sb, string text)
    {
        foreach (var rune in Decompose(text).EnumerateRunes())
        {
            if (!InRanges(BertUnicodeTables.NonSpacingMarks, rune.Value))
            {
                sb.Append(rune.ToString());
            }
        }
    }

    /// <summary>Appends the lower case of <paramref name="r"/> as Rust's <c>char::to_lowercase</c> does (full mapping).</summary>
    public static void AppendLower(StringBuilder sb, Rune r)
    {
        var at = BertUnicodeTables.LowercaseFrom.BinarySearch(r.Value);
        if (at >= 0)
        {
            sb.Append(BertUnicodeTables.LowercaseTo[at]);
            return;
        }

        sb.Append(Rune.ToLowerInvariant(r).ToString());
    }

    /// <summary>A non-spacing mark as tokenizers' <c>is_combining_mark</c> knows it (what StripAccents removes).</summary>
    public static bool IsCombiningMark(Rune r) => InRanges(BertUnicodeTables.NonSpacingMarks, r.Value);

    /// <summary>Canonical decomposition (NFD) as tokenizers does it: .NET's, less the decompositions newer than its table.</summary>
    public static string Decompose(string text)
    {
        if (!MayHoldKeptWhole(text))
        {
            return text.Normalize(NormalizationForm.FormD);
        }

        var sb = new StringBuilder(text.Length + 8);
        var segmentStart = 0;
        var i = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (KeptWhole(rune))
            {
                sb.Append(text.AsSpan(segmentStart, i - segmentStart).ToString().Normalize(NormalizationForm.FormD));
                sb.Append(rune.ToString());
                segmentStart = i + rune.Utf16SequenceLength;
            }

            i += rune.Utf16SequenceLength;
        }

        sb.Append(text.AsSpan(segmentStart).ToString().Normalize(NormalizationForm.FormD));
        return sb.ToString();
    }

    /// <summary>
    /// Code points whose decomposition tokenizers does not know, and U+FFFE, which it passes through and .NET refuses
    /// to normalize.
    /// </summary>
    private static bool KeptWhole(Rune r) => r.Value == 0xFFFE || InRanges(BertUnicodeTables.NotDecomposed, r.Value);

    /// <summary>A cheap test that rules out <see cref="KeptWhole"/> characters: none lies below this UTF-16 unit.</summary>
    private static readonly char FirstKeptWholeUnit = (char)Math.Min(0xD800, BertUnicodeTables.NotDecomposed[0]);

    private static bool MayHoldKeptWhole(string text) => text.AsSpan().IndexOfAnyInRange(FirstKeptWholeUnit, '\uFFFF') >= 0;

    private static bool[] AsciiTable(ReadOnlySpan<int> ranges)
    {
        var table = new bool[128];
        for (var cp = 0; cp < table.Length; cp++)
        {
            table[cp] = InRanges(ranges, cp);
        }

        return table;
    }

    /// <summary>Whether <paramref name="cp"/> lies in one of the ascending (first, last) pairs of <paramref name="ranges"/>.</summary>
    private static bool InRanges(ReadOnlySpan<int> ranges, int cp)
    {
        int lo = 0, hi = (ranges.Length / 2) - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (cp < ranges[2 * mid])
            {
                hi = mid - 1;
            }
            else if (cp > ranges[(2 * mid) + 1])
            {
                lo = mid + 1;
            }
            else
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Python's <c>str.isspace()</c>: Unicode White_Space plus the information separators U+001C–U+001F.</summary>
    public static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary>Python's <c>str.strip()</c> with no arguments.</summary>
    public static string PythonStrip(string s)
    {
        var start = 0;
        var end = s.Length;
        while (start < end && IsPythonSpace(s[start]))
        {
            start++;
        }

        while (end > start && IsPythonSpace(s[end - 1]))
        {
            end--;
        }

        return start == 0 && end == s.Length ? s : s[start..end];
    }
}
