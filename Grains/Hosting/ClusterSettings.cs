using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Orleans.Configuration;
using Orleans.Hosting;
using OrleansGpu.Grains.Security;

namespace OrleansGpu.Grains.Hosting;

/// <summary>Where cluster membership lives.</summary>
public enum ClusterProvider
{
    /// <summary>One machine: the silo on <see cref="ClusterSettings.PrimarySiloPort"/> holds membership in memory.</summary>
    Localhost,

    /// <summary>Many machines: membership in PostgreSQL through Orleans' ADO.NET clustering (invariant Npgsql).</summary>
    Postgres,
}

/// <summary>
/// How silos and the front find each other (section <c>Cluster</c>, or the environment variables named below).
/// With nothing configured: localhost clustering, silo port 11111, gateway port 30000. With a PostgreSQL connection
/// string: ADO.NET clustering, shared by every silo and front that names the same cluster id.
/// </summary>
public sealed record ClusterSettings
{
    public const string NpgsqlInvariant = "Npgsql";
    public const string PostgresVariable = "ORLEANS_POSTGRES";
    public const string PostgresPasswordFileVariable = "ORLEANS_POSTGRES_PASSWORD_FILE";

    public ClusterProvider Provider { get; init; } = ClusterProvider.Localhost;

    /// <summary>
    /// PostgreSQL connection string (<c>ORLEANS_POSTGRES</c> or the file <c>ORLEANS_POSTGRES_FILE</c> names,
    /// <c>Cluster:ConnectionString</c> or <c>ConnectionStrings:Orleans</c>), with the password from
    /// <c>ORLEANS_POSTGRES_PASSWORD_FILE</c> when that is set. Its TLS settings (<c>SSL Mode</c>, <c>Root Certificate</c>)
    /// reach Npgsql unchanged.
    /// </summary>
    public string? ConnectionString { get; init; }

    /// <summary>Silos and fronts with the same cluster id form one cluster (<c>ORLEANS_CLUSTER_ID</c>).</summary>
    public string ClusterId { get; init; } = "orleansgpu";

    /// <summary>Stable across deployments (<c>ORLEANS_SERVICE_ID</c>).</summary>
    public string ServiceId { get; init; } = "orleansgpu";

    public int SiloPort { get; init; } = 11111;

    public int GatewayPort { get; init; } = 30000;

    /// <summary>The silo port of the silo that holds localhost membership.</summary>
    public int PrimarySiloPort { get; init; } = 11111;

    /// <summary>Gateway ports a front in client mode connects to on this machine (localhost clustering only).</summary>
    public IReadOnlyList<int> Gateways { get; init; } = [30000];

    /// <summary>
    /// The address other machines reach this silo at (<c>ORLEANS_ADVERTISED_IP</c>); by default this machine's
    /// first IPv4 address with PostgreSQL clustering, loopback with localhost clustering.
    /// </summary>
    public IPAddress? AdvertisedAddress { get; init; }

    /// <summary>Mutual TLS on the cluster's connections; required when the cluster spans machines.</summary>
    public ClusterTlsSettings Tls { get; init; } = new();

