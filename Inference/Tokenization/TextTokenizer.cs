namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// A Hugging Face compatible tokenizer: text in, the model's input ids out, with the model's
/// sequence-start and sequence-end tokens around the content, truncated at a maximum length.
/// Implementations are immutable and safe for concurrent use.
/// </summary>
public abstract class TextTokenizer
{
    protected TextTokenizer(SpecialTokenIds special) => Special = special;

    /// <summary>Ids of the tokens the model treats specially ([CLS]/[SEP] or &lt;s&gt;/&lt;/s&gt;, padding, unknown).</summary>
    public SpecialTokenIds Special { get; }

    /// <summary>Appends the content ids of <paramref name="text"/> (no sequence start/end, no truncation).</summary>
    public abstract void EncodeContent(string text, List<int> ids);

    /// <summary>
    /// Encodes like Hugging Face <c>tokenizer(text, truncation=True, max_length=maxLength)</c>: the start token,
    /// the content cut from the right so that the total (specials included) is at most <paramref name="maxLength"/>,
    /// then the end token.
    /// </summary>
    public int[] Encode(string text, int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var content = new List<int>((int)Math.Min(text.Length + 2L, maxLength + 8L));
        EncodeContent(text, content);
        var keep = Math.Min(content.Count, maxLength - 2);
        var ids = new int[keep + 2];
        ids[0] = Special.Start;
        content.CopyTo(0, ids, 1, keep);
        ids[^1] = Special.End;
        return ids;
    }
}

/// <summary>The ids of a model's special tokens.</summary>
/// <param name="Start">[CLS] or &lt;s&gt;: begins every sequence.</param>
/// <param name="End">[SEP] or &lt;/s&gt;: ends every sequence.</param>
/// <param name="Pad">Padding id used for batches.</param>
/// <param name="Unknown">Id for text the vocabulary cannot represent, or -1 when there is none.</param>
public sealed record SpecialTokenIds(int Start, int End, int Pad, int Unknown);
