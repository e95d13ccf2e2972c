using Microsoft.Extensions.Configuration;

namespace OrleansGpu.Api.Routing;

public enum RoutingStrategy
{
    LeastBusy,
    RoundRobin,
}

/// <summary>How the front picks a GPU host and how hard it tries (section <c>Routing</c>).</summary>
public sealed record RoutingOptions
{
    /// <summary><c>least-busy</c> (default) or <c>round-robin</c> (<c>ROUTING</c> or <c>Routing:Strategy</c>).</summary>
    public RoutingStrategy Strategy { get; init; } = RoutingStrategy.LeastBusy;

    /// <summary>How often the host list and their loads are refreshed.</summary>
    public TimeSpan RefreshInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Hosts tried for one request before it fails (each host at most once, plus one look for new hosts).</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>How long a host that just failed is passed over while others are available.</summary>
    public TimeSpan FailureCooldown { get; init; } = TimeSpan.FromSeconds(5);

    public static RoutingOptions FromConfiguration(IConfiguration configuration)
    {
        var value = configuration["ROUTING"] ?? configuration["Routing:Strategy"];
        var strategy = value?.Trim().ToLowerInvariant() switch
        {
            null or "" or "least-busy" or "leastbusy" => RoutingStrategy.LeastBusy,
            "round-robin" or "roundrobin" => RoutingStrategy.RoundRobin,
            _ => throw new ArgumentException($"Routing strategy '{value}' is unknown: use least-busy or round-robin."),
        };
        var attempts = int.TryParse(configuration["Routing:MaxAttempts"], out var a) && a > 0 ? a : 4;
        return new RoutingOptions { Strategy = strategy, MaxAttempts = attempts };
    }
}
