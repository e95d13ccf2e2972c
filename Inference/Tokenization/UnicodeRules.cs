using System.Globalization;
using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Character classes as Hugging Face's Rust tokenizers (and Python's <c>str</c>) define them. .NET's own
/// helpers differ in small ways that change token ids, so the rules live here, one place.
/// </summary>
internal static class UnicodeRules
{
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
    /// "Other" characters that BERT cleaning deletes: control, format, unassigned, private use and surrogates,
    /// except tab, newline and carriage return (which become spaces). NUL and U+FFFD are deleted too.
    /// </summary>
    public static bool IsBertRemoved(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r')
        {
            return false;
        }

        if (r.Value is 0 or 0xFFFD)
        {
            return true;
        }

        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.OtherNotAssigned or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;
    }

    /// <summary>The CJK ideograph blocks that BERT splits into single-character words.</summary>
    public static bool IsCjk(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF
            or >= 0x3400 and <= 0x4DBF
            or >= 0x20000 and <= 0x2A6DF
            or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F
            or >= 0x2B820 and <= 0x2CEAF
            or >= 0xF900 and <= 0xFAFF
            or >= 0x2F800 and <= 0x2FA1F;

    /// <summary>BERT punctuation: every ASCII punctuation/symbol character plus Unicode category P*.</summary>
    public static bool IsBertPunctuation(Rune r)
    {
        var cp = r.Value;
        if (cp is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126)
        {
            return true;
        }

        return Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
            or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;
    }

    /// <summary>Appends the lower case of <paramref name="r"/> as Rust's <c>char::to_lowercase</c> does (full mapping).</summary>
    public static void AppendLower(StringBuilder sb, Rune r)
    {
        if (r.Value == 0x130)
        {
            // The one unconditional multi-character lower-case mapping in SpecialCasing.txt: İ → i + combining dot.
            sb.Append('i').Append('\u0307');
            return;
        }

        sb.Append(Rune.ToLowerInvariant(r).ToString());
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
