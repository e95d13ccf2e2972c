using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// A stretch of text between special tokens on its way through normalisation and pre-tokenisation.
/// <paramref name="AtOrigin"/>: it begins where the input began (nothing before it, nothing dropped from its front),
/// which Metaspace's <c>prepend_scheme: first</c> asks.
/// </summary>
internal readonly record struct TextPiece(string Text, bool AtOrigin);

/// <summary>
/// The normalizers and pre-tokenizers that SentencePiece models' <c>tokenizer.json</c> files use, read from their JSON and
/// applied as Hugging Face tokenizers applies them. What is not here is refused by name
/// (<see cref="UnsupportedTokenizerException"/>) rather than approximated.
/// </summary>
internal static class SentencePiecePipeline
{
    /// <summary>A normalizer: new text, and whether it dropped the text's first character.</summary>
    public delegate string Normalizer(string text, ref bool frontDropped);

    /// <summary>A pre-tokenizer: rewrites the pieces in place.</summary>
    public delegate void PreTokenizer(List<TextPiece> pieces);

    public const string SupportedNormalizers = "Sequence, Precompiled, Replace, Lowercase, Strip, StripAccents, Prepend, NFC, NFD, NFKC, NFKD";

    public const string SupportedPreTokenizers = "Sequence, Metaspace, WhitespaceSplit, Punctuation";

    public static Normalizer? ReadNormalizer(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var type = TypeOf(element);
        switch (type)
        {
            case "Sequence":
            {
                var steps = element.GetProperty("normalizers").EnumerateArray().Select(ReadNormalizer).OfType<Normalizer>().ToArray();
                return (string text, ref bool dropped) =>
                {
                    foreach (var step in steps)
                    {
                        text = step(text, ref dropped);
                    }

                    return text;
                };
            }

            case "Precompiled":
            {
                var base64 = element.TryGetProperty("precompiled_charsmap", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "";
                if (base64.Length == 0)
                {
                    return null;
                }

                // A character it removes from the front does not move the text's start: the next one takes its place
                // (tokenizers aligns it to the removed one), unlike Strip, which moves it.
                var map = PrecompiledCharsMap.Parse(Convert.FromBase64String(base64));
                return (string text, ref bool _) => map.Normalize(text);
            }

            case "Replace":
            {
                var pattern = element.GetProperty("pattern");
                var content = element.GetProperty("content").GetString() ?? "";
                Regex regex = pattern.TryGetProperty("Regex", out var r)
                    ? new Regex(r.GetString()!, RegexOptions.CultureInvariant)
                    : new Regex(Regex.Escape(pattern.GetProperty("String").GetString()!), RegexOptions.CultureInvariant);
                return (string text, ref bool dropped) =>
                {
                    if (content.Length == 0 && regex.Match(text) is { Success: true, Index: 0, Length: > 0 })
                    {
                        dropped = true;
                    }

                    return regex.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal));
                };
            }

            case "Lowercase":
                return (string text, ref bool _) =>
                {
                    var sb = new StringBuilder(text.Length);
                    foreach (var rune in text.EnumerateRunes())
                    {
                        UnicodeRules.AppendLower(sb, rune);
                    }

                    return sb.ToString();
                };

            case "Strip":
            {
                var left = !element.TryGetProperty("strip_left", out var l) || l.GetBoolean();
                var right = !element.TryGetProperty("strip_right", out var rr) || rr.GetBoolean();
                return (string text, ref bool dropped) =>
                {
                    var start = 0;
                    var end = text.Length;
                    while (left && start < end && char.IsWhiteSpace(text[start]))
                    {
                        start++;
                    }

                    while (right && end > start && char.IsWhiteSpace(text[end - 1]))
                    {
                        end--;
                    }

                    dropped |= start > 0;
                    return text[start..end];
                };
            }

            case "StripAccents":
                // tokenizers' is_combining_mark: every mark (Mn, Mc, Me), non-spacing ones as its own table knows them.
                return (string text, ref bool _) => string.Concat(text.EnumerateRunes()
                    .Where(r => !UnicodeRules.IsCombiningMark(r) && Rune.GetUnicodeCategory(r) is not (UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
                    .Select(r => r.ToString()));

            case "Prepend":
            {
                var prepend = element.GetProperty("prepend").GetString() ?? "";
                return (string text, ref bool _) => text.Length == 0 ? text : prepend + text;
            }

            case "NFC":
                return (string text, ref bool _) => Normalize(text, NormalizationForm.FormC);
            case "NFD":
                return (string text, ref bool _) => UnicodeRules.Decompose(text);
            case "NFKC":
                return (string text, ref bool _) => Normalize(text, NormalizationForm.FormKC);
            case "NFKD":
                return (string text, ref bool _) => Normalize(text, NormalizationForm.FormKD);
            default:
                throw new UnsupportedTokenizerException($"the normalizer '{type ?? "none"}', which this service does not apply (it applies {SupportedNormalizers})");
        }
    }

    public static PreTokenizer? ReadPreTokenizer(JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var type = TypeOf(element);
        switch (type)
        {
            case "Sequence":
            {
                var steps = element.GetProperty("pretokenizers").EnumerateArray().Select(ReadPreTokenizer).OfType<PreTokenizer>().ToArray();
                return pieces =>
                {
                    foreach (var step in steps)
                    {
                        step(pieces);
                    }
                };
            }

            case "Metaspace":
                return Metaspace(element);

            case "WhitespaceSplit":
                return pieces => Rewrite(pieces, SplitOnWhitespace);

            case "Punctuation":
            {
                var behavior = element.TryGetProperty("behavior", out var b) ? b.GetString() : "Isolated";
                if (!string.Equals(behavior, "Isolated", StringComparison.OrdinalIgnoreCase))
                {
                    throw new UnsupportedTokenizerException($"a Punctuation pre-tokenizer with behavior '{behavior}' (only Isolated is applied)");
                }

                return pieces => Rewrite(pieces, IsolatePunctuation);
            }

            default:
                throw new UnsupportedTokenizerException($"the pre-tokenizer '{type ?? "none"}', which this service does not apply (it applies {SupportedPreTokenizers})");
        }
    }

    /// <summary>
    /// Metaspace: every space becomes the replacement (▁), which is put before the piece too (always; only before the
    /// input's first piece; or never), then the piece is cut before each replacement.
    /// </summary>
    private static PreTokenizer Metaspace(JsonElement element)
    {
        var replacementText = element.TryGetProperty("replacement", out var r) ? r.GetString()! : "▁";
        if (replacementText.Length != 1)
        {
            throw new UnsupportedTokenizerException($"a Metaspace replacement of {replacementText.Length} UTF-16 units (one is applied)");
        }

        var replacement = replacementText[0];
        string scheme;
        if (element.TryGetProperty("prepend_scheme", out var s) && s.ValueKind == JsonValueKind.String)
        {
            scheme = s.GetString()!.ToLowerInvariant();
        }
        else
        {
            // Files written before prepend_scheme existed say add_prefix_space.
            scheme = !element.TryGetProperty("add_prefix_space", out var a) || a.GetBoolean() ? "always" : "never";
        }

        if (scheme is not ("always" or "first" or "never"))
        {
            throw new UnsupportedTokenizerException($"a Metaspace prepend_scheme '{scheme}'");
        }

        var split = !element.TryGetProperty("split", out var sp) || sp.GetBoolean();
        return pieces => Rewrite(pieces, (piece, output) =>
        {
            var text = piece.Text.Replace(' ', replacement);
            var prepend = scheme == "always" || (scheme == "first" && piece.AtOrigin);
            if (prepend && text.Length > 0 && text[0] != replacement)
            {
                text = replacement + text;
            }

            if (!split)
            {
                output.Add(piece with { Text = text });
                return;
            }

            var start = 0;
            for (var i = 1; i <= text.Length; i++)
            {
                if (i == text.Length || text[i] == replacement)
                {
                    if (i > start)
                    {
                        output.Add(new TextPiece(text[start..i], piece.AtOrigin && start == 0));
                    }

                    start = i;
                }
            }
        });
    }

    private static void SplitOnWhitespace(TextPiece piece, List<TextPiece> output)
    {
        var text = piece.Text;
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            var start = i;
            while (i < text.Length && !char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            if (i > start)
            {
                output.Add(new TextPiece(text[start..i], piece.AtOrigin && start == 0));
            }
        }
    }

    private static void IsolatePunctuation(TextPiece piece, List<TextPiece> output)
    {
        var text = piece.Text;
        var start = 0;
        var i = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            var length = rune.Utf16SequenceLength;
            if (UnicodeRules.IsBertPunctuation(rune))
            {
                if (i > start)
                {
                    output.Add(new TextPiece(text[start..i], piece.AtOrigin && start == 0));
                }

                output.Add(new TextPiece(text.Substring(i, length), piece.AtOrigin && i == 0));
                start = i + length;
            }

            i += length;
        }

        if (text.Length > start)
        {
            output.Add(new TextPiece(text[start..], piece.AtOrigin && start == 0));
        }
    }

