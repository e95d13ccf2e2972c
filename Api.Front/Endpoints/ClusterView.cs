using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>Asks every live host for its info or status, skipping hosts that do not answer in time.</summary>
internal static class ClusterView
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public static Task<IReadOnlyList<HostInfo>> InfosAsync(HostRouter router, IClusterClient client, CancellationToken cancellationToken) =>
        AskAllAsync(router, client, h => h.GetInfoAsync(), cancellationToken);

    public static Task<IReadOnlyList<HostStatus>> StatusesAsync(HostRouter router, IClusterClient client, CancellationToken cancellationToken) =>
        AskAllAsync(router, client, h => h.GetStatusAsync(), cancellationToken);

    private static async Task<IReadOnlyList<T>> AskAllAsync<T>(
        HostRouter router, IClusterClient client, Func<IGpuHostGrain, Task<T>> ask, CancellationToken cancellationToken)
        where T : class
    {
        if (router.Hosts.Count == 0)
        {
            await router.RefreshAsync(cancellationToken);
        }

        var answers = await Task.WhenAll(router.Hosts.Select(async h =>
        {
            try
            {
                return await ask(client.GetGrain<IGpuHostGrain>(h.Host)).WaitAsync(Timeout, cancellationToken);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
                return null;
            }
        }));
        return [.. answers.OfType<T>()];
    }
}
