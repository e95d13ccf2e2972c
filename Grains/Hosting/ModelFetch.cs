using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// <c>Silo.Gpu fetch MODEL...</c>: downloads models from the Hugging Face hub into the Hugging Face cache, with the
/// host's settings (<c>HF_ENDPOINT</c>, <c>HF_TOKEN</c>, <c>HF_HUB_CACHE</c>), whatever the allow list says: the
/// operator asks. For air-gapped fleets: fetch once where the hub is reachable, copy the cache to each host.
/// </summary>
public static class ModelFetch
{
    public static async Task<int> RunAsync(IReadOnlyList<string> models, IConfiguration configuration, ILogger logger, CancellationToken cancellationToken = default)
    {
        if (models.Count == 0)
        {
            logger.LogError("Usage: Silo.Gpu fetch MODEL[@REVISION]... (for example microsoft/deberta-xlarge-mnli all-MiniLM-L6-v2@main)");
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
        var failed = 0;
        foreach (var model in models)
        {
            try
            {
                var folder = await sources.FetchAsync(model, cancellationToken);
                logger.LogInformation("Fetched {Model} ({Format} weights) into {Directory}", folder.Name, folder.Weights.Format, folder.Directory);
            }
            catch (Exception ex) when (ex is ModelNotFoundException or ModelGatedException or HubUnavailableException
                or ModelDownloadException or InvalidModelException or ArgumentException)
            {
                logger.LogError("Could not fetch {Model}: {Reason}", model, ex.Message);
                failed++;
            }
        }

        logger.LogInformation(
            "The Hugging Face cache is {Cache}. Hosts read it in place; to serve without the hub, copy it to the same place (or HF_HUB_CACHE) on each host.",
            sources.Cache.Root);
        return failed == 0 ? 0 : 1;
    }
}
