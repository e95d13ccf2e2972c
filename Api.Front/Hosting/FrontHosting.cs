using System.Net;
using Orleans.Configuration;
using Orleans.Dashboard;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// How the front joins the cluster (<c>Cluster:Mode</c>), and leaves it. <c>cohost</c>, the default with localhost
/// clustering: the front hosts a GPU silo itself, so one process serves everything. <c>client</c>, the default with
/// PostgreSQL clustering: a pure Orleans client of the silos' gateways. On SIGTERM the web server stops first (it is
/// the last service to start): it refuses new connections and answers the requests in flight
/// (<see cref="FrontDrainOptions"/>); then the co-hosted silo drains (<c>HostDrain</c>) or the client closes.
/// </summary>
public static class FrontHosting
{
    public static bool IsCoHosted(IConfiguration configuration, ClusterSettings cluster) =>
        configuration["Cluster:Mode"]?.Trim().ToLowerInvariant() switch
        {
            "client" => false,
            "cohost" => true,
            null or "" => cluster.Provider == ClusterProvider.Localhost,
            var other => throw new ArgumentException($"Cluster:Mode '{other}' is unknown: use cohost or client."),
        };

    public static void AddCluster(this WebApplicationBuilder builder)
    {
        var cluster = ClusterSettings.FromConfiguration(builder.Configuration);
        var coHosted = IsCoHosted(builder.Configuration, cluster);
        builder.Services.AddSettings<FrontDrainOptions, FrontDrainOptionsValidator>(builder.Configuration, FrontDrainOptions.Section, FrontDrainOptions.Aliases);
        FrontDrainOptions.AllowForDrains(builder.Services, coHosted);
        if (coHosted)
        {
            builder.UseOrleans(silo =>
            {
                cluster.ConfigureSilo(silo);
                silo.AddGpuHost(builder.Configuration);
            });
            return;
        }

        builder.UseOrleansClient(client =>
        {
            cluster.ConfigureClient(client);
            client.AddDashboard();
            client.AddActivityPropagation();

            // Jobs can run for minutes; a dead host is not waited for, since the router sends requests again as soon
            // as a host leaves membership.
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = GpuSiloHosting.JobTimeout);
        });
    }
}
