using System.Runtime.InteropServices;

namespace OrleansGpu.Grains;

/// <summary>What a model is loaded for.</summary>
public enum ModelUse
{
    Embedding,
    BertScore,
}

/// <summary>
/// Marks a job as part <see cref="Index"/> (from 0) of <see cref="Count"/> of one client request that the front split
/// across hosts: the hosts' job tables and progress logs carry it, and the front's <c>/status</c> merges the parts
/// into one job of <see cref="RequestItems"/> items.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.RequestPart")]
public sealed record RequestPart(
    [property: Id(0)] string RequestId,
    [property: Id(1)] int Index,
    [property: Id(2)] int Count,
    [property: Id(3)] int RequestItems);

/// <summary>
/// The precisions a model computes in: <see cref="Fp32"/> (the default; the numbers the oracles check) and
/// <see cref="Fp16"/> (float16 weights and products, LayerNorm and softmax in float32; on CUDA). A request that names
/// none gets the host's default for the model (<c>GPU_PRECISION</c>); every answer says which precision it used.
/// </summary>
public static class Precisions
{
    public const string Fp32 = "fp32";

    public const string Fp16 = "fp16";

    public static IReadOnlyList<string> All { get; } = [Fp32, Fp16];

    public static bool IsKnown(string? value) => value is Fp32 or Fp16;
}

/// <param name="Normalize">L2-normalise: true or false as asked; null as the model's own modules say (sentence-transformers' Normalize).</param>
/// <param name="Precision">fp32 or fp16 as asked (<see cref="Precisions"/>); null for the host's default for the model.</param>
[GenerateSerializer, Immutable, Alias("OrleansGpu.EmbedWork")]
public sealed record EmbedWork(
    [property: Id(0)] string Model,
    [property: Id(1)] IReadOnlyList<string> Texts,
    [property: Id(2)] bool? Normalize = null,
    [property: Id(3)] bool Truncate = true,
    [property: Id(4)] RequestPart? Part = null,
    [property: Id(5)] string? Precision = null);

