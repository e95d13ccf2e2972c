using System.Text.Json;
using System.Text.Json.Serialization;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// The tiny encoders of <c>shared/oracles/architectures/</c>: per architecture a config, weights and every hidden
/// state that Hugging Face transformers computed for four right-padded sequences (see that folder's README).
/// </summary>
public static class ArchitectureOracles
{
    public static IReadOnlyList<string> Architectures { get; } = ["bert", "roberta", "distilbert", "deberta", "deberta-v2", "mpnet"];

    public static string Folder(string architecture) => Path.Combine(Paths.Shared, "oracles", "architectures", architecture);

    public static ArchitectureOracle Load(string architecture) =>
        JsonSerializer.Deserialize<ArchitectureOracle>(File.ReadAllBytes(Path.Combine(Folder(architecture), "expected.json")))
        ?? throw new InvalidDataException($"Cannot read the {architecture} oracle.");
}

public sealed record ArchitectureOracle(
    [property: JsonPropertyName("inputs")] ArchitectureInput[] Inputs,
    [property: JsonPropertyName("lengths")] int[] Lengths,
    [property: JsonPropertyName("pad_token_id")] int PadTokenId,
    [property: JsonPropertyName("tolerance_abs")] double ToleranceAbs,

    // [input][layer][token][component], non-padding tokens only.
    [property: JsonPropertyName("hidden_states")] float[][][][] HiddenStates);

public sealed record ArchitectureInput(
    [property: JsonPropertyName("input_ids")] long[] InputIds,
    [property: JsonPropertyName("attention_mask")] long[] AttentionMask);
