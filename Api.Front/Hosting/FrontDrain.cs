using Microsoft.Extensions.Options;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// How long a stopping front (SIGTERM: a deploy, a restart) waits for the requests in flight (section <c>Api</c>). It
/// stops accepting connections at once (Kestrel's graceful shutdown: a new connection is refused, one kept alive is
/// closed after its answer), answers the requests it holds, then leaves the cluster.
/// </summary>
public sealed class FrontDrainOptions
{
    public const string Section = "Api";

    public static IReadOnlyList<SettingAlias> Aliases { get; } = [new("API_DRAIN_TIMEOUT", nameof(DrainTimeout))];

    /// <summary>At most this long for the requests in flight (<c>API_DRAIN_TIMEOUT</c>, default one minute: a long BERTScore job).</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// What the process's shutdown must allow: this drain, then, for a front that co-hosts its silo, the silo's own drain
    /// and leave, else a moment for the cluster client to close.
    /// </summary>
    internal static void AllowForDrains(IServiceCollection services, bool coHosted) =>
        services.AddOptions<HostOptions>().PostConfigure<IServiceProvider>((host, provider) =>
        {
            var after = coHosted
                ? provider.GetRequiredService<IOptions<GpuHostOptions>>().Value.DrainTimeout + GpuSiloHosting.LeaveAllowance
                : TimeSpan.FromSeconds(15);
            var needed = provider.GetRequiredService<IOptions<FrontDrainOptions>>().Value.DrainTimeout + after;
            host.ShutdownTimeout = needed > host.ShutdownTimeout ? needed : host.ShutdownTimeout;
        });
}

public sealed class FrontDrainOptionsValidator : IValidateOptions<FrontDrainOptions>
{
    public ValidateOptionsResult Validate(string? name, FrontDrainOptions o) => Grains.Hosting.Settings.Validate(
        o.DrainTimeout < TimeSpan.Zero
            ? $"{Grains.Hosting.Settings.Name(FrontDrainOptions.Section, nameof(o.DrainTimeout), FrontDrainOptions.Aliases)} must not be negative; got {o.DrainTimeout}."
            : null);
}
