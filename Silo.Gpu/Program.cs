using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Grains.Security;

// A GPU host: one silo whose grains hold the loaded models of this machine's GPU (or CPU).
//   Silo.Gpu                 run the silo
//   Silo.Gpu apply-schema    create or update the PostgreSQL membership schema, then exit
//   Silo.Gpu make-certs      make a cluster CA and host certificates for mutual TLS (--hosts a,b --out DIR), then exit
//   Silo.Gpu fetch MODEL...  download models from the Hugging Face hub into the Hugging Face cache and build the graphs
//                            of those without an ONNX export (--no-build: download only), then exit
if (args is ["make-certs", .. var certArgs])
{
    return ClusterCertificateAuthority.Run(certArgs, Console.Out, Console.Error);
}

if (args is ["fetch", .. var models])
{
    var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
    using var loggers = LoggerFactory.Create(l => l.AddSimpleConsole(o => o.SingleLine = true));
    return await ModelFetch.RunAsync(models, configuration, loggers.CreateLogger("Silo.Gpu"));
}

Observability.ExportMetrics();
var builder = Host.CreateApplicationBuilder(args.Where(a => a != "apply-schema").ToArray());
builder.Configuration.AddLogLevelDefaults();
var cluster = ClusterSettings.FromConfiguration(builder.Configuration);

if (args.Contains("apply-schema"))
{
    using var loggers = LoggerFactory.Create(l => l.AddSimpleConsole(o => o.SingleLine = true));
    var logger = loggers.CreateLogger("Silo.Gpu");
    if (cluster.ConnectionString is not { } connection)
    {
        logger.LogError("apply-schema needs a PostgreSQL connection string: set ORLEANS_POSTGRES or Cluster:ConnectionString");
        return 2;
    }

    await PostgresSchema.ApplyAsync(connection, logger);
    return 0;
}

builder.UseOrleans(silo =>
{
    cluster.ConfigureSilo(silo);
    silo.AddGpuHost(builder.Configuration);
});
builder.Services.AddHostedService<MetricsListener>();
builder.Services.AddTracing(builder.Configuration, "orleansgpu-silo");

await builder.Build().RunAsync();
return 0;
