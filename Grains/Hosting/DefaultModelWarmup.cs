using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// Loads the default models (MODEL_EMBED, MODEL_BERTSCORE) once the silo is active, in the background so the silo
/// joins at once. A default that is not installed is logged with what to install; the rest keeps working.
/// </summary>
public sealed class DefaultModelWarmup(GpuHostOptions options, IGrainFactory grains, ILogger<DefaultModelWarmup> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(DefaultModelWarmup), ServiceLifecycleStage.Active, OnActive);

    private Task OnActive(CancellationToken cancellationToken)
    {
        if (!options.WarmDefaults)
        {
            return Task.CompletedTask;
        }

        _ = Task.Run(WarmAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task WarmAsync()
    {
        try
        {
            var host = grains.GetGrain<IGpuHostGrain>(options.HostName);
            var problems = await host.WarmAsync(
            [
                new WarmRequest(options.DefaultEmbedModel, ModelUse.Embedding),
                new WarmRequest(options.DefaultBertScoreModel, ModelUse.BertScore),
            ]);
            foreach (var problem in problems)
            {
                logger.LogWarning(
                    "Default model {Model} is not available on {Host}: {Reason} Requests for it get a 4xx until it is installed; everything else keeps working.",
                    problem.Model, options.HostName, problem.Reason);
            }

            // The host's half of the start banner: its device and which defaults are ready (the missing ones were just logged with how to install them).
            var info = await host.GetInfoAsync();
            var ready = info.LoadedModels.Select(m => m.Name).ToList();
            logger.LogInformation(
                "GPU host {Host} ready on {Device} ({DeviceName}): models {Ready}{Missing}",
                options.HostName,
                info.Device,
                info.DeviceName,
                ready.Count == 0 ? "none" : string.Join(", ", ready),
                problems.Count == 0 ? string.Empty : $"; missing {string.Join(", ", problems.Select(p => p.Model))} (see above)");
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Warming the default models of {Host} failed", options.HostName);
        }
    }
}