    private static void Rewrite(List<TextPiece> pieces, Action<TextPiece, List<TextPiece>> split)
    {
        var input = pieces.ToArray();
        pieces.Clear();
        foreach (var piece in input)
        {
            split(piece, pieces);
        }
    }

    /// <summary>
    /// Unicode normalisation that does not throw: .NET refuses noncharacters such as U+FFFE, which tokenizers passes
    /// through, so the text is normalised around them.
    /// </summary>
    private static string Normalize(string text, NormalizationForm form)
    {
        try
        {
            return text.Normalize(form);
        }
        catch (ArgumentException)
        {
            var sb = new StringBuilder(text.Length);
            var run = new StringBuilder();
            foreach (var rune in text.EnumerateRunes())
            {
                if (IsNoncharacter(rune.Value))
                {
                    sb.Append(run.ToString().Normalize(form)).Append(rune.ToString());
                    run.Clear();
                }
                else
                {
                    run.Append(rune.ToString());
                }
            }

            return sb.Append(run.ToString().Normalize(form)).ToString();
        }
    }

    private static bool IsNoncharacter(int cp) => cp is >= 0xFDD0 and <= 0xFDEF || (cp & 0xFFFE) == 0xFFFE;

    internal static string? TypeOf(JsonElement element) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
}

/// <summary>A tokenizer that uses a step this service does not apply; the message names it.</summary>
public sealed class UnsupportedTokenizerException(string message) : Exception(message);
