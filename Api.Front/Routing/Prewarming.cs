using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// Loads a model on one more host before its warm hosts become so busy that requests start cold loads anyway: when
/// every routable host warm for the model is busier than half what a cold load is worth
/// (<see cref="LeastBusySelection.ColdLoadTokens"/>), and no load of it is under way, the least-busy cold host is
/// asked to load it (a warm call; nobody waits for it), at most once per <see cref="RoutingOptions.PrewarmInterval"/>
/// per model, use and precision asked (warmth is read in the precision the request runs in on each host). Least-busy
/// routing with <see cref="RoutingOptions.PreferWarm"/> only.
/// </summary>
public sealed class Prewarming(HostDirectory directory, RoutingOptions options, ILogger logger)
{
    private readonly Dictionary<(string Model, ModelUse Use, string? Precision), DateTimeOffset> _last = [];
    private long _count;

    /// <summary>Pre-warms started by this front, for /metrics.</summary>
    public long Count => Interlocked.Read(ref _count);

    private bool Enabled => options.Strategy == RoutingStrategy.LeastBusy && options.PreferWarm && options.PrewarmInterval > TimeSpan.Zero;

    /// <summary>Looks at the model of a request just routed and starts a pre-warm when the rule says so.</summary>
    public void Consider(HostWork work)
    {
        if (!Enabled || work.Model is not { } model)
        {
            return;
        }

        var routable = directory.Hosts.Where(directory.IsRoutable).ToList();
        var warm = routable.Where(h => directory.IsWarm(h, work)).ToList();
        if (warm.Count == 0 || warm.Count == routable.Count)
        {
            return;
        }

        // A host warm only by what this front sent, or one that reports the load running, is the extra host already.
        if (warm.Any(h => h.Model(model) is not { } m || !m.IsReadyFor(work.Use, work.Precision)))
        {
            return;
        }

        var lightestWarm = LeastBusySelection.Lightest(warm, directory);
        if (lightestWarm.Load <= LeastBusySelection.ColdLoadTokens(lightestWarm.Host, work, options) / 2)
        {
            return;
        }

        // A host where the model failed to load or is degraded would only fail again (or load a copy it just set aside).
        // Nor one whose memory budget is below the model's size.
        var cold = routable.Except(warm).Where(h => !directory.IsSuspect(h.Host) && !directory.IsFaulted(h, work) && !directory.CannotHold(h, work)).ToList();
        if (cold.Count == 0 || !TryClaim((model, work.Use, work.Precision)))
        {
            return;
        }

        var target = LeastBusySelection.Lightest(cold, directory).Host.Host;
        directory.State(target).NoteSent(model, work.Use, work.Precision);
        Interlocked.Increment(ref _count);
        logger.LogInformation(
            "Model {Model} is busy on {Warm} (least {Tokens} tokens queued); pre-warming it on {Host}",
            model, string.Join(", ", warm.Select(h => h.Host)), lightestWarm.Load, target);
        _ = WarmAsync(target, model, work.Use, work.Precision);
    }

    /// <summary>True, once per interval per model, for the caller that may start the pre-warm.</summary>
    private bool TryClaim((string Model, ModelUse Use, string? Precision) key)
    {
        var now = DateTimeOffset.UtcNow;
        lock (_last)
        {
            if (_last.TryGetValue(key, out var last) && now - last < options.PrewarmInterval)
            {
                return false;
            }

            // Only models warm somewhere get here, so the table stays as small as the models loaded; old entries go.
            foreach (var old in _last.Where(e => now - e.Value >= options.PrewarmInterval).Select(e => e.Key).ToList())
            {
                _last.Remove(old);
            }

            _last[key] = now;
            return true;
        }
    }

    private async Task WarmAsync(string host, string model, ModelUse use, string? precision)
    {
        try
        {
            var problems = await directory.Grain(host).WarmAsync([new WarmRequest(model, use, precision)]);
            foreach (var problem in problems)
            {
                logger.LogWarning("Pre-warming {Model} on {Host} failed: {Reason}", problem.Model, host, problem.Reason);
            }
        }
        catch (Exception ex)
        {
            logger.LogWarning("Pre-warming {Model} on {Host} failed: {Reason}", model, host, ex.Message);
        }
    }
}
