namespace OrleansGpu.Grains;

/// <summary>
/// One per GPU silo, keyed by the silo's host name and pinned to that silo. Owns the host's job table (queued and
/// running jobs, progress per batch), admits at most <c>GPU_MAX_CONCURRENT</c> jobs at once with a bounded queue
/// behind them, reports the host's load, and forwards work to the model grains of its silo.
/// </summary>
public interface IGpuHostGrain : IGrainWithStringKey
{
    /// <summary>Embeds texts. Throws <see cref="HostBusyException"/> when the queue is full.</summary>
    Task<EmbeddingBatch> EmbedAsync(EmbedWork work, CancellationToken cancellationToken = default);

    /// <summary>Scores candidate/reference pairs. Throws <see cref="HostBusyException"/> when the queue is full.</summary>
    Task<BertScoreScores> BertScoreAsync(BertScoreWork work, CancellationToken cancellationToken = default);

    /// <summary>
    /// bert_score's idf weights over <paramref name="work"/>'s references, tokenized by the model's tokenizer: what a
    /// request with these references computes itself, for the parts of a request the front splits. Tokenizing only
    /// (no forward pass), so it is not queued behind the host's jobs.
    /// </summary>
    Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken = default);

    /// <summary>The load the front routes by: queued and running work, in estimated tokens and jobs.</summary>
    Task<HostLoad> GetLoadAsync();

    /// <summary>Device, memory and loaded models of the host.</summary>
    Task<HostInfo> GetInfoAsync();

    /// <summary>
    /// What the Orleans dashboard's grain state page shows for this host (grain type <c>OrleansGpu.Grains.GpuHostGrain</c>,
    /// id the host name): its device, memory budget and use, evictions, and each loaded model's memory, weights, last
    /// use, work in flight and loads, as <c>/info</c> has them. Named <c>GetState</c>, not <c>*Async</c>: the dashboard
    /// calls the parameterless methods of that name.
    /// </summary>
    Task<HostInfo> GetState();

    /// <summary>The queue and the jobs with their progress.</summary>
    Task<HostStatus> GetStatusAsync();

    /// <summary>Loads the given models now (the defaults at silo start); returns what could not be loaded and why.</summary>
    Task<IReadOnlyList<ModelProblem>> WarmAsync(IReadOnlyList<WarmRequest> models);
}

/// <summary>
/// One loaded model on one host, keyed <c>"{host}/{model}"</c> and placed on that host's silo. Loads on first use
/// (once, whatever the number of callers), keeps the ONNX Runtime sessions, and stays active while used.
/// </summary>
public interface IModelGrain : IGrainWithStringKey
{
    /// <summary>Loads the model for <paramref name="use"/> in <paramref name="precision"/> (fp32 or fp16; null: the host's default for it).</summary>
    Task<ModelDescription> LoadAsync(ModelUse use, string? precision = null);

    Task<EmbeddingBatch> EmbedAsync(EmbedWork work, string jobId, CancellationToken cancellationToken = default);

    Task<BertScoreScores> BertScoreAsync(BertScoreWork work, string jobId, CancellationToken cancellationToken = default);

    Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken = default);

    Task<ModelDescription?> DescribeAsync();

    /// <summary>
    /// Unloads the model to make room for another (the host's memory chose it: nothing in flight): the activation goes
    /// once idle and its sessions are disposed; work that arrives after loads the model again.
    /// </summary>
    Task UnloadAsync();
}
