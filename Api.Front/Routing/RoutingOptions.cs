using System.ComponentModel;
using System.Globalization;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Api.Routing;

/// <summary>How the front picks a host: written <c>least-busy</c> or <c>round-robin</c> in configuration.</summary>
[TypeConverter(typeof(RoutingStrategyConverter))]
public enum RoutingStrategy
{
    LeastBusy,
    RoundRobin,
}

/// <summary>How the front picks a GPU host and how hard it tries (section <c>Routing</c>; <c>ROUTING</c> for the strategy).</summary>
public sealed class RoutingOptions
{
    public const string Section = "Routing";

    public static IReadOnlyList<SettingAlias> Aliases { get; } = [new("ROUTING", nameof(Strategy))];

    /// <summary><c>least-busy</c> (default) or <c>round-robin</c> (<c>ROUTING</c> or <c>Routing:Strategy</c>).</summary>
    public RoutingStrategy Strategy { get; set; } = RoutingStrategy.LeastBusy;

    /// <summary>How often the host list and their loads are refreshed.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Hosts tried for one request before it fails (each host at most once, plus one look for new hosts).</summary>
    public int MaxAttempts { get; set; } = 4;

    /// <summary>How long a host that just failed is passed over while others are available.</summary>
    public TimeSpan FailureCooldown { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Least-busy sends a request to a host that has its model loaded (or loading) unless that host is much busier
    /// than the least-busy host without it (see <see cref="ColdLoadTokensPerSecond"/>); false compares loads only.
    /// </summary>
    public bool PreferWarm { get; set; } = true;

    /// <summary>
    /// What a cold load is worth in queued tokens, per second the model took to load (at least one second is counted):
    /// about what a host runs in a second. A warm host is chosen while its queue exceeds the least-busy cold host's by
    /// no more than the model's load time times this; half of that on every warm host pre-warms another.
    /// </summary>
    public long ColdLoadTokensPerSecond { get; set; } = 20_000;

    /// <summary>
    /// At most one pre-warm per model this often: when every host warm for a model is more than half the cold-load
    /// threshold busy, the front has the model loaded on one more host. Zero turns pre-warming off.
    /// </summary>
    public TimeSpan PrewarmInterval { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class RoutingOptionsValidator : IValidateOptions<RoutingOptions>
{
    public ValidateOptionsResult Validate(string? name, RoutingOptions o) => Settings.Validate(
        o.MaxAttempts < 1 ? $"{Name(nameof(o.MaxAttempts))} must be a positive integer; got {o.MaxAttempts}." : null,
        o.RefreshInterval <= TimeSpan.Zero ? $"{Name(nameof(o.RefreshInterval))} must be positive; got {o.RefreshInterval}." : null,
        o.FailureCooldown < TimeSpan.Zero ? $"{Name(nameof(o.FailureCooldown))} must not be negative; got {o.FailureCooldown}." : null,
        o.ColdLoadTokensPerSecond < 0 ? $"{Name(nameof(o.ColdLoadTokensPerSecond))} must not be negative; got {o.ColdLoadTokensPerSecond}." : null,
        o.PrewarmInterval < TimeSpan.Zero ? $"{Name(nameof(o.PrewarmInterval))} must not be negative; got {o.PrewarmInterval}." : null,
        Enum.IsDefined(o.Strategy) ? null : $"{Name(nameof(o.Strategy))} must be least-busy or round-robin.");

    private static string Name(string property) => Settings.Name(RoutingOptions.Section, property, RoutingOptions.Aliases);
}

/// <summary>Reads the strategy as the README writes it (<c>least-busy</c>), or as the enum does (<c>LeastBusy</c>).</summary>
public sealed class RoutingStrategyConverter : EnumConverter
{
    public RoutingStrategyConverter()
        : base(typeof(RoutingStrategy))
    {
    }

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) =>
        value is string text
            ? text.Trim().Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant() switch
            {
                "leastbusy" => RoutingStrategy.LeastBusy,
                "roundrobin" => RoutingStrategy.RoundRobin,
                _ => throw new FormatException($"Routing strategy '{text}' is unknown: use least-busy or round-robin."),
            }
            : base.ConvertFrom(context, culture, value);

    /// <summary>The name the README and <c>/status</c> use.</summary>
    public static string Name(RoutingStrategy strategy) => strategy == RoutingStrategy.RoundRobin ? "round-robin" : "least-busy";
}
