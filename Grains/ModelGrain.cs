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
        var options = new EmbedOptions { Normalize = work.Normalize, Truncate = work.Truncate, BatchSize = hostOptions.EmbedBatch };
        var vectors = await Task.Run(
            () => Translate(() => model.Embed(
                work.Texts,
                options,
                p => jobs.ReportProgress(jobId, p.Done, p.Total, p.Batch, p.Batches),
                cancellationToken)),
            cancellationToken);
        return new EmbeddingBatch(work.Model, work.Texts.Count, model.Dimensions, EmbeddingBatch.Pack(vectors), hostOptions.HostName);
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
        };
        var result = await Task.Run(
            () => Translate(() => model.Score(
                request,
                cancellationToken,
                (batch, batches) => jobs.ReportProgress(jobId, batch, batches, batch, batches))),
            cancellationToken);
        return new BertScoreScores(work.Model, result.Precision, result.Recall, result.F1, result.NumLayers, result.Hash, hostOptions.HostName);
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
                var model = EmbeddingModel.Load(folder, encoderOptions);
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
                var model = new BertScoreModel(folder, encoderOptions);
                var provider = model.Warm();
                Interlocked.Increment(ref _loads);
                logger.LogInformation("Loaded {Model} for BERTScore on {Provider} (layer {Layer} of {Layers})", folder.Name, provider, model.DefaultLayer, model.TotalLayers);
                return model;
            }));
        }

        return _bertScore;
    }

    /// <summary>Turns the engine's errors about the request into the 4xx error that crosses the wire.</summary>
    private static T Translate<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (ModelNotFoundException ex)
        {
            throw new InvalidWorkException(ErrorCodes.ModelNotFound, ex.Message);
        }
        catch (InvalidModelException ex)
        {
            throw new InvalidWorkException(ErrorCodes.ModelInvalid, ex.Message);
        }
        catch (InputTooLongException ex)
        {
            throw new InvalidWorkException(ErrorCodes.InputTooLong, ex.Message);
        }
        catch (BaselineNotFoundException ex)
        {
            throw new InvalidWorkException(ErrorCodes.BaselineNotFound, ex.Message);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidWorkException(ErrorCodes.InvalidInput, ex.Message.Split(" (Parameter", 2)[0]);
        }
    }

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
