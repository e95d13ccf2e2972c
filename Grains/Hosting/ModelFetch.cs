using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// <c>Silo.Gpu fetch [--no-build] MODEL...</c>: downloads models from the Hugging Face hub into the Hugging Face
/// cache, with the host's settings (<c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_CACHE</c>), whatever the allow list
/// says: the operator asks. A model without an ONNX export then has the graphs a host loads by default built into the
/// graph cache (<c>GRAPHS_DIR</c>), unless <c>--no-build</c>. For air-gapped fleets: fetch once where the hub is
/// reachable, copy both caches to each host.
/// </summary>
public static class ModelFetch
{
    public const string NoBuildOption = "--no-build";

    public static async Task<int> RunAsync(IReadOnlyList<string> arguments, IConfiguration configuration, ILogger logger, CancellationToken cancellationToken = default)
    {
        var build = !arguments.Contains(NoBuildOption);
        var models = arguments.Where(a => a != NoBuildOption).ToList();
        if (models.Count == 0 || models.Any(m => m.StartsWith("--", StringComparison.Ordinal)))
        {
            logger.LogError(
                "Usage: Silo.Gpu fetch [{NoBuild}] MODEL[@REVISION]... (for example microsoft/deberta-xlarge-mnli all-MiniLM-L6-v2@main)", NoBuildOption);
            return 2;
        }

        GpuHostOptions options;
        try
        {
            options = GpuHostOptions.FromConfiguration(configuration);
        }
        catch (OptionsValidationException ex)
        {
            logger.LogError("The settings are not valid: {Reasons}", string.Join(" ", ex.Failures));
            return 2;
        }

        using var sources = new ModelSources(
            new ModelStore(options.ModelsDirectory ?? ModelStore.DefaultDirectory, logger, options.HostName), options.Sources, logger);
        var graphs = new ModelGraphs(options.GraphsDirectory ?? CacheFolders.Graphs, logger);
        var failed = 0;
        foreach (var model in models)
        {
            try
            {
                var folder = await sources.FetchAsync(model, cancellationToken);
                logger.LogInformation("Fetched {Model} ({Format} weights) into {Directory}", folder.Name, folder.Weights.Format, folder.Directory);
                if (build && folder.Weights.Format != WeightsFormat.Onnx)
                {
                    foreach (var layer in LayersToBuild(folder))
                    {
                        graphs.Get(folder, layer);
                    }
                }
            }
            catch (Exception ex) when (ex is ModelNotFoundException or ModelGatedException or HubUnavailableException
                or ModelDownloadException or InvalidModelException or ArgumentException or IOException)
            {
                logger.LogError("Could not fetch {Model}: {Reason}", model, ex.Message);
                failed++;
            }
        }

        logger.LogInformation(
            "The Hugging Face cache is {Cache}, and the graphs built from native checkpoints are in {Graphs}. Hosts read both in place; "
            + "to serve without the hub, copy both to the same places (or HF_HUB_CACHE and GRAPHS_DIR) on each host.",
            sources.Cache.Root,
            graphs.CacheDirectory);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// The graphs a host loads for the model by default: BERTScore at bert_score's layer for the models in its table,
    /// and the whole model (embeddings, and BERTScore's default for any other model). Null means the last layer.
    /// </summary>
    private static IEnumerable<int?> LayersToBuild(ModelFolder folder)
    {
        if (BertScoreDefaults.DefaultLayer(folder.Name) is { } layer)
        {
            yield return layer;
            if (!folder.SentenceTransformers.HasModules)
            {
                yield break;
            }
        }

        yield return null;
    }
}
