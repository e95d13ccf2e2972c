using System.Net;
using Orleans.Configuration;
using Orleans.Dashboard;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// How the front joins the cluster (<c>Cluster:Mode</c>). <c>cohost</c>, the default with localhost clustering: the
/// front hosts a GPU silo itself, so one process serves everything. <c>client</c>, the default with PostgreSQL
/// clustering: a pure Orleans client of the silos' gateways.
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
        if (IsCoHosted(builder.Configuration, cluster))
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

/// <summary>
/// Where the front listens. Port 8765 by default; <c>--urls</c> / <c>ASPNETCORE_URLS</c> override it. Without an API
/// key it listens on loopback only, and refuses other addresses unless <c>Api:AllowAnonymousRemote=true</c>
/// (<c>API_ALLOW_ANONYMOUS_REMOTE</c>) says so.
/// </summary>
public static class ListenAddresses
{
    public const int DefaultPort = 8765;

    public static void Configure(WebApplicationBuilder builder, bool keyRequired)
    {
        var urls = builder.Configuration["urls"];
        var anonymousRemote = string.Equals(builder.Configuration["API_ALLOW_ANONYMOUS_REMOTE"] ?? builder.Configuration["Api:AllowAnonymousRemote"], "true", StringComparison.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(urls))
        {
            urls = keyRequired || anonymousRemote ? $"http://0.0.0.0:{DefaultPort}" : $"http://127.0.0.1:{DefaultPort}";
            builder.WebHost.UseUrls(urls);
        }

        if (!keyRequired && !anonymousRemote)
        {
            var remote = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(u => !IsLoopback(u)).ToList();
            if (remote.Count > 0)
            {
                throw new InvalidOperationException(
                    $"Refusing to listen on {string.Join(", ", remote)} without an API key. Set API_KEY, "
                    + "or listen on 127.0.0.1, or set API_ALLOW_ANONYMOUS_REMOTE=true to serve without authentication.");
            }
        }
    }

    private static bool IsLoopback(string url)
    {
        var host = url.Contains("://", StringComparison.Ordinal) ? url[(url.IndexOf("://", StringComparison.Ordinal) + 3)..] : url;
        host = host.Split('/')[0];
        if (host.StartsWith('['))
        {
            host = host[1..host.IndexOf(']')];
        }
        else if (host.Contains(':'))
        {
            host = host[..host.LastIndexOf(':')];
        }

        return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
    }
}
