using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// Picks the host for one attempt among the routable hosts (<see cref="HostDirectory.IsRoutable"/>) not yet tried for
/// the request. A host that just failed, or where the request's model failed or is degraded, is avoided while another is
/// there; alone, it is tried again.
/// </summary>
public abstract class HostSelection
{
    public static HostSelection For(RoutingOptions options) => options.Strategy switch
    {
        RoutingStrategy.RoundRobin => new RoundRobinSelection(),
        _ => new LeastBusySelection(options),
    };

    /// <summary>A routable host of <paramref name="directory"/> outside <paramref name="tried"/>, or null when there is none.</summary>
    public string? Pick(HostDirectory directory, IReadOnlySet<string> tried, HostWork work)
    {
        var all = directory.Hosts;
        // A host whose whole memory budget is below the model's size would only refuse it: never a candidate.
        var candidates = all.Where(h => !tried.Contains(h.Host) && directory.IsRoutable(h) && !directory.CannotHold(h, work)).ToList();
        if (candidates.Count == 0)
        {
            return null;
        }

        // Hosts where the model failed or is degraded get its requests only when no other host is left to try.
        var sound = candidates.Where(h => !directory.IsFaulted(h, work)).ToList();
        if (sound.Count > 0)
        {
            candidates = sound;
        }

        var healthy = candidates.Where(h => !directory.IsSuspect(h.Host)).ToList();
        return Choose(all, healthy.Count > 0 ? healthy : candidates, directory, work);
    }

    /// <param name="all">Every known host, by name.</param>
    /// <param name="candidates">The hosts this attempt may use (never empty).</param>
    protected abstract string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory, HostWork work);
}

/// <summary>Each request goes to the host after the previous request's, over all hosts in name order, whatever their models.</summary>
public sealed class RoundRobinSelection : HostSelection
{
    private int _next = -1;

    protected override string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory, HostWork work)
    {
        var next = Interlocked.Increment(ref _next);
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
}

/// <summary>
/// The host with the fewest queued and running tokens (<see cref="HostDirectory.Load"/>), preferring one where the
/// request's model is warm. The rule: among warm hosts (model loaded or loading there) the least busy is chosen,
/// unless the least-busy cold host is lighter by more than <see cref="ColdLoadTokens"/>, what a cold load of that model
/// is worth in queued tokens; with no warm host, or no cold one, the least busy of all. With many hosts, power of two
/// choices (two at random, the lighter wins) avoids every front herding onto the same host between refreshes; with a
/// few, all are compared.
/// </summary>
public sealed class LeastBusySelection(RoutingOptions options) : HostSelection
{
    /// <summary>
    /// What a cold load of the request's model is worth in queued tokens: the seconds its last load took on
    /// <paramref name="warmHost"/> (at least one), in the precision the request runs in there, times
    /// <see cref="RoutingOptions.ColdLoadTokensPerSecond"/>.
    /// </summary>
    public static long ColdLoadTokens(HostLoad warmHost, HostWork work, RoutingOptions options)
    {
        var seconds = work.Model is { } model ? warmHost.Model(model)?.LoadSecondsFor(work.Precision) ?? 0 : 0;
        return (long)(Math.Max(1.0, seconds) * options.ColdLoadTokensPerSecond);
    }

    protected override string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory, HostWork work)
    {
        if (options.PreferWarm && work.Model is not null)
        {
            var warm = candidates.Where(h => directory.IsWarm(h, work)).ToList();
            if (warm.Count > 0 && warm.Count < candidates.Count)
            {
                var bestWarm = Lightest(warm, directory);
                var bestCold = Lightest([.. candidates.Except(warm)], directory);
                return bestWarm.Load <= bestCold.Load + ColdLoadTokens(bestWarm.Host, work, options) ? bestWarm.Host.Host : bestCold.Host.Host;
            }
        }

        return Lightest(candidates, directory).Host.Host;
    }

    /// <summary>The least-busy host of <paramref name="hosts"/> (never empty) and its load.</summary>
    internal static (HostLoad Host, long Load) Lightest(List<HostLoad> hosts, HostDirectory directory)
    {
        if (hosts.Count > 4)
        {
            var a = hosts[Random.Shared.Next(hosts.Count)];
            var b = hosts[Random.Shared.Next(hosts.Count)];
            long loadA = directory.Load(a), loadB = directory.Load(b);
            return loadA <= loadB ? (a, loadA) : (b, loadB);
        }

        // Read each load once: the pending counts move while we look.
        var loads = hosts.Select(h => (Host: h, Load: directory.Load(h))).ToList();
        var best = loads.Min(l => l.Load);
        var lightest = loads.Where(l => l.Load == best).ToList();
        return lightest[Random.Shared.Next(lightest.Count)];
    }
}
