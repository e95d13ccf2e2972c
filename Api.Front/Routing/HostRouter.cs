using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// Picks a GPU host per request and retries elsewhere when one fails. Keeps a snapshot of the live hosts and their
/// load, refreshed about once a second from cluster membership and each host grain; adds the work this front has
/// sent since, so a burst does not pile onto one host between refreshes. Every compute request is idempotent, so a
/// request whose host dies (unavailable silo, rejected message, timeout, host gone from membership) is sent to the
/// next host, within <see cref="RoutingOptions.MaxAttempts"/>.
/// </summary>
public sealed class HostRouter(IClusterClient client, RoutingOptions options, ILogger<HostRouter> logger) : BackgroundService
{
    private static readonly TimeSpan LoadTimeout = TimeSpan.FromSeconds(2);

    private readonly ConcurrentDictionary<string, HostState> _states = new(StringComparer.Ordinal);

    // Cancelled whenever a host leaves the cluster. An Orleans client cannot tell which gateway silo carried a
    // request, and a request carried by a silo that died gets no answer until its timeout, whatever host it was
    // for; so every request in flight at that moment is sent again (they are idempotent).
    private CancellationTokenSource _membershipChanged = new();
    private volatile IReadOnlyList<HostLoad> _hosts = [];
    private int _roundRobin = -1;
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;

    /// <summary>The hosts of the last refresh with their loads.</summary>
    public IReadOnlyList<HostLoad> Hosts => _hosts;

    public RoutingStrategy Strategy => options.Strategy;

