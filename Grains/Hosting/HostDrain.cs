using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// Drains the host when its silo stops (SIGTERM, or the co-hosting front's shutdown after its HTTP requests ended):
/// the job table stops admitting work, which the fronts then send to other hosts (the refusal is transient, and the
/// load report says draining), and the jobs it holds finish, for at most <see cref="GpuHostOptions.DrainTimeout"/>.
/// Only then does the silo go on to leave the cluster. It runs as the first stage of the silo's stop, while the silo
/// is still an active member serving calls.
/// </summary>
public sealed class HostDrain(HostJobs jobs, GpuHostOptions options, ILogger<HostDrain> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(HostDrain), ServiceLifecycleStage.Active, _ => Task.CompletedTask, DrainAsync);

    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        jobs.BeginDrain();
        var held = jobs.Count;
        logger.LogInformation(
            "GPU host {Host} is stopping: it takes no new work and finishes the {Jobs} jobs it holds (at most {Timeout} s)",
            options.HostName, held, options.DrainTimeout.TotalSeconds);
        var watch = Stopwatch.StartNew();
        if (await jobs.WaitIdleAsync(options.DrainTimeout, cancellationToken))
        {
            logger.LogInformation("GPU host {Host} drained in {Seconds:0.0} s; leaving the cluster", options.HostName, watch.Elapsed.TotalSeconds);
        }
        else
        {
            logger.LogWarning(
                "GPU host {Host} still holds {Jobs} jobs after {Seconds:0.0} s (GPU_DRAIN_TIMEOUT); leaving the cluster: the fronts send their requests to other hosts",
                options.HostName, jobs.Count, watch.Elapsed.TotalSeconds);
        }
    }
}
