namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// Finds literal special-token text such as <c>[CLS]</c> or <c>&lt;mask&gt;</c> in raw input, as Hugging Face's
/// added-token splitter does before normalisation: leftmost match first, the longest token on ties, case-sensitive.
/// </summary>
internal sealed class SpecialTokenMatcher
{
    private readonly (string Text, int Id, bool StripLeft, bool StripRight)[] _tokens;

    public SpecialTokenMatcher(IEnumerable<(string Text, int Id, bool StripLeft)> tokens)
        : this(tokens.Select(t => (t.Text, t.Id, t.StripLeft, false)))
    {
    }

    /// <summary>Tokens that may also swallow the whitespace after them (an added token's <c>rstrip</c>).</summary>
    public SpecialTokenMatcher(IEnumerable<(string Text, int Id, bool StripLeft, bool StripRight)> tokens) =>
        _tokens = tokens.Where(t => t.Text.Length > 0).OrderByDescending(t => t.Text.Length).ToArray();

    /// <summary>
    /// Calls <paramref name="onText"/> for each stretch of ordinary text and <paramref name="onSpecial"/> for each
    /// special token, in order. A token marked StripLeft swallows the whitespace before it (RoBERTa's &lt;mask&gt;),
    /// one marked StripRight the whitespace after it.
    /// </summary>
    public void Split(string text, Action<int, int> onText, Action<int> onSpecial)
    {
        if (_tokens.Length == 0 || text.Length == 0)
        {
            onText(0, text.Length);
            return;
        }

        var segmentStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            var match = Match(text, i);
            if (match < 0)
            {
                i++;
                continue;
            }

            var (token, id, stripLeft, stripRight) = _tokens[match];
            var textEnd = i;
            if (stripLeft)
            {
                while (textEnd > segmentStart && char.IsWhiteSpace(text[textEnd - 1]))
                {
                    textEnd--;
                }
            }

            if (textEnd > segmentStart)
            {
                onText(segmentStart, textEnd - segmentStart);
            }

            onSpecial(id);
            i += token.Length;
            while (stripRight && i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            segmentStart = i;
        }

        if (segmentStart < text.Length)
        {
            onText(segmentStart, text.Length - segmentStart);
        }
    }

    private int Match(string text, int at)
    {
        for (var t = 0; t < _tokens.Length; t++)
        {
            if (string.CompareOrdinal(text, at, _tokens[t].Text, 0, _tokens[t].Text.Length) == 0
                && at + _tokens[t].Text.Length <= text.Length)
            {
                return t;
            }
        }

        return -1;
    }
}
