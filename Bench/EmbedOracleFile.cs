using System.Text.Json;

namespace OrleansGpu.Bench;

/// <summary>The embedding oracle (<c>embed-public.json</c>): its texts and sentence-transformers' vectors, row after row.</summary>
internal static class EmbedOracleFile
{
    /// <summary>The oracle's texts and flattened vectors; none when no <c>--oracle</c> was given.</summary>
    public static (string[] Texts, float[] Embeddings) Read(string? path)
    {
        if (path is null)
        {
            return ([], []);
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        string[] texts = [.. root.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!)];
        float[] embeddings = [.. root.GetProperty("embeddings").EnumerateArray().SelectMany(row => row.EnumerateArray().Select(v => v.GetSingle()))];
        return (texts, embeddings);
    }

    /// <summary>The oracle's texts with the token ids sentence-transformers gave each (special tokens included).</summary>
    public static (string[] Texts, int[][] InputIds) ReadTokens(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        string[] texts = [.. root.GetProperty("texts").EnumerateArray().Select(t => t.GetString()!)];
        int[][] ids = [.. root.GetProperty("input_ids").EnumerateArray().Select(row => row.EnumerateArray().Select(i => i.GetInt32()).ToArray())];
        return (texts, ids);
    }
}
