using Microsoft.Extensions.Options;
using OrleansGpu.Grains;
using Polly;
using Polly.Retry;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// Runs each compute request on a GPU host and, when that host fails in a way another host may not, on the next one.
/// Four parts: the <see cref="HostDirectory"/> (live hosts, their loads and models, refreshed about once a second while
/// this service runs), the <see cref="HostSelection"/> strategy (least-busy, preferring hosts where the model is warm,
/// or round-robin), <see cref="Prewarming"/> (a busy model loaded on one more host), and a Polly retry pipeline that
/// sends the request again only for the failures <see cref="HostFailures"/> calls transient, at most
/// <see cref="RoutingOptions.MaxAttempts"/> times. A deterministic failure propagates as it is, after one attempt.
/// </summary>
public sealed class HostRouter : BackgroundService
{
    private static readonly TimeSpan LookAgainDelay = TimeSpan.FromMilliseconds(200);

    private readonly RoutingOptions _options;
    private readonly ILogger _logger;
    private readonly HostDirectory _directory;
    private readonly HostSelection _selection;
    private readonly Prewarming _prewarming;
    private readonly ResiliencePipeline _retry;
    private long _retries;
    private long _modelFailures;

    public HostRouter(IClusterClient client, IOptions<RoutingOptions> options, ILogger<HostRouter> logger)
    {
        _options = options.Value;
        _logger = logger;
        _directory = new HostDirectory(client, _options, logger);
        _selection = HostSelection.For(_options);
        _prewarming = new Prewarming(_directory, _options, logger);
        _retry = _options.MaxAttempts <= 1
            ? ResiliencePipeline.Empty
            : new ResiliencePipelineBuilder()
                .AddRetry(new RetryStrategyOptions
                {
                    ShouldHandle = new PredicateBuilder().Handle<HostAttemptFailedException>(),
                    MaxRetryAttempts = _options.MaxAttempts - 1,

                    // The next attempt goes to another host, which has no reason to wait.
                    Delay = TimeSpan.Zero,
                    BackoffType = DelayBackoffType.Constant,
                    UseJitter = false,
                })
                .Build();
    }

    /// <summary>The hosts of the last refresh with their loads.</summary>
    public IReadOnlyList<HostLoad> Hosts => _directory.Hosts;

    public RoutingStrategy Strategy => _options.Strategy;

    /// <summary>Counts for /metrics: requests sent again to a host after a host failure or a membership change.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Counts for /metrics: attempts a host answered that it cannot run the request's model now (sent elsewhere).</summary>
    public long ModelFailures => Interlocked.Read(ref _modelFailures);

    /// <summary>Pre-warms this front started (a busy model loaded on one more host), for tests and diagnostics.</summary>
    public long Prewarms => _prewarming.Count;

