using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// Picks the host for one attempt among those not yet tried for the request. A host that just failed is avoided
/// while another is there; alone, it is tried again.
/// </summary>
public abstract class HostSelection
{
    public static HostSelection For(RoutingStrategy strategy) => strategy switch
    {
        RoutingStrategy.RoundRobin => new RoundRobinSelection(),
        _ => new LeastBusySelection(),
    };

    /// <summary>A host of <paramref name="directory"/> outside <paramref name="tried"/>, or null when every host was tried.</summary>
    public string? Pick(HostDirectory directory, IReadOnlySet<string> tried)
    {
        var all = directory.Hosts;
        var candidates = all.Where(h => !tried.Contains(h.Host)).ToList();
        if (candidates.Count == 0)
        {
            return null;
        }

        var healthy = candidates.Where(h => !directory.IsSuspect(h.Host)).ToList();
        return Choose(all, healthy.Count > 0 ? healthy : candidates, directory);
    }

    /// <param name="all">Every known host, by name.</param>
    /// <param name="candidates">The hosts this attempt may use (never empty).</param>
    protected abstract string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory);
}

/// <summary>Each request goes to the host after the previous request's, over all hosts in name order.</summary>
public sealed class RoundRobinSelection : HostSelection
{
    private int _next = -1;

    protected override string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory)
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
/// The host with the fewest queued and running tokens: the larger of what it last reported and what this front has in
/// flight on it now. With many hosts, power of two choices (two at random, the lighter wins) avoids every front
/// herding onto the same host between refreshes; with a few, all are compared.
/// </summary>
public sealed class LeastBusySelection : HostSelection
{
    protected override string Choose(IReadOnlyList<HostLoad> all, List<HostLoad> candidates, HostDirectory directory)
    {
        long Load(HostLoad h) => Math.Max(h.Tokens, directory.Pending(h.Host));

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
}