/// <summary>
/// Embeddings as one contiguous little-endian float32 buffer (<c>Count × Dimensions</c>, row-major): the Orleans
/// codec copies a byte array in one go, where a float array would cost a tagged field per element.
/// <see cref="Tokens"/> is what the model's tokenizer made of the texts (special tokens included, after truncation):
/// the tokens the model read, which OpenAI's <c>usage.prompt_tokens</c> reports. <see cref="ComputePrecision"/> is the precision
/// the vectors were computed in (fp16 asked on a host that cannot run it is answered in fp32, and says so).
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.EmbeddingBatch")]
public sealed record EmbeddingBatch(
    [property: Id(0)] string Model,
    [property: Id(1)] int Count,
    [property: Id(2)] int Dimensions,
    [property: Id(3)] byte[] Vectors,
    [property: Id(4)] string Host,
    [property: Id(5)] long Tokens = 0,
    [property: Id(6)] string ComputePrecision = Precisions.Fp32)
{
    public ReadOnlySpan<float> Floats => MemoryMarshal.Cast<byte, float>(Vectors);

    public ReadOnlySpan<float> Vector(int index) => Floats.Slice(index * Dimensions, Dimensions);

    public static byte[] Pack(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}

[GenerateSerializer, Immutable, Alias("OrleansGpu.BertScoreWork")]
public sealed record BertScoreWork(
    [property: Id(0)] string Model,
    [property: Id(1)] IReadOnlyList<string> Candidates,
    [property: Id(2)] IReadOnlyList<IReadOnlyList<string>> References,
    [property: Id(3)] int? NumLayers = null,
    [property: Id(4)] bool Idf = false,
    [property: Id(5)] bool RescaleWithBaseline = false,
    [property: Id(6)] string Lang = "en",
    [property: Id(7)] BaselineValues? Baseline = null,
    [property: Id(8)] IdfTable? IdfWeights = null,
    [property: Id(9)] RequestPart? Part = null,
    [property: Id(10)] string? Precision = null)
{
    /// <summary>
    /// Pairs per matching chunk (bert_score's <c>batch_size</c>). A score depends on the other pairs of its chunk
    /// (bert_score floors a token's best match at 0 when the other side is shorter than the chunk's longest), so a part
    /// of a request scores as the whole only when it starts at a multiple of this many pairs.
    /// </summary>
    public const int MatchingChunk = 64;
}

/// <summary>
/// bert_score's idf weights for the references of one request (<see cref="IGpuHostGrain.BertScoreIdfAsync"/>): the
/// weight of each token id some reference contains, and the weight of every other id. Sent with each part of a split
/// request, so that every part weighs tokens as the whole request would.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.IdfTable")]
public sealed record IdfTable(
    [property: Id(0)] int[] TokenIds,
    [property: Id(1)] float[] Weights,
    [property: Id(2)] float Unlisted);

/// <summary>The references whose idf weights are asked for, as <see cref="BertScoreWork.References"/> holds them.</summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.IdfWork")]
public sealed record IdfWork(
    [property: Id(0)] string Model,
    [property: Id(1)] IReadOnlyList<IReadOnlyList<string>> References,
    [property: Id(2)] string? Precision = null);

[GenerateSerializer, Immutable, Alias("OrleansGpu.BaselineValues")]
public sealed record BaselineValues([property: Id(0)] float Precision, [property: Id(1)] float Recall, [property: Id(2)] float F1);

[GenerateSerializer, Immutable, Alias("OrleansGpu.BertScoreScores")]
public sealed record BertScoreScores(
    [property: Id(0)] string Model,
    [property: Id(1)] float[] Precision,
    [property: Id(2)] float[] Recall,
    [property: Id(3)] float[] F1,
    [property: Id(4)] int NumLayers,
    [property: Id(5)] string Hash,
    [property: Id(6)] string Host,
    [property: Id(7)] string ComputePrecision = Precisions.Fp32);

/// <summary>
/// What a host reports to the fronts about itself, read about once a second by each: its queue, whether it takes new
/// work (<see cref="Availability"/>), the models it has loaded or is loading (<see cref="Models"/>), and its memory
/// budget for models (<see cref="MemoryBudgetBytes"/>: <c>GPU_MEMORY_BUDGET</c> resolved; null while unknown, or from a
/// host too old to say), so that a front sends no host a model it knows is larger than that host's whole budget.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.HostLoad")]
public sealed record HostLoad(
    [property: Id(0)] string Host,
    [property: Id(1)] int QueuedJobs,
    [property: Id(2)] int RunningJobs,
    [property: Id(3)] long QueuedTokens,
    [property: Id(4)] long RunningTokens,
    [property: Id(5)] int MaxConcurrent,
    [property: Id(6)] string Device,
    [property: Id(7)] HostAvailability Availability = HostAvailability.Serving,
    [property: Id(8)] IReadOnlyList<HostModel>? Models = null,
    [property: Id(9)] IReadOnlyList<ModelFault>? Faults = null,
    [property: Id(10)] long? MemoryBudgetBytes = null)
{
    /// <summary>What least-busy routing compares: estimated tokens waiting or running on the host.</summary>
    public long Tokens => QueuedTokens + RunningTokens;

    /// <summary>Whether new work may be sent to the host at all (see <see cref="HostAvailability"/>).</summary>
    public bool TakesWork => Availability == HostAvailability.Serving;

    /// <summary>
    /// Whether the host should get no requests for <paramref name="requested"/> now (as a request names it): its copy
    /// failed to load, or its passes kept failing, and the back-off or cool-down has not passed (<see cref="ModelFault"/>).
    /// </summary>
    public ModelFault? FaultFor(string requested, DateTimeOffset now) =>
        Faults?.FirstOrDefault(f => f.Until > now && f.Answers(requested));

    /// <summary>The host's entry for a model as a request names it (its canonical name or a spelling that resolved to it), or null.</summary>
    public HostModel? Model(string requested) => Models?.FirstOrDefault(m => m.Answers(requested));
}

/// <summary>
/// Whether a host takes new work: the one notion of a host's routability that the front's selection reads. A host
/// that is not <see cref="Serving"/> refuses new jobs with a transient failure, so a front that has not yet seen the
/// report sends the request elsewhere.
/// </summary>
public enum HostAvailability
{
    Serving,

    /// <summary>The silo is stopping (SIGTERM: a deploy, a restart): it finishes the jobs it holds, then leaves the cluster.</summary>
    Draining,
}

/// <summary>
/// Something wrong with a model on one host (<see cref="HostLoad.Faults"/>): <see cref="Kind"/> <c>failed</c> (its copy
/// there failed to load: <see cref="Reason"/>) or <c>degraded</c> (<see cref="Failures"/> forward passes in a row
/// failed). Until <see cref="Until"/> the fronts send the model's requests to other hosts; then the host is tried again.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.ModelFault")]
public sealed record ModelFault(
    [property: Id(0)] string Model,
    [property: Id(1)] string Kind,
    [property: Id(2)] string Reason,
    [property: Id(3)] DateTimeOffset Until,
    [property: Id(4)] int Failures,
    [property: Id(5)] IReadOnlyList<string> Aliases)
{
    public bool Answers(string requested) => string.Equals(Model, requested, StringComparison.Ordinal) || Aliases.Contains(requested, StringComparer.Ordinal);
}

/// <summary>What a model is ready for on a host, or being loaded for.</summary>
[Flags]
public enum ModelUses
{
    None = 0,
    Embedding = 1,
    BertScore = 2,
}

/// <summary>
/// A model a host has loaded (<see cref="Ready"/>) or is loading (<see cref="Loading"/>), in any precision, by canonical
/// name, with the other spellings requests used for it on that host (<c>all-MiniLM-L6-v2</c> for
/// <c>sentence-transformers/all-MiniLM-L6-v2</c>), and how long its last load took. Per precision
/// (<see cref="Precisions"/>): what is ready or loading in fp32 and in fp16, each its own sessions; and which of them a
/// request would run in on this host (<see cref="RunsIn"/>), decided by the host, which alone knows its
/// <c>GPU_PRECISION</c> default for the model and whether it runs fp16 at all. A host too old to report precisions
/// has everything in fp32 (the fields are null), as such a host ran fp16 requests in fp32 or reported them so.
/// </summary>
/// <param name="DefaultPrecision">The precision a request naming none runs in here; null: fp32.</param>
/// <param name="Fp16Precision">The precision an fp16 request runs in here: fp16, or fp32 on a CPU host (without <c>GPU_FP16_ON_CPU</c>) or for a model that cannot be had in fp16; null: fp32.</param>
[GenerateSerializer, Immutable, Alias("OrleansGpu.HostModel")]
public sealed record HostModel(
    [property: Id(0)] string Name,
    [property: Id(1)] IReadOnlyList<string> Aliases,
    [property: Id(2)] ModelUses Ready,
    [property: Id(3)] ModelUses Loading,
    [property: Id(4)] double LoadSeconds,
    [property: Id(5)] IReadOnlyList<ModelPrecisionLoad>? Precisions = null,
    [property: Id(6)] string? DefaultPrecision = null,
    [property: Id(7)] string? Fp16Precision = null)
{
    public bool Answers(string requested) => string.Equals(Name, requested, StringComparison.Ordinal) || Aliases.Contains(requested, StringComparer.Ordinal);

    /// <summary>The precision a request asking for <paramref name="requested"/> (null: none) runs in on this host.</summary>
    public string RunsIn(string? requested) => requested switch
    {
        null => DefaultPrecision ?? Grains.Precisions.Fp32,
        Grains.Precisions.Fp16 => Fp16Precision ?? Grains.Precisions.Fp32,
        _ => Grains.Precisions.Fp32,
    };

    /// <summary>What is ready and loading in <paramref name="precision"/> (as a host runs it), or null when nothing is.</summary>
    public ModelPrecisionLoad? In(string precision) =>
        (Precisions ?? [new ModelPrecisionLoad(Grains.Precisions.Fp32, Ready, Loading, LoadSeconds)]).FirstOrDefault(p => p.Precision == precision);

    /// <summary>
    /// Ready for <paramref name="use"/> in the precision a request asking for <paramref name="requested"/> runs in here, or
    /// being loaded for it (a request sent there waits for that load instead of starting another).
    /// </summary>
    public bool IsWarmFor(ModelUse use, string? requested = null) => In(RunsIn(requested)) is { } p && ((p.Ready | p.Loading) & use.AsFlag()) != 0;

    /// <summary>Ready (not only loading) for <paramref name="use"/> in the precision a request asking for <paramref name="requested"/> runs in here.</summary>
    public bool IsReadyFor(ModelUse use, string? requested = null) => In(RunsIn(requested)) is { } p && (p.Ready & use.AsFlag()) != 0;

    /// <summary>How long the last load of the sessions a request asking for <paramref name="requested"/> runs on took here (0: none yet).</summary>
    public double LoadSecondsFor(string? requested) => In(RunsIn(requested))?.LoadSeconds ?? 0;
}

/// <summary>What a model is ready for (<see cref="Ready"/>) and being loaded for (<see cref="Loading"/>) in one precision on a host, and how long that load took.</summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.ModelPrecisionLoad")]
public sealed record ModelPrecisionLoad(
    [property: Id(0)] string Precision,
    [property: Id(1)] ModelUses Ready,
    [property: Id(2)] ModelUses Loading,
    [property: Id(3)] double LoadSeconds);

public static class ModelUseExtensions
{
    public static ModelUses AsFlag(this ModelUse use) => use == ModelUse.Embedding ? ModelUses.Embedding : ModelUses.BertScore;
}

[GenerateSerializer, Immutable, Alias("OrleansGpu.HostInfo")]
public sealed record HostInfo(
    [property: Id(0)] string Host,
    [property: Id(1)] string Device,
    [property: Id(2)] string DeviceName,
    [property: Id(3)] long? VramTotalMb,
    [property: Id(4)] long? VramUsedMb,
    [property: Id(5)] string? CudaVersion,
    [property: Id(6)] IReadOnlyList<ModelDescription> LoadedModels,
    [property: Id(7)] string Version,
    [property: Id(8)] HostMemoryInfo? Memory = null);

/// <summary>
/// A host's memory for models: its budget (<c>GPU_MEMORY_BUDGET</c>), what its loaded models hold, the models it
/// unloaded to make room, and per loaded model what it holds and when it was last used.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.HostMemoryInfo")]
public sealed record HostMemoryInfo(
    [property: Id(0)] long BudgetBytes,
    [property: Id(1)] long UsedBytes,
    [property: Id(2)] long Evictions,
    [property: Id(3)] IReadOnlyList<ModelMemoryInfo> Models);

/// <summary>
/// One loaded model's memory: <see cref="Bytes"/> held (the larger of its weights and what its load measurably took),
/// <see cref="WeightBytes"/> from its files, its last use, the work in flight for it (queued or running), and how many
/// times the host loaded it.
/// </summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.ModelMemoryInfo")]
public sealed record ModelMemoryInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] long Bytes,
    [property: Id(2)] long WeightBytes,
    [property: Id(3)] DateTimeOffset LastUsed,
    [property: Id(4)] int InFlight,
    [property: Id(5)] long Loads);

