using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// One model on one host. Loads on first use, once (concurrent first callers share the load), from the models
/// folder, the Hugging Face cache, or the hub (downloaded first), through its ONNX export or a graph built from its
/// checkpoint (<see cref="ModelGraphs"/>); keeps the ONNX Runtime sessions for as long as the grain lives, and runs
/// the work off the Orleans scheduler. A model that fails to load keeps no activation.
/// </summary>
[Reentrant]
[SiloKeyedPlacement]
public sealed class ModelGrain(
    ModelSources sources,
    ModelGraphs graphs,
    HostModels models,
    EncoderOptions encoderOptions,
    GpuHostOptions hostOptions,
    HostJobs jobs,
    HostMemory memory,
    ILogger<ModelGrain> logger) : Grain, IModelGrain
{
    private Task<EmbeddingModel>? _embedding;
    private Task<BertScoreModel>? _bertScore;
    private int _loads;

    private string ModelName => this.GetPrimaryKeyString()[(this.GetPrimaryKeyString().IndexOf('/') + 1)..];

    public async Task<ModelDescription> LoadAsync(ModelUse use)
    {
        if (use == ModelUse.Embedding)
        {
            await ReadyAsync(EmbeddingAsync);
        }
        else
        {
            await ReadyAsync(BertScoreAsync);
        }

        return (await DescribeAsync())!;
    }

    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, string jobId, CancellationToken cancellationToken)
    {
        var model = await ReadyAsync(EmbeddingAsync);
        var sequences = await Task.Run(() => EngineErrors.Translate(() => model.Tokenize(work.Texts, work.Truncate)), cancellationToken);
        var vectors = await model.EmbedAsync(
            sequences,
            work.Normalize,
            hostOptions.EmbedBatch,
            p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
            cancellationToken);
        var tokens = sequences.Sum(s => (long)s.Length);
        return new EmbeddingBatch(work.Model, work.Texts.Count, model.Dimensions, EmbeddingBatch.Pack(vectors), hostOptions.HostName, tokens);
    }

    public async Task<BertScoreScores> BertScoreAsync(BertScoreWork work, string jobId, CancellationToken cancellationToken)
    {
        var model = await ReadyAsync(BertScoreAsync);
        var request = new BertScoreRequest
        {
            Candidates = work.Candidates,
            References = work.References,
            NumLayers = work.NumLayers,
            Idf = work.Idf,
            RescaleWithBaseline = work.RescaleWithBaseline,
            Lang = work.Lang,
            Baseline = work.Baseline is { } b ? new Baseline(b.Precision, b.Recall, b.F1) : null,
            IdfWeights = work.IdfWeights is { } t ? TokenWeights.FromTable(t.TokenIds, t.Weights, t.Unlisted) : null,
            BatchSize = BertScoreWork.MatchingChunk,
        };
        // Tokenizing and matching run on the thread pool, the forward passes on the model's batcher threads.
        var result = await Task.Run(
            () => EngineErrors.TranslateAsync(() => model.ScoreAsync(
                request,
                p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
                cancellationToken)),
            cancellationToken);
        return new BertScoreScores(work.Model, result.Precision, result.Recall, result.F1, result.NumLayers, result.Hash, hostOptions.HostName);
    }

    public async Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken)
    {
        var model = await ReadyAsync(BertScoreAsync);
        var weights = await Task.Run(() => EngineErrors.Translate(() => model.InverseDocumentFrequency(work.References)), cancellationToken);
        var listed = weights.Listed;
        return new IdfTable([.. listed.Keys], [.. listed.Values], weights.Unlisted);
    }

    public Task<ModelDescription?> DescribeAsync()
    {
        var embedding = _embedding is { IsCompletedSuccessfully: true } e ? e.Result : null;
        var bertScore = _bertScore is { IsCompletedSuccessfully: true } b ? b.Result : null;
        if (embedding is null && bertScore is null)
        {
            return Task.FromResult<ModelDescription?>(null);
        }

        var provider = embedding?.Provider ?? bertScore?.Warm() ?? "CPU";
        return Task.FromResult<ModelDescription?>(new ModelDescription(
            ModelName, provider, embedding is not null, bertScore is not null, embedding?.Dimensions, bertScore?.TotalLayers, _loads));
    }

    private bool IsLoaded => _embedding is { IsCompletedSuccessfully: true } || _bertScore is { IsCompletedSuccessfully: true };

    /// <summary>Waits for a load; when it fails and nothing else is loaded, the activation goes (it holds nothing worth keeping).</summary>
    private async Task<T> ReadyAsync<T>(Func<Task<T>> load)
    {
        try
        {
            return await load();
        }
        catch when (!IsLoaded)
        {
            DeactivateOnIdle();
            throw;
        }
    }

    private Task<EmbeddingModel> EmbeddingAsync() => LoadOnceAsync(ref _embedding, folder =>
    {
        var model = EmbeddingModel.Load(folder, graphs, encoderOptions, BatchLimits);
        logger.LogInformation(
            "Loaded {Model} for embeddings on {Provider} ({Dimensions} dimensions, {Pooling} pooling{Normalize})",
            folder.Name, model.Provider, model.Dimensions, model.Pooling.Describe(), model.Normalizes ? ", normalised" : string.Empty);
        return model;
    });

    private Task<BertScoreModel> BertScoreAsync() => LoadOnceAsync(ref _bertScore, folder =>
    {
        var model = new BertScoreModel(folder, graphs, encoderOptions, BatchLimits);
        try
        {
            // The default layer's graph is opened now (built first when the model has no export and the cache lacks it).
            var provider = model.Warm();
            logger.LogInformation("Loaded {Model} for BERTScore on {Provider} (layer {Layer} of {Layers})", folder.Name, provider, model.DefaultLayer, model.TotalLayers);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    });

    /// <summary>
    /// The one load path of this grain: the model's files found (or downloaded) by the host's sources, then
    /// <paramref name="load"/> on them, off the scheduler; concurrent first callers share it. A failed load is not kept:
    /// the next call tries again (the model may have been installed or repaired since).
    /// </summary>
    /// <remarks>
    /// The host's memory gives the load its turn (<see cref="HostMemory.BeginLoadAsync"/>): idle models are unloaded
    /// first when this one does not fit. A first pass runs inside the turn (<see cref="FirstPassAsync"/>), so that what
    /// the load is measured to hold includes it.
    /// </remarks>
    private Task<T> LoadOnceAsync<T>(ref Task<T>? slot, Func<ModelFolder, T> load)
        where T : IDisposable
    {
        if (slot is null || slot.IsFaulted)
        {
            slot = Task.Run(() => EngineErrors.TranslateAsync(async () =>
            {
                var folder = await sources.ResolveAsync(ModelName);
                using var turn = await memory.BeginLoadAsync(ModelName, HostMemory.Estimate(folder), CancellationToken.None);
                var model = load(folder);
                try
                {
                    await FirstPassAsync(model);
                }
                catch
                {
                    model.Dispose();
                    throw;
                }

                await turn.CompleteAsync();
                Interlocked.Increment(ref _loads);
                models.MarkLoaded(ModelName);
                return model;
            }));
        }

        return slot;
    }

    /// <summary>One short pass of an embedding model, so that the memory measured for its load includes the arena a first pass reserves.</summary>
    private Task FirstPassAsync(IDisposable model) => model is EmbeddingModel embedding
        ? embedding.EmbedAsync(embedding.Tokenize(["warm up"], true), null, hostOptions.EmbedBatch, _ => { }, CancellationToken.None)
        : Task.CompletedTask;

    private BatchLimits BatchLimits => new()
    {
        MaxBatchTokens = hostOptions.MaxBatchTokens,
        MaxBatchSequences = hostOptions.MaxBatchSequences,
    };

    public Task UnloadAsync()
    {
        // Orleans deactivates once no call runs here; calls that arrive meanwhile go to a new activation, which loads again.
        logger.LogInformation("Unloading {Model} from {Host} to make room for another model", ModelName, hostOptions.HostName);
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        models.MarkUnloaded(ModelName);
        if (_embedding is { IsCompletedSuccessfully: true })
        {
            _embedding.Result.Dispose();
        }

        if (_bertScore is { IsCompletedSuccessfully: true })
        {
            _bertScore.Result.Dispose();
        }

        // Only now is the memory free: a load waiting for it goes on.
        memory.Unloaded(ModelName);
        return Task.CompletedTask;
    }
}