    /// <summary>Counts for /metrics: retries on another host, by reason.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    private long _retries;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await RefreshAsync(stoppingToken);
            try
            {
                await Task.Delay(options.RefreshInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

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
            return await client.GetGrain<IGpuHostGrain>(host).GetLoadAsync().WaitAsync(LoadTimeout);
        }
        catch (Exception ex)
        {
            logger.LogDebug("Host {Host} did not report its load: {Reason}", host, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// Runs <paramref name="call"/> on a chosen host; on a host failure, on the next one. <paramref name="tokens"/>
    /// is the request's estimated size, counted against its host while it runs.
    /// </summary>
    public async Task<T> ExecuteAsync<T>(long tokens, Func<IGpuHostGrain, CancellationToken, Task<T>> call, CancellationToken requestAborted)
    {
        if (_hosts.Count == 0 || DateTimeOffset.UtcNow - _refreshedAt > options.RefreshInterval * 5)
        {
            await RefreshAsync(requestAborted);
        }

        var tried = new HashSet<string>(StringComparer.Ordinal);
        Exception? lastFailure = null;
        var busy = new SortedDictionary<string, HostBusyException>(StringComparer.Ordinal);
        var failed = 0;
        var looked = false;
        for (var attempt = 0; attempt < options.MaxAttempts; attempt++)
        {
            var host = Pick(tried);
            if (host is null)
            {
                if (looked)
                {
                    break;
                }

                // Every known host was tried: look once more for hosts that joined (or came back) meanwhile.
                looked = true;
                await Task.Delay(TimeSpan.FromMilliseconds(200), requestAborted);
                await RefreshAsync(requestAborted);
                tried.RemoveWhere(h => _hosts.Any(l => l.Host == h) && !IsSuspect(h));
                host = Pick(tried);
                if (host is null)
                {
                    break;
                }
            }

            tried.Add(host);
            var state = _states.GetOrAdd(host, _ => new HostState());
            var membershipChanged = Volatile.Read(ref _membershipChanged).Token;
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, state.Gone, membershipChanged);
            state.Add(tokens);
            try
            {
                return await call(client.GetGrain<IGpuHostGrain>(host), linked.Token);
            }
            catch (OperationCanceledException) when (membershipChanged.IsCancellationRequested && !state.Gone.IsCancellationRequested && !requestAborted.IsCancellationRequested)
            {
                // Another host left while this one worked on the request: the host is fine, ask it (or another) again.
                tried.Remove(host);
                Interlocked.Increment(ref _retries);
                logger.LogInformation("Cluster membership changed while {Host} served a request; sending it again", host);
            }
            catch (InvalidWorkException)
            {
                throw; // the request is wrong; every host would say so
            }
            catch (OperationCanceledException) when (requestAborted.IsCancellationRequested)
            {
                throw; // the caller went away
            }
            catch (HostBusyException ex)
            {
                busy[host] = ex;
                lastFailure = ex;
                logger.LogInformation("GPU host {Host} is busy; trying another", host);
            }
            catch (Exception ex)
            {
                failed++;
                lastFailure = ex;
                state.MarkFailed(options.FailureCooldown);
                Interlocked.Increment(ref _retries);
                logger.LogWarning("GPU host {Host} failed ({Error}: {Reason}); trying another", host, ex.GetType().Name, ex.Message);
            }
            finally
            {
                state.Remove(tokens);
            }
        }

        if (lastFailure is null)
        {
            throw new NoHostAvailableException("No GPU host is available: none has joined the cluster yet.", busy: false);
        }

        // Busy everywhere it was tried (a host asked twice counts once): the client should come back, not give up.
        throw busy.Count > 0 && failed == 0
            ? new NoHostAvailableException(
                $"Every GPU host is busy ({string.Join("; ", busy.Values.Select(b => b.Message.TrimEnd('.')))}); retry later.", busy: true, lastFailure)
            : new NoHostAvailableException($"No GPU host could serve the request: {lastFailure.Message}", busy: false, lastFailure);
    }

    private bool IsSuspect(string host) => _states.TryGetValue(host, out var s) && s.IsSuspect;

    private string? Pick(HashSet<string> tried)
    {
        var candidates = _hosts.Where(h => !tried.Contains(h.Host)).ToList();
        if (candidates.Count == 0)
        {
            return null;
        }

        // A host that just failed is avoided while another is there; alone, it is tried again.
        var healthy = candidates.Where(h => !IsSuspect(h.Host)).ToList();
        if (healthy.Count > 0)
        {
            candidates = healthy;
        }

        if (options.Strategy == RoutingStrategy.RoundRobin)
        {
            var next = Interlocked.Increment(ref _roundRobin);
            var all = _hosts;
            for (var k = 0; k < all.Count; k++)
            {
                var host = all[(int)((uint)(next + k) % (uint)all.Count)].Host;
                if (candidates.Any(c => c.Host == host))
                {
                    return host;
                }
            }

            return candidates[0].Host;
        }

        return LeastBusy(candidates);
    }

    /// <summary>
    /// The host with the fewest queued and running tokens: the larger of what it last reported and what this front
    /// has in flight on it now. With many hosts, power of two choices (two at random, the lighter wins) avoids every
    /// front herding onto the same host between refreshes; with a few, all are compared.
    /// </summary>
    private string LeastBusy(List<HostLoad> candidates)
    {
        long Load(HostLoad h) => Math.Max(h.Tokens, _states.TryGetValue(h.Host, out var s) ? s.Pending : 0);

        if (candidates.Count > 4)
        {
            var a = candidates[Random.Shared.Next(candidates.Count)];
            var b = candidates[Random.Shared.Next(candidates.Count)];
            return Load(a) <= Load(b) ? a.Host : b.Host;
        }

        // Read each load once: the pending counts move while we look.
        var loads = candidates.Select(c => (c.Host, Load: Load(c))).ToList();
        var best = loads.Min(l => l.Load);
        var lightest = loads.Where(l => l.Load == best).ToList();
        return lightest[Random.Shared.Next(lightest.Count)].Host;
    }

    /// <summary>What this front knows of one host between refreshes.</summary>
    private sealed class HostState
    {
        private readonly CancellationTokenSource _gone = new();
        private long _pending;
        private long _suspectUntil;

        public CancellationToken Gone => _gone.Token;

        public long Pending => Interlocked.Read(ref _pending);

        public bool IsSuspect => DateTimeOffset.UtcNow.UtcTicks < Interlocked.Read(ref _suspectUntil);

        public void Add(long tokens) => Interlocked.Add(ref _pending, tokens);

        public void Remove(long tokens) => Interlocked.Add(ref _pending, -tokens);

        public void MarkFailed(TimeSpan cooldown) => Interlocked.Exchange(ref _suspectUntil, (DateTimeOffset.UtcNow + cooldown).UtcTicks);

        public void MarkGone() => _gone.Cancel();
    }
}
