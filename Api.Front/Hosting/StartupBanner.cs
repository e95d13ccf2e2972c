using System.Reflection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Auth;
using OrleansGpu.Api.Routing;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// What a newcomer needs from the first start, in one message: where the front listens, whether a key is needed,
/// how it reaches the GPU hosts. The host itself reports its device and which default models are ready or missing,
/// with how to install them, once its warm-up ends (<c>DefaultModelWarmup</c>).
/// </summary>
public sealed class StartupBanner(
    IServer server,
    IHostApplicationLifetime lifetime,
    ApiKeys keys,
    IOptions<RoutingOptions> routing,
    IConfiguration configuration,
    ILogger<StartupBanner> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(Log);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void Log()
    {
        var addresses = server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var version = typeof(StartupBanner).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0];
        var cluster = FrontHosting.IsCoHosted(configuration, Grains.Hosting.ClusterSettings.FromConfiguration(configuration))
            ? "this process hosts the GPU silo (one machine)"
            : "client of the cluster's GPU silos";
        logger.LogInformation(
            "OrleansGpu {Version} listening on {Addresses}\n  key: {KeyMode}\n  hosts: {Cluster}; routing {Routing}\n  try: curl {First}/health; metrics at /metrics; traces with OTEL_EXPORTER_OTLP_ENDPOINT",
            version,
            string.Join(", ", addresses),
            keys.Required ? "required on every route but /health (X-API-Key or Authorization: Bearer)" : "none, so loopback only (set API_KEY to serve other machines)",
            cluster,
            RoutingStrategyConverter.Name(routing.Value.Strategy),
            addresses.FirstOrDefault() ?? $"http://127.0.0.1:{ListenAddresses.DefaultPort}");
    }
}