    public static ClusterSettings FromConfiguration(IConfiguration configuration)
    {
        var s = configuration.GetSection("Cluster");
        var d = new ClusterSettings();
        var connection = WithPasswordFile(
            NonEmpty(SecretFiles.Read(configuration, PostgresVariable)) ?? NonEmpty(s["ConnectionString"]) ?? NonEmpty(configuration.GetConnectionString("Orleans")),
            NonEmpty(configuration[PostgresPasswordFileVariable]) ?? NonEmpty(s["PasswordFile"]));
        var provider = (NonEmpty(configuration["ORLEANS_CLUSTERING"]) ?? NonEmpty(s["Provider"]))?.ToLowerInvariant() switch
        {
            null => connection is null ? ClusterProvider.Localhost : ClusterProvider.Postgres,
            "localhost" => ClusterProvider.Localhost,
            "postgres" or "postgresql" or "adonet" => ClusterProvider.Postgres,
            var other => throw new ArgumentException($"Cluster provider '{other}' is unknown: use localhost or postgres."),
        };
        if (provider == ClusterProvider.Postgres && connection is null)
        {
            throw new ArgumentException("PostgreSQL clustering needs a connection string: set ORLEANS_POSTGRES or Cluster:ConnectionString.");
        }

        var advertised = NonEmpty(configuration["ORLEANS_ADVERTISED_IP"]) ?? NonEmpty(s["AdvertisedIP"]);
        return new ClusterSettings
        {
            Provider = provider,
            ConnectionString = connection,
            ClusterId = NonEmpty(configuration["ORLEANS_CLUSTER_ID"]) ?? NonEmpty(s["ClusterId"]) ?? d.ClusterId,
            ServiceId = NonEmpty(configuration["ORLEANS_SERVICE_ID"]) ?? NonEmpty(s["ServiceId"]) ?? d.ServiceId,
            SiloPort = Port(s["SiloPort"], d.SiloPort, "Cluster:SiloPort"),
            GatewayPort = Port(s["GatewayPort"], d.GatewayPort, "Cluster:GatewayPort"),
            PrimarySiloPort = Port(s["PrimarySiloPort"], d.PrimarySiloPort, "Cluster:PrimarySiloPort"),
            Gateways = s["Gateways"] is { Length: > 0 } g
                ? [.. g.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => Port(p, 0, "Cluster:Gateways"))]
                : d.Gateways,
            AdvertisedAddress = advertised is null ? null
                : IPAddress.TryParse(advertised, out var ip) ? ip
                : throw new ArgumentException($"ORLEANS_ADVERTISED_IP '{advertised}' is not an IP address."),
            Tls = ClusterTlsSettings.FromConfiguration(configuration),
        };
    }

    /// <summary>The connection string with the password read from <paramref name="passwordFile"/>, so it is in no environment.</summary>
    private static string? WithPasswordFile(string? connection, string? passwordFile)
    {
        if (passwordFile is null)
        {
            return connection;
        }

        if (connection is null)
        {
            throw new ArgumentException($"{PostgresPasswordFileVariable} is set but there is no connection string: set {PostgresVariable} (without the password) too.");
        }

        var builder = new NpgsqlConnectionStringBuilder(connection);
        if (!string.IsNullOrEmpty(builder.Password))
        {
            throw new ArgumentException($"{PostgresPasswordFileVariable} is set and the connection string has a password too: keep one (the file keeps it out of process listings).");
        }

        builder.Password = SecretFiles.ReadFile(passwordFile, PostgresPasswordFileVariable);
        return builder.ConnectionString;
    }

    /// <summary>Clustering, endpoints and membership timings for a silo.</summary>
    public ISiloBuilder ConfigureSilo(ISiloBuilder silo)
    {
        if (Provider == ClusterProvider.Postgres)
        {
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = NpgsqlInvariant;
                o.ConnectionString = ConnectionString;
            });
            silo.Configure<ClusterOptions>(SetIds);
            if (AdvertisedAddress is { } address)
            {
                silo.ConfigureEndpoints(address, SiloPort, GatewayPort, listenOnAnyHostAddress: true);
            }
            else
            {
                silo.ConfigureEndpoints(SiloPort, GatewayPort, System.Net.Sockets.AddressFamily.InterNetwork, listenOnAnyHostAddress: true);
            }
        }
        else
        {
            silo.UseLocalhostClustering(SiloPort, GatewayPort, new IPEndPoint(IPAddress.Loopback, PrimarySiloPort), ServiceId, ClusterId);
        }

        silo.Configure<ClusterMembershipOptions>(TuneMembership);
        silo.UseClusterTls(Tls, spansMachines: Provider == ClusterProvider.Postgres);
        return silo;
    }

    /// <summary>Clustering for a front that is only a client of the silos.</summary>
    public IClientBuilder ConfigureClient(IClientBuilder client)
    {
        if (Provider == ClusterProvider.Postgres)
        {
            client.UseAdoNetClustering(o =>
            {
                o.Invariant = NpgsqlInvariant;
                o.ConnectionString = ConnectionString;
            });
            client.Configure<ClusterOptions>(SetIds);

            // New silos become gateways within seconds, not the default minute.
            client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        }
        else
        {
            client.UseLocalhostClustering([.. Gateways], ServiceId, ClusterId);
        }

        client.UseClusterTls(Tls, spansMachines: Provider == ClusterProvider.Postgres);
        return client;
    }

    private void SetIds(ClusterOptions o)
    {
        o.ClusterId = ClusterId;
        o.ServiceId = ServiceId;
    }

    /// <summary>
    /// Membership timings for GPU hosts: a dead host is declared dead after two missed 3-second probes (about 6–10 s
    /// in all, against about 15 s with Orleans' defaults), while a host busy on its GPU still answers probes, which
    /// run on the Orleans scheduler, not on the inference threads.
    /// </summary>
    public static void TuneMembership(ClusterMembershipOptions o)
    {
        o.ProbeTimeout = TimeSpan.FromSeconds(3);
        o.NumMissedProbesLimit = 2;
        o.NumVotesForDeathDeclaration = 2;
        o.TableRefreshTimeout = TimeSpan.FromSeconds(10);
        o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
        o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(60);
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static int Port(string? value, int fallback, string name)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return fallback;
        }

        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var port) && port is > 0 and < 65536
            ? port
            : throw new ArgumentException($"{name} must be a TCP port; got '{value}'.");
    }
}
