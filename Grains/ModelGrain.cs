using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using OrleansGpu.Grains.Placement;
using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Grains;

/// <summary>
/// One model on one host. Loads on first use, once (concurrent first callers share the load), keeps the ONNX
/// Runtime sessions for as long as the grain lives, and runs the work off the Orleans scheduler.
/// </summary>
[Reentrant]
[SiloKeyedPlacement]
public sealed class ModelGrain(
    ModelStore store,
    EncoderOptions encoderOptions,
    GpuHostOptions hostOptions,
    HostJobs jobs,
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
            await EmbeddingAsync();
        }
        else
        {
            await BertScoreAsync();
        }

        return (await DescribeAsync())!;
    }

    public async Task<EmbeddingBatch> EmbedAsync(EmbedWork work, string jobId, CancellationToken cancellationToken)
    {
        var model = await EmbeddingAsync();
        var sequences = await Task.Run(() => Translate(() => model.Tokenize(work.Texts, work.Truncate)), cancellationToken);
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
        var model = await BertScoreAsync();
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
            () => TranslateAsync(() => model.ScoreAsync(
                request,
                p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
                cancellationToken)),
            cancellationToken);
        return new BertScoreScores(work.Model, result.Precision, result.Recall, result.F1, result.NumLayers, result.Hash, hostOptions.HostName);
    }

    public async Task<IdfTable> BertScoreIdfAsync(IdfWork work, CancellationToken cancellationToken)
    {
        var model = await BertScoreAsync();
        var weights = await Task.Run(() => Translate(() => model.InverseDocumentFrequency(work.References)), cancellationToken);
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

    // A failed load is not kept: the next call tries again (the model may have been installed since).
    private Task<EmbeddingModel> EmbeddingAsync()
    {
        if (_embedding is null || _embedding.IsFaulted)
        {
            _embedding = Task.Run(() => Translate(() =>
            {
                var folder = store.Resolve(ModelName);
                var model = EmbeddingModel.Load(folder, encoderOptions, BatchLimits);
                Interlocked.Increment(ref _loads);
                logger.LogInformation("Loaded {Model} for embeddings on {Provider} ({Dimensions} dimensions)", folder.Name, model.Provider, model.Dimensions);
                return model;
            }));
        }

        return _embedding;
    }

    private Task<BertScoreModel> BertScoreAsync()
    {
        if (_bertScore is null || _bertScore.IsFaulted)
        {
            _bertScore = Task.Run(() => Translate(() =>
            {
                var folder = store.Resolve(ModelName);
                var model = new BertScoreModel(folder, encoderOptions, BatchLimits);
                var provider = model.Warm();
                Interlocked.Increment(ref _loads);
                logger.LogInformation("Loaded {Model} for BERTScore on {Provider} (layer {Layer} of {Layers})", folder.Name, provider, model.DefaultLayer, model.TotalLayers);
                return model;
            }));
        }

        return _bertScore;
    }

    private BatchLimits BatchLimits => new()
    {
        MaxBatchTokens = hostOptions.MaxBatchTokens,
        MaxBatchSequences = hostOptions.MaxBatchSequences,
    };

    private static async Task<T> TranslateAsync<T>(Func<Task<T>> work)
    {
        try
        {
            return await work();
        }
        catch (Exception ex) when (Translated(ex) is { } translated)
        {
            throw translated;
        }
    }

    private static T Translate<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (Exception ex) when (Translated(ex) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>The 4xx error that crosses the wire for the engine's errors about the request; null for the others.</summary>
    private static InvalidWorkException? Translated(Exception error) => error switch
    {
        ModelNotFoundException ex => new InvalidWorkException(ErrorCodes.ModelNotFound, ex.Message),
        InvalidModelException ex => new InvalidWorkException(ErrorCodes.ModelInvalid, ex.Message),
        InputTooLongException ex => new InvalidWorkException(ErrorCodes.InputTooLong, ex.Message),
        BaselineNotFoundException ex => new InvalidWorkException(ErrorCodes.BaselineNotFound, ex.Message),
        ArgumentException ex => new InvalidWorkException(ErrorCodes.InvalidInput, ex.Message.Split(" (Parameter", 2)[0]),
        _ => null,
    };

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_embedding is { IsCompletedSuccessfully: true })
        {
            _embedding.Result.Dispose();
        }

        if (_bertScore is { IsCompletedSuccessfully: true })
        {
            _bertScore.Result.Dispose();
        }

        return Task.CompletedTask;
    }
}