    /// <inheritdoc cref="HostDirectory.RefreshAsync"/>
    public Task RefreshAsync(CancellationToken cancellationToken = default) => _directory.RefreshAsync(cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            await _directory.RefreshAsync(stoppingToken);
            try
            {
                await Task.Delay(_options.RefreshInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Runs <paramref name="call"/> on a chosen host, whatever its models: see <see cref="ExecuteAsync{T}(HostWork, Func{IGpuHostGrain, CancellationToken, Task{T}}, CancellationToken)"/>.</summary>
    public Task<T> ExecuteAsync<T>(long tokens, Func<IGpuHostGrain, CancellationToken, Task<T>> call, CancellationToken requestAborted) =>
        ExecuteAsync(new HostWork(tokens), call, requestAborted);

    /// <summary>
    /// Runs <paramref name="call"/> on a chosen host; on a transient host failure, on the next one. <paramref name="work"/>
    /// is the request's estimated size, counted against its host while it runs, and its model, which least-busy routing
    /// sends where it is warm. Throws what a deterministic failure threw, or <see cref="NoHostAvailableException"/> when
    /// no host could take the request.
    /// </summary>
    public async Task<T> ExecuteAsync<T>(HostWork work, Func<IGpuHostGrain, CancellationToken, Task<T>> call, CancellationToken requestAborted)
    {
        if (_directory.IsStale)
        {
            await _directory.RefreshAsync(requestAborted);
        }

        var request = new Request<T>(this, work, call);
        try
        {
            return await _retry.ExecuteAsync(static (r, ct) => r.Router.AttemptAsync(r, ct), request, requestAborted);
        }
        catch (HostAttemptFailedException)
        {
            throw request.NoHost();
        }
    }

    private async ValueTask<T> AttemptAsync<T>(Request<T> request, CancellationToken requestAborted)
    {
        var host = await NextHostAsync(request.Tried, request.CannotRun, request.Work, requestAborted) ?? throw request.NoHost();
        var first = request.Tried.Count == 0;
        request.Tried.Add(host);
        var state = _directory.State(host);
        var membershipChanged = _directory.MembershipChanged;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, state.Gone, membershipChanged);
        state.Add(request.Work.Tokens);
        if (request.Work.Model is { } model)
        {
            state.NoteSent(model, request.Work.Use, request.Work.Precision);
            if (first)
            {
                _prewarming.Consider(request.Work);
            }
        }

        try
        {
            return await request.Call(_directory.Grain(host), linked.Token);
        }
        catch (Exception ex) when (HostFailures.Classify(ex, requestAborted, state.Gone, membershipChanged) is var failure and not HostFailure.Deterministic)
        {
            request.LastFailure = ex;
            request.OnlyBusy &= failure == HostFailure.Busy;
            if (ex is HostBusyException busy)
            {
                request.Busy[host] = busy;
            }

            switch (failure)
            {
                case HostFailure.Busy:
                    _logger.LogInformation("GPU host {Host} is busy; trying another", host);
                    break;
                case HostFailure.Draining:
                    // Until the host's own report says draining (the next refresh), this front sends it nothing more.
                    state.MarkDraining(_options.RefreshInterval * 3);
                    Interlocked.Increment(ref _retries);
                    _logger.LogInformation("GPU host {Host} is stopping; sending the request to another", host);
                    break;
                case HostFailure.ModelFailed:
                    // Until the host's own report says for how long (HostLoad.Faults), this front sends it none of the model's requests.
                    // (A request that names no model can only hold it against the whole host; a text too large for that
                    // device's memory says nothing of the model's other requests there.)
                    if (ex is not HostModelFailedException { Code: HostFaultCodes.DeviceOutOfMemory })
                    {
                        if (request.Work.Model is null)
                        {
                            state.MarkFailed(_options.FailureCooldown);
                        }
                        else
                        {
                            state.MarkModelFailed(request.Work.Model, _options.FailureCooldown);
                        }
                    }

                    request.CannotRun.Add(host);
                    Interlocked.Increment(ref _retries);
                    Interlocked.Increment(ref _modelFailures);
                    _logger.LogWarning("GPU host {Host} cannot run {Model} now ({Reason}); trying another", host, request.Work.Model, ex.Message);
                    break;
                case HostFailure.ModelTooLarge:
                    // Not the host's fault nor the request's: another host's budget may hold the model.
                    _directory.NoteTooLarge(host, request.Work.Model, (InvalidWorkException)ex);
                    request.CannotRun.Add(host);
                    _logger.LogInformation("GPU host {Host} cannot hold {Model} ({Reason}); trying another", host, request.Work.Model, ex.Message);
                    break;
                case HostFailure.MembershipChanged:
                    // The host is fine: it (or another) may take the request again.
                    request.Tried.Remove(host);
                    Interlocked.Increment(ref _retries);
                    _logger.LogInformation("Cluster membership changed while {Host} served a request; sending it again", host);
                    break;
                default:
                    state.MarkFailed(_options.FailureCooldown);
                    Interlocked.Increment(ref _retries);
                    _logger.LogWarning("GPU host {Host} failed ({Error}: {Reason}); trying another", host, ex.GetType().Name, ex.Message);
                    break;
            }

            throw new HostAttemptFailedException(host, failure, ex);
        }
        finally
        {
            state.Remove(request.Work.Tokens);
        }
    }

    /// <summary>A host not yet tried; when every known host was, looks once more for hosts that joined (or came back) meanwhile.</summary>
    private async Task<string?> NextHostAsync(HashSet<string> tried, IReadOnlySet<string> cannotRun, HostWork work, CancellationToken requestAborted)
    {
        if (_selection.Pick(_directory, tried, work) is { } host)
        {
            return host;
        }

        if (tried.Count == 0 || _directory.TooLargeEverywhere(work) is not null)
        {
            return null; // no host at all (the refresh before the first attempt found none), or none can hold the model
        }

        await Task.Delay(LookAgainDelay, requestAborted);
        await _directory.RefreshAsync(requestAborted);
        tried.RemoveWhere(h => !cannotRun.Contains(h) && _directory.Hosts.FirstOrDefault(l => l.Host == h) is { } load && !_directory.IsSuspect(h) && !_directory.IsFaulted(load, work));
        return _selection.Pick(_directory, tried, work);
    }

    /// <summary>One request across its attempts.</summary>
    private sealed class Request<T>(HostRouter router, HostWork work, Func<IGpuHostGrain, CancellationToken, Task<T>> call)
    {
        public HostRouter Router { get; } = router;

        public HostWork Work { get; } = work;

        public Func<IGpuHostGrain, CancellationToken, Task<T>> Call { get; } = call;

        public HashSet<string> Tried { get; } = new(StringComparer.Ordinal);

        /// <summary>The hosts that answered they cannot run this request's model now: not asked again for this request.</summary>
        public HashSet<string> CannotRun { get; } = new(StringComparer.Ordinal);

        /// <summary>Whether every failed attempt so far was a full queue (then the caller should come back later).</summary>
        public bool OnlyBusy { get; set; } = true;

        public Exception? LastFailure { get; set; }

        /// <summary>The hosts that answered with a full queue, by name (a host asked twice counts once).</summary>
        public SortedDictionary<string, HostBusyException> Busy { get; } = new(StringComparer.Ordinal);

        /// <summary>
        /// Why no host could serve the request. When the model failed to load on every host tried, that is the answer (as
        /// with one host): the model's files must be repaired, and trying later will not help. When no host can hold the
        /// model, that is the answer too: a 422 naming its size and the largest budget.
        /// </summary>
        public Exception NoHost() => (Exception?)Router._directory.TooLargeEverywhere(Work) ?? LastFailure switch
        {
            HostModelFailedException { Code: ErrorCodes.ModelUnreadable or HostFaultCodes.ModelLoadFailed } failed => new InvalidWorkException(failed.Code, failed.Message),
            null => new NoHostAvailableException("No GPU host is available: none has joined the cluster yet.", busy: false),
            _ when OnlyBusy => new NoHostAvailableException(
                $"Every GPU host is busy ({string.Join("; ", Busy.Values.Select(b => b.Message.TrimEnd('.')))}); retry later.", busy: true, LastFailure),
            _ => new NoHostAvailableException($"No GPU host could serve the request: {LastFailure.Message}", busy: false, LastFailure),
        };
    }
}

/// <summary>One attempt failed in a way another host may not (see <see cref="HostFailures"/>); the retry pipeline handles only this.</summary>
public sealed class HostAttemptFailedException(string host, HostFailure failure, Exception inner)
    : Exception($"GPU host {host}: {inner.Message}", inner)
{
    public string Host { get; } = host;

    public HostFailure Failure { get; } = failure;
}
