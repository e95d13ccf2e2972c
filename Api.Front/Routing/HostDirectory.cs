using System.Collections.Concurrent;
using Orleans.Runtime;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// The GPU hosts this front knows: the active silos of the last membership read with the load each reported, and
/// what the front itself knows of each between reads (its requests in flight there, a recent failure, a refusal
/// because it is stopping, the models it has just sent there, whether the host has left). Hosts that leave cancel the
/// requests waiting on them, and every request in flight at that moment (see <see cref="MembershipChanged"/>).
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

    /// <summary>How busy <paramref name="host"/> is, in tokens: the larger of what it last reported and what this front has in flight there now.</summary>
    public long Load(HostLoad host) => Math.Max(host.Tokens, Pending(host.Host));

    public bool IsSuspect(string host) => _states.TryGetValue(host, out var s) && s.IsSuspect;

    /// <summary>
    /// Whether new work may go to <paramref name="host"/>: the host says it takes work, and has not refused this front
    /// for stopping since its last report. The one test of routability every selection applies.
    /// </summary>
    public bool IsRoutable(HostLoad host) => host.TakesWork && !(_states.TryGetValue(host.Host, out var s) && s.IsDraining);

    /// <summary>
    /// Whether <paramref name="host"/> should get none of <paramref name="work"/>'s model's requests now: the host
    /// reports the model failed or degraded there (<see cref="HostLoad.Faults"/>), or it just answered that it cannot run it.
    /// </summary>
    public bool IsFaulted(HostLoad host, HostWork work) =>
        work.Model is { } model
        && (host.FaultFor(model, DateTimeOffset.UtcNow) is not null || (_states.TryGetValue(host.Host, out var s) && s.IsModelFailed(model)));

    /// <summary>
    /// Whether <paramref name="host"/> has the model of <paramref name="work"/> loaded or loading for its use, as the host
    /// reported it, or this front sent that model there since (the host's next report will say; meanwhile requests that
    /// arrive together follow the first instead of each starting a load elsewhere).
    /// </summary>
    public bool IsWarm(HostLoad host, HostWork work) =>
        work.Model is { } model
        && (host.Model(model)?.IsWarmFor(work.Use) == true
            || (_states.TryGetValue(host.Host, out var s) && s.RecentlySent(model, work.Use, SentMemory)));

    /// <summary>How long this front counts a model it sent to a host as warm there without the host saying so.</summary>
    private TimeSpan SentMemory => options.RefreshInterval * 3;

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

            foreach (var state in _states.Values)
            {
                state.ForgetSentBefore(DateTimeOffset.UtcNow - SentMemory);
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
    private readonly ConcurrentDictionary<(string Model, ModelUse Use), long> _sent = new();
    private readonly ConcurrentDictionary<string, long> _modelFailedUntil = new(StringComparer.Ordinal);
    private long _pending;
    private long _suspectUntil;
    private long _drainingUntil;

    /// <summary>Cancelled when the host leaves the cluster.</summary>
    public CancellationToken Gone => _gone.Token;

    public long Pending => Interlocked.Read(ref _pending);

    /// <summary>The host failed a request a moment ago: others are preferred until the cooldown ends.</summary>
    public bool IsSuspect => DateTimeOffset.UtcNow.UtcTicks < Interlocked.Read(ref _suspectUntil);

    public void Add(long tokens) => Interlocked.Add(ref _pending, tokens);

    public void Remove(long tokens) => Interlocked.Add(ref _pending, -tokens);

    public void MarkFailed(TimeSpan cooldown) => Interlocked.Exchange(ref _suspectUntil, (DateTimeOffset.UtcNow + cooldown).UtcTicks);

    /// <summary>The host refused work because it is stopping, until its own report says so (or it is gone).</summary>
    public bool IsDraining => DateTimeOffset.UtcNow.UtcTicks < Interlocked.Read(ref _drainingUntil);

    /// <summary>
    /// The host refused a request because it is stopping: it gets no more until <paramref name="until"/> passes, by
    /// when its load report says draining. Not for ever: a silo of the same name may replace it.
    /// </summary>
    public void MarkDraining(TimeSpan until) => Interlocked.Exchange(ref _drainingUntil, (DateTimeOffset.UtcNow + until).UtcTicks);

    /// <summary>The host answered that it cannot run <paramref name="model"/> now: none of its requests go there until <paramref name="cooldown"/> passes.</summary>
    public void MarkModelFailed(string? model, TimeSpan cooldown)
    {
        if (model is not null)
        {
            _modelFailedUntil[model] = (DateTimeOffset.UtcNow + cooldown).UtcTicks;
        }
    }

    public bool IsModelFailed(string model) => _modelFailedUntil.TryGetValue(model, out var until) && DateTimeOffset.UtcNow.UtcTicks < until;

    /// <summary>Notes that a request for <paramref name="model"/> was just sent here.</summary>
    public void NoteSent(string model, ModelUse use) => _sent[(model, use)] = DateTimeOffset.UtcNow.UtcTicks;

    public bool RecentlySent(string model, ModelUse use, TimeSpan within) =>
        _sent.TryGetValue((model, use), out var at) && DateTimeOffset.UtcNow.UtcTicks - at < within.Ticks;

    /// <summary>Drops what was sent before <paramref name="cutoff"/>: by then the host's report says what it loaded.</summary>
    public void ForgetSentBefore(DateTimeOffset cutoff)
    {
        foreach (var entry in _sent)
        {
            if (entry.Value < cutoff.UtcTicks)
            {
                _sent.TryRemove(entry);
            }
        }
    }

    public void MarkGone() => _gone.Cancel();
}
