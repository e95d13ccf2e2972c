using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OrleansGpu.Inference.Diagnostics;
using Prometheus;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// Metrics, traces and log levels, the same for the front and the GPU hosts. Metrics: .NET meters exported through
/// prometheus-net, the engine's per-model meter (<see cref="InferenceMetrics"/>) with buckets that fit it. Traces:
/// OpenTelemetry over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (or to the console with
/// <c>OTEL_TRACES_EXPORTER=console</c>), carried across grain calls by Orleans' activity propagation.
/// </summary>
public static class Observability
{
    private static readonly Lazy<IDisposable[]> MeterAdapters = new(StartMeterAdapters);

    /// <summary>
    /// Publishes .NET meters in prometheus-net's default registry from now on. Call it first thing in a process:
    /// prometheus-net's own adapter would start only at the first scrape and miss what happened before.
    /// </summary>
    public static void ExportMetrics() => _ = MeterAdapters.Value;

    private static IDisposable[] StartMeterAdapters()
    {
        Metrics.SuppressDefaultMetrics(new SuppressDefaultMetricOptions { SuppressMeters = true });
        return
        [
            // The engine's series: a model's series stay while it is idle, up to the day prometheus-net allows (not its
            // default five minutes, after which an idle model's counters would vanish and restart at zero).
            MeterAdapter.StartListening(new MeterAdapterOptions
            {
                InstrumentFilterPredicate = i => i.Meter.Name == InferenceMetrics.MeterName,
                ResolveHistogramBuckets = InferenceBuckets,
                MetricsExpireAfter = TimeSpan.FromDays(1),
            }),

            // Everything else (.NET runtime, Orleans, ASP.NET Core) as prometheus-net publishes it by default.
            MeterAdapter.StartListening(new MeterAdapterOptions { InstrumentFilterPredicate = i => i.Meter.Name != InferenceMetrics.MeterName }),
        ];
    }

    private static double[] InferenceBuckets(System.Diagnostics.Metrics.Instrument instrument) => instrument.Name switch
    {
        "batch_size" => Histogram.ExponentialBuckets(1, 2, 11), // 1 … 1024 sequences
        "padding_ratio" => Histogram.LinearBuckets(0.1, 0.1, 10), // 0.1 … 1.0
        "model_load_seconds" => Histogram.ExponentialBuckets(0.1, 2, 12), // 0.1 s … 3.4 min
        _ => Histogram.ExponentialBuckets(0.001, 2, 17), // 1 ms … 65 s
    };

    /// <summary>
    /// Default log levels, below every configuration source so that appsettings, variables (<c>Logging__LogLevel__Orleans=Information</c>)
    /// and the command line still override them: Orleans, Polly and ASP.NET Core's per-request lines at Warning,
    /// so a start shows the banner and what needs attention rather than option dumps.
    /// </summary>
    public static void AddLogLevelDefaults(this IConfigurationBuilder configuration) =>
        configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Information",
                ["Logging:LogLevel:Orleans"] = "Warning",

                // Our own categories, which the rule above would also match: a category rule is a name prefix.
                ["Logging:LogLevel:OrleansGpu"] = "Information",
                ["Logging:LogLevel:Polly"] = "Warning",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Information",
            },
        });

    /// <summary>
    /// Traces to an OpenTelemetry collector when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (the exporter reads the
    /// standard <c>OTEL_*</c> variables), and to the console when <c>OTEL_TRACES_EXPORTER</c> names <c>console</c>.
    /// Nothing is traced otherwise. <paramref name="instrument"/> adds the host's own sources (ASP.NET Core's in the front).
    /// </summary>
    public static IServiceCollection AddTracing(this IServiceCollection services, IConfiguration configuration, string serviceName, Action<TracerProviderBuilder>? instrument = null)
    {
        var otlp = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var console = (configuration["OTEL_TRACES_EXPORTER"] ?? string.Empty).Contains("console", StringComparison.OrdinalIgnoreCase);
        if (!otlp && !console)
        {
            return services;
        }

        services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(configuration["OTEL_SERVICE_NAME"] ?? serviceName))
            .WithTracing(tracing =>
            {
                tracing.AddSource(
                    Orleans.Diagnostics.ActivitySources.ApplicationGrainActivitySourceName,
                    Orleans.Diagnostics.ActivitySources.RuntimeActivitySourceName);
                instrument?.Invoke(tracing);
                if (otlp)
                {
                    tracing.AddOtlpExporter();
                }

                if (console)
                {
                    tracing.AddConsoleExporter();
                }
            });
        return services;
    }
}

/// <summary>
/// A GPU host's own <c>/metrics</c> (<see cref="GpuHostOptions.MetricsPort"/>; none by default), on every address,
/// for a host that runs no front. A front that co-hosts its silo serves the same registry on its own <c>/metrics</c>.
/// </summary>
public sealed class MetricsListener(IOptions<GpuHostOptions> options, ILogger<MetricsListener> logger) : IHostedService
{
    private IMetricServer? _server;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var port = options.Value.MetricsPort;
        if (port > 0)
        {
            Observability.ExportMetrics();
            _server = new MetricServer(hostname: "+", port: port).Start();
            logger.LogInformation("Metrics at http://*:{Port}/metrics", port);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is not null)
        {
            await _server.StopAsync();
        }
    }
}