[GenerateSerializer, Immutable, Alias("OrleansGpu.ModelDescription")]
public sealed record ModelDescription(
    [property: Id(0)] string Name,
    [property: Id(1)] string Provider,
    [property: Id(2)] bool Embedding,
    [property: Id(3)] bool BertScore,
    [property: Id(4)] int? Dimensions,
    [property: Id(5)] int? Layers,
    [property: Id(6)] int Loads,
    [property: Id(7)] IReadOnlyList<string>? LoadedPrecisions = null);

[GenerateSerializer, Immutable, Alias("OrleansGpu.HostStatus")]
public sealed record HostStatus(
    [property: Id(0)] string Host,
    [property: Id(1)] int MaxConcurrent,
    [property: Id(2)] int InFlight,
    [property: Id(3)] int Waiting,
    [property: Id(4)] IReadOnlyList<JobStatus> Jobs,
    [property: Id(5)] string? MaxConcurrentSource = null);

/// <summary>A job of a host: an embed or bertscore request, or (type <c>download</c>, state <c>downloading</c>) a model download with its bytes.</summary>
[GenerateSerializer, Immutable, Alias("OrleansGpu.JobStatus")]
public sealed record JobStatus(
    [property: Id(0)] string Id,
    [property: Id(1)] string Type,
    [property: Id(2)] DateTimeOffset? StartedAt,
    [property: Id(3)] int Items,
    [property: Id(4)] string Model,
    [property: Id(5)] double Progress,
    [property: Id(6)] string State,
    [property: Id(7)] long? BytesDone = null,
    [property: Id(8)] long? BytesTotal = null,
    [property: Id(9)] RequestPart? Part = null);

/// <param name="Precision">The precision to load (<see cref="Precisions"/>); null for the host's default for the model.</param>
[GenerateSerializer, Immutable, Alias("OrleansGpu.WarmRequest")]
public sealed record WarmRequest([property: Id(0)] string Model, [property: Id(1)] ModelUse Use, [property: Id(2)] string? Precision = null);

[GenerateSerializer, Immutable, Alias("OrleansGpu.ModelProblem")]
public sealed record ModelProblem([property: Id(0)] string Model, [property: Id(1)] string Reason);

/// <summary>A cheap size estimate used for load balancing: about four characters per token, plus the two specials.</summary>
public static class WorkSize
{
    public static long Tokens(IEnumerable<string> texts) => texts.Sum(t => (long)(t.Length / 4) + 2);
}
