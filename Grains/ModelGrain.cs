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
/// the work off the Orleans scheduler. A model that fails to load keeps no activation. fp32 and fp16 are loaded
/// apart (their own graphs, cached under their own keys, and sessions), each on first use in that precision
/// (<see cref="HostPrecision"/> decides which precision a request gets here).
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
    ILogger<ModelGrain> logger,
    HostPrecision precisions,
    HostModelFaults faults,
    PassFaultInjection injection) : Grain, IModelGrain
{
    private Task<EmbeddingModel>? _embedding;
    private Task<BertScoreModel>? _bertScore;
    private Task<EmbeddingModel>? _embeddingFp16;
    private Task<BertScoreModel>? _bertScoreFp16;
    private int _loads;

    private string ModelName => this.GetPrimaryKeyString()[(this.GetPrimaryKeyString().IndexOf('/') + 1)..];

    public async Task<ModelDescription> LoadAsync(ModelUse use, string? precision = null)
    {
        if (use == ModelUse.Embedding)
        {
            await EmbeddingInAsync(precision);
        }
        else
        {
            await BertScoreInAsync(precision);
        }

        return (await DescribeAsync())!;
    }

    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, string jobId, CancellationToken cancellationToken)
    {
        var (model, precision) = await EmbeddingInAsync(work.Precision);
        var sequences = await Task.Run(() => EngineErrors.Translate(() => model.Tokenize(work.Texts, work.Truncate)), cancellationToken);
        var vectors = await PassesAsync(() => model.EmbedAsync(
            sequences,
            work.Normalize,
            hostOptions.EmbedBatch,
            p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
            cancellationToken));
        var tokens = sequences.Sum(s => (long)s.Length);
        return new EmbeddingBatch(work.Model, work.Texts.Count, model.Dimensions, EmbeddingBatch.Pack(vectors), hostOptions.HostName, tokens, Label(precision));
    }

    public async Task<BertScoreScores> BertScoreAsync(BertScoreWork work, string jobId, CancellationToken cancellationToken)
    {
        var (model, precision) = await BertScoreInAsync(work.Precision);
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
        var result = await PassesAsync(() => Task.Run(
            () => EngineErrors.TranslateAsync(() => model.ScoreAsync(
                request,
                p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
                cancellationToken)),
            cancellationToken));
        return new BertScoreScores(work.Model, result.Precision, result.Recall, result.F1, result.NumLayers, result.Hash, hostOptions.HostName, Label(precision));
    }

    public async Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken)
    {
        // idf depends on the tokenizer only; the model of the request's precision is the one loaded (or about to be).
        var (model, _) = await BertScoreInAsync(work.Precision);
        var weights = await Task.Run(() => EngineErrors.Translate(() => model.InverseDocumentFrequency(work.References)), cancellationToken);
        var listed = weights.Listed;
        return new IdfTable([.. listed.Keys], [.. listed.Values], weights.Unlisted);
    }

    public Task<ModelDescription?> DescribeAsync()
    {
        var embedding = Loaded(_embedding) ?? Loaded(_embeddingFp16);
        var bertScore = Loaded(_bertScore) ?? Loaded(_bertScoreFp16);
        if (embedding is null && bertScore is null)
        {
            return Task.FromResult<ModelDescription?>(null);
        }

        var provider = embedding?.Provider ?? bertScore?.Warm() ?? "CPU";
        List<string> precisions = [];
        if (Loaded(_embedding) is not null || Loaded(_bertScore) is not null)
        {
            precisions.Add(Precisions.Fp32);
        }

        if (Loaded(_embeddingFp16) is not null || Loaded(_bertScoreFp16) is not null)
        {
            precisions.Add(Precisions.Fp16);
        }

        return Task.FromResult<ModelDescription?>(new ModelDescription(
            ModelName, provider, embedding is not null, bertScore is not null, embedding?.Dimensions, bertScore?.TotalLayers, _loads, precisions));
    }

    private static T? Loaded<T>(Task<T>? slot)
        where T : class => slot is { IsCompletedSuccessfully: true } ? slot.Result : null;

    private bool IsLoaded => _embedding is { IsCompletedSuccessfully: true } || _bertScore is { IsCompletedSuccessfully: true }
        || _embeddingFp16 is { IsCompletedSuccessfully: true } || _bertScoreFp16 is { IsCompletedSuccessfully: true };

    /// <summary>Waits for a load; when it fails and nothing else is loaded, the activation goes (it holds nothing worth keeping).</summary>
    private async Task<T> ReadyAsync<T>(Func<Task<T>> load)
    {
        try
        {
            return await load();
        }
        catch (Exception ex) when (!IsLoaded && ex is not PrecisionUnavailableException)
        {
            DeactivateOnIdle();
            throw;
        }
    }

    /// <summary>The embedding model in the precision a request asking for <paramref name="requested"/> gets here, with that precision.</summary>
    private async Task<(EmbeddingModel Model, GraphPrecision Precision)> EmbeddingInAsync(string? requested) =>
        await ServedPrecisionAsync(requested) == GraphPrecision.Fp16 && await Fp16Async(EmbeddingFp16Async) is { } fp16
            ? (fp16, GraphPrecision.Fp16)
            : (await ReadyAsync(EmbeddingAsync), GraphPrecision.Fp32);

    /// <summary>The BERTScore model in the precision a request asking for <paramref name="requested"/> gets here, with that precision.</summary>
    private async Task<(BertScoreModel Model, GraphPrecision Precision)> BertScoreInAsync(string? requested) =>
        await ServedPrecisionAsync(requested) == GraphPrecision.Fp16 && await Fp16Async(BertScoreFp16Async) is { } fp16
            ? (fp16, GraphPrecision.Fp16)
            : (await ReadyAsync(BertScoreAsync), GraphPrecision.Fp32);

    private async Task<GraphPrecision> ServedPrecisionAsync(string? requested) =>
        precisions.IsFp16Unavailable(ModelName) ? GraphPrecision.Fp32 : await precisions.GraphPrecisionAsync(ModelName, precisions.Wanted(ModelName, requested));

    /// <summary>The fp16 load, or null when the model cannot be had in fp16 here (an export the builder cannot convert): then fp32 serves, from now on.</summary>
    private async Task<T?> Fp16Async<T>(Func<Task<T>> load)
        where T : class
    {
        try
        {
            return await ReadyAsync(load);
        }
        catch (PrecisionUnavailableException ex)
        {
            // Kept by the host's precision, so that its load reports say fp16 requests run in fp32 here (for the fronts' routing).
            precisions.SetFp16Unavailable(ModelName, true);
            logger.LogWarning("{Model} is served in fp32 to fp16 requests: {Reason}", ModelName, ex.Message);
            return null;
        }
    }

    private EncoderOptions EncoderOptionsFor(GraphPrecision precision) =>
        precision == GraphPrecision.Fp16 ? ModelEncoderOptions with { Float16Graph = true } : ModelEncoderOptions;

    private static string Label(GraphPrecision precision) => precision == GraphPrecision.Fp16 ? Precisions.Fp16 : Precisions.Fp32;

    private Task<EmbeddingModel> EmbeddingAsync() => EmbeddingAsync(ref _embedding, GraphPrecision.Fp32);

    private Task<EmbeddingModel> EmbeddingFp16Async() => EmbeddingAsync(ref _embeddingFp16, GraphPrecision.Fp16);

    private Task<BertScoreModel> BertScoreAsync() => BertScoreAsync(ref _bertScore, GraphPrecision.Fp32);

    private Task<BertScoreModel> BertScoreFp16Async() => BertScoreAsync(ref _bertScoreFp16, GraphPrecision.Fp16);

    private Task<EmbeddingModel> EmbeddingAsync(ref Task<EmbeddingModel>? slot, GraphPrecision precision) => LoadOnceAsync(ref slot, folder =>
    {
        var model = EmbeddingModel.Load(folder, graphs.WithPrecision(precision), EncoderOptionsFor(precision), BatchLimits);
        logger.LogInformation(
            "Loaded {Model} for embeddings on {Provider} in {Precision} ({Dimensions} dimensions, {Pooling} pooling{Normalize})",
            folder.Name, model.Provider, Label(precision), model.Dimensions, model.Pooling.Describe(), model.Normalizes ? ", normalised" : string.Empty);
        return model;
    });

    private Task<BertScoreModel> BertScoreAsync(ref Task<BertScoreModel>? slot, GraphPrecision precision) => LoadOnceAsync(ref slot, folder =>
    {
        var model = new BertScoreModel(folder, graphs.WithPrecision(precision), EncoderOptionsFor(precision), BatchLimits);
        try
        {
            // The default layer's graph is opened now (built first when the model has no export and the cache lacks it).
            var provider = model.Warm();
            logger.LogInformation(
                "Loaded {Model} for BERTScore on {Provider} in {Precision} (layer {Layer} of {Layers})",
                folder.Name, provider, Label(precision), model.DefaultLayer, model.TotalLayers);
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
                T model;
                try
                {
                    model = load(folder);
                }
                catch (Exception ex) when (ModelLoadFaults.IsOfThisCopy(ex))
                {
                    // This host's copy is damaged (another host's may not be): say so in the load reports, so that the
                    // fronts send the model elsewhere, and put the copy aside so that the next load reads a fresh one.
                    var reason = ModelLoadFaults.Reason(ex, folder);
                    faults.LoadFailed(ModelName, reason);
                    ModelLoadFaults.PutAside(folder, sources, graphs, logger);
                    throw new HostModelFailedException(
                        hostOptions.HostName,
                        ModelName,
                        ex is ModelUnreadableException ? ErrorCodes.ModelUnreadable : HostFaultCodes.ModelLoadFailed,
                        $"Model '{ModelName}' failed to load on host {hostOptions.HostName}: {reason}");
                }

                faults.Loaded(ModelName);
                try
                {
                    // A first pass that fails is a failed pass like any other: counted, and the host's error.
                    await PassesAsync(async () =>
                    {
                        await FirstPassAsync(model);
                        return true;
                    });
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

    /// <summary>
    /// Runs work made of forward passes and keeps the model's record of them: a pass that failed for a reason of the
    /// host (its device, its runtime) counts towards degrading the model here and is the host's error, which the front
    /// retries on another host; a text the device cannot hold alone is too, without counting; a success clears the count.
    /// </summary>
    private async Task<T> PassesAsync<T>(Func<Task<T>> work)
    {
        try
        {
            var result = await work();
            faults.PassSucceeded(ModelName);
            return result;
        }
        catch (PassFailedException ex)
        {
            logger.LogWarning("A forward pass of {Model} failed on this host; the request is sent to another: {Reason}", ModelName, ex.Message);
            faults.PassFailed(ModelName, ex.Message);
            throw new HostModelFailedException(hostOptions.HostName, ModelName, HostFaultCodes.PassFailed, $"Host {hostOptions.HostName}: {ex.Message}");
        }
        catch (DeviceOutOfMemoryException ex)
        {
            throw new HostModelFailedException(hostOptions.HostName, ModelName, HostFaultCodes.DeviceOutOfMemory, $"Host {hostOptions.HostName}: {ex.Message}");
        }
    }

    /// <summary>
    /// The session options of this model: the host's, with a test's injected pass faults when a test set any, and its
    /// CUDA arena held to the host's memory budget. Without that limit the arena of a model given a very large pass grows
    /// past the budget the host plans with; with it that pass fails as out of memory and is split, as on a full device.
    /// </summary>
    private EncoderOptions ModelEncoderOptions => injection.For(ModelName, encoderOptions with { GpuMemoryLimit = memory.KnownBudget });

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
        precisions.SetFp16Unavailable(ModelName, false);
        if (_embedding is { IsCompletedSuccessfully: true })
        {
            _embedding.Result.Dispose();
        }

        if (_bertScore is { IsCompletedSuccessfully: true })
        {
            _bertScore.Result.Dispose();
        }

        Loaded(_embeddingFp16)?.Dispose();
        Loaded(_bertScoreFp16)?.Dispose();

        // Only now is the memory free: a load waiting for it goes on.
        memory.Unloaded(ModelName);
        return Task.CompletedTask;
    }
}
