using System.Text.Json;
using System.Text.Json.Serialization;

namespace OrleansGpu.Tests.Support;

/// <summary>The reference outputs that sentence-transformers and bert_score produced (see shared/oracles/README.md).</summary>
public static class Oracles
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNameCaseInsensitive = true };

    public static EmbedOracle Embed { get; } = Load<EmbedOracle>("embed-public.json");

    public static BertScoreOracle BertScore { get; } = Load<BertScoreOracle>("bertscore-public.json");

    public static string BaselineFile => Paths.Oracle("baseline-minilm.tsv");

    private static T Load<T>(string file) =>
        JsonSerializer.Deserialize<T>(File.ReadAllBytes(Paths.Oracle(file)), Json)
        ?? throw new InvalidDataException($"Cannot read {file}.");
}

public sealed record EmbedOracle(
    string[] Texts,
    [property: JsonPropertyName("input_ids")] int[][] InputIds,
    float[][] Embeddings,
    [property: JsonPropertyName("readme_similarity")] double[][] ReadmeSimilarity);

public sealed record BertScoreOracle(
    string[] Candidates,
    string[] References,
    Dictionary<string, BertScoreRun> Runs,
    BertScoreMultiRun Multi);

public sealed record BertScoreRun(float[] P, float[] R, float[] F, string Hash);

public sealed record BertScoreMultiRun(
    float[] P,
    float[] R,
    float[] F,
    string[] Candidates,
    [property: JsonPropertyName("references_multi")] string[][] ReferencesMulti,
    [property: JsonPropertyName("num_layers")] int NumLayers);
