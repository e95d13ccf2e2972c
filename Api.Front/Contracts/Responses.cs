using System.Text.Json.Serialization;

namespace OrleansGpu.Api.Contracts;

/// <summary>
/// <c>GET /health</c>: the seed's <c>{status, device}</c>, with the number of hosts and whether any is ready, and the
/// models that failed or are degraded on some host (<see cref="Degraded"/>: those hosts get none of those models'
/// requests for now; the service is still ok while other hosts serve them).
/// </summary>
public sealed record HealthResponse(string Status, string Device, int Hosts, bool Ready, IReadOnlyList<ModelFaultResponse>? Degraded = null);

/// <summary>
/// A model that failed to load (<see cref="State"/> <c>failed</c>) or whose forward passes kept failing (<c>degraded</c>)
/// on <see cref="Host"/>, why, and until when that host gets none of its requests (then it is tried again).
/// </summary>
public sealed record ModelFaultResponse(string Host, string Model, string State, string Reason, DateTimeOffset Until, int Failures);

/// <summary><c>GET /info</c>: the seed's fields (of the first host), every host's, and the version.</summary>
public sealed record InfoResponse(
    string Device,
    string? DeviceName,
    long? VramTotalMb,
    long? VramUsedMb,
    string? CudaVersion,
    IReadOnlyList<string> LoadedModels,
    string? Version,
    IReadOnlyList<HostInfoResponse> Hosts);

/// <summary>
/// One host: its device, its loaded models, and its memory for models: the budget (<c>GPU_MEMORY_BUDGET</c>; null when
/// the device's memory is unknown), what the loaded models hold, and how many idle models it unloaded to make room.
/// </summary>
public sealed record HostInfoResponse(
    string Name,
    string Device,
    string DeviceName,
    long? VramTotalMb,
    long? VramUsedMb,
    string? CudaVersion,
    IReadOnlyList<string> LoadedModels,
    IReadOnlyList<LoadedModelResponse> Models,
    string Version,
    long? MemoryBudgetBytes = null,
    long? MemoryUsedBytes = null,
    long? Evictions = null);

/// <summary>
/// A loaded model: what it is loaded for and in which precisions (<c>fp32</c>, <c>fp16</c>: each its own sessions), the
/// memory it holds (the larger of its weights and what its load measurably took) and its weights' size, when it was last used (UTC), the work in flight for it, and its loads on the host.
/// </summary>
public sealed record LoadedModelResponse(
    string Name,
    string Provider,
    bool Embedding,
    bool Bertscore,
    int? Dimensions,
    int? Layers,
    IReadOnlyList<string> Precisions,
    long? MemoryBytes = null,
    long? WeightBytes = null,
    DateTimeOffset? LastUsed = null,
    int? InFlight = null,
    long? Loads = null);

/// <summary><c>GET /status</c>: the seed's queue and jobs over all hosts, the routing strategy, and each host's own.</summary>
public sealed record StatusResponse(QueueResponse Queue, IReadOnlyList<JobResponse> ActiveJobs, string Routing, IReadOnlyList<HostStatusResponse> Hosts);

public sealed record QueueResponse(int MaxConcurrent, int InFlight, int AvailableSlots, int WaitingEstimate);

/// <summary>
/// A job: the seed's fields, its state and host; an embed or bertscore request, or (type <c>download</c>) a model
/// download, with its bytes done of its bytes total. A job that is one part of a request the front split across hosts
/// names it in <see cref="PartOf"/> (in <c>hosts[].active_jobs</c>); in the top-level <c>active_jobs</c> the parts of
/// such a request are one job with the request's id, items and merged progress, its parts' hosts in
/// <see cref="Host"/> and the parts themselves in <see cref="Parts"/>.
/// </summary>
public sealed record JobResponse(
    string Id,
    string Type,
    DateTimeOffset? StartedAt,
    int Items,
    string Model,
    double Progress,
    string State,
    string Host,
    long? BytesDone = null,
    long? BytesTotal = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] JobPartOfResponse? PartOf = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<JobResponse>? Parts = null);

/// <summary>Part <see cref="Part"/> (from 1) of <see cref="Parts"/> of the request <see cref="RequestId"/>.</summary>
public sealed record JobPartOfResponse(string RequestId, int Part, int Parts);

/// <summary>
/// One host's queue and jobs; <see cref="State"/> is <c>serving</c>, <c>degraded</c> when some model failed or is
/// degraded there (<see cref="Faults"/>: it serves its other models), or <c>draining</c> while it stops (it takes no new
/// work then). <see cref="MaxConcurrentSource"/> says where <see cref="MaxConcurrent"/> came from: <c>GPU_MAX_CONCURRENT</c>,
/// or the default rule with its figures.
/// </summary>
public sealed record HostStatusResponse(
    string Name, int MaxConcurrent, int InFlight, int AvailableSlots, int Waiting, IReadOnlyList<JobResponse> ActiveJobs, string State,
    string? MaxConcurrentSource, IReadOnlyList<ModelFaultResponse>? Faults = null);

/// <summary>
/// <c>POST /embed</c>: one vector per text, in order, and the precision the model computed them in
/// (<c>compute_precision</c>: <c>fp32</c> or <c>fp16</c>; named as on <c>/bertscore</c>, where <c>precision</c> is a score).
/// </summary>
public sealed record EmbedResponse(IReadOnlyList<float[]> Embeddings, string Model, int Dimensions, string ComputePrecision);

/// <summary>
/// <c>POST /bertscore</c>: one score per candidate. A score bert_score leaves undefined (a text of special tokens
/// only) is null. <see cref="ComputePrecision"/> (<c>compute_precision</c>) is the precision the model ran in.
/// </summary>
public sealed record BertScoreResponse(
    IReadOnlyList<float?> Precision, IReadOnlyList<float?> Recall, IReadOnlyList<float?> F1, string Model, int NumLayers, string Hash, string ComputePrecision);

/// <summary>OpenAI's embeddings list, and (an extension OpenAI clients ignore) <c>compute_precision</c>, the precision the vectors were computed in.</summary>
public sealed record OpenAiEmbeddingsResponse(IReadOnlyList<OpenAiEmbedding> Data, string Model, OpenAiUsage Usage, string ComputePrecision)
{
    [JsonPropertyOrder(-1)]
    public string Object => "list";
}

public sealed record OpenAiEmbedding(int Index, EmbeddingVector Embedding)
{
    [JsonPropertyOrder(-1)]
    public string Object => "embedding";
}

/// <summary>Tokens the model read: its own tokenizer's count, special tokens included, after truncation at its window.</summary>
public sealed record OpenAiUsage(long PromptTokens, long TotalTokens);

/// <summary>OpenAI's <c>GET /v1/models</c>.</summary>
public sealed record OpenAiModelList(IReadOnlyList<OpenAiModel> Data)
{
    [JsonPropertyOrder(-1)]
    public string Object => "list";
}

public sealed record OpenAiModel(string Id, long Created, string OwnedBy)
{
    [JsonPropertyOrder(-1)]
    public string Object => "model";
}

/// <summary>The error body of the seed routes: RFC 9457 problem details, the message in <c>detail</c> (as the seed's <c>{"detail": ...}</c>), and a stable <c>code</c>.</summary>
public sealed record ProblemResponse(string Type, string Title, int Status, string Detail, string Code);

/// <summary>The error body of <c>/v1</c> routes, as OpenAI writes it.</summary>
public sealed record OpenAiErrorResponse(OpenAiError Error);

public sealed record OpenAiError(string Message, string Type, string? Param, string Code);
