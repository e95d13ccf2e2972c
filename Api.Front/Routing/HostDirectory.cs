using System.Collections.Concurrent;
using Orleans.Runtime;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// The GPU hosts this front knows: the active silos of the last membership read with the load each reported, and
/// what the front itself knows of each between reads (its requests in flight there, a recent failure, whether the
/// host has left). Hosts that leave cancel the requests waiting on them, and every request in flight at that moment
/// (see <see cref="MembershipChanged"/>).
/// </summary>
public sealed class HostDirectory(IClusterClient client, RoutingOptions options, ILogger logger)
{
    private static readonly TimeSpan LoadTimeout = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<string, HostState> _states = new(StringComparer.Ordinal);

    // Cancelled whenever a host leaves the cluster. An Orleans client cannot tell which gateway silo carried a
    // request, and a request carried by a silo that died gets no answer until its timeout, whatever host it was
    // for; so every request in flight at that moment is sent again (they are idempotent).
    private CancellationTokenSource _membershipChanged = new();
    private volatile IReadOnlyList<HostLoad> _hosts = [];
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;

    /// <summary>The hosts of the last refresh with their loads, by name.</summary>
    public IReadOnlyList<HostLoad> Hosts => _hosts;

    /// <summary>True when no host is known or the list is several refresh intervals old (the refresh loop is not running).</summary>
    public bool IsStale => _hosts.Count == 0 || DateTimeOffset.UtcNow - _refreshedAt > options.RefreshInterval * 5;

    /// <summary>Cancelled when a host leaves the cluster; read it when a request is sent.</summary>
    public CancellationToken MembershipChanged => Volatile.Read(ref _membershipChanged).Token;

    public IGpuHostGrain Grain(string host) => client.GetGrain<IGpuHostGrain>(host);

    public HostState State(string host) => _states.GetOrAdd(host, _ => new HostState());

    /// <summary>Requests this front has in flight on <paramref name="host"/>, in estimated tokens.</summary>
    public long Pending(string host) => _states.TryGetValue(host, out var s) ? s.Pending : 0;

    public bool IsSuspect(string host) => _states.TryGetValue(host, out var s) && s.IsSuspect;

    /// <summary>Reads the active hosts from membership and asks each for its load. Hosts that left are dropped and their requests retried elsewhere.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var management = client.GetGrain<IManagementGrain>(0);
            var members = await management.GetDetailedHosts(onlyActive: true).WaitAsync(LoadTimeout, cancellationToken);
            var names = members.Select(m => m.SiloName).Where(n => !string.IsNullOrEmpty(n)).Distinct().ToList();
            var loads = await Task.WhenAll(names.Select(LoadOrNullAsync));
            var live = loads.OfType<HostLoad>().OrderBy(l => l.Host, StringComparer.Ordinal).ToList();

            var left = _hosts.Select(h => h.Host).Concat(_states.Keys).Distinct().Where(h => !names.Contains(h)).ToList();
            foreach (var name in left)
            {
                // The host left the cluster: requests still waiting on it go elsewhere now, not at their timeout.
                if (_states.TryRemove(name, out var state))
                {
                    state.MarkGone();
                }

                logger.LogWarning("GPU host {Host} left the cluster; requests in flight are sent again", name);
            }

            if (left.Count > 0)
            {
                Interlocked.Exchange(ref _membershipChanged, new CancellationTokenSource()).Cancel();
            }

            _hosts = live;
            _refreshedAt = DateTimeOffset.UtcNow;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Refreshing the GPU host list failed: {Reason}", ex.Message);
        }
    }

    private async Task<HostLoad?> LoadOrNullAsync(string host)
    {
        try
        {
            return await Grain(host).GetLoadAsync().WaitAsync(LoadTimeout);
        }
        catch (Exception ex)
        {
            logger.LogDebug("Host {Host} did not report its load: {Reason}", host, ex.Message);
            return null;
        }
    }
}

/// <summary>What this front knows of one host between refreshes.</summary>
public sealed class HostState
{
    private readonly CancellationTokenSource _gone = new();
    private long _pending;
    private long _suspectUntil;

    /// <summary>Cancelled when the host leaves the cluster.</summary>
    public CancellationToken Gone => _gone.Token;

    public long Pending => Interlocked.Read(ref _pending);

    /// <summary>The host failed a request a moment ago: others are preferred until the cooldown ends.</summary>
    public bool IsSuspect => DateTimeOffset.UtcNow.UtcTicks < Interlocked.Read(ref _suspectUntil);

    public void Add(long tokens) => Interlocked.Add(ref _pending, tokens);

    public void Remove(long tokens) => Interlocked.Add(ref _pending, -tokens);

    public void MarkFailed(TimeSpan cooldown) => Interlocked.Exchange(ref _suspectUntil, (DateTimeOffset.UtcNow + cooldown).UtcTicks);

    public void MarkGone() => _gone.Cancel();
}
