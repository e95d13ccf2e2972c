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
    /// <summary>Model sizes remembered at most (<see cref="NoteTooLarge"/>); past it the memory starts again.</summary>
    private const int MaxSizesRemembered = 1024;

    private static readonly TimeSpan LoadTimeout = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a model's size learnt from a refusal counts, and a refusal for a host that reports no budget (an older
    /// host): budgets change only with a restart, and a model's files seldom.
    /// </summary>
    private static readonly TimeSpan TooLargeMemory = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, HostState> _states = new(StringComparer.Ordinal);

    // The size of each model some host refused as larger than its whole budget, as that host estimated it from its
    // files, and until when it counts (the model's files may change: a later refusal tells again).
    private readonly ConcurrentDictionary<string, (long Bytes, long Until)> _modelBytes = new(StringComparer.Ordinal);

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
    /// Whether <paramref name="host"/> has the model of <paramref name="work"/> loaded or loading for its use in the
    /// precision the request runs in there, as the host reported it (<see cref="HostModel.IsWarmFor"/>), or this front
    /// sent that model there since, in the same precision (the host's next report will say; meanwhile requests that
    /// arrive together follow the first instead of each starting a load elsewhere).
    /// </summary>
    public bool IsWarm(HostLoad host, HostWork work) =>
        work.Model is { } model
        && (host.Model(model)?.IsWarmFor(work.Use, work.Precision) == true
            || (_states.TryGetValue(host.Host, out var s) && s.RecentlySent(model, work.Use, work.Precision, SentMemory)));

    /// <summary>
    /// Whether <paramref name="host"/> cannot hold the model of <paramref name="work"/> at all: its reported memory budget
    /// is below the model's size as a host measured it when it refused the model (<c>model_too_large</c>), or, for a host
    /// that reports no budget, it refused the model itself a moment ago (<see cref="TooLargeMemory"/>). Such a host is
    /// never chosen for the model: it would only refuse again.
    /// </summary>
    public bool CannotHold(HostLoad host, HostWork work)
    {
        if (work.Model is not { } model)
        {
            return false;
        }

        if (host.MemoryBudgetBytes is { } budget && KnownBytes(model) is { } bytes)
        {
            return bytes > budget;
        }

        return _states.TryGetValue(host.Host, out var s) && s.RefusedAsTooLarge(model) is not null;
    }

    /// <summary>
    /// Notes that <paramref name="host"/> refused <paramref name="model"/> as larger than its whole memory budget: the
    /// model's size is remembered for every host (a host's report of its budget then decides), and the refusal for this one.
    /// </summary>
    public void NoteTooLarge(string host, string? model, InvalidWorkException refusal)
    {
        if (model is null)
        {
            return;
        }

        if (refusal.ModelBytes is { } bytes)
        {
            // Only models a host found and measured get here; still, a front meets few such, and the table stays small.
            if (_modelBytes.Count >= MaxSizesRemembered)
            {
                _modelBytes.Clear();
            }

            _modelBytes[model] = (bytes, (DateTimeOffset.UtcNow + TooLargeMemory).UtcTicks);
        }

        State(host).MarkTooLarge(model, refusal, TooLargeMemory);
    }

    /// <summary>
    /// The answer when every routable host cannot hold <paramref name="work"/>'s model (<see cref="CannotHold"/>): a
    /// <c>model_too_large</c> naming the model's size and the largest budget among those hosts; null when some host may
    /// hold it, or no host is known.
    /// </summary>
    public InvalidWorkException? TooLargeEverywhere(HostWork work)
    {
        var routable = _hosts.Where(IsRoutable).ToList();
        if (work.Model is not { } model || routable.Count == 0 || !routable.All(h => CannotHold(h, work)))
        {
            return null;
        }

        var largest = routable
            .Select(h => (h.Host, Budget: h.MemoryBudgetBytes ?? (_states.TryGetValue(h.Host, out var s) ? s.RefusedAsTooLarge(model)?.BudgetBytes : null)))
            .MaxBy(h => h.Budget ?? -1);
        var refusal = _states.TryGetValue(largest.Host, out var state) ? state.RefusedAsTooLarge(model) : null;
        if (largest.Budget is not { } budget || KnownBytes(model) is not { } bytes)
        {
            // A host that says no more than its refusal: its own words.
            return refusal is null ? null : new InvalidWorkException(ErrorCodes.ModelTooLarge, refusal.Message) { ModelBytes = refusal.ModelBytes, BudgetBytes = refusal.BudgetBytes };
        }

        return new InvalidWorkException(
            ErrorCodes.ModelTooLarge,
            $"Model '{model}' needs about {MemoryBudget.Describe(bytes)} ({bytes} bytes, the size of its weights), more than the memory budget "
            + $"of every GPU host: the largest is host {largest.Host}'s, {MemoryBudget.Describe(budget)} ({budget} bytes, GPU_MEMORY_BUDGET).")
        {
            ModelBytes = bytes,
            BudgetBytes = budget,
        };
    }

    private long? KnownBytes(string model) =>
        _modelBytes.TryGetValue(model, out var known) && DateTimeOffset.UtcNow.UtcTicks < known.Until ? known.Bytes : null;

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
    private readonly ConcurrentDictionary<(string Model, ModelUse Use, string Precision), long> _sent = new();
    private readonly ConcurrentDictionary<string, long> _modelFailedUntil = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (InvalidWorkException Refusal, long Until)> _tooLarge = new(StringComparer.Ordinal);
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

    /// <summary>The host refused <paramref name="model"/> as larger than its whole memory budget (<paramref name="refusal"/>), until <paramref name="memory"/> passes.</summary>
    public void MarkTooLarge(string model, InvalidWorkException refusal, TimeSpan memory) =>
        _tooLarge[model] = (refusal, (DateTimeOffset.UtcNow + memory).UtcTicks);

    /// <summary>The host's refusal of <paramref name="model"/> as too large, while it is remembered; else null.</summary>
    public InvalidWorkException? RefusedAsTooLarge(string model) =>
        _tooLarge.TryGetValue(model, out var refused) && DateTimeOffset.UtcNow.UtcTicks < refused.Until ? refused.Refusal : null;

    /// <summary>
    /// Notes that a request for <paramref name="model"/> asking for <paramref name="precision"/> (null: none) was just sent
    /// here. Kept by the precision asked for: on one host the same ask always runs in the same sessions.
    /// </summary>
    public void NoteSent(string model, ModelUse use, string? precision) => _sent[(model, use, precision ?? string.Empty)] = DateTimeOffset.UtcNow.UtcTicks;

    public bool RecentlySent(string model, ModelUse use, string? precision, TimeSpan within) =>
        _sent.TryGetValue((model, use, precision ?? string.Empty), out var at) && DateTimeOffset.UtcNow.UtcTicks - at < within.Ticks;

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
