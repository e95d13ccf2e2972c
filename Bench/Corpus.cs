namespace OrleansGpu.Bench;

/// <summary>Random sentences of plain English words: realistic token lengths for BERT and BPE tokenizers alike.</summary>
internal sealed class Corpus(int seed = 7)
{
    private static readonly string[] Words =
    [
        "the", "market", "government", "report", "police", "city", "people", "children", "school", "season",
        "player", "water", "energy", "company", "election", "minister", "village", "history", "weather", "festival",
        "research", "hospital", "village", "mountain", "railway", "station", "friendship", "language", "computer", "science",
        "morning", "evening", "decision", "question", "answer", "museum", "painting", "football", "stadium", "journey",
        "ancient", "modern", "quickly", "slowly", "remarkable", "difficult", "important", "beautiful", "dangerous", "careful",
        "announced", "discovered", "travelled", "explained", "suggested", "increased", "reduced", "protected", "arrived", "decided",
    ];

    private readonly Random _random = new(seed);

    public string Sentence(int minWords, int maxWords) =>
        string.Join(' ', Enumerable.Range(0, _random.Next(minWords, maxWords + 1)).Select(_ => Words[_random.Next(Words.Length)])) + ".";

    public string[] Sentences(int count, int minWords, int maxWords) =>
        [.. Enumerable.Range(0, count).Select(_ => Sentence(minWords, maxWords))];

    /// <summary>Token ids drawn from the middle of the vocabulary, valid for BERT and GPT-2 vocabularies alike.</summary>
    public int[] TokenIds(int count, int first, int last)
    {
        var ids = new int[count];
        ids[0] = first;
        for (var i = 1; i < count - 1; i++)
        {
            ids[i] = _random.Next(1000, 20000);
        }

        ids[^1] = last;
        return ids;
    }
}
